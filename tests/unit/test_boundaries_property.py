"""Property-based boundary tests: generated URLs, saved plans, state files and vhost names
driven through the CLI entry points and `RabbitMqConnector`.

For every malformed input: exit 1, exactly one `error:` line on stderr, no traceback, the
generated password nowhere in the output, and no network call at all (sockets are patched to
fail the test), hence no object created anywhere. Seeds are fixed (`derandomize=True`) and
example counts modest, so the suite is stable and fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus_runtime.connector import RabbitMqConnector
from topology.cli.main import main
from topology.plan.saved import SavedPlanError, parse_saved_plan
from topology.urls import UrlError, mask, parse_url

ROOT = Path(__file__).resolve().parents[2]
SEED = str(ROOT / "specs" / "alice.yaml")
SETTINGS = settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    # the machine is shared: generation speed says nothing about the properties
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
ENV_NAMES = ("RABBITMQ_URL", "RABBITMQ_MANAGEMENT_URL", "RABBITMQ_USER", "RABBITMQ_PASSWORD", "RABBITFORM_DEBUG")


class NetworkCalled(AssertionError):
    pass


@contextlib.contextmanager
def no_network() -> Iterator[None]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NetworkCalled(f"network call: {args!r}")

    with (
        mock.patch.object(socket, "create_connection", refuse),
        mock.patch.object(socket.socket, "connect", refuse),
        mock.patch.object(socket.socket, "connect_ex", refuse),
    ):
        yield


def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """main(argv) with a clean environment plus `env`, output captured, no network."""
    out, err = io.StringIO(), io.StringIO()
    clean = {name: "" for name in ENV_NAMES}
    with (
        mock.patch.dict("os.environ", {**clean, **(env or {})}),
        no_network(),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def assert_one_error(result: tuple[int, str, str], secret: str = "", expected: str = "") -> None:
    status, out, err = result
    assert status == 1, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err and "NetworkCalled" not in err
    if secret:
        assert secret not in out + err
    assert expected in lines[0], lines[0]


# ------------------------------------------------------------------ generated URLs

SAFE = string.ascii_letters + string.digits + "-_.~!$&'()*+,;="
RESERVED = "#/@?"
passwords = st.builds(
    lambda head, reserved, tail: head + reserved + tail,
    st.text(SAFE, min_size=3, max_size=8),
    st.sampled_from(RESERVED),
    st.text(SAFE + RESERVED + ":", min_size=2, max_size=8),
)
any_passwords = st.text(string.printable.strip() + "é€", min_size=1, max_size=16)
hosts = st.sampled_from(["127.0.0.1", "localhost", "rabbit.internal", "[::1]", "node-1.example"])
ports = st.one_of(st.none(), st.integers(1, 65535).map(str))
bad_ports = st.one_of(
    st.text(string.ascii_letters, min_size=1, max_size=5),
    st.integers(65536, 10**7).map(str),
    st.just("0"),
    st.just("-1"),
)
paths = st.sampled_from(["", "/", "/vh", "/%2F", "/api", "/rabbit/api/"])


def url(scheme: str, password: str, host: str, port: str | None, path: str) -> str:
    return f"{scheme}://user:{password}@{host}{':' + port if port else ''}{path}"


def commands(scheme: str, bad_url: str) -> list[tuple[list[str], dict[str, str]]]:
    """Every CLI entry point that reads a URL, by flag and by environment."""
    if scheme.startswith("http"):
        return [
            (["plan", SEED, "--management-url", bad_url], {}),
            (["plan", SEED], {"RABBITMQ_MANAGEMENT_URL": bad_url}),
            (["apply", SEED, "--auto-approve", "--management-url", bad_url], {}),
            (["apply", SEED, "--auto-approve"], {"RABBITMQ_MANAGEMENT_URL": bad_url}),
        ]
    publish = ["publish", SEED, "--service", "petisco", "--event", "UserCreated"]
    return [
        ([*publish, "--url", bad_url], {}),
        (publish, {"RABBITMQ_URL": bad_url}),
        (["consume", SEED, "--url", bad_url], {}),
        (["consume", SEED], {"RABBITMQ_URL": bad_url}),
    ]


@SETTINGS
@given(
    scheme=st.sampled_from(["http", "https", "amqp", "amqps"]),
    password=passwords,
    host=hosts,
    port=ports,
    path=paths,
)
def test_unencoded_reserved_characters_in_a_password(
    scheme: str, password: str, host: str, port: str | None, path: str
) -> None:
    bad = url(scheme, password, host, port, path)
    for argv, env in commands(scheme, bad):
        assert_one_error(run(argv, env), secret=password)
    if scheme.startswith("amqp"):
        with no_network(), pytest.raises(UrlError) as caught:
            RabbitMqConnector(url=bad)
        assert password not in str(caught.value) and "***" in str(caught.value)


@SETTINGS
@given(scheme=st.sampled_from(["http", "amqp"]), password=any_passwords, host=hosts, port=bad_ports)
def test_bad_ports_are_refused(scheme: str, password: str, host: str, port: str) -> None:
    bad = url(scheme, quote(password, safe=""), host, port, "")
    for argv, env in commands(scheme, bad):
        assert_one_error(run(argv, env), secret=quote(password, safe="") if len(password) > 3 else "")


@SETTINGS
@given(
    scheme=st.sampled_from(["http", "amqp"]),
    host=st.sampled_from(["ho st", "a b.example", "", "exa mple:15672", "bad_host!", "[nope]"]),
    password=passwords,
)
def test_bad_hosts_are_refused(scheme: str, host: str, password: str) -> None:
    bad = url(scheme, quote(password, safe=""), host, None, "")
    for argv, env in commands(scheme, bad):
        assert_one_error(run(argv, env), secret=password)


@SETTINGS
@given(password=any_passwords, host=hosts, port=ports, path=st.sampled_from(["", "/vh", "/a%2Fb"]))
def test_encoded_passwords_round_trip_and_never_show(password: str, host: str, port: str | None, path: str) -> None:
    text = url("amqp", quote(password, safe=""), host, port, path)
    endpoint = parse_url(text, "amqp")
    assert endpoint.password == password and endpoint.username == "user"
    assert endpoint.safe_url.startswith("amqp://user:***@") and mask(text).startswith("amqp://user:***@")
    assert quote(password, safe="") not in mask(text).removeprefix("amqp://user:***@").split(host)[0]
    connector = RabbitMqConnector(text)
    assert connector.password == password and "user:***@" in repr(connector)


@SETTINGS
@given(
    scheme=st.sampled_from(["http", "https", "amqp", "amqps"]),
    authority=st.text("[]:@.1ab%", min_size=1, max_size=12),
    tail=st.sampled_from(["", "/", "/vh", ":5672"]),
)
def test_any_authority_is_a_url_error_never_another_exception(scheme: str, authority: str, tail: str) -> None:
    """`amqp://[::1` and its like: urlsplit's own ValueErrors become one clear error."""
    kind = "management" if scheme.startswith("http") else "amqp"
    with contextlib.suppress(UrlError):
        parse_url(f"{scheme}://{authority}{tail}", kind)  # type: ignore[arg-type]


def test_an_unclosed_ipv6_bracket() -> None:
    publish = ["publish", SEED, "--service", "petisco", "--event", "UserCreated", "--url", "amqp://[::1"]
    status, _out, err = run(publish)
    assert status == 1 and "an unclosed '[' or a stray ']' in the host in 'amqp://[::1'" in err


@SETTINGS
@given(text=st.text(string.printable, max_size=30).filter(lambda t: "://" not in t and t.strip()))
def test_anything_that_is_not_a_url(text: str) -> None:
    publish = ["publish", SEED, "--service", "petisco", "--event", "UserCreated", "--url", text]
    assert_one_error(run(publish))


# ------------------------------------------------------------------ saved plans


@pytest.fixture(scope="module")
def real_plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    assert run(["plan", SEED, "--offline", "--out", str(path)])[0] == 0
    data: dict[str, Any] = json.loads(path.read_text())
    return data


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
REQUIRED = ("format_version", "vhost", "changes")
CHANGE_FIELDS = ("action", "kind", "name", "after", "before")


@st.composite
def broken_plans(draw: st.DrawFn, plan: dict[str, Any]) -> str:
    """A real saved plan, mutated so that it is no longer a valid one."""
    data = json.loads(json.dumps(plan))
    how = draw(st.sampled_from(["truncate", "drop", "top", "change"]))
    if how == "truncate":
        text = json.dumps(data, indent=2)
        return text[: draw(st.integers(1, len(text) - 2))]
    if how == "drop":
        del data[draw(st.sampled_from(REQUIRED))]
    elif how == "top":
        key = draw(st.sampled_from(REQUIRED))
        data[key] = draw(json_values.filter(lambda v, key=key: not _valid_top(key, v)))
    else:
        index = draw(st.integers(0, len(data["changes"]) - 1))
        field = draw(st.sampled_from(CHANGE_FIELDS))
        value = draw(json_values.filter(lambda v: not isinstance(v, dict) or v == {}))
        data["changes"][index][field] = value
    return json.dumps(data)


def _valid_top(key: str, value: Any) -> bool:
    return (key == "format_version" and value == 1) or (key == "vhost" and isinstance(value, str) and bool(value))


def test_saved_plan_mutations(real_plan: dict[str, Any], tmp_path: Path) -> None:
    @SETTINGS
    @given(text=broken_plans(real_plan))
    def check(text: str) -> None:
        path = tmp_path / "plan.json"
        path.write_text(text)
        try:
            parse_saved_plan(text, str(path))
        except SavedPlanError:
            pass
        else:  # a mutation that kept it valid (e.g. a create whose `before` became null)
            return
        for command in ("apply", "plan"):
            assert_one_error(run([command, str(path)]), expected="saved plan")

    check()


# ------------------------------------------------------------------ state files and vhost names

DEFINITION_KEYS = ("vhosts", "exchanges", "queues", "bindings")
states = st.one_of(
    st.dictionaries(st.text(max_size=8).filter(lambda k: k not in DEFINITION_KEYS), json_values, max_size=4),
    st.builds(lambda k, v: {k: v}, st.sampled_from(DEFINITION_KEYS), json_values.filter(lambda v: v != [])).filter(
        lambda d: (
            not isinstance(next(iter(d.values())), list) or any(not isinstance(i, dict) for i in next(iter(d.values())))
        )
    ),
    st.lists(json_values, max_size=3),
)


def test_state_files_that_are_not_definitions(tmp_path: Path) -> None:
    @SETTINGS
    @given(state=states)
    def check(state: Any) -> None:
        path = tmp_path / "state.json"
        path.write_text(json.dumps(state))
        assert_one_error(run(["plan", SEED, "--state", str(path)]))

    check()


@SETTINGS
@given(vhost=st.text(" \t", max_size=3), command=st.sampled_from(["plan", "export", "apply", "publish", "consume"]))
def test_blank_vhosts_never_fall_back_to_the_specs(vhost: str, command: str) -> None:
    extra = ["--service", "petisco", "--event", "UserCreated"] if command == "publish" else []
    assert_one_error(run([command, SEED, *extra, "--vhost", vhost]), expected="--vhost")


@SETTINGS
@given(vhost=st.text(string.ascii_letters + string.digits + "/#@%._- ", min_size=1, max_size=20).map(str.strip))
def test_a_named_vhost_is_the_one_planned(vhost: str) -> None:
    if not vhost:
        return
    status, out, err = run(["plan", SEED, "--offline", "--vhost", vhost, "--format", "json"])
    assert (status, err) == (0, "")
    assert json.loads(out)["vhost"] == vhost

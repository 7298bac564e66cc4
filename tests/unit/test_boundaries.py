"""Every input boundary case: one `error:` line on stderr, exit 1, no traceback, no password,
and no network call for anything malformed (the `no_network` fixture fails the test if one is
made). Table-driven: each row is a command line (and environment) and what its error says."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from topology.broker.management import ManagementClient
from topology.cli.main import main
from topology.urls import UrlError, mask, mask_text, parse_url, parse_urls

ROOT = Path(__file__).resolve().parents[2]
SEED = str(ROOT / "specs" / "alice.yaml")
MULTI = str(ROOT / "specs" / "examples" / "multi-service.yaml")
SECRET = "pa#ss"


class NetworkCalled(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt fails the test: malformed input must be refused before I/O."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NetworkCalled(f"network call: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("RABBITMQ_URL", "RABBITMQ_MANAGEMENT_URL", "RABBITMQ_USER", "RABBITMQ_PASSWORD", "RABBITFORM_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    yield


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_error(status: int, out: str, err: str, expected: str, secret: str = SECRET) -> None:
    assert status == 1, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0], lines[0]
    assert "Traceback" not in out + err
    if secret:
        assert secret not in out + err


PUBLISH = ["publish", SEED, "--service", "petisco", "--event", "UserCreated"]
CONSUME = ["consume", SEED]
ENCODE = "percent-encode '#', '/', '@'"

URL_CASES: dict[str, tuple[list[str], dict[str, str], str]] = {
    "plan: '#' in the password": (["plan", SEED, "--management-url", "http://user:pa#ss@host:15672"], {}, ENCODE),
    "apply: '/' in the password": (["apply", SEED, "--management-url", "http://user:pa/ss@h:15672"], {}, ENCODE),
    "plan: '#' via the environment": (
        ["plan", SEED],
        {"RABBITMQ_MANAGEMENT_URL": "http://user:pa#ss@host:15672"},
        "RABBITMQ_MANAGEMENT_URL: an unencoded reserved character",
    ),
    "plan: not a URL": (["plan", SEED, "--management-url", "not a url"], {}, "--management-url: not a URL"),
    "plan: port abc": (["plan", SEED, "--management-url", "http://h:abc"], {}, "port 'abc' is not a number"),
    "plan: port 99999": (["plan", SEED, "--management-url", "http://h:99999"], {}, "port '99999'"),
    "plan: host with a space": (["plan", SEED, "--management-url", "http://ho st:1"], {}, "host 'ho st'"),
    "plan: an AMQP URL": (["plan", SEED, "--management-url", "amqp://h:5672"], {}, "scheme 'amqp' is not http"),
    "plan: empty URL": (["plan", SEED, "--management-url", ""], {}, "empty URL"),
    "publish: '/' in the password": ([*PUBLISH, "--url", "amqp://user:pa/ss@127.0.0.1/vh"], {}, ENCODE),
    "publish: '#' via RABBITMQ_URL": (PUBLISH, {"RABBITMQ_URL": "amqp://user:pa#ss@127.0.0.1/%2F"}, "RABBITMQ_URL"),
    "publish: port abc": ([*PUBLISH, "--url", "amqp://u:pa#ss@h:abc/x"], {}, ENCODE),
    "publish: an http URL": ([*PUBLISH, "--url", "http://localhost:15672"], {}, "management (http/https) URL"),
    "consume: port abc": ([*CONSUME, "--url", "amqp://user:pa#ss@h:abc/x"], {}, ENCODE),
    "consume: '@' twice": ([*CONSUME, "--url", "amqp://user:pa@ss@h/x"], {}, "more than one '@'"),
    "consume: vhost with '/'": ([*CONSUME, "--url", "amqp://h/a/b"], {}, "the vhost holds an unencoded '/'"),
}


@pytest.mark.parametrize("case", list(URL_CASES))
def test_malformed_urls_are_one_line_before_any_io(
    case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    argv, env, expected = URL_CASES[case]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert_one_error(*run(capsys, argv), expected)


VHOST_CASES = {
    "plan": ["plan", SEED, "--offline", "--vhost", ""],
    "export": ["export", SEED, "--vhost", " "],
    "apply": ["apply", SEED, "--vhost", ""],
    "publish": [*PUBLISH, "--vhost", ""],
    "consume": [*CONSUME, "--vhost", ""],
}


@pytest.mark.parametrize("command", list(VHOST_CASES))
def test_an_empty_vhost_is_an_error_not_the_specs(
    command: str, capsys: pytest.CaptureFixture[str], no_network: None
) -> None:
    assert_one_error(*run(capsys, VHOST_CASES[command]), "--vhost is empty")


def test_a_url_vhost_that_differs_from_the_specs_is_an_error(
    capsys: pytest.CaptureFixture[str], no_network: None
) -> None:
    status, out, err = run(capsys, [*PUBLISH, "--url", "amqp://u:pa%23ss@127.0.0.1:5672/team"])
    assert_one_error(status, out, err, "--url names vhost 'team' but the spec")
    status, out, err = run(capsys, [*CONSUME, "--url", "amqp://127.0.0.1/team", "--vhost", "other"])
    assert_one_error(status, out, err, "--url names vhost 'team' but --vhost says 'other'")


def test_publish_event_that_is_a_command_suggests_command(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["publish", MULTI, "--var", "env_name=x", "--service", "accounts", "--event", "DeactivateUser"]
    assert_one_error(*run(capsys, argv), "not an event; pass --command DeactivateUser", secret="")
    argv = ["publish", MULTI, "--var", "env_name=x", "--service", "accounts", "--command", "UserCreated"]
    status, out, err = run(capsys, argv)
    assert_one_error(status, out, err, "not a command; pass --event UserCreated", secret="")


# ------------------------------------------------------------------ saved plans and state files


def saved_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "real.json"
    assert main(["plan", SEED, "--offline", "--out", str(path)]) == 0
    capsys.readouterr()
    data: dict[str, Any] = json.loads(path.read_text())
    return data


PLAN_CASES: dict[str, tuple[Any, str]] = {
    "truncated": (lambda text: text[: len(text) // 2], "saved plan is not valid JSON"),
    "no format_version": (lambda d: {k: v for k, v in d.items() if k != "format_version"}, "no format_version"),
    "changes garbage": (lambda d: {**d, "changes": "garbage"}, "invalid saved plan: changes"),
    "action explode": (
        lambda d: {**d, "changes": [{**d["changes"][0], "action": "explode"}]},
        "changes.0.action: must be one of",
    ),
    "format 2": (lambda d: {**d, "format_version": 2}, "format_version 2 is not supported"),
    "a queue without after": (
        lambda d: {**d, "changes": [{**d["changes"][4], "after": None}]},
        "a create needs `after`",
    ),
}


@pytest.mark.parametrize("case", list(PLAN_CASES))
def test_a_broken_saved_plan_is_judged_as_a_plan(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_network: None
) -> None:
    mutate, expected = PLAN_CASES[case]
    data = saved_plan(capsys, tmp_path)
    path = tmp_path / "plan.json"
    if case == "truncated":
        path.write_text(mutate(json.dumps(data, indent=2)))
    else:
        path.write_text(json.dumps(mutate(data)))
    for command in ("apply", "plan", "validate"):
        status, out, err = run(capsys, [command, str(path)])
        assert_one_error(status, out, err, expected, secret="")
        assert "YAML" not in err and "is required" not in err.replace("format_version", "")


def test_a_valid_saved_plan_given_to_plan_says_apply_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = saved_plan(capsys, tmp_path)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    assert_one_error(*run(capsys, ["plan", str(path)]), "is a saved plan, not a spec", secret="")


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"not": "definitions"}, "not RabbitMQ definitions: none of vhosts"),
        ({"format_version": 1, "changes": []}, "this is a saved plan, not RabbitMQ definitions"),
        ([1, 2], "a definitions file is a JSON object"),
    ],
)
def test_plan_state_must_be_definitions(
    document: Any, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(document))
    assert_one_error(*run(capsys, ["plan", SEED, "--state", str(path)]), expected, secret="")


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_a_plan_refused_for_data_loss_says_so_on_stderr_and_is_not_saved(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from topology.cli.plan_output import report_plan
    from topology.plan.model import Change, Plan

    refused = "queue q holds 3 messages: replacing it loses them; rerun with --allow-data-loss to accept losing them"
    plan = Plan("/", (Change("replace", "queue", "q", {"name": "q"}, {"name": "q"}, "x", 3, 0),), errors=(refused,))
    out_path = tmp_path / "plan.json"
    args = argparse.Namespace(format=fmt, no_color=True, out=str(out_path), detailed_exitcode=False)
    assert report_plan(plan, args) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {refused}", f"error: the plan has errors: it was not saved to {out_path}"]
    assert not out_path.exists()


# ------------------------------------------------------------------ templates and handlers


def test_template_errors_at_render_time_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("organization: alice\nvhost: '{{ n // 3 }}'\n")
    status, out, err = run(capsys, ["validate", str(spec), "--var", "n=5"])
    assert_one_error(status, out, err, f"{spec}:2: template error: TypeError", secret="")
    spec.write_text("organization: alice\nvhost: '{{ env.RABBITFORM_SURELY_UNSET }}'\n")
    status, out, err = run(capsys, ["validate", str(spec)])
    assert_one_error(status, out, err, "environment variable RABBITFORM_SURELY_UNSET is not set", secret="")


HANDLERS = {
    "syntax.py": "def handler(:\n    pass\n",
    "raises.py": "x = 1\nraise RuntimeError('boom at import')\n",
    "shapes.py": "class Handler:\n    pass\n\ndef two(a, b):\n    pass\n\ndef ok(message):\n    pass\n",
}


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        ("syntax:handler", "has a syntax error: {dir}/syntax.py:1"),
        ("raises:handler", "failed to import at {dir}/raises.py:2: RuntimeError: boom at import"),
        ("shapes:Handler", "is a class"),
        ("shapes:two", "takes (a, b); a handler takes one argument"),
        ("missing_module_xyz:handler", "cannot import module 'missing_module_xyz'"),
    ],
)
def test_consume_refuses_a_broken_handler_at_start(
    handler: str,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_network: None,
) -> None:
    for name, text in HANDLERS.items():
        (tmp_path / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "organization: alice\nservices:\n  petisco:\n    events:\n      UserCreated:\n        subscribers:\n"
        f"          send_mail_handler: {{handler: '{handler}'}}\n"
    )
    assert_one_error(*run(capsys, ["consume", str(spec)]), expected.format(dir=tmp_path), secret="")


# ------------------------------------------------------------------ the entry point itself


def test_anything_that_escapes_is_one_masked_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(args: Any) -> int:
        raise ValueError("boom talking to http://admin:s3cr3t-pw@h:15672 with s3cr3t-pw")

    monkeypatch.setattr("topology.cli.validate.cmd_validate", explode)
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", "http://admin:s3cr3t-pw@h:15672")
    from topology.cli import validate

    monkeypatch.setattr(validate, "register", _register_with(explode))
    status, out, err = run(capsys, ["validate", SEED])
    assert_one_error(status, out, err, "unexpected ValueError", secret="s3cr3t-pw")
    assert "--debug" in err
    status, out, err = run(capsys, ["validate", SEED, "--debug"])
    assert status == 1 and "Traceback" in err and err.splitlines()[-1].startswith("error: unexpected ValueError")


def _register_with(handler: Any) -> Any:
    def register(commands: Any) -> None:
        parser = commands.add_parser("validate")
        parser.add_argument("spec")
        parser.set_defaults(handler=handler)

    return register


def test_an_interrupted_apply_says_how_to_finish(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from topology.cli import apply
    from topology.cli.plan import offline_plan
    from topology.spec.loader import load_spec

    plan = offline_plan(load_spec(SEED), None)

    class Client:
        display_url = "http://localhost:15672"

        def close(self) -> None:
            pass

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(apply, "client_from_args", lambda args, url=None: Client())
    monkeypatch.setattr(apply, "plan_live", lambda *a, **k: plan)

    class Lock:
        def ensure_held(self, command: str) -> None:
            pass

    monkeypatch.setattr(apply, "resolve_amqp", lambda *a, **k: "amqp://localhost")
    monkeypatch.setattr(apply, "read_vhost", lambda *a, **k: {"name": "/"})
    monkeypatch.setattr(apply, "held_lock", lambda *a, **k: contextlib.nullcontext(Lock()))
    monkeypatch.setattr(apply, "apply_owned", interrupted)
    status, _out, err = run(capsys, ["apply", SEED, "--auto-approve"])
    assert status == 130
    assert err.strip() == (
        f"interrupted: vhost '/' may be partly applied; running `rabbitform apply {SEED}` again completes it "
        "(it plans from what is there now)"
    )


# ------------------------------------------------------------------ URLs, TLS and the management client


def test_mask_hides_the_password_however_broken_the_url() -> None:
    for url in ("http://u:pa#ss@h:1", "amqp://u:pa/ss@h/v", "amqp://u:a@b@h", "u:pa#ss@h"):
        assert "pa" not in mask(url).replace("amqp", "") and "***" in mask(url)
    assert (
        mask_text("at amqp://u:se/cret@h:5672 and http://x:y@z", ["se/cret"])
        == "at amqp://u:***@h:5672 and http://x:***@z"
    )


def test_management_paths_are_the_prefix_and_api_is_the_api_root() -> None:
    assert parse_url("http://h/rabbitmq/api/", "management").display == "http://h:15672/rabbitmq"
    assert parse_url("https://u:p@h:8443/rabbitmq", "management").display == "https://h:8443/rabbitmq"
    assert parse_url("http://h:15672/api", "management").display == "http://h:15672"
    client = ManagementClient("http://h/rabbitmq/api")
    assert client.display_url + client.path("overview") == "http://h:15672/rabbitmq/api/overview"


def test_several_urls_share_credentials_and_vhost() -> None:
    nodes = parse_urls("amqp://u:p@a:5672/v, amqp://u:p@b:5673/v", "amqp")
    assert [(n.host, n.port, n.vhost) for n in nodes] == [("a", 5672, "v"), ("b", 5673, "v")]
    with pytest.raises(UrlError, match="do not share one user and password"):
        parse_urls("amqp://u:p@a/v,amqp://u:q@b/v", "amqp")
    with pytest.raises(UrlError, match="name different vhosts"):
        parse_urls("amqp://u:p@a/v,amqp://u:p@b/w", "amqp")
    assert parse_url("amqp://u:a,b@h/v", "amqp").password == "a,b"  # a comma in a password stays in it


def test_a_missing_ca_cert_is_reported_and_insecure_is_not_advised_twice(tmp_path: Path) -> None:
    from topology.errors import RabbitformError

    with pytest.raises(RabbitformError, match=r"--ca-cert .*missing.pem: no such file"):
        ManagementClient("https://h:15671", ca_cert=str(tmp_path / "missing.pem"))
    client = ManagementClient("https://h:15671", insecure=True)
    message = client._tls_message(Exception("[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure (_"))
    assert "even with --insecure" in message and "pass --insecure" not in message


def test_the_connector_never_falls_back_to_guest_or_the_default_vhost(no_network: None) -> None:
    from bus_runtime.connector import RabbitMqConnector

    with pytest.raises(UrlError, match=r"percent-encode") as caught:
        RabbitMqConnector(url="amqp://u:p#x@127.0.0.1:5672/team")
    assert "p#x" not in str(caught.value)
    connector = RabbitMqConnector("amqp://u:p%23x@127.0.0.1:5672/team")
    assert (connector.username, connector.password, connector.vhost) == ("u", "p#x", "team")
    assert "p#x" not in repr(connector) and "p%23x" not in repr(connector)

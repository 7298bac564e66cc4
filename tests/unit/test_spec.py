"""Spec validation: the seed spec, every error class with its exact one-line message, variables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from topology.cli.main import main
from topology.spec.loader import SpecError, load_spec, load_variables, parse_spec
from topology.spec.model import RetryPolicy

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "specs" / "alice.yaml"

PETISCO = """\
organization: alice
services:
  petisco:
    events:
      UserCreated:
"""


def run_cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def spec_error(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """Validate `text` as `spec.yaml` through the CLI; return its one error line (without `error: `)."""
    (tmp_path / "spec.yaml").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli("validate", "spec.yaml", capsys=capsys)
    assert status == 1
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("error: ")
    assert "Traceback" not in err
    return err[len("error: ") : -1]


# ---------------------------------------------------------------- the seed


def test_seed_spec_is_valid() -> None:
    spec = load_spec(SEED)
    assert spec.organization == "alice"
    assert spec.vhost == "/"
    assert spec.defaults.queue_type == "classic"
    assert spec.defaults.retry == RetryPolicy(delay_ms=5000, max_retries=5)
    [subscriber] = list(spec.subscribers())
    assert subscriber.service == "petisco"
    assert subscriber.kind == "event"
    assert subscriber.message_class == "UserCreated"
    assert subscriber.message_name == "user.created"
    assert subscriber.version == 1
    assert subscriber.name == "send_mail_handler"
    assert subscriber.queue == "alice.petisco.1.event.user.created.send_mail_handler"
    assert subscriber.routing_key == "alice.petisco.1.event.user.created"
    assert subscriber.handler == "examples.rabbitmq.handlers:send_mail_handler"
    assert subscriber.retry == RetryPolicy(delay_ms=5000, max_retries=5)
    assert subscriber.queue_type == "classic"
    store = spec.resolved_store()
    assert store is not None
    assert (store.queue, store.handler, store.retry, store.queue_type) == (
        "store",
        "examples.rabbitmq.handlers:event_store",
        RetryPolicy(delay_ms=5000, max_retries=5),
        "classic",
    )


def test_validate_prints_a_one_line_summary(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli("validate", str(SEED), capsys=capsys)
    assert status == 0
    assert err == ""
    assert out == (
        f"{SEED}: valid: organization 'alice', vhost '/', 1 service(s), 1 subscriber(s), store queue 'store': "
        "3 exchanges, 6 queues, 8 bindings\n"
    )


def test_the_issue_example_error_verbatim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seed spec with `version: 0` gives exactly the message the issue shows."""
    (tmp_path / "specs").mkdir()
    text = SEED.read_text(encoding="utf-8").replace("version: 1", "version: 0")
    (tmp_path / "specs" / "alice.yaml").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli("validate", "specs/alice.yaml", capsys=capsys)
    assert (status, out) == (1, "")
    assert err == "error: specs/alice.yaml:12 services.petisco.events.UserCreated.version: must be an integer >= 1\n"


def test_minimal_spec_takes_the_defaults() -> None:
    spec = parse_spec("organization: alice\n")
    assert spec.vhost == "/"
    assert spec.services == {}
    assert spec.store is None
    assert spec.defaults.queue_type == "classic"
    assert spec.defaults.retry == RetryPolicy(delay_ms=5000, max_retries=5)


def test_bare_keys_mean_empty_mappings() -> None:
    spec = parse_spec(
        PETISCO + "        subscribers:\n          send_mail_handler:\n    commands:\n      PersistUser:\n"
    )
    names = [(s.kind, s.message_class, s.name) for s in spec.subscribers()]
    assert names == [("event", "UserCreated", "send_mail_handler")]
    assert spec.services["petisco"].commands["PersistUser"].version == 1


def test_yaml_anchors_and_merge_keys_work() -> None:
    text = """\
organization: alice
defaults:
  retry: &slow {delay_ms: 60000, max_retries: 2}
services:
  petisco:
    events:
      UserCreated:
        subscribers:
          a: {retry: *slow}
          b:
            retry:
              <<: *slow
              max_retries: 9
"""
    spec = parse_spec(text)
    retries = {s.name: s.retry for s in spec.subscribers()}
    assert retries == {"a": RetryPolicy(delay_ms=60000, max_retries=2), "b": RetryPolicy(delay_ms=60000, max_retries=9)}


# ---------------------------------------------------------------- every error class


SUBSCRIBER = PETISCO + "        subscribers:\n          send_mail_handler:\n"

ERRORS = {
    "unknown top-level key": (
        "organization: alice\nservise: {}\n",
        "spec.yaml:2 servise: unknown key (expected one of: access, defaults, layout, name, organization, queue_settings, services, store, vhost)",
    ),
    "unknown nested key": (
        PETISCO + "        versoin: 2\n",
        "spec.yaml:6 services.petisco.events.UserCreated.versoin: unknown key (expected one of: subscribers, version)",
    ),
    "unknown subscriber key": (
        SUBSCRIBER + "            handlr: a.b:c\n",
        "spec.yaml:8 services.petisco.events.UserCreated.subscribers.send_mail_handler.handlr: "
        "unknown key (expected one of: circuit_breaker, handler, main_queue_ttl_ms, queue_type, retry)",
    ),
    "unknown retry key": (
        "organization: alice\ndefaults:\n  retry: {delay: 1}\n",
        "spec.yaml:3 defaults.retry.delay: unknown key (expected one of: backoff_multiplier, dead_letter_on, delay_ms, delays_ms, delivery_limit, max_delay_ms, max_retries)",
    ),
    "unknown store key": (
        "organization: alice\nstore:\n  queues: x\n",
        "spec.yaml:3 store.queues: unknown key (expected one of: circuit_breaker, handler, main_queue_ttl_ms, queue, queue_type, retry)",
    ),
    "missing organization": ("vhost: /\n", "spec.yaml:1 organization: is required"),
    "organization with dots": (
        "organization: alice.eu\n",
        "spec.yaml:1 organization: 'alice.eu' is not a valid name: use lower case letters, digits, '_' or '-', no dots",
    ),
    "organization not a string": ("organization: 7\n", "spec.yaml:1 organization: must be a non-empty string"),
    "organization with a trailing newline": (
        "organization: |\n  alice\n",
        "spec.yaml:1 organization: 'alice\\n' is not a valid name: use lower case letters, digits, '_' or '-', no dots",
    ),
    "upper-case service": (
        "organization: alice\nservices:\n  Petisco: {}\n",
        "spec.yaml:3 services.Petisco: 'Petisco' is not a valid service name: "
        "use lower case letters, digits, '_' or '-', no dots",
    ),
    "bad subscriber": (
        PETISCO + "        subscribers:\n          send-mail: {}\n",
        "spec.yaml:7 services.petisco.events.UserCreated.subscribers.send-mail: "
        "'send-mail' is not a valid subscriber name: use lower case letters, digits and '_'",
    ),
    "non-CamelCase event": (
        "organization: alice\nservices:\n  petisco:\n    events:\n      user_created: {}\n",
        "spec.yaml:5 services.petisco.events.user_created: "
        "'user_created' is not a valid message class name: use CamelCase, e.g. UserCreated",
    ),
    "non-CamelCase command": (
        "organization: alice\nservices:\n  petisco:\n    commands:\n      persistUser: {}\n",
        "spec.yaml:5 services.petisco.commands.persistUser: "
        "'persistUser' is not a valid message class name: use CamelCase, e.g. UserCreated",
    ),
    "bad store queue name": (
        "organization: alice\nstore:\n  queue: Store.All\n",
        "spec.yaml:3 store.queue: 'Store.All' is not a valid queue name: use lower case letters, digits, '_' or '-'",
    ),
    "version 0": (
        PETISCO + "        version: 0\n",
        "spec.yaml:6 services.petisco.events.UserCreated.version: must be an integer >= 1",
    ),
    "version as a string": (
        PETISCO + '        version: "1"\n',
        "spec.yaml:6 services.petisco.events.UserCreated.version: must be an integer >= 1",
    ),
    "version as a float": (
        PETISCO + "        version: 1.5\n",
        "spec.yaml:6 services.petisco.events.UserCreated.version: must be an integer >= 1",
    ),
    "version as a boolean": (
        PETISCO + "        version: true\n",
        "spec.yaml:6 services.petisco.events.UserCreated.version: must be an integer >= 1",
    ),
    "delay_ms 0": (
        "organization: alice\ndefaults:\n  retry: {delay_ms: 0}\n",
        "spec.yaml:3 defaults.retry.delay_ms: must be an integer >= 1",
    ),
    "delay_ms as a string": (
        "organization: alice\ndefaults:\n  retry:\n    delay_ms: '5000'\n",
        "spec.yaml:4 defaults.retry.delay_ms: must be an integer >= 1",
    ),
    "negative max_retries override": (
        SUBSCRIBER + "            retry: {max_retries: -1}\n",
        "spec.yaml:8 services.petisco.events.UserCreated.subscribers.send_mail_handler.retry.max_retries: "
        "must be an integer >= 0",
    ),
    "unknown queue type": (
        "organization: alice\ndefaults:\n  queue_type: lazy\n",
        "spec.yaml:3 defaults.queue_type: must be one of: classic or quorum",
    ),
    "unknown subscriber queue type": (
        SUBSCRIBER + "            queue_type: stream\n",
        "spec.yaml:8 services.petisco.events.UserCreated.subscribers.send_mail_handler.queue_type: "
        "must be one of: classic or quorum",
    ),
    "services as a list": (
        "organization: alice\nservices: [petisco]\n",
        "spec.yaml:2 services: must be a mapping",
    ),
    "subscribers as a list": (
        PETISCO + "        subscribers: [send_mail_handler]\n",
        "spec.yaml:6 services.petisco.events.UserCreated.subscribers: must be a mapping",
    ),
    "empty vhost": ("organization: alice\nvhost: ''\n", "spec.yaml:2 vhost: must be a non-empty string"),
    "bad handler import path": (
        SUBSCRIBER + "            handler: examples/rabbitmq/handlers.py\n",
        "spec.yaml:8 services.petisco.events.UserCreated.subscribers.send_mail_handler.handler: "
        "must be an import path like 'package.module:function'",
    ),
    "handler without a function": (
        "organization: alice\nstore:\n  handler: examples.rabbitmq.handlers\n",
        "spec.yaml:3 store.handler: must be an import path like 'package.module:function'",
    ),
    "duplicate message names": (
        "organization: alice\nservices:\n  petisco:\n    events:\n      HttpRequest: {}\n      HTTPRequest: {}\n",
        "spec.yaml:4 services.petisco.events: HttpRequest and HTTPRequest both map to message name "
        "'http.request' version 1",
    ),
    "duplicate YAML key": (
        "organization: alice\nservices:\n  petisco: {}\n  petisco: {}\n",
        "spec.yaml:4 services.petisco: duplicate key (first defined on line 3)",
    ),
    "duplicate top-level key": (
        "organization: alice\norganization: bob\n",
        "spec.yaml:2 organization: duplicate key (first defined on line 1)",
    ),
    "duplicate subscriber": (
        SUBSCRIBER + "          send_mail_handler: {}\n",
        "spec.yaml:8 services.petisco.events.UserCreated.subscribers.send_mail_handler: "
        "duplicate key (first defined on line 7)",
    ),
    "YAML syntax error": (
        "organization: alice\nservices:\n  petisco: [\n",
        "spec.yaml:4: invalid YAML: expected the node content, but found '<stream end>'",
    ),
    "YAML bad indentation": (
        "organization: alice\n  vhost: /\n",
        "spec.yaml:2: invalid YAML: mapping values are not allowed here",
    ),
    "YAML tab": (
        "organization: alice\nservices:\n\tpetisco: {}\n",
        "spec.yaml:3: invalid YAML: found character '\\t' that cannot start any token",
    ),
    "YAML unhashable key": ("organization: alice\n? [a, b]\n: 1\n", "spec.yaml:2: invalid YAML: found unhashable key"),
    "duplicate command names": (
        "organization: alice\nservices:\n  petisco:\n    commands:\n      SendSMS: {}\n      SendSms: {}\n",
        "spec.yaml:4 services.petisco.commands: SendSMS and SendSms both map to message name 'send.sms' version 1",
    ),
    "two YAML documents": (
        "organization: alice\n---\norganization: bob\n",
        "spec.yaml:2: invalid YAML: expected a single document in the stream but found another document",
    ),
    "empty file": ("", "spec.yaml:1: the spec is empty"),
    "comments only": ("# nothing yet\n", "spec.yaml:1: the spec is empty"),
    "a list document": (
        "- organization: alice\n",
        "spec.yaml:1: the spec must be a mapping (organization, services, ...)",
    ),
    "a scalar document": ("alice\n", "spec.yaml:1: the spec must be a mapping (organization, services, ...)"),
    "jinja undefined variable": (
        "organization: alice\n\nvhost: '{{ env_name }}'\n",
        "spec.yaml:3: 'env_name' is undefined (pass it with --var KEY=VALUE or --var-file)",
    ),
    "jinja undefined environment variable": (
        "organization: alice\nvhost: '{{ env.RABBITFORM_TEST_SURELY_UNSET }}'\n",
        "spec.yaml:2: environment variable RABBITFORM_TEST_SURELY_UNSET is not set "
        "(set it, or give a default: {{ env.NAME | default('...') }})",
    ),
    "jinja syntax error": (
        "organization: alice\nvhost: {{ env_name\n",
        "spec.yaml:2: template syntax error: unexpected end of template, expected 'end of print statement'.",
    ),
    "jinja unclosed block": (
        "organization: alice\n{% if prod %}\nvhost: prod\n",
        "spec.yaml:2: template syntax error: Unexpected end of template. Jinja was looking for the following tags: "
        "'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.",
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_every_error_is_one_line_naming_file_line_and_field(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text, expected = ERRORS[case]
    assert spec_error(text, tmp_path, monkeypatch, capsys) == expected


def test_spec_error_fields() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(PETISCO + "        version: 0\n", "specs/alice.yaml")
    error = caught.value
    assert (error.file, error.line, error.field) == (
        "specs/alice.yaml",
        6,
        "services.petisco.events.UserCreated.version",
    )
    assert error.message == "must be an integer >= 1"


def test_missing_spec_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli("validate", "nope.yaml", capsys=capsys)
    assert (status, out, err) == (1, "", "error: nope.yaml: cannot read the spec: No such file or directory\n")


def test_the_installed_command_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(PETISCO + "        version: 0\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "topology.cli", "validate", "spec.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "error: spec.yaml:6 services.petisco.events.UserCreated.version: must be an integer >= 1\n"


# ---------------------------------------------------------------- variables

TEMPLATE = """\
organization: alice
vhost: '{{ env_name }}'
defaults:
  retry: {delay_ms: {{ delay_ms | default(5000) }}}
"""


def test_var_renders_the_template(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    spec = load_spec(path, load_variables(["env_name=staging", "delay_ms=250"], []))
    assert spec.vhost == "staging"
    assert spec.defaults.retry.delay_ms == 250  # rendered text, parsed as YAML: an integer


def test_var_file_and_var_override(tmp_path: Path) -> None:
    variables = tmp_path / "prod.yaml"
    variables.write_text("env_name: prod\ndelay_ms: 10000\n", encoding="utf-8")
    assert load_variables([], [str(variables)]) == {"env_name": "prod", "delay_ms": 10000}
    assert load_variables(["env_name=canary"], [str(variables)]) == {"env_name": "canary", "delay_ms": 10000}
    assert load_variables(["expr=a=b"], []) == {"expr": "a=b"}


def test_environment_variables_are_available_as_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITFORM_TEST_VHOST", "from-env")
    spec = parse_spec("organization: alice\nvhost: '{{ env.RABBITFORM_TEST_VHOST }}'\n")
    assert spec.vhost == "from-env"


def test_cli_var_and_var_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(TEMPLATE, encoding="utf-8")
    (tmp_path / "vars.yaml").write_text("env_name: prod\n", encoding="utf-8")
    status, out, _ = run_cli("validate", "spec.yaml", "--var", "env_name=dev", capsys=capsys)
    assert status == 0
    assert "vhost 'dev'" in out
    status, out, _ = run_cli("validate", "spec.yaml", "--var-file", "vars.yaml", capsys=capsys)
    assert status == 0
    assert "vhost 'prod'" in out
    status, out, _ = run_cli("export", "spec.yaml", "--var-file", "vars.yaml", "--var", "env_name=qa", capsys=capsys)
    assert status == 0
    assert '"name": "qa"' in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--var", "env_name"], "error: --var: expected KEY=VALUE, got 'env_name'\n"),
        (["--var", "=x"], "error: --var: expected KEY=VALUE, got '=x'\n"),
        (
            ["--var-file", "missing.yaml"],
            "error: missing.yaml: cannot read the variables file: No such file or directory\n",
        ),
        (["--var-file", "list.yaml"], "error: list.yaml: a variables file must be a mapping of names to values\n"),
        (
            ["--var-file", "broken.yaml"],
            "error: broken.yaml:2: invalid YAML: expected the node content, but found '<stream end>'\n",
        ),
    ],
)
def test_bad_variables(
    argv: list[str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(TEMPLATE, encoding="utf-8")
    (tmp_path / "list.yaml").write_text("- a\n", encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("a: [\n", encoding="utf-8")
    status, out, err = run_cli("validate", "spec.yaml", *argv, capsys=capsys)
    assert (status, out) == (1, "")
    assert err.startswith(expected)
    assert err.count("\n") == 1


def test_undefined_variable_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = "spec.yaml:2: 'env_name' is undefined (pass it with --var KEY=VALUE or --var-file)"
    assert spec_error(TEMPLATE, tmp_path, monkeypatch, capsys) == expected


MULTI = ROOT / "specs" / "examples" / "multi-service.yaml"


def test_multi_service_example_validates_with_var(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli("validate", str(MULTI), "--var", "env_name=staging", capsys=capsys)
    assert (status, err) == (0, "")
    assert out == (
        f"{MULTI}: valid: organization 'alice', vhost 'alice-staging', 2 service(s), 6 subscriber(s), "
        "store queue 'store': 6 exchanges, 21 queues, 32 bindings\n"
    )
    spec = load_spec(MULTI, {"env_name": "prod", "retry_delay_ms": "2000"})
    assert spec.vhost == "alice-prod"
    subscribers = {s.name: s for s in spec.subscribers()}
    assert (
        subscribers["update_mailing_list_handler"].retry.delay_ms,
        subscribers["update_mailing_list_handler"].retry.max_retries,
    ) == (2000, 10)
    assert subscribers["grant_access_handler"].queue_type == "quorum"
    assert subscribers["grant_access_handler"].retry.delay_ms == 1000
    assert subscribers["deactivate_user_handler"].kind == "command"
    assert subscribers["update_mailing_list_handler"].routing_key == "alice.accounts.2.event.user.email.changed"


def test_multi_service_example_needs_env_name(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli("validate", str(MULTI), capsys=capsys)
    assert (status, out) == (1, "")
    assert err == f"error: {MULTI}:5: 'env_name' is undefined (pass it with --var KEY=VALUE or --var-file)\n"


def test_names_longer_than_rabbitmq_allows_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spec that validates must also apply: RabbitMQ refuses names over 255 bytes."""
    handler = "h" * 220
    longest = f"rabbitform-moving.dead_letter.alice.petisco.1.event.user.created.{handler}"
    assert spec_error(SUBSCRIBER.replace("send_mail_handler", handler), tmp_path, monkeypatch, capsys) == (
        f"spec.yaml:7 services.petisco.events.UserCreated.subscribers.{handler}: holding queue name {longest!r} "
        f"(--move-messages) is {len(longest)} bytes; RabbitMQ allows at most 255: use shorter names"
    )
    store = "s" * 250
    assert spec_error(f"organization: alice\nstore:\n  queue: {store}\n", tmp_path, monkeypatch, capsys) == (
        f"spec.yaml:3 store.queue: holding queue name 'rabbitform-moving.dead_letter.{store}' (--move-messages) is 280 bytes; "
        "RabbitMQ allows at most 255: use shorter names"
    )
    organization, service = "a" * 120, "b" * 130
    exchange = f"dead_letter.{organization}.{service}"
    assert spec_error(
        f"organization: {organization}\nservices:\n  {service}: {{}}\n", tmp_path, monkeypatch, capsys
    ) == (
        f"spec.yaml:3 services.{service}: exchange name {exchange!r} is 263 bytes; "
        "RabbitMQ allows at most 255: use shorter names"
    )


def test_names_of_exactly_255_bytes_are_fine() -> None:
    """The longest name a subscriber gets is its dead-letter queue's holding queue (`--move-messages`)."""
    prefix = "rabbitform-moving.dead_letter.alice.petisco.1.event.user.created."
    handler = "h" * (255 - len(prefix))
    spec = parse_spec(SUBSCRIBER.replace("send_mail_handler", handler))
    [subscriber] = spec.subscribers()
    assert len(f"rabbitform-moving.dead_letter.{subscriber.queue}") == 255
    with pytest.raises(SpecError, match="holding queue name"):
        parse_spec(SUBSCRIBER.replace("send_mail_handler", handler + "h"))


def test_the_lock_queue_and_broker_ranges_are_checked_at_validate() -> None:
    """apply's lock queue `rabbitform-lock:<name>` and the broker's TTL range, at their fields."""
    name = "n" * 240
    with pytest.raises(SpecError, match=r"^<spec>:2 name: lock queue name 'rabbitform-lock:n+' \(apply takes a lock\)"):
        parse_spec(f"organization: alice\nname: {name}\n")
    parse_spec(f"organization: alice\nname: {name[: 255 - len('rabbitform-lock:')]}\n")
    huge = SUBSCRIBER.replace("send_mail_handler", "h") + "defaults:\n  retry: {delay_ms: 99999999999999}\n"
    with pytest.raises(
        SpecError,
        match=r"^<spec>:9 defaults\.retry\.delay_ms: x-message-ttl 99999999999999 of 'retry\.alice\.petisco\.1\.event",
    ):
        parse_spec(huge)
    parse_spec(huge.replace("99999999999999", "315360000000"))


def test_a_spec_that_is_not_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_bytes(b"organization: \xff\n")
    (tmp_path / "ok.yaml").write_text("organization: alice\n", encoding="utf-8")
    (tmp_path / "vars.yaml").write_bytes(b"a: \xff\n")
    status, out, err = run_cli("validate", "spec.yaml", capsys=capsys)
    assert (status, out, err) == (1, "", "error: spec.yaml: the spec is not UTF-8 text (byte 14)\n")
    status, out, err = run_cli("validate", "ok.yaml", "--var-file", "vars.yaml", capsys=capsys)
    assert (status, out, err) == (1, "", "error: vars.yaml: the variables file is not UTF-8 text (byte 3)\n")


def test_a_utf8_bom_and_windows_line_endings_are_fine() -> None:
    assert parse_spec("\ufefforganization: alice\r\nvhost: x\r\n").vhost == "x"


def test_one_message_name_in_two_versions_or_two_kinds_is_fine() -> None:
    text = """\
organization: alice
services:
  petisco:
    events:
      HttpRequest: {version: 1, subscribers: {a: {}}}
      HTTPRequest: {version: 2, subscribers: {a: {}}}
    commands:
      HttpRequest: {subscribers: {a: {}}}
"""
    queues = sorted(s.queue for s in parse_spec(text).subscribers())
    assert queues == [
        "alice.petisco.1.command.http.request.a",
        "alice.petisco.1.event.http.request.a",
        "alice.petisco.2.event.http.request.a",
    ]


@pytest.mark.parametrize(
    ("handler", "valid"),
    [
        ("examples.rabbitmq.handlers:send_mail_handler", True),
        ("handlers:send", True),
        ("_private.mod:Class.method", True),
        ("pkg.mod_2:handler_3", True),
        ("examples..handlers:f", False),
        ("examples.:f", False),
        ("examples.handlers:", False),
        (":f", False),
        ("examples.handlers:f.", False),
        ("examples/handlers.py:f", False),
        ("2pkg:f", False),
        ("pkg:f:g", False),
        ("pkg:f\n", False),
    ],
)
def test_handler_import_paths(handler: str, valid: bool) -> None:
    text = f"organization: alice\nstore:\n  handler: {json.dumps(handler)}\n"
    if valid:
        store = parse_spec(text).resolved_store()
        assert store is not None and store.handler == handler
    else:
        with pytest.raises(SpecError, match="must be an import path"):
            parse_spec(text)

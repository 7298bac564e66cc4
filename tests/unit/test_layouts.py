"""Layouts: `layout: petisco` compiles to exactly what petisco 2.2.3's configurer created
(tests/fixtures/petisco_layout.json), and its names round-trip to class names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from topology import naming
from topology.compile.compiler import compile_spec
from topology.compile.definitions import from_definitions
from topology.compile.objects import Topology
from topology.plan.scope import Scope
from topology.spec.loader import SpecError, parse_spec
from topology.spec.model import Spec

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "petisco_layout.json"

PETISCO_SPEC = """
organization: acme
layout: petisco
services:
  svc:
    events:
      UserCreated:
        subscribers: {send_mail_handler: {}}
    commands:
      PersistUser:
        subscribers: {persist_user_handler: {}}
store: {}
"""


def petisco_dump() -> Topology:
    return from_definitions(json.loads(FIXTURE.read_text()), "/", "classic")


def test_petisco_layout_is_what_petisco_creates_object_for_object() -> None:
    assert compile_spec(parse_spec(PETISCO_SPEC)) == petisco_dump()


def test_petisco_main_queues_expire_after_5_s_and_the_store_is_vhost_global() -> None:
    topology = compile_spec(parse_spec(PETISCO_SPEC))
    queues = {q.name: q for q in topology.queues}
    main = queues["acme.svc.1.event.user_created.send_mail_handler"]
    assert main.arguments["x-message-ttl"] == 5000
    assert {"store", "retry.store", "dead_letter.store"} <= set(queues)
    assert queues["store"].arguments == {
        "x-dead-letter-exchange": "dead_letter.acme.store",
        "x-dead-letter-routing-key": "dead_letter.store",
        "x-message-ttl": 5000,
    }


def test_petisco_retry_delay_comes_from_the_spec() -> None:
    text = PETISCO_SPEC.replace("send_mail_handler: {}", "send_mail_handler: {retry: {delay_ms: 250}}")
    topology = compile_spec(parse_spec(text))
    [retry] = [q for q in topology.queues if q.name == "retry.acme.svc.1.event.user_created.send_mail_handler"]
    assert retry.arguments["x-message-ttl"] == 250


def test_rabbitform_stays_the_default_layout() -> None:
    spec = parse_spec(PETISCO_SPEC.replace("layout: petisco\n", ""))
    assert spec.layout == "rabbitform"
    names = {q.name for q in compile_spec(spec).queues}
    assert "acme.svc.1.event.user.created.send_mail_handler" in names
    assert all("x-message-ttl" not in q.arguments for q in compile_spec(spec).queues if q.name.startswith("acme."))


def test_each_service_binds_the_petisco_store() -> None:
    text = PETISCO_SPEC.replace("store: {}", "  billing: {}\nstore: {}")
    topology = compile_spec(parse_spec(text))
    sources = {(b.source, b.routing_key) for b in topology.bindings if b.destination == "store"}
    assert ("acme.billing", "*.*.*.event.*") in sources
    assert ("acme.billing", "retry.store") in sources
    assert {e.name for e in topology.exchanges} >= {"acme.billing", "retry.acme.store", "dead_letter.acme.store"}


def test_petisco_scope_owns_the_store_exchanges() -> None:
    scope = Scope.of_spec(parse_spec(PETISCO_SPEC))
    assert scope.owns_exchange("retry.acme.store") and scope.owns_exchange("dead_letter.acme.store")
    assert scope.filter(petisco_dump()) == petisco_dump()
    assert Scope.from_dict(scope.to_dict()) == scope


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (PETISCO_SPEC.replace("store: {}", "store: {queue: events}"), "store.queue"),
        (PETISCO_SPEC.replace("{send_mail_handler: {}}", "{send_mail_handler: {queue_type: quorum}}"), "queue_type"),
        (PETISCO_SPEC.replace("layout: petisco", "layout: petisco\ndefaults: {queue_type: quorum}"), "queue_type"),
        (PETISCO_SPEC.replace("layout: petisco", "layout: petisco\nqueue_settings: policies"), "queue_settings"),
    ],
)
def test_what_petisco_cannot_declare_is_refused(text: str, path: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(text)
    assert path in str(error.value)


def test_an_unknown_layout_is_refused() -> None:
    with pytest.raises(SpecError, match="layout: must be one of: rabbitform or petisco"):
        parse_spec(PETISCO_SPEC.replace("layout: petisco", "layout: terraform"))


@pytest.mark.parametrize(
    ("class_name", "rabbitform", "petisco"),
    [
        ("UserCreated", "user.created", "user_created"),
        ("HTTPRequestFailed", "http.request.failed", "h_t_t_p_request_failed"),
        ("UserV2Created", "user.v2.created", "user_v2_created"),
        ("OAuth2TokenIssued", "o.auth2.token.issued", "o_auth2_token_issued"),
    ],
)
def test_routing_names_per_layout(class_name: str, rabbitform: str, petisco: str) -> None:
    assert naming.routing_name(class_name, "rabbitform") == rabbitform
    assert naming.routing_name(class_name, "petisco") == petisco
    assert naming.class_name_from_routing_name(petisco, "petisco") == class_name
    rebuilt = naming.class_name_from_routing_name(rabbitform, "rabbitform")
    assert rebuilt is not None and naming.message_name(rebuilt) == rabbitform


@pytest.mark.parametrize(
    ("name", "layout"), [("a.b", "rabbitform"), ("user.2fa", "rabbitform"), ("user__x", "petisco")]
)
def test_names_no_class_gives_back_are_not_rebuilt(name: str, layout: naming.Layout) -> None:
    assert naming.class_name_from_routing_name(name, layout) is None


def test_validate_names_a_layout_other_than_the_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from topology.cli.main import main

    spec = tmp_path / "petisco.yaml"
    spec.write_text(PETISCO_SPEC, encoding="utf-8")
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "store queue 'store', layout petisco: 5 exchanges, 9 queues, 20 bindings" in out


def main_ttls(text: str) -> dict[str, object]:
    """Each main queue's `x-message-ttl` ("absent" when the queue has none)."""
    queues = compile_spec(parse_spec(text)).queues
    return {
        q.name: q.arguments.get("x-message-ttl", "absent")
        for q in queues
        if not q.name.startswith((naming.RETRY_PREFIX, naming.DEAD_LETTER_PREFIX))
    }


SEND_MAIL = "acme.svc.1.event.user_created.send_mail_handler"
PERSIST_USER = "acme.svc.1.command.persist_user.persist_user_handler"


def test_petisco_main_queue_ttl_defaults_to_petiscos_5000() -> None:
    assert main_ttls(PETISCO_SPEC) == {SEND_MAIL: 5000, PERSIST_USER: 5000, "store": 5000}


def test_petisco_main_queue_ttl_comes_from_defaults_and_overrides() -> None:
    text = (
        PETISCO_SPEC.replace("layout: petisco", "layout: petisco\ndefaults: {main_queue_ttl_ms: 3000}")
        .replace("send_mail_handler: {}", "send_mail_handler: {main_queue_ttl_ms: 250}")
        .replace("store: {}", "store: {main_queue_ttl_ms: 60000}")
    )
    assert main_ttls(text) == {SEND_MAIL: 250, PERSIST_USER: 3000, "store": 60000}
    spec = parse_spec(text)
    assert {sub.name: sub.main_queue_ttl_ms for sub in spec.subscribers()} == {
        "send_mail_handler": 250,
        "persist_user_handler": 3000,
    }
    store = spec.resolved_store()
    assert store is not None and store.main_queue_ttl_ms == 60000


def test_petisco_main_queue_ttl_none_leaves_the_argument_out_as_petisco_does() -> None:
    """petisco's declarer omits `x-message-ttl` when its main_ttl is None."""
    text = PETISCO_SPEC.replace("layout: petisco", "layout: petisco\ndefaults: {main_queue_ttl_ms: none}").replace(
        "persist_user_handler: {}", "persist_user_handler: {main_queue_ttl_ms: 1000}"
    )
    assert main_ttls(text) == {SEND_MAIL: "absent", PERSIST_USER: 1000, "store": "absent"}
    queues = {q.name: q for q in compile_spec(parse_spec(text)).queues}
    assert queues[SEND_MAIL].arguments == {
        "x-dead-letter-exchange": "dead_letter.acme.svc",
        "x-dead-letter-routing-key": f"dead_letter.{SEND_MAIL}",
    }
    # null is "not set" as everywhere in a spec: the default applies
    assert (
        main_ttls(PETISCO_SPEC.replace("send_mail_handler: {}", "send_mail_handler: {main_queue_ttl_ms: null}"))[
            SEND_MAIL
        ]
        == 5000
    )


@pytest.mark.parametrize(
    ("setting", "line", "field"),
    [
        ("defaults", 3, "defaults.main_queue_ttl_ms"),
        ("subscriber", 7, "services.svc.events.UserCreated.subscribers.send_mail_handler.main_queue_ttl_ms"),
        ("store", 11, "store.main_queue_ttl_ms"),
    ],
)
def test_a_main_queue_ttl_under_layout_rabbitform_is_a_spec_error(setting: str, line: int, field: str) -> None:
    text = PETISCO_SPEC.replace("layout: petisco\n", "")
    if setting == "defaults":
        text = text.replace("organization: acme", "organization: acme\ndefaults: {main_queue_ttl_ms: 3000}")
    elif setting == "subscriber":
        text = text.replace("send_mail_handler: {}", "send_mail_handler: {main_queue_ttl_ms: none}")
    else:
        text = text.replace("store: {}", "store: {main_queue_ttl_ms: 3000}")
    with pytest.raises(SpecError) as error:
        parse_spec(text, "bus.yaml")
    message = str(error.value)
    assert message == (
        f"bus.yaml:{line} {field}: only layout petisco puts a TTL on main queues; layout rabbitform has none "
        "(remove this, or set layout: petisco)"
    )


@pytest.mark.parametrize("value", ["0", "-5", "'3000'", "true", "1.5", "None"])
def test_a_main_queue_ttl_is_milliseconds_or_none(value: str) -> None:
    text = PETISCO_SPEC.replace("send_mail_handler: {}", f"send_mail_handler: {{main_queue_ttl_ms: {value}}}")
    with pytest.raises(SpecError) as error:
        parse_spec(text, "bus.yaml")
    field = "services.svc.events.UserCreated.subscribers.send_mail_handler.main_queue_ttl_ms"
    assert str(error.value) == f"bus.yaml:8 {field}: must be an integer >= 1, or none for no TTL"


def test_a_spec_dumped_with_its_nones_reads_back_the_same() -> None:
    """`none` (no TTL) is a word because null means "not set": a dump must not turn one into the other."""
    text = PETISCO_SPEC.replace("send_mail_handler: {}", "send_mail_handler: {main_queue_ttl_ms: none}")
    spec = parse_spec(text)
    assert Spec.model_validate(spec.model_dump()) == spec
    rabbitform = parse_spec(PETISCO_SPEC.replace("layout: petisco\n", ""))
    assert parse_spec(json.dumps(rabbitform.model_dump(mode="json"))) == rabbitform

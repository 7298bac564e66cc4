"""Import (objects -> spec), without a broker: compiled specs come back as specs that compile to
the same objects, and whatever does not fit the layout is a warning."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from benchmarks.generated import generated_spec
from topology.adopt.importer import import_spec
from topology.adopt.render import render_spec
from topology.compile.compiler import compile_spec
from topology.compile.definitions import from_definitions
from topology.compile.objects import Binding, Queue, Topology
from topology.spec.loader import load_spec, parse_spec
from topology.spec.model import Spec

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "petisco_layout.json"


def round_trip(spec: Spec) -> tuple[Spec, list[str], str]:
    imported = import_spec(compile_spec(spec), spec.organization, spec.layout)
    text = render_spec(imported, "a test")
    return parse_spec(text), imported.warnings, text


@pytest.mark.parametrize(
    ("path", "variables"),
    [("specs/alice.yaml", {}), ("specs/examples/multi-service.yaml", {"env_name": "staging"})],
)
def test_shipped_specs_round_trip(path: str, variables: dict[str, str]) -> None:
    spec = load_spec(ROOT / path, variables)
    again, warnings, _ = round_trip(spec)
    assert warnings == []
    assert compile_spec(again) == compile_spec(spec)


def test_a_generated_spec_of_1000_subscribers_round_trips() -> None:
    spec = generated_spec(1000, "/")
    again, warnings, _ = round_trip(spec)
    assert warnings == []
    assert compile_spec(again) == compile_spec(spec)
    assert sum(1 for _ in again.subscribers()) == 1000


def test_petiscos_own_bus_imports_as_layout_petisco() -> None:
    dump = from_definitions(json.loads(FIXTURE.read_text()), "/")
    imported = import_spec(dump, "acme", "petisco")
    assert imported.warnings == []
    spec = parse_spec(render_spec(imported, "a test"))
    assert spec.layout == "petisco"
    assert sorted(spec.services["svc"].events) == ["UserCreated"]
    assert sorted(spec.services["svc"].commands) == ["PersistUser"]
    assert compile_spec(spec) == dump


def test_the_written_spec_says_what_a_broker_cannot_tell() -> None:
    _, _, text = round_trip(load_spec(ROOT / "specs/alice.yaml"))
    assert "handler: package.module:function" in text
    assert "max_retries" in text.splitlines()[3]
    assert " handler:" not in "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def test_defaults_are_the_most_common_values_and_overrides_the_rest() -> None:
    spec = parse_spec(
        """
organization: acme
defaults: {retry: {delay_ms: 1000}}
services:
  svc:
    events:
      UserCreated:
        subscribers: {a: {}, b: {}, c: {retry: {delay_ms: 250}, queue_type: quorum}}
"""
    )
    again, _, text = round_trip(spec)
    assert again.defaults.retry.delay_ms == 1000
    assert "c: {retry: {delay_ms: 250}, queue_type: quorum}" in text


def with_objects(topology: Topology, queues: list[Queue] = (), bindings: list[Binding] = ()) -> Topology:  # type: ignore[assignment]
    return Topology.of(topology.vhost, topology.exchanges, [*topology.queues, *queues], [*topology.bindings, *bindings])


def test_what_does_not_fit_is_listed_not_dropped() -> None:
    base = compile_spec(load_spec(ROOT / "specs/alice.yaml"))
    odd = with_objects(
        base,
        queues=[
            Queue("alice.petisco.oops"),  # in the spec's names: plan would delete it
            Queue("alice.petisco.1.event.a.b.handler"),  # `a.b`: no class name gives it back
            Queue("alice.other-team.v1.stuff"),  # not a service exchange of ours: left alone
        ],
    )
    imported = import_spec(odd, "alice")
    text = "\n".join(imported.warnings)
    assert "queue alice.petisco.oops is not in the spec (its name is not" in text
    assert "would delete it" in text
    assert "event 'a.b' v1 of service 'petisco': no CamelCase class name gives back this name" in text
    assert "queue alice.other-team.v1.stuff does not fit layout rabbitform: left out, and plan leaves it alone" in text
    rendered = render_spec(imported, "a test")
    assert "# a.b (v1): the broker's name, kept as it is" in rendered
    assert compile_spec(parse_spec(rendered)).queues  # still a valid spec


def test_a_drifted_argument_is_listed_with_what_plan_would_do() -> None:
    base = compile_spec(load_spec(ROOT / "specs/alice.yaml"))
    name = "alice.petisco.1.event.user.created.send_mail_handler"
    queues = [
        dataclasses.replace(q, arguments={**q.arguments, "x-max-length": 10}) if q.name == name else q
        for q in base.queues
    ]
    imported = import_spec(dataclasses.replace(base, queues=tuple(queues)), "alice")
    warning = imported.warnings[0]
    assert warning.startswith(f"queue {name} differs (arguments.x-max-length: 10 -> (absent))")
    assert warning.endswith("`rabbitform plan` would replace it")


def test_two_versions_of_one_class_keep_the_first_and_warn() -> None:
    spec = parse_spec(
        """
organization: acme
services:
  svc:
    events:
      UserCreated: {version: 1, subscribers: {a: {}}}
"""
    )
    v2 = compile_spec(
        parse_spec(
            """
organization: acme
services:
  svc:
    events:
      UserCreated: {version: 2, subscribers: {b: {}}}
"""
        )
    )
    both = with_objects(compile_spec(spec), list(v2.queues), list(v2.bindings))
    imported = import_spec(both, "acme")
    assert any("versions 1 and 2" in w and "'b' of v2 left out" in w for w in imported.warnings)


def test_names_yaml_would_misread_are_quoted() -> None:
    spec = Spec.model_validate({"organization": "on", "vhost": "1", "services": {"yes": {}}})
    again, _, text = round_trip(spec)
    assert 'organization: "on"' in text and 'vhost: "1"' in text and '"yes": {}' in text
    assert again == spec


@pytest.mark.parametrize(
    ("path", "variables"),
    [("specs/alice.yaml", {}), ("specs/examples/multi-service.yaml", {"env_name": "staging"})],
)
def test_a_bus_with_settings_in_policies_round_trips(path: str, variables: dict[str, str]) -> None:
    spec = load_spec(ROOT / path, variables).model_copy(update={"queue_settings": "policies"})
    again, warnings, text = round_trip(spec)
    assert warnings == []
    assert "queue_settings: policies" in text
    assert compile_spec(again) == compile_spec(spec)


def test_petisco_main_queue_ttls_import_as_a_default_and_overrides() -> None:
    """A petisco bus whose QueueConfig gave main queues other TTLs (one none: petisco omits the
    argument when main_ttl is None) imports to a spec that compiles to the same objects."""
    definitions = json.loads(FIXTURE.read_text())
    main_ttls: dict[str, int | None] = {
        "acme.svc.1.event.user_created.send_mail_handler": 3000,
        "acme.svc.1.command.persist_user.persist_user_handler": None,
        "store": 3000,
    }
    for queue in definitions["queues"]:
        if queue["name"] in main_ttls:
            ttl = main_ttls[queue["name"]]
            if ttl is None:
                del queue["arguments"]["x-message-ttl"]
            else:
                queue["arguments"]["x-message-ttl"] = ttl
    dump = from_definitions(definitions, "/")
    imported = import_spec(dump, "acme", "petisco")
    assert imported.warnings == []
    text = render_spec(imported, "a test")
    assert "  main_queue_ttl_ms: 3000\n" in text
    assert "persist_user_handler: {main_queue_ttl_ms: none}" in text
    assert "send_mail_handler: {}" in text
    assert compile_spec(parse_spec(text)) == dump


def test_a_petisco_store_with_its_own_main_queue_ttl_gets_an_override() -> None:
    spec = parse_spec(
        """
organization: acme
layout: petisco
defaults: {main_queue_ttl_ms: 2000}
services:
  svc:
    events:
      UserCreated:
        subscribers: {a: {}, b: {}, c: {main_queue_ttl_ms: none}}
store: {main_queue_ttl_ms: 9000}
"""
    )
    again, warnings, text = round_trip(spec)
    assert warnings == []
    assert again.defaults.main_queue_ttl_ms == 2000
    assert "c: {main_queue_ttl_ms: none}" in text
    assert "  main_queue_ttl_ms: 9000\n" in text.split("store:")[1]
    assert compile_spec(again) == compile_spec(spec)


def test_layout_rabbitform_imports_no_main_queue_ttl() -> None:
    _, _, text = round_trip(load_spec(ROOT / "specs/alice.yaml"))
    assert "main_queue_ttl_ms" not in text


def test_import_o_never_overwrites_an_existing_spec_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from topology.cli.main import main

    spec = tmp_path / "spec.yaml"
    spec.write_text("# hand-written, with handlers\norganization: acme\n", encoding="utf-8")
    argv = ["import", "--organization", "acme", "--layout", "petisco", "--state", str(FIXTURE), "-o", str(spec)]
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {spec} already exists: import never overwrites a spec (its handlers and comments would be lost); "
        "write to another file, or pass --force to replace it"
    )
    assert spec.read_text(encoding="utf-8").startswith("# hand-written")
    assert main([*argv, "--force"]) == 0
    assert "services:" in spec.read_text(encoding="utf-8")

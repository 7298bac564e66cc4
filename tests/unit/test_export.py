"""Export: byte-stable, importable definitions that read back as the same topology."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from topology.cli.main import main
from topology.compile.compiler import compile_spec
from topology.compile.definitions import dumps, from_definitions, to_definitions
from topology.compile.objects import Topology
from topology.spec.loader import load_spec, parse_spec

SEED = Path(__file__).resolve().parents[2] / "specs" / "alice.yaml"

MIXED = """\
organization: alice
vhost: prod
defaults: {queue_type: quorum, retry: {delay_ms: 2000}}
services:
  petisco:
    events:
      UserCreated:
        subscribers:
          send_mail_handler: {queue_type: classic}
          audit_handler: {retry: {delay_ms: 100}}
    commands:
      PersistUser:
        subscribers:
          persist_user_handler:
  billing:
    events:
      InvoicePaid:
        version: 3
        subscribers:
          notify_handler:
store: {queue: events}
"""


def seed() -> Topology:
    return compile_spec(load_spec(SEED))


def test_two_exports_are_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(SEED), "-o", "one.json"]) == 0
    assert main(["export", str(SEED), "-o", "two.json"]) == 0
    assert main(["export", str(SEED)]) == 0
    stdout = capsys.readouterr().out
    one = (tmp_path / "one.json").read_bytes()
    assert one == (tmp_path / "two.json").read_bytes()
    assert one == stdout.encode()
    assert one == dumps(to_definitions(seed())).encode()
    assert one.endswith(b"}\n")


def test_export_does_not_depend_on_the_order_of_the_spec() -> None:
    reordered = parse_spec(
        MIXED.replace(
            "          send_mail_handler: {queue_type: classic}\n          audit_handler: {retry: {delay_ms: 100}}\n",
            "          audit_handler: {retry: {delay_ms: 100}}\n          send_mail_handler: {queue_type: classic}\n",
        )
    )
    assert dumps(to_definitions(compile_spec(reordered))) == dumps(to_definitions(compile_spec(parse_spec(MIXED))))


@pytest.mark.parametrize("text", [SEED.read_text(encoding="utf-8"), MIXED], ids=["seed", "mixed"])
def test_importable_shape(text: str) -> None:
    topology = compile_spec(parse_spec(text))
    definitions = json.loads(dumps(to_definitions(topology)))
    assert sorted(definitions) == ["bindings", "exchanges", "queues", "vhosts"]
    assert definitions["vhosts"] == [{"name": topology.vhost}]
    for exchange in definitions["exchanges"]:
        assert exchange == {
            "name": exchange["name"],
            "vhost": topology.vhost,
            "type": "topic",
            "durable": True,
            "auto_delete": False,
            "internal": False,
            "arguments": {},
        }
    for queue in definitions["queues"]:
        assert sorted(queue) == ["arguments", "auto_delete", "durable", "name", "vhost"]
        assert (queue["vhost"], queue["durable"], queue["auto_delete"]) == (topology.vhost, True, False)
    for binding in definitions["bindings"]:
        assert sorted(binding) == ["arguments", "destination", "destination_type", "routing_key", "source", "vhost"]
        assert (binding["vhost"], binding["destination_type"], binding["arguments"]) == (topology.vhost, "queue", {})
    names = [e["name"] for e in definitions["exchanges"]]
    assert names == sorted(names)
    names = [q["name"] for q in definitions["queues"]]
    assert names == sorted(names)
    keys = [(b["source"], b["destination"], b["routing_key"]) for b in definitions["bindings"]]
    assert keys == sorted(keys)


def test_every_binding_refers_to_an_exported_exchange_and_queue() -> None:
    definitions = to_definitions(compile_spec(parse_spec(MIXED)))
    exchanges = {e["name"] for e in definitions["exchanges"]}
    queues = {q["name"] for q in definitions["queues"]}
    for binding in definitions["bindings"]:
        assert binding["source"] in exchanges
        assert binding["destination"] in queues
    for queue in definitions["queues"]:
        dead_letter_exchange = queue["arguments"].get("x-dead-letter-exchange")
        assert dead_letter_exchange is None or dead_letter_exchange in exchanges | {""}


def test_ttl_stays_a_number_in_json() -> None:
    text = dumps(to_definitions(seed()))
    assert '"x-message-ttl": 5000' in text
    assert '"x-message-ttl": "5000"' not in text


@pytest.mark.parametrize("text", [SEED.read_text(encoding="utf-8"), MIXED], ids=["seed", "mixed"])
def test_round_trip(text: str) -> None:
    topology = compile_spec(parse_spec(text))
    assert from_definitions(to_definitions(topology), topology.vhost) == topology
    assert from_definitions(json.loads(dumps(to_definitions(topology))), topology.vhost) == topology
    # A per-vhost export has no `vhost` keys: its items belong to the vhost asked for.
    assert from_definitions(to_definitions(topology, include_vhost=False), topology.vhost) == topology


def test_reading_ignores_server_added_keys_and_other_vhosts() -> None:
    topology = seed()
    definitions = to_definitions(topology)
    for item in definitions["queues"]:
        item.update({"type": "classic", "node": "rabbit@localhost", "exclusive": False})
        item["arguments"] = {**item["arguments"], "x-queue-type": "classic"}
    for item in definitions["exchanges"]:
        item.pop("internal")  # 4.2.9+ exports drop it
    definitions["exchanges"].append({"name": "amq.topic", "vhost": "/", "type": "topic", "durable": True})
    definitions["exchanges"].append({"name": "elsewhere", "vhost": "other", "type": "topic", "durable": True})
    definitions["bindings"].append(
        {"source": "", "destination": "store", "destination_type": "queue", "routing_key": "store", "vhost": "/"}
    )
    definitions["rabbit_version"] = "3.10.8"
    assert from_definitions(definitions, "/") == topology


def test_export_vhost_override(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(SEED), "--vhost", "staging"]) == 0
    definitions = json.loads(capsys.readouterr().out)
    assert definitions["vhosts"] == [{"name": "staging"}]
    assert {item["vhost"] for kind in ("exchanges", "queues", "bindings") for item in definitions[kind]} == {"staging"}

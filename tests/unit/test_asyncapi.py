"""The AsyncAPI document: pure checks of its content, and validation by the official parser.

The parser (`@asyncapi/parser`, from the npm registry) is installed by the test itself into
`.cache/asyncapi-parser/` with the machine's Node.js; the test is skipped only without Node.js.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from topology.cli.main import main
from topology.compile.asyncapi import asyncapi_document
from topology.spec.loader import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
PARSER_DIR = ROOT / ".cache" / "asyncapi-parser"
VALIDATOR = ROOT / "tests" / "tooling" / "validate_asyncapi.mjs"
PARSER_PACKAGE = "@asyncapi/parser@3"

TWO_SERVICES = """
organization: acme
vhost: prod
services:
  accounts:
    events:
      UserCreated:
        version: 2
        subscribers: {send_welcome: {}, audit: {retry: {delay_ms: 100, max_retries: 1}}}
    commands:
      CloseAccount: {subscribers: {closer: {}}}
  billing:
    events:
      UserCreated: {subscribers: {open_ledger: {}}}
store: {queue: store}
"""


def test_seed_spec_channels_operations_and_bindings() -> None:
    doc = asyncapi_document(load_spec(ROOT / "specs" / "alice.yaml"))
    assert doc["asyncapi"] == "3.0.0"
    channel = doc["channels"]["alice.petisco.1.event.user.created"]
    assert channel["address"] == "alice.petisco.1.event.user.created"
    assert channel["bindings"]["amqp"]["is"] == "routingKey"
    assert channel["bindings"]["amqp"]["exchange"]["name"] == "alice.petisco"
    queue = doc["channels"]["queue.alice.petisco.1.event.user.created.send_mail_handler"]
    assert queue["bindings"]["amqp"]["queue"]["name"] == "alice.petisco.1.event.user.created.send_mail_handler"
    actions = sorted((op_id, op["action"]) for op_id, op in doc["operations"].items())
    assert actions == [
        ("alice.petisco.1.event.user.created.send_mail_handler.receive", "receive"),
        ("petisco.send.UserCreated.v1", "send"),
        ("store.receive", "receive"),
    ]
    envelope = doc["components"]["schemas"]["Envelope"]
    assert envelope["properties"]["data"]["required"][:3] == ["id", "type", "type_message"]


def test_same_class_in_two_services_and_commands() -> None:
    doc = asyncapi_document(parse_spec(TWO_SERVICES, "two.yaml"))
    assert set(doc["components"]["messages"]) == {
        "accounts.CloseAccount.v1",
        "accounts.UserCreated.v2",
        "billing.UserCreated.v1",
    }
    assert "acme.accounts.1.command.close.account" in doc["channels"]
    store_op = doc["operations"]["store.receive"]
    assert len(store_op["messages"]) == 3  # the store hears every event and command
    audit = doc["operations"]["acme.accounts.2.event.user.created.audit.receive"]
    assert "100 ms" in audit["description"] and "at most 1 times" in audit["description"]
    assert doc["servers"]["rabbitmq"]["pathname"] == "/prod"


def test_every_reference_resolves() -> None:
    doc = asyncapi_document(parse_spec(TWO_SERVICES, "two.yaml"))
    for ref in _refs(doc):
        node: object = doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_cli_writes_yaml_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "asyncapi.json"
    assert main(["asyncapi", str(ROOT / "specs" / "alice.yaml"), "--format", "json", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["asyncapi"] == "3.0.0"
    assert main(["asyncapi", str(ROOT / "specs" / "alice.yaml")]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["info"]["title"] == "alice event bus"


@pytest.fixture(scope="session")
def asyncapi_parser() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js (node and npm) is not installed: the official AsyncAPI parser cannot run")
    if not (PARSER_DIR / "node_modules" / "@asyncapi" / "parser").is_dir():
        PARSER_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(PARSER_DIR), PARSER_PACKAGE],
            check=True,
            timeout=600,
        )
    return PARSER_DIR / "node_modules"


def test_documents_validate_with_the_official_parser(asyncapi_parser: Path, tmp_path: Path) -> None:
    files = []
    for name, spec in [
        ("alice.yaml", load_spec(ROOT / "specs" / "alice.yaml")),
        ("multi.json", load_spec(ROOT / "specs" / "examples" / "multi-service.yaml", {"env_name": "staging"})),
        ("two.yaml", parse_spec(TWO_SERVICES, "two.yaml")),
    ]:
        path = tmp_path / name
        doc = asyncapi_document(spec)
        path.write_text(json.dumps(doc) if name.endswith(".json") else yaml.safe_dump(doc, sort_keys=False))
        files.append(str(path))
    env = {**os.environ, "ASYNCAPI_PARSER_DIR": str(asyncapi_parser)}
    result = subprocess.run(["node", str(VALIDATOR), *files], capture_output=True, text=True, env=env, timeout=120)
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(reports) == 3, result.stderr
    for report in reports:
        assert report["parsed"] and report["errors"] == [], report
    assert result.returncode == 0


@pytest.mark.parametrize("server", ["amqp://app:s3cr3t@rabbit:5672", "app:s3cr3t@rabbit:5672", "rabbit:5672/prod"])
def test_server_with_credentials_is_refused_and_never_written(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "api.yaml"
    assert main(["asyncapi", str(ROOT / "specs" / "alice.yaml"), "--server", server, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "give HOST:PORT only" in err and "s3cr3t" not in err
    assert not out.exists()
    assert main(["asyncapi", str(ROOT / "specs" / "alice.yaml"), "--server", "rabbit.internal", "-o", str(out)]) == 0
    assert "host: rabbit.internal:5672" in out.read_text(encoding="utf-8")

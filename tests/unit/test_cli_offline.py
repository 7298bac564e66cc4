"""The CLI without a broker: validate, export, plan --offline / --state, formats and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from topology.cli.main import main

SEED = str(Path(__file__).resolve().parents[2] / "specs" / "alice.yaml")
Q = "alice.petisco.1.event.user.created.send_mail_handler"
RETRY_Q = f"retry.{Q}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def exported(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    status, out, _ = run(capsys, "export", SEED)
    assert status == 0
    data: dict[str, Any] = json.loads(out)
    return data


def write_state(tmp_path: Path, definitions: dict[str, Any]) -> str:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(definitions), encoding="utf-8")
    return str(path)


def test_validate_summary(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "validate", SEED)
    assert (status, err) == (0, "")
    assert out.count("\n") == 1
    assert out.startswith(f"{SEED}: valid: organization 'alice'")
    assert out.endswith("3 exchanges, 6 queues, 8 bindings\n")


def test_export_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "definitions.json"
    status, out, err = run(capsys, "export", SEED, "-o", str(target))
    assert (status, out, err) == (0, "", "")
    data = json.loads(target.read_text(encoding="utf-8"))
    assert [len(data[k]) for k in ("vhosts", "exchanges", "queues", "bindings")] == [1, 3, 6, 8]


def test_export_to_a_missing_directory_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing" / "definitions.json"
    status, out, err = run(capsys, "export", SEED, "-o", str(target))
    assert (status, out) == (1, "")
    assert err == f"error: {target}: cannot write: No such file or directory\n"


def test_plan_offline_text(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "plan", SEED, "--offline")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == 'rabbitform will perform the following actions on vhost "/":'
    assert "   + vhost /" in lines
    assert "   + exchange alice.petisco" in lines
    assert f"   + queue {RETRY_Q}" in lines
    assert "   + binding alice.petisco -> store [alice.petisco.*.event.#]" in lines
    assert sum(1 for line in lines if line.startswith("   + ")) == 18
    assert out.endswith("\nPlan: 18 to add, 0 to replace, 0 to destroy.\n")
    assert "\033[" not in out  # no colour when stdout is not a terminal


def test_plan_offline_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "plan", SEED, "--offline", "--format", "json")
    assert status == 0
    plan = json.loads(out)
    assert plan["format_version"] == 1
    assert plan["vhost"] == "/"
    assert plan["summary"] == {"add": 18, "replace": 0, "destroy": 0, "unchanged": 0}
    assert plan["source"] == SEED
    assert (plan["warnings"], plan["errors"], plan["allow_data_loss"]) == ([], [], False)
    assert plan["scope"] == {
        "organization": "alice",
        "services": ["petisco"],
        "store_queues": ["store", "retry.store", "dead_letter.store"],
    }
    assert plan["fingerprint"].startswith("sha256:")
    assert len(plan["changes"]) == 18
    for change in plan["changes"]:
        assert set(change) == {"action", "kind", "name", "before", "after", "reason"}
        assert change["action"] == "create"
        assert change["kind"] in ("vhost", "exchange", "queue", "binding")
        assert change["before"] is None and change["reason"] is None
    assert plan["changes"][0] == {
        "action": "create",
        "kind": "vhost",
        "name": "/",
        "before": None,
        "after": {"name": "/"},
        "reason": None,
    }
    queue = next(c for c in plan["changes"] if c["name"] == RETRY_Q)
    assert queue["after"]["arguments"]["x-message-ttl"] == 5000
    binding = next(c for c in plan["changes"] if c["kind"] == "binding")
    assert set(binding["after"]) == {"source", "destination", "destination_type", "routing_key", "arguments"}


def test_plan_json_is_stable(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "plan", SEED, "--offline", "--format", "json") == run(
        capsys, "plan", SEED, "--offline", "--format", "json"
    )


def test_plan_against_its_own_export_has_no_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = write_state(tmp_path, exported(capsys))
    status, out, _ = run(capsys, "plan", SEED, "--state", state)
    assert status == 0
    assert out == 'No changes. The broker matches the spec on vhost "/".\n'
    status, out, _ = run(capsys, "plan", SEED, "--state", state, "--format", "json")
    assert json.loads(out)["summary"] == {"add": 0, "replace": 0, "destroy": 0, "unchanged": 17}


def test_plan_state_with_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    definitions = exported(capsys)
    for queue in definitions["queues"]:
        if queue["name"] == RETRY_Q:
            queue["arguments"]["x-message-ttl"] = "5000"
    old = "alice.petisco.1.event.user.created.old_handler"
    definitions["queues"].append({"name": old, "vhost": "/", "durable": True, "auto_delete": False, "arguments": {}})
    definitions["queues"].append({"name": "not.ours", "vhost": "/", "durable": True, "arguments": {}})
    state = write_state(tmp_path, definitions)
    status, out, _ = run(capsys, "plan", SEED, "--state", state)
    assert status == 0
    lines = out.splitlines()
    assert f"   - queue {old}" in lines
    assert f' -/+ queue {RETRY_Q}  (arguments.x-message-ttl: "5000" -> 5000 forces replacement)' in lines
    assert (
        f" -/+ binding retry.alice.petisco -> {RETRY_Q} [{RETRY_Q}]  (recreated with replaced queue {RETRY_Q})" in lines
    )
    assert "not.ours" not in out
    assert lines[-1] == "Plan: 0 to add, 2 to replace, 1 to destroy."
    status, out, _ = run(capsys, "plan", SEED, "--state", state, "--format", "json")
    plan = json.loads(out)
    replaced = next(c for c in plan["changes"] if c["name"] == RETRY_Q)
    assert replaced["action"] == "replace"
    assert replaced["reason"] == 'arguments.x-message-ttl: "5000" -> 5000'
    assert replaced["before"]["arguments"]["x-message-ttl"] == "5000"
    assert replaced["after"]["arguments"]["x-message-ttl"] == 5000
    deleted = next(c for c in plan["changes"] if c["action"] == "delete")
    assert (deleted["kind"], deleted["name"], deleted["after"]) == ("queue", old, None)


def test_state_of_another_vhost_means_the_vhost_is_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = write_state(tmp_path, {"vhosts": [{"name": "other"}], "exchanges": [], "queues": [], "bindings": []})
    status, out, _ = run(capsys, "plan", SEED, "--state", state)
    assert status == 0
    assert "   + vhost /" in out.splitlines()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--offline"], 2),
        (["--offline", "--format", "json"], 2),
    ],
)
def test_detailed_exitcode_with_changes(argv: list[str], expected: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "plan", SEED, *argv, "--detailed-exitcode")[0] == expected
    assert run(capsys, "plan", SEED, *argv)[0] == 0


def test_detailed_exitcode_without_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = write_state(tmp_path, exported(capsys))
    assert run(capsys, "plan", SEED, "--state", state, "--detailed-exitcode")[0] == 0


@pytest.mark.parametrize(
    ("setup", "argv", "message"),
    [
        ("broken-spec", ["--offline"], "error: spec.yaml:3 organization: 'Alice' is not a valid name"),
        ("", ["--state", "missing.json"], "error: missing.json: cannot read the definitions file"),
        ("bad-json", ["--state", "state.json"], "error: state.json:1: not valid JSON"),
        (
            "bad-state",
            ["--state", "state.json"],
            "error: state.json: not RabbitMQ definitions: queues[0] needs a string 'name'",
        ),
        ("latin-1", ["--state", "state.json"], "error: state.json: not UTF-8 text (byte 12)"),
    ],
)
def test_detailed_exitcode_on_errors_is_1(
    setup: str,
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = Path(SEED).read_text(encoding="utf-8")
    if setup == "broken-spec":
        spec = spec.replace("organization: alice", "organization: Alice")
    (tmp_path / "spec.yaml").write_text(spec, encoding="utf-8")
    (tmp_path / "state.json").write_text('{"queues": [{}]}' if setup == "bad-state" else "{nope", encoding="utf-8")
    if setup == "latin-1":
        (tmp_path / "state.json").write_bytes(b'{"queues": "\xff"}')
    status, out, err = run(capsys, "plan", "spec.yaml", *argv, "--detailed-exitcode")
    assert (status, out) == (1, "")
    assert err.startswith(message)
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", SEED, "--offline", "--state", "x.json"],
        ["plan"],
        ["plan", SEED, "--format", "yaml"],
        ["plan", SEED, "--bogus"],
    ],
)
def test_usage_errors_exit_1_not_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """With --detailed-exitcode 2 means "changes": a usage error must not look like one (argparse exits 2)."""
    with pytest.raises(SystemExit) as caught:
        main([*argv, "--detailed-exitcode"])
    assert caught.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: rabbitform")
    assert "error:" in captured.err


def test_no_command_prints_help_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys)
    assert status == 1
    assert "validate" in err and "export" in err and "plan" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("rabbitform ")

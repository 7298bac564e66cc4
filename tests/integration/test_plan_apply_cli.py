"""`rabbitform plan` / `apply` on the real broker: output, exit codes, saved plans, errors."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration.live_support import DEAD, MAIN, client, make_spec
from topology.broker.management import ManagementClient
from topology.cli.main import main

SPEC = """\
organization: alice
vhost: {vhost}
services:
  petisco:
    events:
      UserCreated:
        subscribers:
{subscribers}
store: {{queue: store}}
"""


def write_spec(path: Path, vhost: str, *subscribers: str) -> str:
    lines = "\n".join(f"          {name}: {{}}" for name in subscribers or ("send_mail_handler",))
    path.write_text(SPEC.format(vhost=json.dumps(vhost), subscribers=lines), encoding="utf-8")
    return str(path)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def broker(management_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ManagementClient]:
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", management_url)
    c = client(management_url)
    yield c
    c.close()


def test_plan_apply_and_detailed_exit_codes(
    broker: ManagementClient, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", vhost)

    assert main(["plan", spec, "--detailed-exitcode", "--no-color"]) == 2
    out = capsys.readouterr().out
    assert f'rabbitform will perform the following actions on vhost "{vhost}":' in out
    assert "Plan: 17 to add, 0 to replace, 0 to destroy." in out
    assert "\033[" not in out

    assert main(["apply", spec, "--auto-approve"]) == 0
    out = capsys.readouterr().out
    assert "Apply complete: 17 added, 0 replaced, 0 destroyed in " in out

    assert main(["plan", spec, "--detailed-exitcode"]) == 0
    assert f'No changes. The broker matches the spec on vhost "{vhost}".' in capsys.readouterr().out
    assert main(["apply", spec]) == 0  # nothing to do: no confirmation needed


def test_apply_without_a_terminal_needs_auto_approve(
    broker: ManagementClient,
    vhost: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", vhost)
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))

    assert main(["apply", spec]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "error: refusing to apply without confirmation: stdin is not a terminal; pass --auto-approve"
    )
    assert main(["plan", spec, "--detailed-exitcode"]) == 2  # nothing was applied


def test_apply_asks_on_a_terminal(
    broker: ManagementClient,
    vhost: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", vhost)
    monkeypatch.setattr("sys.stdin", _Terminal("no\n"))
    assert main(["apply", spec]) == 1
    assert "error: apply cancelled: nothing was changed" in capsys.readouterr().err

    monkeypatch.setattr("sys.stdin", _Terminal("yes\n"))
    assert main(["apply", spec]) == 0
    captured = capsys.readouterr()
    assert "Only 'yes' will be accepted" in captured.err
    assert "Apply complete: 17 added" in captured.out


def test_saved_plan_is_applied_exactly_and_refused_when_stale(
    broker: ManagementClient, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", vhost)
    saved = str(tmp_path / "plan.json")
    assert main(["plan", spec, "--out", saved]) == 0
    data = json.loads(Path(saved).read_text())
    assert data["format_version"] == 1 and data["vhost"] == vhost
    assert data["fingerprint"].startswith("sha256:")
    assert data["scope"]["organization"] == "alice"
    assert data["management_url"] == broker.display_url
    capsys.readouterr()

    assert main(["apply", saved]) == 0  # a saved plan was reviewed already: no prompt
    assert "Apply complete: 17 added, 0 replaced, 0 destroyed" in capsys.readouterr().out

    assert main(["apply", saved]) == 1  # the broker changed since: that was this very apply
    captured = capsys.readouterr()
    assert f"error: {saved} is stale: the objects it manages on vhost '{vhost}'" in captured.err
    assert "run `rabbitform plan --out` again" in captured.err
    assert captured.out == "" and len(captured.err.splitlines()) == 1  # its error alone, never the stale plan

    write_spec(tmp_path / "spec.yaml", vhost, "send_mail_handler", "audit_handler")
    assert main(["plan", spec, "--out", saved]) == 0
    broker.delete("queues", vhost, DEAD)
    capsys.readouterr()
    assert main(["apply", saved]) == 1
    captured = capsys.readouterr()
    assert "is stale" in captured.err and captured.out == ""


def test_json_and_markdown_formats(
    broker: ManagementClient, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", vhost)
    assert main(["plan", spec, "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["summary"] == {"add": 17, "replace": 0, "destroy": 0, "unchanged": 0}

    assert main(["apply", spec, "--auto-approve", "--format", "json"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)  # stdout stays parseable: the summary goes to stderr
    assert "Apply complete: 17 added" in captured.err

    write_spec(tmp_path / "spec.yaml", vhost, "audit_handler")
    assert main(["plan", spec, "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith(
        f"### rabbitform plan: vhost `{vhost}`\n\n**Plan: 7 to add, 0 to replace, 7 to destroy**"
    )
    assert "<details>" in markdown and "```diff" in markdown
    assert f"- queue {MAIN}  (0 messages, 0 consumers)" in markdown


def test_data_loss_is_refused_at_plan_time(
    broker: ManagementClient, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.integration.live_support import publish, wait_for_messages
    from topology.apply.live import converge

    converge(make_spec(vhost), broker)
    publish(broker, vhost, MAIN, 2)
    wait_for_messages(broker, vhost, MAIN, 2)
    spec = write_spec(tmp_path / "spec.yaml", vhost, "audit_handler")

    assert main(["plan", spec, "--detailed-exitcode", "--out", str(tmp_path / "p.json")]) == 1
    out = capsys.readouterr().out
    assert f"Error: queue {MAIN} holds 2 messages: deleting it loses them; rerun with --allow-data-loss" in out
    assert not (tmp_path / "p.json").exists()
    assert main(["apply", spec, "--auto-approve"]) == 1

    assert main(["apply", spec, "--auto-approve", "--allow-data-loss"]) == 0
    out = capsys.readouterr().out
    assert "Warning: queue" in out and "Apply complete: 7 added, 0 replaced, 7 destroyed" in out


def test_credentials_never_appear_in_output_or_saved_plan(
    broker: ManagementClient, management_url: str, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user, password = f"rf-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    broker.put("users", user, body={"password": password, "tags": "administrator"})
    try:
        broker.put("permissions", vhost, user, body={"configure": ".*", "write": ".*", "read": ".*"})
        url = management_url.replace("://", f"://{quote(user)}:{quote(password)}@")
        spec = write_spec(tmp_path / "spec.yaml", vhost)
        saved = tmp_path / "plan.json"
        outputs = []
        for argv in (
            ["plan", spec, "--management-url", url, "--out", str(saved)],
            ["plan", spec, "--management-url", url, "--format", "markdown"],
            ["apply", str(saved), "--management-url", url],
            ["plan", spec, "--management-url", url.replace(password, "wrong"), "--format", "json"],
        ):
            main(argv)
            captured = capsys.readouterr()
            outputs += [captured.out, captured.err]
        outputs.append(saved.read_text())
        assert "refused the login" in outputs[-2]
        for text in outputs:
            assert password not in text and user not in text
    finally:
        broker.delete("users", user)


def test_bad_credentials_and_unreachable_broker_give_one_clear_line(
    broker: ManagementClient,
    management_url: str,
    vhost: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", vhost)
    monkeypatch.setenv("RABBITMQ_USER", "nobody")
    monkeypatch.setenv("RABBITMQ_PASSWORD", "not-the-password")
    assert main(["plan", spec, "--detailed-exitcode"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: {management_url} refused the login (HTTP 401: Login failed); check the user and password "
        "(RABBITMQ_USER / RABBITMQ_PASSWORD, or the credentials in the URL)\n"
    )

    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:1")
    assert main(["apply", spec, "--auto-approve"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the RabbitMQ management API at http://127.0.0.1:1 (connection refused")
    assert "check --management-url (or RABBITMQ_MANAGEMENT_URL)" in err
    assert len(err.splitlines()) == 1


def test_a_user_without_the_administrator_tag_is_told_so(
    broker: ManagementClient, management_url: str, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user, password = f"rf-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    broker.put("users", user, body={"password": password, "tags": "management"})
    try:
        broker.put("permissions", vhost, user, body={"configure": ".*", "write": ".*", "read": ".*"})
        url = management_url.replace("://", f"://{user}:{password}@")
        spec = write_spec(tmp_path / "spec.yaml", vhost)
        assert main(["plan", spec, "--management-url", url]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {management_url} refused GET /api/vhosts/")
        assert "the user is not an administrator (Not administrator user)" in err
        assert password not in err
    finally:
        broker.delete("users", user)

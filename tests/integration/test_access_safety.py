"""`access:` never locks anyone out or widens rights, on the real broker: the connecting user
and existing users are refused unless adopted, a dropped user loses its rights (and is deleted
when rabbitform created it), and `password_env` reads a password verbatim."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from tests.conftest import USER
from tests.integration.test_access import broker, url_of  # noqa: F401 (a fixture)
from topology.broker.management import ManagementClient
from topology.cli.main import main

SPEC = """\
organization: alice
vhost: {vhost}
services:
  petisco:
    events:
      UserCreated: {{subscribers: {{send_mail_handler: {{}}}}}}
access:
{access}
"""
PASSWORD = "p\"a'ss {{x}}: #{% raw %}&%41"  # YAML and jinja2 would both mangle it if it were templated


@pytest.fixture
def users(broker: ManagementClient) -> Iterator[list[str]]:  # noqa: F811
    names = [f"test-safety-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    try:
        yield names
    finally:
        for name in names:
            broker.delete("users", name)


def write(tmp_path: Path, vhost: str, access: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(vhost=vhost, access=access), encoding="utf-8")
    return str(path)


def test_the_connecting_user_is_never_managed(
    broker: ManagementClient,  # noqa: F811
    vhost: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = write(tmp_path, vhost, f"  {USER}: {{service: petisco, password: x, adopt: true}}")
    assert main(["apply", spec, "--auto-approve"]) == 1
    assert f"access: {USER!r} is the user rabbitform connects as" in capsys.readouterr().err
    assert "administrator" in broker.get("users", USER)["tags"]


def test_an_existing_user_with_rights_is_refused_unless_adopted(
    broker: ManagementClient,  # noqa: F811
    vhost: str,
    users: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = users[0]
    broker.put("users", name, body={"password": "old", "tags": "monitoring"})
    spec = write(tmp_path, vhost, f"  {name}: {{service: petisco, password: x}}")
    assert main(["plan", spec]) == 1
    err = capsys.readouterr().err
    assert f"user {name!r} already exists with tags 'monitoring'" in err and "adopt: true" in err
    adopted = write(tmp_path, vhost, f"  {name}: {{service: petisco, password: x, adopt: true}}")
    assert main(["plan", adopted, "--no-color"]) == 0
    assert f"~ user {name}" in capsys.readouterr().out  # its tags and password change, shown
    assert main(["apply", adopted, "--auto-approve"]) == 0
    assert broker.get("users", name)["tags"] in ([], "")


def test_a_dropped_user_loses_its_rights_and_is_deleted_when_rabbitform_created_it(
    broker: ManagementClient,  # noqa: F811
    vhost: str,
    users: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created, elsewhere = users
    monkeypatch.setenv("SAFETY_PASSWORD", PASSWORD)
    both = "\n".join(f"  {u}: {{service: petisco, password_env: SAFETY_PASSWORD}}" for u in users)
    assert main(["apply", write(tmp_path, vhost, both), "--auto-approve"]) == 0
    # the password came through verbatim: the user connects with it
    pika.BlockingConnection(pika.URLParameters(url_of(created, PASSWORD, vhost))).close()
    broker.put("permissions", "/", elsewhere, body={"configure": "^$", "write": "^$", "read": "^$"})
    try:
        assert main(["apply", write(tmp_path, vhost, "  {}"), "--auto-approve"]) == 0
        assert broker.get("users", created, missing_ok=True) is None  # created by rabbitform: deleted
        assert broker.get("users", elsewhere, missing_ok=True) is not None  # has rights elsewhere: kept
        for name in users:
            assert broker.get("permissions", vhost, name, missing_ok=True) is None
            assert not broker.get("topic-permissions", vhost, name, missing_ok=True)
    finally:
        broker.delete("permissions", "/", elsewhere)


def test_an_unset_password_env_is_a_spec_error(
    vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAFETY_UNSET", raising=False)
    spec = write(tmp_path, vhost, "  svc: {service: petisco, password_env: SAFETY_UNSET}")
    assert main(["validate", spec]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {spec}:8 access.svc.password_env: environment variable SAFETY_UNSET is not set"
    )

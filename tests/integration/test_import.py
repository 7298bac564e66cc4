"""`rabbitform import` on the real broker: apply a spec, import it back, and plan the imported
spec: no changes (`plan --detailed-exitcode` exits 0)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from benchmarks.generated import generated_spec
from topology.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def spec_for(vhost: str, tmp_path: Path, source: str) -> str:
    """The shipped spec, on the test's vhost."""
    text = (ROOT / source).read_text(encoding="utf-8")
    text = text.replace('vhost: "alice-{{ env_name }}"', "vhost: /").replace("vhost: /", f"vhost: {json.dumps(vhost)}")
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def apply_import_plan(
    vhost: str, tmp_path: Path, spec: str, organization: str, capsys: pytest.CaptureFixture[str]
) -> str:
    assert main(["apply", spec, "--auto-approve"]) == 0
    imported = str(tmp_path / "imported.yaml")
    capsys.readouterr()
    assert main(["import", "--organization", organization, "--vhost", vhost, "-o", imported]) == 0
    err = capsys.readouterr().err
    assert "warning:" not in err, err
    assert main(["plan", imported, "--detailed-exitcode"]) == 0, capsys.readouterr().out
    return err


@pytest.fixture(autouse=True)
def _broker_url(management_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", management_url)


@pytest.mark.parametrize("source", ["specs/alice.yaml", "specs/examples/multi-service.yaml"])
def test_shipped_specs_round_trip(source: str, vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = spec_for(vhost, tmp_path, source)
    err = apply_import_plan(vhost, tmp_path, spec, "alice", capsys)
    assert f"Imported organization alice from vhost {vhost!r} (layout rabbitform)" in err


def test_a_1000_subscriber_spec_round_trips(vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "generated.yaml"
    spec.write_text(yaml.safe_dump(generated_spec(1000, vhost).model_dump(exclude_none=True)), encoding="utf-8")
    err = apply_import_plan(vhost, tmp_path, str(spec), "bench", capsys)
    services = len(generated_spec(1000, vhost).services)
    assert f"{services} services, 1000 subscribers" in err


def test_what_does_not_fit_is_a_warning(vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = spec_for(vhost, tmp_path, "specs/alice.yaml")
    assert main(["apply", spec, "--auto-approve"]) == 0
    capsys.readouterr()
    assert main(["import", "--organization", "alice", "--vhost", vhost, "--layout", "petisco"]) == 0
    captured = capsys.readouterr()
    assert "warning: queue alice.petisco.1.event.user.created.send_mail_handler is not in the spec" in captured.err
    assert "hint: these objects look like layout rabbitform: try --layout rabbitform" in captured.err
    assert captured.out.startswith("# Imported by `rabbitform import`")


def test_a_missing_vhost_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "--organization", "alice", "--vhost", "no-such-vhost-rabbitform"]) == 1
    assert "error: vhost 'no-such-vhost-rabbitform' does not exist at http" in capsys.readouterr().err

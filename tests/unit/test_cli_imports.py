"""What each command loads: `rabbitform validate` and `plan` import only what they run (start-up
time is measured in benchmarks; this pins the modules, which is what start-up depends on)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = str(ROOT / "specs" / "alice.yaml")

# Everything `validate` needs: the spec, its compiler, the naming rules. Adding a module here
# should be a decision: it is paid by every `rabbitform validate`.
VALIDATE_MODULES = {
    "topology",
    "topology.cli",
    "topology.cli.common",
    "topology.cli.main",
    "topology.cli.validate",
    "topology.compile",
    "topology.compile.compiler",
    "topology.compile.layouts",
    "topology.compile.layouts.petisco",
    "topology.compile.layouts.rabbitform",
    "topology.compile.layouts.wiring",
    "topology.compile.limits",
    "topology.compile.objects",
    "topology.compile.passwords",
    "topology.compile.policies",
    "topology.compile.quorum",
    "topology.errors",
    "topology.ladder",
    "topology.naming",
    "topology.spec",
    "topology.spec.loader",
    "topology.spec.model",
}
VALIDATE_PACKAGES = {"pydantic", "pydantic_core", "annotated_types", "typing_extensions", "typing_inspection"}
VALIDATE_PACKAGES |= {"yaml"}  # jinja2 only for a spec that uses its delimiters (the seed does not)
# `plan --offline` adds the planner and the text rendering; never the HTTP client or the plan file's model.
PLAN_OFFLINE_MODULES = VALIDATE_MODULES - {"topology.cli.validate"} | {
    "topology.cli.connection",
    "topology.cli.plan",
    "topology.cli.plan_output",
    "topology.compile.access",
    "topology.compile.definitions",
    "topology.plan",
    "topology.plan.diff",
    "topology.plan.model",
    "topology.plan.moves",
    "topology.plan.render",
    "topology.plan.render.text",
    "topology.plan.safety",
    "topology.plan.scope",
    "topology.urls",
}
NEVER_AT_START = {"requests", "urllib3", "http.client", "asyncio", "ssl", "jinja2"}
NEVER_FOR_PLANNING = ("bus_runtime", "pika", "topology.apply.move", "topology.state.lock")

PROBE = """
import contextlib, io, json, sys
before = set(sys.modules)
from topology.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:  # --help
        code = exc.code
print(json.dumps({"code": code, "modules": sorted(set(sys.modules) - before)}))
"""


def loaded(*arguments: str) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *arguments], capture_output=True, text=True, cwd=ROOT, check=True, timeout=60
    )
    result = json.loads(done.stdout)
    return result["code"], set(result["modules"])


@pytest.mark.parametrize(
    ("command", "expected"),
    [(["validate", SEED], VALIDATE_MODULES), (["plan", SEED, "--offline"], PLAN_OFFLINE_MODULES)],
    ids=["validate", "plan --offline"],
)
def test_validate_and_offline_plan_import_only_what_they_run(command: list[str], expected: set[str]) -> None:
    code, modules = loaded(*command)
    assert code in (0, 2)
    project = {m for m in modules if m.split(".")[0] in ("topology", "bus_runtime")}
    assert project == expected, (project - expected, expected - project)
    third_party = {m.split(".")[0] for m in modules} - set(sys.stdlib_module_names) - {"topology"}
    third_party = {name for name in third_party if not name.startswith("_") and name != "cython_runtime"}
    assert third_party <= VALIDATE_PACKAGES, third_party - VALIDATE_PACKAGES
    assert not NEVER_AT_START & modules


def test_a_templated_spec_still_renders(tmp_path: Path) -> None:
    """jinja2 is loaded on demand: a spec with its delimiters is rendered as before."""
    spec = tmp_path / "templated.yaml"
    spec.write_text(Path(SEED).read_text(encoding="utf-8").replace("alice", "{{ 'ali' ~ 'ce' }}", 1), encoding="utf-8")
    code, modules = loaded("validate", str(spec))
    assert code == 0 and "jinja2" in modules


@pytest.mark.parametrize("command", [["plan", SEED, "--offline"], ["export", SEED], ["graph", SEED]])
def test_planning_commands_never_load_the_runtime_or_amqp(command: list[str]) -> None:
    code, modules = loaded(*command)
    assert code in (0, 2)
    assert not [m for m in modules if m.startswith(NEVER_FOR_PLANNING)]


def test_a_runtime_command_loads_its_module_and_no_planner_command() -> None:
    code, modules = loaded("consume", "--help")
    assert code == 0 and "bus_runtime.cli" in modules
    assert not [
        m for m in modules if m.startswith("topology.cli.") and m not in ("topology.cli.main", "topology.cli.common")
    ]


def test_help_and_an_unknown_command_list_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from topology.cli.main import COMMANDS, main

    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    assert all(name in listed for name in [*COMMANDS, "consume", "publish", "dlq"])
    with pytest.raises(SystemExit):
        main(["no-such-command"])
    assert "invalid choice: 'no-such-command' (choose from 'validate'" in capsys.readouterr().err

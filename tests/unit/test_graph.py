"""The topology as a picture: Mermaid and DOT from the compiled spec, and the plan's diagram."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from topology.cli.main import main
from topology.compile.compiler import compile_spec
from topology.graph import Graph, build_graph, graph_of_plan, only_service, to_dot, to_mermaid
from topology.plan.diff import compute_plan
from topology.plan.render.markdown import render_markdown
from topology.plan.scope import Scope
from topology.spec.loader import parse_spec

ROOT = Path(__file__).resolve().parents[2]
ALICE = ROOT / "specs" / "alice.yaml"
MULTI = ROOT / "specs" / "examples" / "multi-service.yaml"
MERMAID_DIR = ROOT / ".cache" / "mermaid"
MERMAID_PACKAGES = ("mermaid@10", "jsdom@24")
VALIDATOR = ROOT / "tests" / "tooling" / "validate_mermaid.mjs"
SEED_NAMES = [
    "alice.petisco",
    "retry.alice.petisco",
    "dead_letter.alice.petisco",
    "alice.petisco.1.event.user.created.send_mail_handler",
    "retry.alice.petisco.1.event.user.created.send_mail_handler",
    "dead_letter.alice.petisco.1.event.user.created.send_mail_handler",
    "store",
    "retry.store",
    "dead_letter.store",
]


def alice_graph() -> Graph:
    return build_graph(compile_spec(parse_spec(ALICE.read_text(), str(ALICE))))


def test_the_seed_graph_names_every_exchange_and_queue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(ALICE)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("flowchart ")
    for name in SEED_NAMES:
        assert f'"{name}"' in text, name
    # the retry loop, with its TTL on the edge, and the store's routes through the default exchange
    assert "TTL 5000 ms, retry.alice.petisco.1.event.user.created.send_mail_handler" in text
    assert '"alice.petisco.*.event.#35;"' in text  # '#' is escaped for Mermaid
    assert "(default exchange)" in text


def test_every_binding_and_dead_letter_route_is_an_edge() -> None:
    graph = alice_graph()
    topology = compile_spec(parse_spec(ALICE.read_text(), str(ALICE)))
    bindings = [e for e in graph.edges if e.kind == "binding"]
    routes = [e for e in graph.edges if e.kind == "dead_letter"]
    assert len(bindings) == len(topology.bindings)
    assert len(routes) == sum(1 for q in topology.queues if "x-dead-letter-exchange" in q.arguments)
    assert graph.node_names() == set(SEED_NAMES)


def test_dot_is_a_digraph_with_every_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(ALICE), "--format", "dot"]) == 0
    text = capsys.readouterr().out
    assert text.startswith('digraph "alice" {') and text.rstrip().endswith("}")
    for name in SEED_NAMES:
        assert f'label="{name}"' in text
    assert text.count("style=dashed") == 4


def test_one_service_keeps_its_exchanges_and_the_queues_bound_to_them(capsys: pytest.CaptureFixture[str]) -> None:
    spec = parse_spec(MULTI.read_text(), str(MULTI), {"env_name": "test"})
    whole = compile_spec(spec)
    service = sorted(spec.services)[0]
    part = only_service(whole, spec.organization, service)
    assert {e.name for e in part.exchanges} == {
        f"{spec.organization}.{service}",
        f"retry.{spec.organization}.{service}",
        f"dead_letter.{spec.organization}.{service}",
    }
    assert all(b.source in {e.name for e in part.exchanges} for b in part.bindings)
    assert main(["graph", str(MULTI), "--var", "env_name=test", "--service", "nope"]) == 1
    assert "--service 'nope' is not in" in capsys.readouterr().err


def test_plan_markdown_folds_a_diagram_of_what_changes() -> None:
    spec = parse_spec(ALICE.read_text(), str(ALICE))
    desired = compile_spec(spec)
    changed = spec.model_copy(
        update={
            "defaults": spec.defaults.model_copy(
                update={"retry": spec.defaults.retry.model_copy(update={"delay_ms": 1000})}
            )
        }
    )
    plan = compute_plan(compile_spec(changed), desired, Scope.of_spec(spec))
    graph = graph_of_plan(plan.changes)
    statuses = {node.name: node.status for node in graph.nodes}
    assert statuses["retry.alice.petisco.1.event.user.created.send_mail_handler"] == "replaced"
    assert statuses["retry.alice.petisco"] == "unchanged"  # context at the end of a changed binding
    text = render_markdown(plan)
    assert "```mermaid\nflowchart LR" in text
    assert "classDef replaced" in text
    assert text.index("<details>") < text.index("```mermaid")


def test_mermaid_styles_added_and_deleted() -> None:
    spec = parse_spec(ALICE.read_text(), str(ALICE))
    plan = compute_plan(compile_spec(spec), None, Scope.of_spec(spec))
    text = to_mermaid(graph_of_plan(plan.changes))
    assert "classDef added" in text and "linkStyle 0," in text
    removed = compute_plan(
        compile_spec(spec.model_copy(update={"store": None})), compile_spec(spec), Scope.of_spec(spec)
    )
    text = to_mermaid(graph_of_plan(removed.changes))
    assert "classDef deleted" in text and '"store"' in text
    assert "fillcolor" in to_dot(graph_of_plan(removed.changes))


@pytest.fixture(scope="session")
def mermaid_dir() -> Path:
    """mermaid and jsdom from the npm registry, installed once into `.cache/mermaid/`."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js (node and npm) is not installed: mermaid cannot parse the diagrams")
    if not (MERMAID_DIR / "node_modules" / "mermaid").is_dir():
        MERMAID_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(MERMAID_DIR), *MERMAID_PACKAGES],
            check=True,
            timeout=600,
        )
    return MERMAID_DIR / "node_modules"


def test_mermaid_parses_every_diagram(mermaid_dir: Path, tmp_path: Path) -> None:
    spec = parse_spec(ALICE.read_text(), str(ALICE))
    multi = parse_spec(MULTI.read_text(), str(MULTI), {"env_name": "test"})
    changed = spec.model_copy(
        update={"store": None, "defaults": spec.defaults.model_copy(update={"queue_type": "quorum"})}
    )
    diagrams = {
        "alice.mmd": to_mermaid(build_graph(compile_spec(spec))),
        "multi.mmd": to_mermaid(build_graph(compile_spec(multi))),
        "plan.mmd": to_mermaid(
            graph_of_plan(compute_plan(compile_spec(changed), compile_spec(spec), Scope.of_spec(spec)).changes)
        ),
    }
    for name, text in diagrams.items():
        (tmp_path / name).write_text(text)
    env = {**os.environ, "MERMAID_DIR": str(mermaid_dir)}
    files = [str(tmp_path / name) for name in diagrams]
    result = subprocess.run(["node", str(VALIDATOR), *files], capture_output=True, text=True, env=env, timeout=120)
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(reports) == 3, result.stderr
    assert all(report["ok"] for report in reports), reports


def test_policies_give_the_same_routes_and_an_update_is_styled() -> None:
    spec = parse_spec(ALICE.read_text(), str(ALICE))
    with_policies = spec.model_copy(update={"queue_settings": "policies"})
    by_arguments, by_policies = (build_graph(compile_spec(s)) for s in (spec, with_policies))
    # TTL and dead-letter edges come from the effective policy: the same routes either way
    assert [(e.source, e.target) for e in by_arguments.edges] == [(e.source, e.target) for e in by_policies.edges]
    assert "TTL 5000 ms, its own routing key" in to_mermaid(by_policies)
    slower = with_policies.model_copy(
        update={
            "defaults": spec.defaults.model_copy(
                update={"retry": spec.defaults.retry.model_copy(update={"delay_ms": 7000})}
            )
        }
    )
    plan = compute_plan(compile_spec(slower), compile_spec(with_policies), Scope.of_spec(with_policies))
    assert {c.action for c in plan.changes} == {"update"}
    assert "| update |" in render_markdown(plan)


def test_the_readme_shows_the_seeds_graph_as_the_command_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(ALICE)]) == 0
    assert f"```mermaid\n{capsys.readouterr().out}```" in (ROOT / "README.md").read_text()

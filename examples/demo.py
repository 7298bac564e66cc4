"""`make demo`: the seed example end to end, with no broker.

Validates the seed spec, prints the plan against an empty broker, exports the definitions,
and shows that a broker holding those definitions needs no changes. Then runs the seed's
story (a retry, a dead letter) on the in-memory broker built from the same spec.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from memory_demo import main as in_memory_story  # examples/memory_demo.py

from topology.cli.main import main as rabbitform

SPEC = str(Path(__file__).resolve().parents[1] / "specs" / "alice.yaml")


def step(title: str, *argv: str) -> None:
    print(f"\n$ rabbitform {' '.join(argv)}    # {title}", flush=True)
    status = rabbitform(list(argv))
    sys.stdout.flush()
    if status not in (0, 2):
        raise SystemExit(status)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        definitions = str(Path(tmp) / "alice-definitions.json")
        step("check the spec", "validate", SPEC)
        step("what apply would create on an empty broker", "plan", SPEC, "--offline", "--no-color")
        step("RabbitMQ definitions JSON", "export", SPEC, "-o", definitions)
        exported = json.loads(Path(definitions).read_text(encoding="utf-8"))
        for kind in ("exchanges", "queues", "bindings"):
            print(f"  {len(exported[kind])} {kind}")
        for queue in exported["queues"]:
            print(f"    queue {queue['name']} {json.dumps(queue['arguments'], sort_keys=True)}")
        step(
            "a broker holding those definitions is up to date",
            "plan",
            SPEC,
            "--state",
            definitions,
            "--detailed-exitcode",
        )
    in_memory_story()


if __name__ == "__main__":
    main()

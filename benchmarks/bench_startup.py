"""Start-up benchmark: wall time of `rabbitform validate SPEC` and `rabbitform plan SPEC --offline`
in a child process (the interpreter's start, the imports, reading and compiling the spec), with
the modules' bytecode cached as an installed rabbitform has it, and, for comparison, compiled
again at every start (a source checkout under PYTHONDONTWRITEBYTECODE).

Target (issue 19): under 0.3 s each, bytecode cached. The median of `--runs` counts (the
machine's other work slows some runs; the best is printed too).
Run: `python -m benchmarks startup`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.installed import RABBITFORM, installed_environment

SPEC = str(Path(__file__).resolve().parents[1] / "specs" / "alice.yaml")
COMMANDS = {
    "validate": [RABBITFORM, "validate", SPEC],
    "plan --offline": [RABBITFORM, "plan", SPEC, "--offline"],
}
TARGET_S = 0.3


def wall(command: list[str], environment: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=environment, timeout=60, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:])} failed ({done.returncode}): {done.stderr.decode().strip()}")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks startup", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    args = parser.parse_args(argv)
    uncached = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    uncached.pop("PYTHONPYCACHEPREFIX", None)
    results = []
    with tempfile.TemporaryDirectory(prefix="rabbitform-bench-bytecode-") as bytecode:
        cached = installed_environment(bytecode)
        print(f"start-up benchmark: {args.runs} runs of each command, taking turns", flush=True)
        for name, command in COMMANDS.items():
            runs: dict[str, list[float]] = {"cached": [], "uncached": []}
            for _ in range(args.runs):
                runs["cached"].append(wall(command, cached))
                runs["uncached"].append(wall(command, uncached))
            median = statistics.median(runs["cached"])
            print(
                f"  rabbitform {name:<15} {median:6.3f} s median (best {min(runs['cached']):.3f} s) bytecode cached; "
                f"{statistics.median(runs['uncached']):.3f} s compiled at every start",
                flush=True,
            )
            results.append((name, median))
    print("results:")
    for name, median in results:
        met = median < TARGET_S
        print(f"  start-up of {name:<28} {median:6.3f} s  (target < {TARGET_S} s: {'met' if met else 'MISSED'})")
    return 0 if all(median < TARGET_S for _, median in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

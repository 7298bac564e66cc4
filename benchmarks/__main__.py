"""`python -m benchmarks [NAME] [ARGS...]` (make bench): run the `main()` of every
`benchmarks/bench_*.py` module in name order, or only `bench_NAME`
(e.g. `python -m benchmarks topology --large 1000`)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence

import benchmarks

PREFIX = "bench_"


def available() -> list[str]:
    return sorted(
        module.name[len(PREFIX) :]
        for module in pkgutil.iter_modules(benchmarks.__path__)
        if module.name.startswith(PREFIX)
    )


def run(name: str, argv: Sequence[str]) -> int:
    module = importlib.import_module(f"benchmarks.{PREFIX}{name}")
    return int(module.main(list(argv)) or 0)


def main(argv: Sequence[str]) -> int:
    names = available()
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(names))
        return 0
    if argv and not argv[0].startswith("-"):
        if argv[0] not in names:
            print(f"unknown benchmark {argv[0]!r}; choose from: {', '.join(names)}", file=sys.stderr)
            return 2
        return run(argv[0], argv[1:])
    if not names:
        print("benchmarks: no bench_*.py modules yet")
        return 0
    status = 0
    for name in names:
        print(f"== {PREFIX}{name}", flush=True)
        status = max(status, run(name, argv))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

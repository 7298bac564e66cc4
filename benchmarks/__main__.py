"""`python -m benchmarks` (make bench): run the `main()` of every `bench_*.py` module, in name order."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    if not names:
        print("benchmarks: no bench_*.py modules yet")
        return 0
    status = 0
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        status = status or int(module.main() or 0)
    return status


if __name__ == "__main__":
    sys.exit(main())

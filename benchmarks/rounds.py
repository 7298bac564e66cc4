"""Interleaved rounds and ratio targets, as every throughput benchmark reports them.

Rounds alternate the measurements (load from other processes then hits all alike) and the
best rate of each is kept; a ratio is judged against its target in one printed line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Step = tuple[str, Callable[[], float]]
Check = tuple[str, float, float]


def best_of(steps: Sequence[Step], rounds: int, width: int) -> dict[str, float]:
    """Run every step once per round, in order; print each label's best rate and its runs."""
    samples: dict[str, list[float]] = {label: [] for label, _ in steps}
    for _ in range(max(1, rounds)):
        for label, step in steps:
            samples[label].append(step())
    rates = {label: max(values) for label, values in samples.items()}
    for label, rate in rates.items():
        runs = ", ".join(f"{value:,.0f}" for value in samples[label])
        print(f"  {label:<{width}} {rate:>9,.0f} msg/s  (runs: {runs})", flush=True)
    return rates


def judged(checks: Sequence[Check], width: int) -> bool:
    """Print each (label, ratio, target) as met or MISSED; True when all are met."""
    ok = True
    for label, ratio, target in checks:
        met = ratio >= target
        ok &= met
        print(f"  {label:<{width}} {ratio:6.2f}x  (target >= {target:g}x: {'met' if met else 'MISSED'})")
    return ok

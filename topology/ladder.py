"""A retry ladder's arithmetic, shared by the spec (`topology.spec.model.RetryPolicy`) and the
runtime's subscribers built in code (`bus_runtime.subscriber.Retries`): pure, no models.

A ladder lists delays in ms; attempt k waits the k-th, the last one repeating until
`max_retries`. Each distinct delay is one retry queue (a tier), in the order attempts reach it.
"""

from __future__ import annotations

from collections.abc import Sequence


def attempt_delays(ladder: Sequence[int], max_retries: int) -> tuple[int, ...]:
    """The delay before each retry 1..n (n = max_retries, at least 1: the first tier exists)."""
    steps = max(1, max_retries)
    return tuple(ladder[min(k, len(ladder) - 1)] for k in range(steps))


def tiers(delays: Sequence[int]) -> tuple[int, ...]:
    """The distinct delays, in the order attempts first reach them: one retry queue each."""
    return tuple(dict.fromkeys(delays))


def attempt_tiers(delays: Sequence[int]) -> tuple[int, ...]:
    """The tier (1-based) of each retry, given the delay before each (`attempt_delays`)."""
    index = {delay: tier for tier, delay in enumerate(tiers(delays), start=1)}
    return tuple(index[delay] for delay in delays)

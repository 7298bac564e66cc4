"""When the consumer starts a drainer for an inbox's deliveries, and how much a batch takes."""

from __future__ import annotations

from bus_runtime.batched import Costs, Pending


def test_a_lone_delivery_starts_a_drainer_at_once() -> None:
    pending: Pending[int] = Pending(drainers=4)
    assert pending.add("q", 1, limit=50) is True
    assert pending.take("q", 50) == [1]
    assert pending.again("q") is False  # nothing waits: the drainer ends
    assert pending.add("q", 2, limit=50) is True  # and the next delivery starts one again


def test_until_measured_each_waiting_delivery_gets_a_drainer_up_to_the_worker_count() -> None:
    pending: Pending[int] = Pending(drainers=3)
    assert [pending.add("q", i, limit=50) for i in range(5)] == [True, True, True, False, False]
    assert pending.add("other", 9, limit=50) is True  # counted per queue


def test_fast_handlers_wait_for_a_batch_worth_before_another_drainer() -> None:
    pending: Pending[int] = Pending(drainers=8)
    pending.costs("q").record(10, overhead_s=0.005, handling_s=0.001)  # 0.1 ms a handler, 5 ms a commit
    assert pending.costs("q").batch_size(50) == 50
    assert pending.add("q", 0, limit=50) is True  # none runs: at once
    started = [pending.add("q", i, limit=50) for i in range(1, 50)]
    assert started.count(True) == 1 and started[-1] is True  # 50 waiting: a second drainer
    assert len(pending.take("q", 50)) == 50 and pending.take("q", 50) == []


def test_slow_handlers_get_a_drainer_each() -> None:
    costs = Costs()
    costs.record(4, overhead_s=0.005, handling_s=0.4)  # 100 ms a handler
    assert costs.batch_size(50) == 1


def test_the_averages_move_towards_the_newest_batches() -> None:
    costs = Costs()
    costs.record(1, overhead_s=0.010, handling_s=0.010)
    assert costs.batch_size(50) == 1
    for _ in range(30):
        costs.record(10, overhead_s=0.010, handling_s=0.001)
    assert costs.batch_size(50) == 50 and costs.batch_size(20) == 20


def test_until_measured_a_drainer_takes_one_delivery() -> None:
    pending: Pending[int] = Pending(drainers=2)
    for i in range(4):
        pending.add("q", i, limit=5)
    assert pending.take("q", 5) == [0] and pending.take("q", 5) == [1]
    pending.costs("q").record(2, overhead_s=0.01, handling_s=0.0001)
    assert pending.take("q", 5) == [2, 3]


def test_a_drainer_that_finds_nothing_ends() -> None:
    pending: Pending[int] = Pending(drainers=2)
    assert pending.add("q", 1, limit=5) and pending.add("q", 2, limit=5)  # unmeasured: a drainer each
    pending.costs("q").record(10, overhead_s=0.01, handling_s=0.001)  # measured meanwhile: 5 a batch
    assert pending.take("q", 5) == [1, 2]
    assert pending.take("q", 5) == []  # the second one: the first took both
    assert pending.again("q") is False
    assert pending.add("q", 3, limit=5) is True


def test_one_drainer_at_a_time_when_batches_cannot_run_in_parallel() -> None:
    pending: Pending[int] = Pending(drainers=8)
    assert [pending.add("q", i, limit=50, parallel=False) for i in range(60)].count(True) == 1

"""The two read paths meet in one normalisation: listings assembled like a definitions export."""

from __future__ import annotations

import threading

import pytest

from topology.broker.concurrency import run_bounded
from topology.broker.snapshot import assemble, definitions_from_listings, snapshot_reads
from topology.compile.objects import Binding, Exchange, Queue

EXCHANGES = [
    {"name": "", "type": "direct", "durable": True, "auto_delete": False, "internal": False, "arguments": {}},
    {"name": "amq.topic", "type": "topic", "durable": True, "auto_delete": False, "internal": False, "arguments": {}},
    {"name": "ex", "type": "topic", "durable": True, "auto_delete": False, "internal": False, "arguments": {"n": 5}},
]
QUEUES = [
    {"name": "q", "durable": True, "auto_delete": False, "exclusive": False, "arguments": {"x-max-length": 10}},
    {"name": "t", "durable": False, "auto_delete": True, "exclusive": False, "arguments": {"s": "10"}},
    {"name": "amq.gen-1", "durable": False, "auto_delete": False, "exclusive": True, "arguments": {}},
]
BINDINGS = [
    {"source": "", "destination": "q", "destination_type": "queue", "routing_key": "q", "arguments": {}},
    {"source": "ex", "destination": "q", "destination_type": "queue", "routing_key": "a.#", "arguments": {"x": 1}},
    {"source": "ex", "destination": "amq.gen-1", "destination_type": "queue", "routing_key": "k", "arguments": {}},
    {"source": "ex", "destination": "amq.topic", "destination_type": "exchange", "routing_key": "z", "arguments": {}},
]


def test_listings_and_the_export_give_the_same_snapshot() -> None:
    export = {
        "exchanges": EXCHANGES[2:],
        "queues": QUEUES[:2],
        "bindings": [BINDINGS[1], BINDINGS[3]],
    }
    listings = {"exchanges": {"exchanges": EXCHANGES, "bindings": BINDINGS}, "queues": QUEUES}
    listed = assemble("v", "classic", listings)
    exported = assemble("v", "classic", {"definitions": export})
    assert listed == exported
    topology = listed.topology
    assert topology is not None
    assert topology.exchanges == (Exchange("ex", arguments={"n": 5}),)
    assert topology.queues == (
        Queue("q", arguments={"x-max-length": 10}),
        Queue("t", durable=False, auto_delete=True, arguments={"s": "10"}),
    )
    assert topology.bindings == (
        Binding("ex", "amq.topic", "z", "exchange"),
        Binding("ex", "q", "a.#", arguments={"x": 1}),
    )


def test_exclusive_queues_and_their_bindings_are_left_out_like_the_export_does() -> None:
    definitions = definitions_from_listings(EXCHANGES, QUEUES, BINDINGS)
    assert [q["name"] for q in definitions["queues"]] == ["q", "t"]
    assert all(b["destination"] != "amq.gen-1" for b in definitions["bindings"])


def test_a_vhost_deleted_while_it_is_read_is_missing() -> None:
    snapshot = assemble("v", "classic", {"exchanges": {"exchanges": EXCHANGES, "bindings": []}, "queues": None})
    assert not snapshot.exists


def test_each_path_names_its_reads() -> None:
    assert set(snapshot_reads("v", "listings")) == {"exchanges", "queues", "policies", "records"}
    assert set(snapshot_reads("v", "definitions")) == {"definitions", "records"}


def test_run_bounded_keeps_order_and_never_exceeds_its_bound() -> None:
    running, peak, lock = 0, 0, threading.Lock()
    release = threading.Event()

    def action(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 3:
                release.set()
        release.wait(5)
        with lock:
            running -= 1
        return n * n

    reported: list[int] = []
    assert run_bounded(list(range(20)), action, in_flight=3, on_done=reported.append) == [n * n for n in range(20)]
    assert peak == 3
    assert reported[-1] == 20 and reported == sorted(reported)


def test_run_bounded_raises_the_first_failure_and_skips_what_had_not_started() -> None:
    started: list[int] = []

    def action(n: int) -> None:
        started.append(n)
        if n == 0:
            raise ValueError("boom")
        threading.Event().wait(0.05)

    with pytest.raises(ValueError, match="boom"):
        run_bounded(list(range(200)), action, in_flight=2)
    assert len(started) < 200

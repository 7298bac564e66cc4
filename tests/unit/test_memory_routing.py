"""Topic routing as RabbitMQ does it: `*` is one word, `#` zero or more."""

from __future__ import annotations

import pytest

from bus_runtime.memory.routing import route, topic_matches
from topology.compile.objects import Binding


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.b.c", "a.b", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.*", "a.b.c", False),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("#.c", "c", True),
        ("#.c", "a.b.c", True),
        ("#.c", "a.b.c.d", False),
        ("#", "", True),
        ("#", "anything.at.all", True),
        ("*", "", False),
        ("", "", True),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.b.b.c", True),
        ("a.#.#.c", "a.c", True),
        ("#.*", "", False),
        ("#.*", "x", True),
        ("alice.petisco.*.event.#", "alice.petisco.1.event.user.created", True),
        ("alice.petisco.*.event.#", "alice.petisco.1.command.user.create", False),
        ("alice.petisco.*.event.#", "alice.petisco.event.user", False),
        ("retry.q", "retry.q", True),
    ],
)
def test_topic_patterns(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_a_queue_gets_one_copy_however_many_bindings_match() -> None:
    bindings = [Binding("x", "q", "a.#"), Binding("x", "q", "a.b"), Binding("x", "r", "*.b")]
    assert route("topic", bindings, "a.b") == ["q", "r"]


def test_direct_and_fanout_exchanges() -> None:
    bindings = [Binding("x", "q", "k"), Binding("x", "r", "other")]
    assert route("direct", bindings, "k") == ["q"]
    assert route("fanout", bindings, "ignored") == ["q", "r"]

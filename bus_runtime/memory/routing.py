"""Routing, as RabbitMQ does it: pure functions from (exchange, routing key) to queues.

Topic patterns split on `.`: `*` matches exactly one word, `#` zero or more. The default
exchange `""` routes by queue name to any queue; retries of the store travel through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from topology.compile.objects import Binding

DEFAULT_EXCHANGE = ""


def _words(key: str) -> tuple[str, ...]:
    # RabbitMQ treats the empty routing key as zero words: "#" and "" match it, "*" does not.
    return tuple(key.split(".")) if key else ()


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    """Does the binding key `pattern` match `routing_key` under AMQP topic rules?"""
    return _match(_words(pattern), _words(routing_key))


def _match(pattern: tuple[str, ...], key: tuple[str, ...]) -> bool:
    # reachable[j]: the pattern prefix read so far can consume exactly key[:j].
    reachable = [True] + [False] * len(key)
    for word in pattern:
        if word == "#":
            seen = False
            for j in range(len(key) + 1):
                seen = seen or reachable[j]
                reachable[j] = seen
        else:
            for j in range(len(key), 0, -1):
                reachable[j] = reachable[j - 1] and (word == "*" or word == key[j - 1])
            reachable[0] = False
    return reachable[len(key)]


def binding_matches(exchange_type: str, binding_key: str, routing_key: str) -> bool:
    if exchange_type == "topic":
        return topic_matches(binding_key, routing_key)
    if exchange_type == "fanout":
        return True
    return binding_key == routing_key  # direct (headers exchanges are not modelled)


def route(exchange_type: str, bindings: Iterable[Binding], routing_key: str) -> list[str]:
    """Queues that receive a message: each at most once, however many of its bindings match."""
    queues: list[str] = []
    for binding in bindings:
        if binding.destination_type != "queue" or binding.destination in queues:
            continue
        if binding_matches(exchange_type, binding.routing_key, routing_key):
            queues.append(binding.destination)
    return queues

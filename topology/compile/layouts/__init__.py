"""Layouts: the objects a bus is built from; compile picks one by the spec's `layout` key.

Both layouts share the naming of exchanges, subscriber queues and their `retry.`/`dead_letter.`
twins (topology.naming); they differ in queue arguments and in how the store is wired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from topology.compile.layouts import petisco, rabbitform
from topology.compile.objects import Binding, Queue
from topology.naming import Layout
from topology.spec.model import ResolvedStore, ResolvedSubscriber

Objects = tuple[list[Queue], list[Binding]]


@dataclass(frozen=True)
class LayoutStrategy:
    subscriber_objects: Callable[[str, ResolvedSubscriber], Objects]
    store_objects: Callable[[str, list[str], ResolvedStore], Objects]


STRATEGIES: dict[Layout, LayoutStrategy] = {
    "rabbitform": LayoutStrategy(rabbitform.subscriber_objects, rabbitform.store_objects),
    "petisco": LayoutStrategy(petisco.subscriber_objects, petisco.store_objects),
}


def strategy(layout: Layout) -> LayoutStrategy:
    return STRATEGIES[layout]

"""Handlers named by a spec: import them, and turn the spec's subscribers into subscriptions.

Shared by every consumer that starts from a spec, so that a subscriber's queue, handler and
retry policy are read one way only.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from typing import Any

from bus_runtime.message import Command, Event, Message
from bus_runtime.subscriber import Handler, Subscription
from topology.naming import MessageKind
from topology.spec import ResolvedSubscriber, Spec


class HandlerImportError(ImportError):
    """A spec names a handler that cannot be imported or is not callable."""


def import_handler(path: str) -> Handler:
    """`package.module:function` (or `package.module:Class.method`) -> the callable."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise HandlerImportError(f"handler {path!r} is not an import path like 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerImportError(f"handler {path!r}: cannot import module {module_name!r} ({exc})") from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise HandlerImportError(f"handler {path!r}: {module_name!r} has no attribute {attribute!r}") from None
    if not callable(target):
        raise HandlerImportError(f"handler {path!r} is not callable")
    return typing.cast(Handler, target)


def message_class_for(handler: Handler, class_name: str, version: int, kind: MessageKind) -> type[Message]:
    """The class a handler expects: its first parameter's annotation when that is the spec's
    message, else a stand-in class with the spec's name and version (any attributes accepted),
    so that a wrong message type on the queue is still refused as poison."""
    annotated = _first_parameter_type(handler)
    if (
        annotated is not None
        and annotated.__name__ == class_name
        and annotated.version == version
        and annotated.message_kind == kind
    ):
        return annotated
    base: type[Message] = Command if kind == "command" else Event
    return typing.cast(type[Message], type(class_name, (base,), {"version": version, "__module__": __name__}))


def _first_parameter_type(handler: Handler) -> type[Message] | None:
    try:
        parameters = list(inspect.signature(handler).parameters.values())
        hints = typing.get_type_hints(handler)
    except (TypeError, ValueError, NameError):
        return None
    if not parameters:
        return None
    annotation = hints.get(parameters[0].name)
    if isinstance(annotation, type) and issubclass(annotation, Message) and annotation not in (Message, Event, Command):
        return annotation
    return None


def subscriber_subscription(spec: Spec, subscriber: ResolvedSubscriber, handler: Handler) -> Subscription:
    message_class = message_class_for(handler, subscriber.message_class, subscriber.version, subscriber.kind)
    return Subscription(
        organization=spec.organization,
        service=subscriber.service,
        queue=subscriber.queue,
        handler=handler,
        handler_name=subscriber.name,
        message_class=message_class,
        max_retries=subscriber.retry.max_retries,
    )


def spec_subscriptions(spec: Spec, service: str | None = None, include_store: bool = True) -> list[Subscription]:
    """A subscription for every subscriber (of `service`, or of all services) that names a
    handler, with its own retry policy; plus the store's, when it names a handler.

    The store's retries go through the retry exchange of `service` (or of the first service):
    its retry queue is bound to every service's retry exchange.
    """
    if service is not None and service not in spec.services:
        raise ValueError(f"service {service!r} is not in the spec (services: {', '.join(sorted(spec.services))})")
    result = [
        subscriber_subscription(spec, sub, import_handler(sub.handler))
        for sub in spec.subscribers()
        if sub.handler and (service is None or sub.service == service)
    ]
    store = spec.resolved_store()
    if include_store and store is not None and store.handler and spec.services:
        owner = service or sorted(spec.services)[0]
        handler = import_handler(store.handler)
        result.append(
            Subscription(
                organization=spec.organization,
                service=owner,
                queue=store.queue,
                handler=handler,
                handler_name=getattr(handler, "__name__", store.queue),
                message_class=None,
                max_retries=store.retry.max_retries,
            )
        )
    return result

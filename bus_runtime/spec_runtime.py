"""Run what a spec names: handlers by import path, messages by class name.

`rabbitform consume SPEC` and `RabbitMqEventConsumer.from_spec` turn the spec's subscribers
into subscriptions (each with its own retry policy); `rabbitform publish` builds one message
from the spec's names. The spec declares no fields: attributes are taken as given.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import cache
from typing import Any

from bus_runtime.breaker import BreakerSettings
from bus_runtime.message import Command, Event, Message
from bus_runtime.subscriber import Handler, Subscription, store_subscription
from topology.errors import RabbitformError
from topology.naming import MessageKind
from topology.spec.model import CircuitBreaker, ResolvedSubscriber, RetryPolicy, Spec


def _binds(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*[object()] * count)
    except TypeError:
        return False
    return True


def import_handler(path: str, where: str = "the spec") -> Handler:
    """`package.module:function` (or `module:Class.method`) -> the callable.

    Every way this can fail is one line naming the handler, the module and, for an error
    inside the module, its file and line; a class or a callable that cannot take exactly
    one argument (the message), or the message and an inbox's `session`, is refused here, not
    retried forever at runtime.
    """
    module_name, _, attribute = path.partition(":")
    target: Any = _import_module(module_name, path, where)
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise RabbitformError(f"handler {path!r} named in {where}: {module_name} has no {attribute!r}") from None
    if inspect.isclass(target):
        raise RabbitformError(
            f"handler {path!r} named in {where} is a class; name a function that takes the message "
            "(or a method: module:Class.method)"
        )
    if not callable(target):
        raise RabbitformError(f"handler {path!r} named in {where} is not callable")
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return target  # a builtin without a signature: trust it
    try:
        signature.bind(object())
    except TypeError:
        if list(signature.parameters)[1:2] == ["session"] and _binds(signature, 2):
            return target  # (message, session): run with an inbox (`consume --inbox-database-url`)
        raise RabbitformError(
            f"handler {path!r} named in {where} takes {signature}; a handler takes one argument, the message"
        ) from None
    return target


def _import_module(module_name: str, path: str, where: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except SyntaxError as exc:
        raise RabbitformError(
            f"handler module {module_name!r} of {path!r} named in {where} has a syntax error: "
            f"{exc.filename}:{exc.lineno}: {exc.msg}"
        ) from None
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise RabbitformError(
                f"cannot import module {module_name!r} of handler {path!r} named in {where}: {exc} "
                "(run from the directory that holds the package, or set PYTHONPATH)"
            ) from None
        raise _failed_import(module_name, path, where, exc) from None
    except Exception as exc:
        raise _failed_import(module_name, path, where, exc) from None


def _failed_import(module_name: str, path: str, where: str, exc: BaseException) -> RabbitformError:
    """The module exists but raised while importing: name its file and the line that raised."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if "importlib" not in f.filename and "spec_runtime" not in f.filename]
    at = f" at {inside[-1].filename}:{inside[-1].lineno}" if inside else ""
    return RabbitformError(
        f"handler module {module_name!r} of {path!r} named in {where} failed to import{at}: {type(exc).__name__}: {exc}"
    )


def message_class(class_name: str, kind: MessageKind, version: int, handler: Handler | None = None) -> type[Message]:
    """The class a handler receives: the one its module declares under that name (if its kind
    and version match the spec), else a generic class carrying the spec's name and version."""
    module = inspect.getmodule(handler) if handler is not None else None
    declared = getattr(module, class_name, None) if module is not None else None
    if (
        isinstance(declared, type)
        and issubclass(declared, Message)
        and declared.message_kind == kind
        and declared.version == version
    ):
        return declared
    return generic_class(class_name, kind, version)


@cache
def generic_class(class_name: str, kind: MessageKind, version: int) -> type[Message]:
    """A message class with no declared fields: attributes are kept as given (extra fields)."""
    base: type[Message] = Command if kind == "command" else Event
    return type(class_name, (base,), {"version": version, "__module__": __name__, "__doc__": f"{class_name} (spec)"})


def spec_subscriptions(
    spec: Spec, service: str | None = None, names: Iterable[str] | None = None, where: str = "the spec"
) -> list[Subscription]:
    """One subscription per subscriber with a handler (filtered by service and names); the
    store too when it has a handler and no filter excludes it."""
    wanted = set(names) if names else None
    if service is not None and service not in spec.services:
        known = ", ".join(sorted(spec.services)) or "none"
        raise RabbitformError(f"service {service!r} is not in {where} (services: {known})")
    chosen: list[ResolvedSubscriber] = [
        sub
        for sub in spec.subscribers()
        if (service is None or sub.service == service) and (wanted is None or sub.name in wanted)
    ]
    result: list[Subscription] = []
    for sub in chosen:
        if sub.handler is None:
            if wanted is not None:
                raise RabbitformError(f"subscriber {sub.name!r} in {where} has no handler to run")
            continue
        handler = import_handler(sub.handler, where)
        cls = message_class(sub.message_class, sub.kind, sub.version, handler)
        result.append(
            with_retry_policy(
                Subscription(
                    spec.organization,
                    sub.service,
                    sub.queue,
                    handler,
                    sub.name,
                    cls,
                    sub.retry.max_retries,
                    spec.layout,
                ),
                sub.retry,
                sub.circuit_breaker,
                where,
            )
        )
    store = spec.resolved_store()
    store_wanted = (wanted is None and service is None) or (wanted is not None and store and store.queue in wanted)
    if store is not None and store_wanted:
        if store.handler is None:
            if wanted is not None:
                raise RabbitformError(f"the store in {where} has no handler to run")
        elif spec.services:
            handler = import_handler(store.handler, where)
            via = sorted(spec.services)[0]  # every service's retry exchange routes retry.<store>
            sub_store = store_subscription(
                spec.organization, via, handler, store.retry.max_retries, store.queue, spec.layout
            )
            result.append(with_retry_policy(sub_store, store.retry, store.circuit_breaker, where))
    if wanted is not None:
        unknown = wanted - {s.name for s in chosen} - ({store.queue} if store else set())
        if unknown:
            raise RabbitformError(f"no subscriber named {', '.join(sorted(unknown))} in {where}")
    if not result:
        raise RabbitformError(f"nothing to consume: no subscriber with a handler in {where}")
    return result


def with_retry_policy(
    subscription: Subscription, retry: RetryPolicy, breaker: CircuitBreaker | None, where: str = "the spec"
) -> Subscription:
    """The subscription with its ladder, `dead_letter_on` and circuit breaker. A rule naming a
    class by import path must import, or it would never match: refused here, not ignored."""
    for rule in retry.dead_letter_on:
        if ":" in rule:
            _check_error_class(rule, where)
    settings = BreakerSettings(breaker.failures, breaker.window_s, breaker.pause_s) if breaker else None
    return replace(
        subscription,
        attempt_tiers=retry.attempt_tiers(),
        dead_letter_on=retry.dead_letter_on,
        circuit_breaker=settings,
    )


def _check_error_class(rule: str, where: str) -> None:
    module_name, _, attribute = rule.partition(":")
    target: Any = _import_module(module_name, rule, where)
    for part in attribute.split("."):
        target = getattr(target, part, None)
    if not (isinstance(target, type) and issubclass(target, BaseException)):
        raise RabbitformError(f"dead_letter_on {rule!r} in {where} names no exception class")


def message_from_spec(
    spec: Spec,
    service: str,
    name: str,
    kind: MessageKind,
    attributes: Mapping[str, Any],
    where: str = "the spec",
) -> Message:
    """A message of a class the spec declares for `service`, with `attributes` as given."""
    if service not in spec.services:
        known = ", ".join(sorted(spec.services)) or "none"
        raise RabbitformError(f"service {service!r} is not in {where} (services: {known})")
    declared = spec.services[service].commands if kind == "command" else spec.services[service].events
    if name not in declared:
        known = ", ".join(sorted(declared)) or "none"
        raise RabbitformError(f"{kind} {name!r} is not declared for service {service!r} in {where} (declared: {known})")
    cls = generic_class(name, kind, declared[name].version)
    return cls(**dict(attributes))

"""What the broker would refuse is refused at `publish`, before anything is sent, naming the
message (or header key) and the limit; library type errors name the argument and the type.
The bus here points at a port nothing listens on: a refusal never gets as far as connecting."""

from __future__ import annotations

import asyncio
import decimal
from datetime import datetime, timezone
from typing import Any

import pika
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus_runtime import Event, PublishError, RabbitMqConnector, RabbitMqEventBus, RabbitMqEventConsumer
from bus_runtime.aio import AsyncRabbitMqEventBus, AsyncRabbitMqEventConsumer
from bus_runtime.limits import DEFAULT_FRAME_MAX, MessageRefused, check_headers, headers_size

NOWHERE = "amqp://guest:guest@127.0.0.1:1/%2F"


class UserCreated(Event):
    user_id: str


@pytest.fixture
def bus() -> Any:
    bus = RabbitMqEventBus(RabbitMqConnector(NOWHERE), "acme", "users")
    yield bus
    assert not bus._publisher._io.started, "a refused publish must not even connect"
    bus.close()


@pytest.mark.parametrize("timeout", [0, -1, 0.0])
def test_a_timeout_of_zero_or_less_is_refused(bus: RabbitMqEventBus, timeout: float) -> None:
    with pytest.raises(ValueError, match=f"timeout must be more than 0 seconds, not {timeout!r}"):
        bus.publish(UserCreated(user_id="1"), timeout=timeout)


def test_a_bus_timeout_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout must be more than 0"):
        RabbitMqEventBus(RabbitMqConnector(NOWHERE), "acme", "users", timeout=0)


def test_publishing_a_dict_names_what_was_given(bus: RabbitMqEventBus) -> None:
    with pytest.raises(TypeError, match=r"messages must be a Event or a list of them, not dict"):
        bus.publish({"a": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"messages\[1\] is a str; RabbitMqEventBus publishes Events"):
        bus.publish([UserCreated(user_id="1"), "user.created"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"h": 1.5}, r"header h: a float \(1.5\)"),
        ({"h": object()}, "header h: a object"),
        ({"h": {1, 2}}, "header h: a set"),
        ({"outer": {"inner": [1, 2.5]}}, r"header outer.inner\[1\]: a float"),
        ({1: "x"}, "header key 1: a int; AMQP table keys are str"),
        ({"big": 2**70}, "header big: a int"),
    ],
)
def test_a_header_amqp_cannot_carry_is_refused_naming_its_key(
    bus: RabbitMqEventBus, headers: dict[Any, Any], named: str
) -> None:
    with pytest.raises(MessageRefused, match=named):
        bus.publish(UserCreated(user_id="1"), headers=headers)


def test_headers_over_frame_max_are_refused_before_anything_is_sent(bus: RabbitMqEventBus) -> None:
    with pytest.raises(MessageRefused, match=r"frame_max \(131,072 bytes\); keep headers under 129,024 bytes"):
        bus.publish([UserCreated(user_id=str(i)) for i in range(3)], headers={"h": "y" * 200_000})


def test_a_body_over_the_maximum_message_size_is_refused_naming_the_message() -> None:
    with RabbitMqEventBus(RabbitMqConnector(NOWHERE), "acme", "users", max_message_size=1_000) as bus:
        event = UserCreated(user_id="x" * 2_000)
        with pytest.raises(MessageRefused, match=rf"user.created {event.id}: body of 2,\d+ bytes is over .* \(1,000"):
            bus.publish(event)
        assert not bus._publisher._io.started


def test_type_errors_name_the_argument_and_the_type() -> None:
    with pytest.raises(TypeError, match=r"url must be a str .*, not int"):
        RabbitMqConnector(url=123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="heartbeat must be an int of seconds, not str"):
        RabbitMqConnector(NOWHERE, heartbeat="10")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="service must be a str, not int"):
        RabbitMqEventBus(RabbitMqConnector(NOWHERE), "acme", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="connector must be a RabbitMqConnector or None, not str"):
        RabbitMqEventConsumer(NOWHERE, "acme", "users")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prefetch must be an int, not float"):
        RabbitMqEventConsumer(None, "acme", "users", prefetch=1.5)  # type: ignore[arg-type]


def test_constructors_take_everything_after_the_service_by_keyword() -> None:
    connector = RabbitMqConnector(NOWHERE)
    with pytest.raises(TypeError, match="positional"):
        RabbitMqEventBus(connector, "acme", "users", "raise")  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional"):
        RabbitMqEventConsumer(connector, "acme", "users", 3)  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional"):
        RabbitMqConnector(NOWHERE, 10)  # type: ignore[misc]


def test_the_async_consumer_wraps_a_threaded_one_through_its_constructor() -> None:
    threaded = RabbitMqEventConsumer(RabbitMqConnector(NOWHERE), "acme", "users", max_retries=2)
    wrapped = AsyncRabbitMqEventConsumer.wrapping(threaded)
    assert wrapped._consumer is threaded and wrapped.service == "users"


def test_the_async_bus_after_close_says_it_is_closed() -> None:
    async def scenario() -> None:
        async with AsyncRabbitMqEventBus(RabbitMqConnector(NOWHERE), "acme", "users") as bus:
            pass
        with pytest.raises(PublishError, match="the publisher is closed"):
            await bus.publish(UserCreated(user_id="1"))

    asyncio.run(scenario())


amqp_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False),
    st.datetimes(min_value=datetime(1970, 1, 2), timezones=st.just(timezone.utc)).map(
        lambda d: d.replace(microsecond=0)
    ),
)
amqp_value = st.recursive(
    amqp_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=10), inner, max_size=3),
    max_leaves=8,
)
tables = st.dictionaries(st.text(min_size=1, max_size=30), amqp_value, max_size=5)


@given(tables)
def test_what_amqp_carries_passes_and_its_size_is_what_pika_encodes(headers: dict[str, Any]) -> None:
    check_headers(headers, DEFAULT_FRAME_MAX)
    encoded = b"".join(pika.BasicProperties(headers=headers).encode()) if headers else b""
    flags_and_shortstr = 2 + 0  # the property flags; no other property is set
    assert headers_size(headers) == len(encoded) - flags_and_shortstr or not headers


@given(tables, st.text(min_size=1, max_size=30), st.sampled_from([1.5, float("nan"), object(), frozenset(), (1,)]))
def test_one_value_amqp_cannot_carry_is_named_wherever_it_is(headers: dict[str, Any], key: str, bad: Any) -> None:
    with pytest.raises(MessageRefused, match="cannot be sent in AMQP"):
        check_headers({**headers, key: {"nested": [bad]}}, DEFAULT_FRAME_MAX)


def test_decimal_and_datetime_values_are_carried() -> None:
    check_headers({"d": decimal.Decimal("1.25"), "t": datetime(2026, 1, 1, tzinfo=timezone.utc)}, DEFAULT_FRAME_MAX)

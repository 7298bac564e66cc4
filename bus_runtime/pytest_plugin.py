"""pytest fixtures for testing handlers on the in-memory broker; registered as the `rabbitform`
plugin, so a service's tests get them once rabbitform is installed.

```python
def test_welcome_mail(memory_broker):          # spec from `rabbitform_spec` in the pytest ini
    memory_broker.event_bus("petisco").publish(UserCreated(user_id="42"))
    memory_broker.run_until_idle()
    assert memory_broker.calls("send_mail_handler") == 1
```
`make_memory_broker(spec_path)` builds one from any spec. Both start a consumer for the
handlers the spec names (import paths) with their retry policies, unless `consume=False`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from bus_runtime.aio.memory import AsyncInMemoryBroker
    from bus_runtime.memory import InMemoryBroker

SPEC_INI = "rabbitform_spec"
SPEC_ENV = "RABBITFORM_SPEC"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(SPEC_INI, "the spec the memory_broker fixture loads (relative to the rootdir)", default="")


MakeMemoryBroker = Callable[..., "InMemoryBroker"]


@pytest.fixture
def make_memory_broker(request: pytest.FixtureRequest) -> MakeMemoryBroker:
    """A factory: `make_memory_broker("specs/alice.yaml", service=None, consume=True, variables=None)`."""
    root = request.config.rootpath

    def make(
        spec: str | os.PathLike[str] | None = None,
        *,
        service: str | None = None,
        consume: bool = True,
        variables: Mapping[str, Any] | None = None,
    ) -> InMemoryBroker:
        from bus_runtime.memory import InMemoryBroker

        path = spec or request.config.getini(SPEC_INI) or os.environ.get(SPEC_ENV)
        if not path:
            pytest.fail(
                f"no spec for the in-memory broker: pass make_memory_broker('path/to/spec.yaml'), "
                f"or set `{SPEC_INI} = path/to/spec.yaml` in your pytest configuration, or {SPEC_ENV}",
                pytrace=False,
            )
        resolved = Path(path) if Path(path).is_absolute() else root / path
        broker = InMemoryBroker.from_spec(resolved, variables)
        if consume:
            broker.consumer_from_spec(service)
        return broker

    return make


@pytest.fixture
def memory_broker(make_memory_broker: MakeMemoryBroker) -> InMemoryBroker:
    """An in-memory broker from the configured spec, consuming with the spec's handlers."""
    return make_memory_broker()


@pytest.fixture
def make_async_memory_broker(make_memory_broker: MakeMemoryBroker) -> Callable[..., AsyncInMemoryBroker]:
    """`make_memory_broker`'s asyncio face: `await broker.event_bus(s).publish(...)`,
    `await broker.run_until_idle()`; `async def` handlers run on the test's loop (pytest-asyncio)."""
    from bus_runtime.aio.memory import AsyncInMemoryBroker

    def make(*args: Any, **kwargs: Any) -> AsyncInMemoryBroker:
        return AsyncInMemoryBroker(make_memory_broker(*args, **kwargs))

    return make


@pytest.fixture
def async_memory_broker(make_async_memory_broker: Callable[..., AsyncInMemoryBroker]) -> AsyncInMemoryBroker:
    """The configured spec's in-memory broker for asyncio tests, consuming with the spec's handlers."""
    return make_async_memory_broker()

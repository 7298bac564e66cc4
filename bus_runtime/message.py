"""Domain messages: `Event` and `Command`, declared as pydantic models.

```python
class UserCreated(Event):
    user_id: str
```
The class name gives the message name (`user.created`, via `topology.naming`), `version` is a
class-level setting; every instance carries an `id`, an `occurred_on` time (UTC), its
`attributes` (the declared fields) and a `meta` dictionary.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, PrivateAttr

from topology import naming
from topology.naming import MessageKind

# `type_message` on the wire: petisco names events "domain_event"; we read both spellings.
WireType = Literal["domain_event", "command", "message"]
_WIRE_TYPE: dict[str, WireType] = {"event": "domain_event", "command": "command"}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


_decoding = threading.local()


def _new_id() -> str:
    # A message read off the wire takes the sender's id: skip making one to throw away
    # (uuid4 reads os.urandom, a system call per message on the consumer's hot path).
    return "" if getattr(_decoding, "active", False) else str(uuid.uuid4())


@contextmanager
def decoding() -> Iterator[None]:
    """Within it, new messages get an empty id (the decoder sets the sender's)."""
    _decoding.active = True
    try:
        yield
    finally:
        _decoding.active = False


@lru_cache(maxsize=4096)
def _message_name(class_name: str) -> str:
    return naming.message_name(class_name)  # computed once per class: publishing is a hot path


@lru_cache(maxsize=4096)
def _layout_names(class_name: str, layout: naming.Layout) -> tuple[str, str]:
    """(routing name, wire name) of a class in a layout, computed once per class."""
    return naming.routing_name(class_name, layout), naming.wire_name(class_name, layout)


class Envelope(NamedTuple):
    id: str
    occurred_on: datetime
    meta: dict[str, Any]
    name: str
    version: int


class InfoId(BaseModel):
    """Identifiers that travel with a message in its `meta` (the seed's "trick")."""

    model_config = ConfigDict(extra="allow")

    user_id: str | None = None
    client_id: str | None = None
    correlation_id: str | None = None
    ip: str | None = None

    def as_meta(self) -> dict[str, Any]:
        return {key: value for key, value in self.model_dump().items() if value is not None}


class Message(BaseModel):
    """Base of events and commands. Subclasses declare their attributes as fields."""

    model_config = ConfigDict(extra="allow")

    message_kind: ClassVar[MessageKind] = "event"
    version: ClassVar[int] = 1

    _id: str = PrivateAttr(default_factory=lambda: _new_id())
    _occurred_on: datetime = PrivateAttr(default_factory=utc_now)
    _meta: dict[str, Any] = PrivateAttr(default_factory=dict)
    _name: str | None = PrivateAttr(default=None)
    _version: int | None = PrivateAttr(default=None)

    @classmethod
    def message_name(cls) -> str:
        """`UserCreated` -> `user.created`."""
        return _message_name(cls.__name__)

    @property
    def id(self) -> str:
        return self._id

    @property
    def occurred_on(self) -> datetime:
        return self._occurred_on

    @property
    def meta(self) -> dict[str, Any]:
        return self._meta

    @property
    def message_type(self) -> str:
        """The dotted message name; a generic message read off the wire keeps the sender's."""
        return self._name or self.message_name()

    @property
    def message_version(self) -> int:
        return self._version if self._version is not None else self.version

    @property
    def attributes(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def add_meta(self, meta: dict[str, Any]) -> Message:
        self._meta = {**self._meta, **meta}
        return self

    def add_info_id(self, info_id: InfoId) -> Message:
        """Attach identifiers under `meta["info_id"]` without making them domain fields."""
        return self.add_meta({"info_id": info_id.as_meta()})

    def info_id(self) -> InfoId | None:
        data = self._meta.get("info_id")
        return InfoId(**data) if isinstance(data, dict) else None

    def routing_key(self, organization: str, service: str, layout: naming.Layout = naming.DEFAULT_LAYOUT) -> str:
        name = self.layout_names(layout)[0]
        return naming.routing_key(organization, service, self.message_version, self.message_kind, name)

    def layout_names(self, layout: naming.Layout) -> tuple[str, str]:
        """(routing name, wire name) in `layout`: `user.created` twice in rabbitform's, `user_created`
        and `user.created` in petisco's. A message read off the wire keeps the sender's name."""
        if self._name:
            return naming.routing_name_of_wire_name(self._name, layout), self._name
        if layout == naming.DEFAULT_LAYOUT:
            name = self.message_name()
            return name, name
        return _layout_names(type(self).__name__, layout)

    @classmethod
    def wire_names(cls) -> frozenset[str]:
        """The `data.type` names this class accepts: rabbitform's and petisco's
        (`http.request.failed`, `h.t.t.p.request.failed`)."""
        return frozenset(_layout_names(cls.__name__, layout)[1] for layout in naming.LAYOUTS)

    def envelope(self) -> Envelope:
        """Id, time, meta, name and version in one read of the private state (encoding is a
        hot path; each private attribute read through pydantic costs a `__getattr__`)."""
        private = self.__pydantic_private__ or {}
        name = private.get("_name") or self.message_name()
        version = private.get("_version")
        return Envelope(
            private["_id"],
            private["_occurred_on"],
            private["_meta"],
            name,
            self.version if version is None else version,
        )

    @classmethod
    def wire_type(cls) -> WireType:
        return _WIRE_TYPE[cls.message_kind]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, {self.attributes!r})"


class Event(Message):
    """A domain event: something that happened, published to every subscriber."""

    message_kind: ClassVar[MessageKind] = "event"


class Command(Message):
    """A command: a request for one service to act, with `command` in its routing key."""

    message_kind: ClassVar[MessageKind] = "command"

"""Reading a plan saved by `plan --out`: recognise it, validate it (pydantic), or say why not.

A saved plan is applied exactly as written, so nothing in it is trusted: every field is
checked before any renderer or executor sees it. Pure: text in, `Plan` (or an error) out.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from topology.errors import RabbitformError
from topology.plan.model import FORMAT_VERSION, UPDATABLE_KINDS, Plan

PLAN_KEYS = ("format_version",)


class SavedPlanError(RabbitformError):
    """A file that is a saved plan but not a valid one."""


_REQUIRED = {
    "exchange": ("name", "type"),
    "queue": ("name",),
    "binding": ("source", "destination", "destination_type"),
    "policy": ("name", "pattern"),
    "user": ("name", "tags"),
    "permission": ("user", "configure", "write", "read"),
    "topic_permission": ("user",),
}
_NAME_KEY = {"permission": "user", "topic_permission": "user"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SavedChange(_Strict):
    action: Literal["create", "update", "delete", "replace"]
    kind: Literal["vhost", "policy", "exchange", "queue", "binding", "user", "permission", "topic_permission"]
    name: StrictStr
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: StrictStr | None = None
    messages: StrictInt | None = Field(default=None, ge=0)
    consumers: StrictInt | None = Field(default=None, ge=0)
    move: StrictBool = False
    moving: StrictBool = False

    @model_validator(mode="after")
    def _objects_match_the_action(self) -> SavedChange:
        """What the executor reads: `after` to create or update, `before` to delete, both to
        replace (a move finishing where the old queue is already gone has no `before`)."""
        if self.action == "update" and self.kind not in UPDATABLE_KINDS:
            raise ValueError("only policies, users and permissions are updated in place")
        if self.action in ("delete", "replace") and self.kind in ("user", "permission"):
            raise ValueError(f"a {self.kind} is created or updated, never deleted or replaced")
        if self.kind == "user" and self.after is not None:
            # apply sends the salted hash: the saved plan holds it (never the password)
            for key in ("password_hash", "hashing_algorithm"):
                if not isinstance(self.after.get(key), str) or not self.after[key]:
                    raise ValueError(f"a user needs a string {key!r}")
        if self.action in ("create", "update", "replace") and self.after is None:
            raise ValueError(f"a {self.action} needs `after`")
        needs_before = self.action in ("delete", "update") or (self.action == "replace" and not self.moving)
        if needs_before and self.before is None:
            raise ValueError(f"a {self.action} needs `before`")
        for side in (self.after, self.before):
            if side is None or self.kind == "vhost":
                continue
            required = _REQUIRED[self.kind]
            missing = [key for key in required if not isinstance(side.get(key), str)]
            if missing:
                raise ValueError(f"a {self.kind} needs a string {missing[0]!r}")
            name_key = _NAME_KEY.get(self.kind, "name")
            if self.kind != "binding" and side[name_key] != self.name:
                raise ValueError(f"names {side[name_key]!r}, not {self.name!r}")
            if self.kind == "topic_permission" and not _topic_list(side.get("exchanges")):
                raise ValueError("exchanges must be a list of {exchange, write, read} strings")
            if not isinstance(side.get("arguments") or {}, dict):
                raise ValueError("arguments must be an object")
            if not isinstance(side.get("definition") or {}, dict):
                raise ValueError("definition must be an object")
        return self


def _topic_list(value: Any) -> bool:
    keys = ("exchange", "write", "read")
    return isinstance(value, list) and all(
        isinstance(item, dict) and all(isinstance(item.get(key), str) for key in keys) for item in value
    )


class SavedScope(_Strict):
    organization: StrictStr = Field(min_length=1)
    services: list[StrictStr] = []
    store_queues: list[StrictStr] = []
    users: list[StrictStr] = []


class SavedSummary(_Strict):
    unchanged: StrictInt = Field(default=0, ge=0)


class SavedPlan(_Strict):
    format_version: Literal[1]
    vhost: StrictStr = Field(min_length=1)
    changes: list[SavedChange]
    scope: SavedScope | None = None
    summary: SavedSummary = SavedSummary()
    warnings: list[StrictStr] = []
    errors: list[StrictStr] = []
    fingerprint: StrictStr | None = None
    allow_data_loss: StrictBool = False
    move_messages: StrictBool = False
    source: StrictStr | None = None
    management_url: StrictStr | None = None


def looks_like_saved_plan(text: str, path: str) -> bool:
    """A JSON object with `format_version`, or a `.json` file whose top level is an object
    with `changes` (or is not even valid JSON): such a file is judged as a plan, never as a spec."""
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        return False
    if '"format_version"' in stripped:
        return True
    if not path.lower().endswith(".json"):
        return False
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return True  # a `.json` object cut short: most likely a saved plan, and said so
    return isinstance(data, dict) and "changes" in data


def parse_saved_plan(text: str, path: str) -> Plan:
    """The plan in `text` (read from `path`); raises `SavedPlanError` with one clear line."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SavedPlanError(
            f"{path}:{exc.lineno}: saved plan is not valid JSON ({exc.msg}); was it cut short? "
            "make it again with `rabbitform plan SPEC --out PLAN.json`"
        ) from None
    if not isinstance(data, dict):
        raise SavedPlanError(f"{path}: a saved plan is a JSON object")
    version = data.get("format_version")
    if "format_version" not in data:
        raise SavedPlanError(f"{path}: saved plan has no format_version; make it with `rabbitform plan --out`")
    if version != FORMAT_VERSION:
        raise SavedPlanError(
            f"{path}: saved plan format_version {version!r} is not supported (this rabbitform reads {FORMAT_VERSION})"
        )
    try:
        SavedPlan.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        raise SavedPlanError(f"{path}: invalid saved plan: {where}: {_message(error)}") from None
    return Plan.from_dict(data)


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "literal_error":
        return f"must be one of: {error.get('ctx', {}).get('expected', '')}".replace("'", "")
    return str(error["msg"]).lower()

"""The plan file (`plan --out`, `plan --format json`): one typed model, used to write it and to
read it back.

A saved plan is applied exactly as written, so nothing in it is trusted: every field is
checked (types, names, the owner that becomes the lock's owner, the summary's counts, the
broker URL) before any renderer or executor sees it. Writing goes through the same model, so
the two directions cannot drift apart. Pure: `Plan` in, text out; text in, `Plan` (or one
clear error) out. The format is documented in docs/plan-format.md.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from topology import naming
from topology.errors import RabbitformError
from topology.plan.model import FORMAT_VERSION, SECRET_KEYS, UPDATABLE_KINDS, Change, Plan
from topology.plan.scope import Scope
from topology.urls import UrlError, parse_url


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
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _pattern(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return AfterValidator(check)


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("holds a control character")
    return value


def _management_url(value: str) -> str:
    """The broker the plan was read from: an http(s) URL without credentials (it is shown and used)."""
    try:
        endpoint = parse_url(value, "management", source="management_url")
    except UrlError as exc:
        raise ValueError(str(exc)) from None
    if endpoint.username is not None or endpoint.password is not None or "@" in value:
        raise ValueError("must not hold credentials")
    return value


Name = Annotated[StrictStr, Field(min_length=1), AfterValidator(_printable)]
# The owner becomes the lock queue's name and the ownership record's key: the spec's rule.
Owner = Annotated[StrictStr, _pattern(naming.ORGANIZATION_PATTERN, "owner (a spec's name or organization)")]
Service = Annotated[StrictStr, _pattern(naming.SERVICE_PATTERN, "service name")]
Count = Annotated[StrictInt, Field(ge=0)]


class _Model(BaseModel):
    # Unknown keys are ignored (newer optional fields, docs/plan-format.md); known ones are strict.
    model_config = ConfigDict(extra="ignore", frozen=True)


class SavedChange(_Model):
    action: Literal["create", "update", "delete", "replace"]
    kind: Literal["vhost", "policy", "exchange", "queue", "binding", "user", "permission", "topic_permission"]
    name: Name
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: StrictStr | None = None
    messages: Count | None = None
    consumers: Count | None = None
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
        if (self.move or self.moving) and (self.kind, self.action) != ("queue", "replace"):
            raise ValueError("only a queue replace moves messages")
        if self.kind == "user" and self.after is not None:
            # apply sends the salted hash: the saved plan holds it (never the password)
            for key in SECRET_KEYS:
                if not isinstance(self.after.get(key), str) or not self.after[key]:
                    raise ValueError(f"a user needs a string {key!r}")
        if self.action in ("create", "update", "replace") and self.after is None:
            raise ValueError(f"a {self.action} needs `after`")
        needs_before = self.action in ("delete", "update") or (self.action == "replace" and not self.moving)
        if needs_before and self.before is None:
            raise ValueError(f"a {self.action} needs `before`")
        for side in (self.after, self.before):
            if side is not None:
                self._check_object(side)
        return self

    def _check_object(self, side: dict[str, Any]) -> None:
        if self.kind == "vhost":
            if side.get("name") != self.name:
                raise ValueError(f"names {side.get('name')!r}, not {self.name!r}")
            return
        missing = [key for key in _REQUIRED[self.kind] if not isinstance(side.get(key), str)]
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

    @classmethod
    def of(cls, change: Change) -> SavedChange:
        return cls(
            action=change.action,
            kind=change.kind,
            name=change.name,
            before=change.before,
            after=change.after,
            reason=change.reason,
            messages=change.messages,
            consumers=change.consumers,
            move=change.move,
            moving=change.moving,
        )

    def to_change(self) -> Change:
        return Change(
            action=self.action,
            kind=self.kind,
            name=self.name,
            before=self.before,
            after=self.after,
            reason=self.reason,
            messages=self.messages,
            consumers=self.consumers,
            move=self.move,
            moving=self.moving,
        )

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
        }
        for key in ("messages", "consumers"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        for key in ("move", "moving"):
            if getattr(self, key):
                data[key] = True
        return data


def _topic_list(value: Any) -> bool:
    keys = ("exchange", "write", "read")
    return isinstance(value, list) and all(
        isinstance(item, dict) and all(isinstance(item.get(key), str) for key in keys) for item in value
    )


class SavedScope(_Model):
    organization: Owner
    services: list[Service] = []
    store_queues: list[Name] = []
    users: list[Name] = []
    store_exchanges: list[Name] = []

    @classmethod
    def of(cls, scope: Scope) -> SavedScope:
        return cls(
            organization=scope.organization,
            services=list(scope.services),
            store_queues=list(scope.store_queues),
            users=list(scope.users),
            store_exchanges=list(scope.store_exchanges),
        )

    def to_scope(self) -> Scope:
        return Scope(
            organization=self.organization,
            services=tuple(self.services),
            store_queues=tuple(self.store_queues),
            users=tuple(self.users),
            store_exchanges=tuple(self.store_exchanges),
        )

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "organization": self.organization,
            "services": self.services,
            "store_queues": self.store_queues,
        }
        if self.users:  # only when present, so plans without `access:` keep their form
            data["users"] = self.users
        if self.store_exchanges:
            data["store_exchanges"] = self.store_exchanges
        return data


class SavedSummary(_Model):
    add: Count
    update: Count = 0  # written only when not 0: plans without an update keep their old form
    replace: Count
    destroy: Count
    unchanged: Count

    def to_data(self) -> dict[str, int]:
        data = {"add": self.add, "replace": self.replace, "destroy": self.destroy, "unchanged": self.unchanged}
        if self.update:
            data["update"] = self.update
        return data


class SavedPlan(_Model):
    format_version: Literal[1]
    vhost: Name
    changes: list[SavedChange]
    summary: SavedSummary
    warnings: list[StrictStr]
    errors: list[StrictStr]
    allow_data_loss: StrictBool
    move_messages: StrictBool = False
    scope: SavedScope | None = None
    fingerprint: Annotated[StrictStr, Field(pattern=r"^sha256:[0-9a-f]{64}$")] | None = None
    source: StrictStr | None = None
    management_url: Annotated[StrictStr, AfterValidator(_management_url)] | None = None
    owner: Owner | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SavedPlan:
        """The summary counts the changes; a vhost change is the plan's vhost."""
        counted = {action: sum(1 for c in self.changes if c.action == action) for action in _SUMMARY}
        for action, key in _SUMMARY.items():
            if getattr(self.summary, key) != counted[action]:
                raise ValueError(f"summary.{key} is {getattr(self.summary, key)} but the plan has {counted[action]}")
        for change in self.changes:
            if change.kind == "vhost" and change.name != self.vhost:
                raise ValueError(f"changes vhost {change.name!r}, not the plan's {self.vhost!r}")
        return self

    @classmethod
    def of(cls, plan: Plan) -> SavedPlan:
        summary = plan.summary
        return cls(
            format_version=FORMAT_VERSION,
            vhost=plan.vhost,
            changes=[SavedChange.of(change) for change in plan.changes],
            summary=SavedSummary(
                add=summary.add,
                update=summary.update,
                replace=summary.replace,
                destroy=summary.destroy,
                unchanged=summary.unchanged,
            ),
            warnings=list(plan.warnings),
            errors=list(plan.errors),
            allow_data_loss=plan.allow_data_loss,
            move_messages=plan.move_messages,
            scope=SavedScope.of(plan.scope) if plan.scope is not None else None,
            fingerprint=plan.fingerprint,
            source=plan.source,
            management_url=plan.management_url,
            owner=plan.owner,
        )

    def to_plan(self) -> Plan:
        return Plan(
            vhost=self.vhost,
            changes=tuple(change.to_change() for change in self.changes),
            scope=self.scope.to_scope() if self.scope is not None else None,
            unchanged=self.summary.unchanged,
            warnings=tuple(self.warnings),
            errors=tuple(self.errors),
            fingerprint=self.fingerprint,
            allow_data_loss=self.allow_data_loss,
            move_messages=self.move_messages,
            source=self.source,
            management_url=self.management_url,
            owner=self.owner,
        )

    def to_data(self) -> dict[str, Any]:
        """The JSON object; optional fields only when set, so older readers see the same form."""
        data: dict[str, Any] = {
            "format_version": self.format_version,
            "vhost": self.vhost,
            "changes": [change.to_data() for change in self.changes],
            "summary": self.summary.to_data(),
            "warnings": self.warnings,
            "errors": self.errors,
            "allow_data_loss": self.allow_data_loss,
        }
        if self.move_messages:
            data["move_messages"] = True
        if self.scope is not None:
            data["scope"] = self.scope.to_data()
        for key in ("fingerprint", "source", "management_url", "owner"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


_SUMMARY = {"create": "add", "update": "update", "replace": "replace", "delete": "destroy"}


def plan_data(plan: Plan, redacted: bool = False) -> dict[str, Any]:
    """The plan as its JSON object, checked by the model it is read back with; `redacted` is the
    displayed form (a user's password as `(set)`/`(changed)`, never the salted hash), which
    cannot be applied."""
    data = SavedPlan.of(plan).to_data()
    if redacted:
        for change, shown in zip(plan.changes, data["changes"], strict=True):
            shown["before"] = _without_secrets(change.before, None)
            shown["after"] = _without_secrets(change.after, change.password_shown)
    return data


def plan_json(plan: Plan, redacted: bool = False) -> str:
    """The plan file's text: sorted keys and a final newline, so equal plans are byte-identical."""
    return json.dumps(plan_data(plan, redacted), indent=2, sort_keys=True) + "\n"


def _without_secrets(definition: dict[str, Any] | None, password: str | None) -> dict[str, Any] | None:
    if definition is None:
        return None
    shown = {key: value for key, value in definition.items() if key not in SECRET_KEYS}
    if password is not None:
        shown["password"] = password
    return shown


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
    except RecursionError:
        raise SavedPlanError(f"{path}: saved plan is nested too deeply to be one") from None
    if not isinstance(data, dict):
        raise SavedPlanError(f"{path}: a saved plan is a JSON object")
    version = data.get("format_version")
    if "format_version" not in data:
        raise SavedPlanError(f"{path}: saved plan has no format_version; make it with `rabbitform plan --out`")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise SavedPlanError(
            f"{path}: saved plan format_version {version!r} is not supported (this rabbitform reads {FORMAT_VERSION})"
        )
    try:
        saved = SavedPlan.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        raise SavedPlanError(f"{path}: invalid saved plan: {where}: {_message(error)}") from None
    return saved.to_plan()


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "literal_error":
        return f"must be one of: {error.get('ctx', {}).get('expected', '')}".replace("'", "")
    return str(error["msg"]).lower()

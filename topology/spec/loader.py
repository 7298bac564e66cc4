"""Read a spec file: render it with jinja2, parse the YAML, validate it.

Every failure becomes one `SpecError` that names the file, the line and the field path, so
the CLI can print one line and exit 1 instead of a traceback.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from topology.compile.limits import limit_problems
from topology.errors import RabbitformError
from topology.spec.model import Spec

Path_ = tuple[str | int, ...]


@dataclass
class SpecError(RabbitformError):
    """A problem in a spec, located as precisely as we can."""

    file: str
    message: str
    line: int | None = None
    field: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


def load_spec(path: str | os.PathLike[str], variables: Mapping[str, Any] | None = None) -> Spec:
    """Load and validate the spec at `path`; raises `SpecError`."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(name, f"cannot read the spec: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(name, f"the spec is not UTF-8 text (byte {exc.start})") from None
    return parse_spec(text, name, variables)


def parse_spec(text: str, file: str = "<spec>", variables: Mapping[str, Any] | None = None) -> Spec:
    rendered = render_template(text, file, variables or {})
    document, lines = _parse_yaml(rendered, file)
    if document is None:
        raise SpecError(file, "the spec is empty", 1)
    if not isinstance(document, dict):
        raise SpecError(file, "the spec must be a mapping (organization, services, ...)", 1)
    try:
        spec = Spec.model_validate(_nulls_as_empty(document))
    except ValidationError as exc:
        raise _first_error(exc, file, lines) from None
    spec = _with_env_passwords(spec, file, lines)
    for path, message in [*spec.layout_problems(), *limit_problems(spec), *spec.access_problems()]:
        raise SpecError(file, message, _line_for(path, lines), ".".join(path))
    return spec


def _with_env_passwords(spec: Spec, file: str, lines: Any) -> Spec:
    """Each `password_env: NAME` read from the environment, verbatim; an unset variable is an error."""
    resolved = {}
    for user, entry in spec.access.items():
        if entry.password_env is None:
            continue
        path = ("access", user, "password_env")
        value = os.environ.get(entry.password_env)
        if entry.password is not None or value is None:
            message = (
                "give password or password_env, not both"
                if entry.password is not None
                else f"environment variable {entry.password_env} is not set"
            )
            raise SpecError(file, message, _line_for(path, lines), ".".join(path))
        resolved[user] = entry.model_copy(update={"password": SecretStr(value)})
    return spec.model_copy(update={"access": {**spec.access, **resolved}}) if resolved else spec


def load_variables(pairs: list[str], files: list[str]) -> dict[str, Any]:
    """`--var-file` files first, then `--var KEY=VALUE` pairs (which win)."""
    variables: dict[str, Any] = {}
    for file in files:
        try:
            data = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SpecError(file, f"cannot read the variables file: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise SpecError(file, f"the variables file is not UTF-8 text (byte {exc.start})") from None
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, file) from None
        if data is None:
            continue
        if not isinstance(data, dict):
            raise SpecError(file, "a variables file must be a mapping of names to values")
        variables.update(data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError("--var", f"expected KEY=VALUE, got {pair!r}")
        variables[key] = value
    return variables


class EnvironmentVariables(dict[str, str]):
    """`env` in a template: a missing key is "environment variable X is not set"."""


_TEMPLATE_MARKERS = ("{{", "{%", "{#")  # jinja2's default block, variable and comment starts


def render_template(text: str, file: str, variables: Mapping[str, Any]) -> str:
    """Render the spec as a jinja2 template; undefined variables are errors, not blanks, and
    any failure while rendering is one line naming the file and the template line.

    A spec without jinja2's delimiters renders to itself (newlines aside, which YAML reads
    alike), so jinja2 is imported only for a spec that uses it: every command starts faster."""
    if not any(marker in text for marker in _TEMPLATE_MARKERS):
        return text
    import jinja2

    class _Undefined(jinja2.StrictUndefined):
        """StrictUndefined whose message names an unset environment variable as such."""

        @property
        def _undefined_message(self) -> str:
            if isinstance(self._undefined_obj, EnvironmentVariables):
                return f"environment variable {self._undefined_name} is not set"
            return str(super()._undefined_message)

    env = jinja2.Environment(undefined=_Undefined, keep_trailing_newline=True, autoescape=False)
    try:
        template = env.from_string(text)
        template.name = file
        return template.render({"env": EnvironmentVariables(os.environ), **variables})
    except jinja2.TemplateSyntaxError as exc:
        raise SpecError(file, f"template syntax error: {exc.message}", exc.lineno) from None
    except jinja2.UndefinedError as exc:
        line = _template_line(exc)
        message = exc.message or "undefined variable"
        if message.startswith("environment variable"):
            hint = "set it, or give a default: {{ env.NAME | default('...') }}"
        else:
            hint = "pass it with --var KEY=VALUE or --var-file"
        raise SpecError(file, f"{message} ({hint})", line) from None
    except Exception as exc:  # a filter or an operator failing at render time (e.g. "5" // 3)
        line = _template_line(exc)
        hint = "; --var values are strings: convert with | int" if isinstance(exc, TypeError) else ""
        raise SpecError(file, f"template error: {type(exc).__name__}: {exc}{hint}", line) from None


def _template_line(exc: BaseException) -> int | None:
    """jinja2 rewrites tracebacks so that template frames carry template line numbers."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
    return frames[-1].lineno if frames else None


class _LineLoader(yaml.SafeLoader):
    """The safe loader; duplicate keys and lines are found on the composed node tree."""


# libyaml's parser composes the same node tree, lines included, about 10x faster (a spec of
# 300 subscribers: 0.2 s to 0.02 s); a document it refuses is parsed again by the pure-Python
# loader, whose error messages the spec errors are written for.
_FastLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", _LineLoader)


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_FastLoader)
    except yaml.YAMLError:
        return yaml.compose(text, Loader=_LineLoader)


_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class _DuplicateKey(Exception):
    path: Path_
    line: int
    first_line: int


def _parse_yaml(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML into plain data, with the line of every field path.

    Duplicate keys are refused before construction (PyYAML would silently keep the last one).
    """
    try:
        node = _compose(text)
        if node is None:
            return None, {}
        lines: dict[Path_, int] = {}
        _record_lines(node, (), lines, frozenset())
        loader = _LineLoader(text)
        try:
            document = loader.construct_document(node)
        finally:
            loader.dispose()
    except _DuplicateKey as dup:
        field = ".".join(str(part) for part in dup.path)
        raise SpecError(file, f"duplicate key (first defined on line {dup.first_line})", dup.line, field) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, file) from None
    return document, lines


def _yaml_error(exc: yaml.YAMLError, file: str) -> SpecError:
    """One line for a YAML error; PyYAML's own text spans several lines with a caret."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return SpecError(file, f"invalid YAML: {exc}")
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or str(exc)
    if exc.context and problem.startswith("but "):  # "expected a single document in the stream but found ..."
        problem = f"{exc.context} {problem}"
    return SpecError(file, f"invalid YAML: {problem}", mark.line + 1 if mark else None)


def _record_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int], ancestors: frozenset[int]) -> None:
    """Record the line of every path below `node`; raise `_DuplicateKey` on a repeated key."""
    if id(node) in ancestors:  # a recursive anchor: its lines are already recorded
        return
    ancestors = ancestors | {id(node)}
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                identity = (key_node.tag, key_node.value)
                if identity in seen:
                    raise _DuplicateKey((*path, str(key_node.value)), line, seen[identity])
                seen[identity] = line
            child = (*path, str(key_node.value))
            lines[child] = line
            _record_lines(value_node, child, lines, ancestors)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, index), lines, ancestors)


# Mappings whose entries may be written as a bare key (`persist_user_handler:`), meaning "{}".
_EMPTY_ALLOWED = {"subscribers", "events", "commands", "services"}


def _nulls_as_empty(document: Any, parent: str | None = None) -> Any:
    if isinstance(document, dict):
        return {
            key: (
                {}
                if value is None and (parent in _EMPTY_ALLOWED or key in _EMPTY_ALLOWED)
                else _nulls_as_empty(value, str(key))
            )
            for key, value in document.items()
        }
    return document


def _first_error(exc: ValidationError, file: str, lines: dict[Path_, int]) -> SpecError:
    error = exc.errors(include_url=False)[0]
    loc = tuple(str(part) for part in error["loc"] if part != "[key]")
    line = _line_for(loc, lines)
    return SpecError(file, _message(error, loc), line, ".".join(str(p) for p in loc))


def _line_for(loc: tuple[str, ...], lines: dict[Path_, int]) -> int | None:
    """The line of the deepest part of `loc` that exists in the document."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _message(error: Any, loc: tuple[str, ...]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "is required"
    if "dead_letter_on" in loc:
        return "must be a list of error class names, each like 'PaymentDeclined' or 'billing.errors:InvalidCard'"
    if "delays_ms" in loc:
        return "must be a list of one or more integers >= 1 (milliseconds)"
    if kind == "greater_than" and isinstance(ctx.get("gt"), float):
        return f"must be a number > {ctx['gt']}"
    if kind == "less_than_equal":
        return f"must be a number <= {ctx['le']}"
    if kind in {"float_type", "float_parsing"}:
        return "must be a number"
    if kind in {"int_type", "int_parsing", "int_from_float", "greater_than_equal", "greater_than"}:
        bound = _int_bound(loc)
        return f"must be an integer >= {bound}" if bound is not None else "must be an integer"
    if kind in {"string_type", "string_too_short"}:
        return "must be a non-empty string"
    if kind == "string_pattern_mismatch":
        return "must be an import path like 'package.module:function'"
    if kind == "literal_error":
        return f"must be one of: {ctx.get('expected', '')}".replace("'", "")
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return "must be a mapping"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"])


def _model_at(loc: tuple[str, ...]) -> type[BaseModel] | None:
    """Walk the spec models along a field path (dict keys skipped) to the model found there."""
    model: Any = Spec
    index = 0
    while index < len(loc):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(loc[index])
        if field is None:
            return None
        model, is_dict = _unwrap(field.annotation)
        index += 2 if is_dict else 1
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """`dict[K, M]` -> (M, True); `M | None` -> (M, False)."""
    import typing

    origin = typing.get_origin(annotation)
    if origin is dict:
        return typing.get_args(annotation)[1], True
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, False
    return annotation, False


def _allowed_keys(loc: tuple[str, ...]) -> list[str]:
    model = _model_at(loc)
    return sorted(model.model_fields) if model else []


def _int_bound(loc: tuple[str, ...]) -> int | None:
    model = _model_at(loc[:-1])
    if model is None or loc[-1] not in model.model_fields:
        return None
    for item in model.model_fields[loc[-1]].metadata:
        bound = getattr(item, "ge", None)
        if bound is not None:
            return int(bound)
    return None

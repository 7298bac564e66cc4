"""Write an imported spec as YAML with the comments a reader needs (what a broker cannot tell)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from topology.adopt.importer import Imported

INDENT = "  "


def render_spec(imported: Imported, source: str) -> str:
    """The spec text: a header saying where it came from and what is missing, then the keys."""
    doc = imported.document
    lines = [
        f"# Imported by `rabbitform import` from {source} (organization {doc['organization']}, "
        f"layout {doc.get('layout', 'rabbitform')}).",
        "# A broker does not store handler import paths: add `handler: package.module:function` to each",
        "# subscriber (and to the store) that `rabbitform consume` should run. Nor does it store",
        "# max_retries (the runtime counts retries): defaults.retry.max_retries is rabbitform's default.",
    ]
    if imported.warnings:
        lines.append(
            f"# {len(imported.warnings)} object(s) did not fit the layout: `rabbitform import` listed them on stderr."
        )
    lines.append(f"organization: {_scalar(doc['organization'])}")
    lines.append(f"vhost: {_scalar(doc['vhost'])}")
    if "layout" in doc:
        lines.append(f"layout: {doc['layout']}")
    if "queue_settings" in doc:
        lines.append(f"queue_settings: {doc['queue_settings']}")
    lines.append("defaults:")
    lines.append(f"{INDENT}queue_type: {doc['defaults']['queue_type']}")
    if "main_queue_ttl_ms" in doc["defaults"]:
        lines.append(f"{INDENT}main_queue_ttl_ms: {_flow(doc['defaults']['main_queue_ttl_ms'])}")
    lines.append(f"{INDENT}retry: {_flow(doc['defaults']['retry'])}")
    lines.append("services:" if doc["services"] else "services: {}")
    for service, body in doc["services"].items():
        lines.extend(_service(service, body, imported))
    if "store" in doc:
        lines.append("store:")
        lines.extend(f"{INDENT}{key}: {_flow(value)}" for key, value in doc["store"].items())
    return "\n".join(lines) + "\n"


def _service(name: str, body: dict[str, Any], imported: Imported) -> list[str]:
    kept = [k for k in imported.kept_names if k.service == name]
    if not body and not kept:
        return [f"{INDENT}{_scalar(name)}: {{}}"]
    lines = [f"{INDENT}{_scalar(name)}:"]
    for kind in ("events", "commands"):
        messages = body.get(kind, {})
        kept_here = [k for k in kept if f"{k.kind}s" == kind]
        if not messages and not kept_here:
            continue
        lines.append(f"{INDENT * 2}{kind}:")
        for class_name, message in messages.items():
            lines.append(f"{INDENT * 3}{_scalar(class_name)}:")
            lines.append(f"{INDENT * 4}version: {message['version']}")
            lines.append(f"{INDENT * 4}subscribers:")
            for subscriber, entry in message["subscribers"].items():
                lines.append(f"{INDENT * 5}{_scalar(subscriber)}: {_flow(entry)}")
        for name_kept in kept_here:
            lines.append(
                f"{INDENT * 3}# {name_kept.broker_name} (v{name_kept.version}): the broker's name, kept as it is: "
                "no class name gives it back; not imported"
            )
    return lines


def _flow(value: Any) -> str:
    """A small mapping in YAML flow style: `{delay_ms: 1000}`."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    return _scalar(value)


def _scalar(value: Any) -> str:
    """Plain when YAML reads it back as the same string (`on`, `null`, `1` and `/` are quoted)."""
    if isinstance(value, str) and value.replace("_", "").replace("-", "").isalnum():
        try:
            if yaml.safe_load(value) == value:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value)

"""`rabbitform doctor`'s output: text for people, JSON for tools (pure)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from topology.doctor.checks import Finding


def render_text(findings: Sequence[Finding], vhosts: Sequence[str], version: str, url: str) -> str:
    lines = [f"RabbitMQ {version} at {url}: checked for 4.x, vhost(s) {', '.join(map(repr, vhosts))}", ""]
    if not findings:
        lines.append("No findings: nothing here that RabbitMQ 4.x refuses, drops or changes.")
        return "\n".join(lines) + "\n"
    for vhost in vhosts:
        mine = [f for f in findings if f.vhost == vhost]
        if not mine:
            continue
        lines.append(f"vhost {vhost!r}:")
        for finding in mine:
            lines.append(f"  [{finding.check}] {finding.kind} {finding.name}")
            lines.append(f"      problem: {finding.problem}")
            lines.append(f"      fix:     {finding.fix}")
        lines.append("")
    noun = "finding" if len(findings) == 1 else "findings"
    lines.append(f"Doctor: {len(findings)} {noun} for RabbitMQ 4.x.")
    return "\n".join(lines) + "\n"


def render_json(findings: Sequence[Finding], vhosts: Sequence[str], version: str, url: str) -> str:
    data = {
        "broker": {"version": version, "management_url": url},
        "vhosts": list(vhosts),
        "findings": [finding.to_dict() for finding in findings],
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"

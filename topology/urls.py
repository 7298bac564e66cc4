"""The one place that parses and validates broker URLs: management (http/https) and AMQP (amqp/amqps).

Every URL rabbitform reads (flags, environment variables, library arguments) goes through
here, so that a malformed one is a `UrlError` before any I/O, and no message ever shows a
password: `mask()` replaces it with `***` even when the URL is too broken to parse.

Several URLs may be given comma-separated (the nodes of a cluster); they must share their
credentials and, for AMQP, their vhost.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from topology.errors import RabbitformError

Kind = Literal["management", "amqp"]
SCHEMES: dict[Kind, tuple[str, ...]] = {"management": ("http", "https"), "amqp": ("amqp", "amqps")}
MANAGEMENT_URL_ENV = "RABBITMQ_MANAGEMENT_URL"  # the management API's URL(s) when no flag names them
DEFAULT_PORTS = {"http": 15672, "https": 15671, "amqp": 5672, "amqps": 5671}
ENCODE_HINT = "percent-encode '#', '/', '@' in a user or password as %23, %2F, %40"
_HOST = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$")
# RFC 3986 userinfo: unreserved, sub-delims, ':' and %XX escapes.
_USERINFO = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*$")


class UrlError(RabbitformError, ValueError):
    """A malformed URL (a ValueError too, as the library raised before)."""


@dataclass(frozen=True)
class Endpoint:
    """One parsed URL. `path` is the management path prefix (no trailing `/`, no `/api`) or,
    for AMQP, empty; `vhost` is the AMQP vhost the URL names (None when it names none)."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    path: str = ""
    vhost: str | None = None
    query: str = ""

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def display(self) -> str:
        """scheme://host:port/prefix: no credentials, safe to print and to save."""
        return f"{self.scheme}://{self.netloc}{self.path}"

    @property
    def safe_url(self) -> str:
        """The URL with its user but never its password (`***` stands for it)."""
        user = ""
        if self.username is not None:
            user = quote(self.username, safe="") + (":***" if self.password is not None else "") + "@"
        vhost = "" if self.vhost is None else "/" + quote(self.vhost, safe="")
        return f"{self.scheme}://{user}{self.netloc}{self.path}{vhost}"

    @property
    def uses_tls(self) -> bool:
        return self.scheme in ("https", "amqps")

    def url(self, vhost: str | None = None) -> str:
        """The full URL (with credentials: for the client library only, never to show).
        AMQP: on `vhost` when given, else the URL's own vhost."""
        user = ""
        if self.username is not None:
            user = quote(self.username, safe="")
            if self.password is not None:
                user += ":" + quote(self.password, safe="")
            user += "@"
        chosen = vhost if vhost is not None else self.vhost
        tail = "" if chosen is None else "/" + quote(chosen, safe="")
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{user}{self.netloc}{self.path}{tail}{query}"


def mask(url: str) -> str:
    """`url` with whatever may be a password replaced by `***`, however malformed the URL.

    Everything between the user's `:` and the LAST `@` is masked: an unencoded `/`, `#` or
    `@` in a password cannot leak a piece of it (at worst a little more is masked).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    at = rest.rfind("@")
    if at < 0:
        return url
    user, colon, _secret = rest[:at].partition(":")
    shown = f"{user}:***" if colon else user
    return f"{scheme}{sep}{shown}@{rest[at + 1 :]}"


_URL_WITH_CREDENTIALS = re.compile(r"\b([a-z][a-z0-9+.-]*://)([^\s'\"]*)@([^\s'\"@]*)", re.IGNORECASE)


def mask_text(text: str, secrets: Sequence[str] = ()) -> str:
    """Any text (an exception's message) with the passwords of URLs in it, and `secrets`, masked."""

    def masked(match: re.Match[str]) -> str:
        user, colon, _secret = match.group(2).partition(":")
        return f"{match.group(1)}{user}{':***' if colon else ''}@{match.group(3)}"

    text = _URL_WITH_CREDENTIALS.sub(masked, text)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def secret_parts(url: str) -> list[str]:
    """The pieces of a URL's password that a parser splitting it wrongly could print:
    the whole raw password, decoded, and its pieces between reserved characters."""
    rest = url.partition("://")[2] or url
    at = rest.rfind("@")
    if at < 0:
        return []
    _user, colon, raw = rest[:at].partition(":")
    if not colon or not raw:
        return []
    parts = {raw, unquote(raw)}
    parts.update(piece for piece in re.split(r"[/#?@:]", raw) if len(piece) >= 3)
    return sorted(parts, key=len, reverse=True)


def parse_url(text: str, kind: Kind, source: str = "the URL") -> Endpoint:
    """One URL of `kind`; raises `UrlError` (password masked, with a hint) when malformed.

    `source` names where it came from (`--management-url`, `RABBITMQ_URL`, ...).
    """
    raw = text.strip()
    shown = mask(raw)

    def fail(reason: str, hint: str = "") -> UrlError:
        return UrlError(f"{source}: {reason} in {shown!r}" + (f"; {hint}" if hint else ""))

    schemes = SCHEMES[kind]
    example = "http://user:password@host:15672" if kind == "management" else "amqp://user:password@host:5672/vhost"
    if not raw:
        raise fail("empty URL", f"expected a URL like {example}")
    if "://" not in raw:
        if kind == "management" and not re.search(r"\s", raw) and "@" not in raw:
            raw = "http://" + raw  # `host:15672` is accepted for the management API
        else:
            raise fail("not a URL", f"expected a URL like {example}")
    scheme_text = raw.split("://", 1)[0]
    if scheme_text.lower() not in schemes:
        other = "management (http/https)" if kind == "amqp" else "AMQP (amqp/amqps)"
        mixed = scheme_text.lower() in SCHEMES["amqp" if kind == "management" else "management"]
        raise fail(
            f"scheme {scheme_text!r} is not {' or '.join(schemes)}",
            f"this is a {other} URL; expected a URL like {example}" if mixed else f"expected a URL like {example}",
        )
    rest = raw.split("://", 1)[1]
    authority_end = re.search(r"[/?#]", rest)
    authority = rest[: authority_end.start()] if authority_end else rest
    after = rest[authority_end.start() :] if authority_end else ""
    if "@" in after and "@" not in authority:
        raise fail("an unencoded reserved character in the user, password or vhost", ENCODE_HINT)
    if "#" in after:
        raise fail("unexpected '#'", ENCODE_HINT)
    userinfo, at, hostport = authority.rpartition("@")
    if at and "@" in userinfo:
        raise fail("more than one '@'", ENCODE_HINT)
    if at and not _USERINFO.match(userinfo):
        raise fail("the user or password holds a character that must be percent-encoded", ENCODE_HINT)
    if hostport.startswith("[") != ("]" in hostport):
        raise fail("an unclosed '[' or a stray ']' in the host", "write an IPv6 address in brackets, e.g. [::1]:5672")
    try:
        parts = urlsplit(f"{scheme_text.lower()}://{authority}{after}")
    except ValueError as exc:  # urlsplit's own checks (e.g. "Invalid IPv6 URL")
        raise fail(f"the host is malformed ({exc})", _maybe_hint(at)) from None
    try:
        port_value = parts.port
    except ValueError:
        port_text = hostport.rsplit("]", 1)[-1].partition(":")[2]
        raise fail(f"port {port_text!r} is not a number from 1 to 65535", _maybe_hint(at)) from None
    host = parts.hostname or ""
    if not host:
        raise fail("no host")
    if not _valid_host(host, hostport):
        raise fail(f"host {host!r} is not a valid host name or IP address", _maybe_hint(at))
    if port_value == 0 or (hostport.rsplit("]", 1)[-1].endswith(":") and port_value is None):
        raise fail("the port must be a number from 1 to 65535")
    scheme = parts.scheme
    port = port_value or DEFAULT_PORTS[scheme]
    username = unquote(parts.username) if parts.username is not None and at else None
    password = unquote(parts.password) if parts.password is not None and at else None
    if kind == "management":
        if parts.query:
            raise fail("a management URL takes no query")
        return Endpoint(scheme, host, port, username, password, path=management_prefix(parts.path))
    if parts.path.count("/") > 1:
        raise fail("the vhost holds an unencoded '/'", "write vhost '/' as %2F and 'a/b' as a%2Fb")
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else None
    return Endpoint(scheme, host, port, username, password, vhost=vhost, query=parts.query)


# A comma starts a new URL only when a scheme follows: a ',' in a password stays in it.
_LIST_SEPARATOR = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def parse_urls(text: str, kind: Kind, source: str = "the URL") -> list[Endpoint]:
    """One or more comma-separated URLs; they must share credentials (and, for AMQP, vhost)."""
    pieces = [piece.strip() for piece in _LIST_SEPARATOR.split(text)]
    endpoints = [parse_url(piece, kind, source) for piece in pieces]
    first = endpoints[0]
    for other in endpoints[1:]:
        if (other.username, other.password) != (first.username, first.password):
            raise UrlError(
                f"{source}: the URLs {mask(text)!r} do not share one user and password; "
                "give every node the same credentials"
            )
        if other.vhost != first.vhost:
            raise UrlError(f"{source}: the URLs {mask(text)!r} name different vhosts; give every node the same vhost")
    return endpoints


def management_prefix(path: str) -> str:
    """The path prefix of a management URL (RabbitMQ's `management.path_prefix`), without a
    trailing `/` or `/api`: `http://h/rabbit/api/` and `http://h/rabbit` are both `/rabbit`."""
    prefix = path.rstrip("/")
    if prefix.endswith("/api"):
        prefix = prefix[: -len("/api")]
    return prefix


def _maybe_hint(has_userinfo: str) -> str:
    return ENCODE_HINT if has_userinfo else ""


def _valid_host(host: str, hostport: str) -> bool:
    if hostport.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    return bool(_HOST.match(host)) and ":" not in host


DATABASE_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "sqlite": "sqlite",
}


def database_url(text: str, source: str = "the database URL") -> str:
    """A database URL (the outbox and inbox) as SQLAlchemy takes it, the driver chosen here:
    `postgresql://` (or `postgres://`) becomes `postgresql+psycopg://`; `sqlite:///file.db`
    and `sqlite://` (in memory) stay. Raises `UrlError` (password masked) for anything else."""
    raw = text.strip()
    scheme, sep, rest = raw.partition("://")
    driver = DATABASE_DRIVERS.get(scheme.lower()) if sep else None
    if driver is None:
        raise UrlError(
            f"{source} {mask(raw)!r} is not a database URL: use postgresql://user:password@host:port/db "
            "or sqlite:///path/to/file.db"
        )
    if driver != "sqlite":
        try:
            parsed = urlsplit(f"{driver}://{rest}")
            parsed.port  # noqa: B018 - a bad port raises here
        except ValueError as exc:
            raise UrlError(f"{source} {mask(raw)!r}: {exc} ({ENCODE_HINT})") from None
        if not parsed.hostname or not parsed.path.strip("/"):
            raise UrlError(
                f"{source} {mask(raw)!r} names no host or no database: postgresql://user:password@host:port/db"
            )
    return f"{driver}://{rest}"

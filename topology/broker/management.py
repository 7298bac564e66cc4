"""A thin typed client for the RabbitMQ management HTTP API.

It owns three concerns the rest of the code should never think about: percent-encoding
every path segment (vhost `/` is `%2F`), keeping credentials out of every URL it shows, and
turning transport failures into one clear `RabbitformError` (with bounded retries for the
transient ones: connection errors, timeouts and 5xx answers).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests

from topology.errors import RabbitformError

DEFAULT_URL = "http://localhost:15672"
DEFAULT_USER = "guest"
DEFAULT_PASSWORD = "guest"  # RabbitMQ's documented default account
URL_ENV = "RABBITMQ_MANAGEMENT_URL"
USER_ENV = "RABBITMQ_USER"
PASSWORD_ENV = "RABBITMQ_PASSWORD"
CHECK_URL = f"check --management-url (or {URL_ENV}) and that the management plugin is enabled"
CHECK_CREDENTIALS = f"check the user and password ({USER_ENV} / {PASSWORD_ENV}, or the credentials in the URL)"


class ManagementError(RabbitformError):
    """The management API could not do what we asked."""


class BrokerUnreachable(ManagementError):
    """Connection refused, unknown host, TLS failure."""


class BrokerTimeout(ManagementError):
    """The broker did not answer in time."""


class AuthenticationFailed(ManagementError):
    """HTTP 401: wrong credentials, or a user without a management tag."""


class PermissionDenied(ManagementError):
    """The user lacks a tag or vhost permissions for this call (HTTP 403, and the 401s that
    RabbitMQ 3.x answers with "Not administrator user" or "Access refused.")."""


class BrokerServerError(ManagementError):
    """HTTP 5xx after the retries."""


class RequestRejected(ManagementError):
    """Any other 4xx answer: the request itself was refused (e.g. deleting a non-empty queue)."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def strip_credentials(url: str) -> str:
    """The URL without user, password, query or trailing slash: safe to print and to save."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class ManagementClient:
    """Calls to one broker's management API, as one user.

    `retries` extra attempts are made for transient failures, waiting `backoff`, then twice
    as long each time; tests pass `backoff=0` to keep unreachable-URL checks instant.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        user: str | None = None,
        password: str | None = None,
        *,
        ca_cert: str | None = None,
        insecure: bool = False,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.25,
    ) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RabbitformError(f"{strip_credentials(url)!r} is not an http(s) management URL; {CHECK_URL}")
        self.display_url = strip_credentials(parts.geturl())
        self.user = user or (unquote(parts.username) if parts.username else DEFAULT_USER)
        self._password = password or (unquote(parts.password) if parts.password else DEFAULT_PASSWORD)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._session = requests.Session()
        self._session.auth = (self.user, self._password)
        self._session.headers["content-type"] = "application/json"
        if insecure:
            self._session.verify = False
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        elif ca_cert:
            self._session.verify = ca_cert

    @classmethod
    def from_env(
        cls,
        url: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> ManagementClient:
        """`url`, else `RABBITMQ_MANAGEMENT_URL`, else localhost; credentials from the URL,
        else `RABBITMQ_USER` / `RABBITMQ_PASSWORD`, else guest/guest."""
        env = os.environ if environ is None else environ
        chosen = url or env.get(URL_ENV) or DEFAULT_URL
        parts = urlsplit(chosen if "://" in chosen else f"http://{chosen}")
        user = None if parts.username else env.get(USER_ENV)
        password = None if parts.password else env.get(PASSWORD_ENV)
        return cls(chosen, user, password, **options)

    def __repr__(self) -> str:
        return f"ManagementClient({self.display_url!r})"

    def close(self) -> None:
        self._session.close()

    def credentials(self) -> tuple[str, str]:
        """User and password, for the AMQP connection that holds the apply lock."""
        return self.user, self._password

    # ------------------------------------------------------------------ calls

    def get(self, *segments: str, params: Mapping[str, Any] | None = None, missing_ok: bool = False) -> Any:
        """GET `/api/<segments>` as JSON; None for a 404 when `missing_ok`."""
        response = self.request("GET", segments, params=params, missing_ok=missing_ok)
        return None if response is None else response.json()

    def put(self, *segments: str, body: Any = None) -> None:
        self.request("PUT", segments, body=body if body is not None else {})

    def post(self, *segments: str, body: Any) -> None:
        self.request("POST", segments, body=body)

    def delete(self, *segments: str, params: Mapping[str, Any] | None = None) -> bool:
        """DELETE; False when the object was already gone (404), which callers count as done."""
        return self.request("DELETE", segments, params=params, missing_ok=True) is not None

    def path(self, *segments: str) -> str:
        """`/api/<segments>`, every segment percent-encoded (`/` -> `%2F`, `#` -> `%23`)."""
        return "/api/" + "/".join(quote(segment, safe="") for segment in segments)

    def request(
        self,
        method: str,
        segments: tuple[str, ...],
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        missing_ok: bool = False,
    ) -> requests.Response | None:
        path = self.path(*segments)
        where = f"{method} {self.display_url}{path}"
        attempt = 0
        while True:
            try:
                response = self._session.request(
                    method,
                    self.display_url + path,
                    params=params,
                    json=body,
                    timeout=self.timeout,
                )
            except requests.exceptions.SSLError as exc:
                raise BrokerUnreachable(
                    f"TLS verification failed for {self.display_url} ({_tls_reason(exc)}); "
                    "pass --ca-cert CA.pem (or --insecure to skip verification)"
                ) from None
            except requests.exceptions.Timeout:
                if self._may_retry(attempt):
                    attempt += 1
                    continue
                raise BrokerTimeout(
                    f"the RabbitMQ management API at {self.display_url} did not answer within "
                    f"{self.timeout:g} s ({where}, {attempt + 1} attempts); check that the broker is healthy and not overloaded"
                ) from None
            except requests.exceptions.ConnectionError as exc:
                if self._may_retry(attempt):
                    attempt += 1
                    continue
                raise BrokerUnreachable(
                    f"cannot reach the RabbitMQ management API at {self.display_url} "
                    f"({_connection_reason(exc)}, {attempt + 1} attempts); {CHECK_URL}"
                ) from None
            if response.status_code >= 500 and self._may_retry(attempt):
                attempt += 1
                continue
            return self._checked(response, method, path, missing_ok)

    def _may_retry(self, attempt: int) -> bool:
        if attempt >= self.retries:
            return False
        if self.backoff > 0:
            time.sleep(self.backoff * (2**attempt))
        return True

    def _checked(
        self, response: requests.Response, method: str, path: str, missing_ok: bool
    ) -> requests.Response | None:
        status = response.status_code
        where = f"{method} {self.display_url}{path}"
        if status < 400:
            return response
        reason = _reason(response)
        if status == 404 and missing_ok:
            return None
        if status == 401 and "management user" in reason.lower():
            raise AuthenticationFailed(
                f"{self.display_url} refused the login: the user has no management tag ({reason}); "
                "give it the 'administrator' tag (reading definitions and creating vhosts need it)"
            )
        if status == 401 and "administrator" in reason.lower():
            raise PermissionDenied(
                f"{self.display_url} refused {method} {path}: the user is not an administrator ({reason}); "
                "reading a vhost's definitions and creating vhosts need the 'administrator' tag"
            )
        if status == 403 or (status == 401 and "access refused" in reason.lower()):
            raise PermissionDenied(
                f"{self.display_url} refused {method} {path} (HTTP {status}: {reason}); "
                "check the user's tags and its permissions (configure, write, read) on the vhost"
            )
        if status == 401:
            raise AuthenticationFailed(
                f"{self.display_url} refused the login (HTTP 401: {reason}); {CHECK_CREDENTIALS}"
            )
        if status >= 500:
            raise BrokerServerError(
                f"the RabbitMQ management API at {self.display_url} failed (HTTP {status}: {reason}) on {where}; "
                "check the broker's logs"
            )
        raise RequestRejected(f"{where} was refused (HTTP {status}: {reason})", status, reason)


def _reason(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason or str(response.status_code)
    if isinstance(data, dict):
        return str(data.get("reason") or data.get("error") or response.reason)
    return response.reason or str(response.status_code)


def _tls_reason(exc: Exception) -> str:
    """The OpenSSL reason buried in requests' wrapping, e.g. "certificate verify failed"."""
    found = re.search(r"\[SSL: [A-Z_]+\] ([^(]+?)(?: \(|'|\)|$)", str(exc))
    return found.group(1).strip() if found else "handshake failed"


def _connection_reason(exc: Exception) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "unknown host"
    if "timed out" in text:
        return "connection timed out"
    return "connection failed"

"""A thin typed client for the RabbitMQ management HTTP API.

It owns four concerns the rest of the code should never think about: percent-encoding
every path segment (vhost `/` is `%2F`), keeping credentials out of every URL it shows,
turning transport failures into one clear `RabbitformError` (with bounded retries for the
transient ones: connection errors and 5xx answers), and telling a slow broker from a dead one.

Why no fixed read timeout: a large vhost's reads and writes take as long as the broker needs
(a definitions export of 70,000 objects took 22-29 s here), so any fixed limit is either too
short for big vhosts or too long to notice a dead broker. Instead every request waits
`timeout` seconds, then probes `GET /api/whoami` (cheap) on a fresh connection: while the
broker answers the probe the request keeps waiting (up to `max_wait`), reporting through
`on_wait`; when the probe fails twice in a row the broker is taken as down or hung.
Connecting has its own short timeout, so a dead host is found quickly. (`/api/overview`
is no liveness probe: it aggregates statistics and took 17 s on a loaded broker whose
`/api/whoami` answered in 0.2 s.) A connection the broker drops after a long wait (its
HTTP idle timeout cuts requests that send nothing for about 60 s) is not retried: the same
request would only be cut again.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import requests

from topology.errors import RabbitformError
from topology.failures import root_cause, socket_failure, tls_verify_message, wrong_tls_version
from topology.tls import CA_CERT_ENV, resolve_ca_cert
from topology.urls import MANAGEMENT_URL_ENV, Endpoint, UrlError, mask, parse_urls

DEFAULT_URL = "http://localhost:15672"
DEFAULT_USER = "guest"
DEFAULT_PASSWORD = "guest"  # RabbitMQ's documented default account
URL_ENV = MANAGEMENT_URL_ENV
USER_ENV = "RABBITMQ_USER"
PASSWORD_ENV = "RABBITMQ_PASSWORD"
CHECK_URL = f"check --management-url (or {URL_ENV}) and that the management plugin is enabled"
CHECK_CREDENTIALS = f"check the user and password ({USER_ENV} / {PASSWORD_ENV}, or the credentials in the URL)"
LIVENESS_PATH = "/api/whoami"  # answered by the node without touching statistics
DEAD_AFTER_PROBES = 2  # consecutive failed liveness probes before the broker counts as down

WaitHook = Callable[[str, float], None]
"""Called with (request, seconds waited so far) while a slow request waits on a live broker."""


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
    try:
        endpoints = parse_urls(url, "management")
    except UrlError:
        return mask(url)
    return ",".join(endpoint.display for endpoint in endpoints)


class ManagementClient:
    """Calls to one broker's management API, as one user.

    `url` may list several nodes, comma-separated: a connection failure moves on to the next,
    and the first that answers is kept. A path in the URL is RabbitMQ's
    `management.path_prefix` (behind a reverse proxy); a trailing `/api` is accepted too.
    `retries` extra attempts are made for transient failures, waiting `backoff`, then twice
    as long each time; tests pass `backoff=0` to keep unreachable-URL checks instant.
    `timeout` is how long a request waits before the broker's liveness is probed (and the
    probe's own limit), `connect_timeout` the limit on opening a connection, `max_wait` the
    limit on one request's silence while the broker stays alive. Safe to share between
    threads: each thread gets its own HTTP session.
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
        source: str = "the management URL",
        connect_timeout: float = 5.0,
        max_wait: float = 3600.0,
        on_wait: WaitHook | None = None,
    ) -> None:
        self.endpoints = parse_urls(url, "management", source)
        first = self.endpoints[0]
        self._active = 0
        self._api_verified = False
        self.user = user or (first.username if first.username is not None else DEFAULT_USER)
        self._password = password or (first.password if first.password is not None else DEFAULT_PASSWORD)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.insecure = insecure
        self.ca_cert = ca_cert
        if ca_cert and not insecure:
            resolve_ca_cert(ca_cert)  # a missing file is an error now, not at the first request
        self.connect_timeout = min(connect_timeout, timeout)
        self.max_wait = max(max_wait, timeout)
        self.on_wait = on_wait
        self._verify: bool | str = True
        if insecure:
            self._verify = False
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        elif ca_cert:
            self._verify = ca_cert
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    @property
    def display_url(self) -> str:
        """The node in use, without credentials."""
        return self.endpoints[self._active].display

    @property
    def active_endpoint(self) -> Endpoint:
        """The node in use (the last that answered): its host is where its AMQP listener is too."""
        return self.endpoints[self._active]

    @classmethod
    def from_env(
        cls,
        url: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        source: str | None = None,
        **options: Any,
    ) -> ManagementClient:
        """`url`, else `RABBITMQ_MANAGEMENT_URL`, else localhost; credentials from the URL,
        else `RABBITMQ_USER` / `RABBITMQ_PASSWORD`, else guest/guest; the CA bundle from
        `ca_cert`, else `RABBITMQ_CA_CERT` (topology.tls)."""
        env = os.environ if environ is None else environ
        if not options.get("insecure"):
            options["ca_cert"] = resolve_ca_cert(options.get("ca_cert"), env)
        if url is not None:
            chosen, where = url, source or "the management URL"
        elif env.get(URL_ENV):
            chosen, where = env[URL_ENV], URL_ENV
        else:
            chosen, where = DEFAULT_URL, "the default management URL"
        first = parse_urls(chosen, "management", where)[0]
        user = None if first.username is not None else env.get(USER_ENV)
        password = None if first.password is not None else env.get(PASSWORD_ENV)
        return cls(chosen, user, password, source=where, **options)

    def __repr__(self) -> str:
        return f"ManagementClient({self.display_url!r})"

    @property
    def password(self) -> str:
        """For an AMQP connection to the same broker as the same user (never printed)."""
        return self._password

    def close(self) -> None:
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.auth = (self.user, self._password)
        session.headers["content-type"] = "application/json"
        # Passed on every request too: requests lets $REQUESTS_CA_BUNDLE or $CURL_CA_BUNDLE
        # override a session's `verify` (not a request's), which would ignore --ca-cert and --insecure.
        session.verify = self._verify
        return session

    def _session(self) -> requests.Session:
        """This thread's session: requests' sessions are not safe to share between threads."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._new_session()
            with self._sessions_lock:
                self._sessions.append(session)
        return session

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
        response = self._send(method, path, params, body)
        if response.status_code == 404 and not self._api_verified:
            self._verify_api(path)
        return self._checked(response, method, path, missing_ok)

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None, body: Any) -> requests.Response:
        """One request with bounded retries; a connection failure tries the next node first."""
        attempt = 0
        moved = 0
        while True:
            where = f"{method} {self.display_url}{path}"
            started = time.monotonic()
            try:
                response = self._watched(method, self.display_url + path, where, params, body)
            except requests.exceptions.SSLError as exc:
                raise BrokerUnreachable(self._tls_message(exc)) from None
            except requests.exceptions.ReadTimeout:
                raise BrokerTimeout(
                    f"the RabbitMQ management API at {self.display_url} did not answer {where} within "
                    f"{self.max_wait:g} s although it kept answering {LIVENESS_PATH}; "
                    "check that the broker is healthy and not overloaded"
                ) from None
            except requests.exceptions.ConnectionError as exc:
                spoken = _other_protocol(exc)
                if spoken is not None:
                    raise BrokerUnreachable(self._wrong_port_message(spoken)) from None
                waited = time.monotonic() - started
                if waited > self.timeout:
                    raise BrokerTimeout(
                        f"the RabbitMQ management API at {self.display_url} closed the connection after "
                        f"{waited:.0f} s without answering {where}: the broker is alive but too busy to answer "
                        "this request before its HTTP idle timeout; retry when it is less loaded"
                    ) from None
                if moved < len(self.endpoints) - 1:
                    moved += 1
                    self._active = (self._active + 1) % len(self.endpoints)
                    continue
                if self._may_retry(attempt):
                    attempt += 1
                    moved = 0
                    continue
                nodes = ", ".join(e.display for e in self.endpoints) if len(self.endpoints) > 1 else self.display_url
                raise BrokerUnreachable(
                    f"cannot reach the RabbitMQ management API at {nodes} "
                    f"({_connection_reason(exc)}, {attempt + 1} attempts); {CHECK_URL}"
                ) from None
            except requests.exceptions.InvalidURL:
                raise RabbitformError(f"{self.display_url} is not a usable management URL; {CHECK_URL}") from None
            if response.status_code >= 500 and self._may_retry(attempt):
                attempt += 1
                continue
            return response

    def _watched(
        self, method: str, url: str, where: str, params: Mapping[str, Any] | None, body: Any
    ) -> requests.Response:
        """Send one request, waiting as long as the broker proves alive (see the module's doc).

        The request runs on a daemon thread so that a dead broker is reported at once: the
        abandoned thread ends by itself at `max_wait` and never keeps the process alive.
        """
        session = self._session()
        outcome: list[Any] = []
        done = threading.Event()

        def send() -> None:
            try:
                outcome.append(
                    session.request(
                        method,
                        url,
                        params=params,
                        json=body,
                        timeout=(self.connect_timeout, self.max_wait),
                        verify=self._verify,
                    )
                )
            except BaseException as exc:  # handed to the waiting thread, which raises it
                outcome.append(exc)
            finally:
                done.set()

        threading.Thread(target=send, name="rabbitform-request", daemon=True).start()
        started = time.monotonic()
        failed_probes = 0
        while not done.wait(self.timeout):
            problem = self._probe()
            if done.is_set():
                break
            waited = time.monotonic() - started
            if problem is None:
                failed_probes = 0
                if self.on_wait is not None:
                    self.on_wait(where, waited)
                continue
            failed_probes += 1
            if failed_probes >= DEAD_AFTER_PROBES:
                raise BrokerTimeout(
                    f"the RabbitMQ management API at {self.display_url} stopped answering: {where} has had no "
                    f"answer for {waited:.0f} s and GET {LIVENESS_PATH} {problem} ({failed_probes} probes); "
                    "the broker is down or hung: check it and its logs"
                )
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _probe(self) -> str | None:
        """None when the broker answers the liveness probe, else what went wrong.

        A fresh session: the request being waited on may hold this thread's connection.
        """
        session = self._new_session()
        try:
            response = session.get(
                self.display_url + LIVENESS_PATH, timeout=(self.connect_timeout, self.timeout), verify=self._verify
            )
        except requests.exceptions.Timeout:
            return f"did not answer within {self.timeout:g} s"
        except requests.exceptions.RequestException as exc:
            return f"failed ({_connection_reason(exc)})"
        finally:
            session.close()
        if response.status_code >= 500:
            return f"failed (HTTP {response.status_code})"
        return None

    def _verify_api(self, path: str) -> None:
        """A 404 means "no such object" only where the management API answers: check its root
        once, so that a wrong URL or path prefix fails instead of planning "everything is missing"."""
        probe = "/api/overview"
        response = self._send("GET", probe, None, None) if path != probe else None
        ok = False
        if response is not None and response.status_code < 400:
            try:
                data = response.json()
            except ValueError:
                data = None
            ok = isinstance(data, dict) and ("management_version" in data or "rabbitmq_version" in data)
        if response is not None and response.status_code in (401, 403):
            ok = True  # the API is there; the caller's request reports the credentials problem
        if not ok:
            status = "HTTP 404" if response is None else f"HTTP {response.status_code}"
            raise ManagementError(
                f"no RabbitMQ management API at {self.display_url}/api/ ({status} on GET {self.display_url}{probe}); "
                "check --management-url (or " + URL_ENV + "): a path in it is RabbitMQ's management.path_prefix "
                "(e.g. http://host/rabbitmq for a broker behind a reverse proxy), and the management plugin must be enabled"
            )
        self._api_verified = True

    def _tls_message(self, exc: Exception) -> str:
        """What failed: the port speaks no TLS, the handshake, or the verification (and what to pass)."""
        reason = _tls_reason(exc)
        url = self.display_url
        if wrong_tls_version(exc):  # the answer was no TLS record: a plain-HTTP port
            return (
                f"TLS handshake with {url} failed ({reason}): this port does not speak TLS; use "
                f"{url.replace('https://', 'http://', 1)} if it serves plain HTTP, else the management "
                "HTTPS port (15671 by default)"
            )
        if tls_verify_message(exc) is None:
            even = " even with --insecure" if self.insecure else ""
            return (
                f"TLS handshake with {url} failed ({reason}){even}; "
                "check that this port serves HTTPS (15671 by default) and the broker's TLS settings"
            )
        if self.ca_cert:
            return (
                f"TLS verification failed for {url} ({reason}) with the CA bundle {self.ca_cert}; "
                "check that this CA signed the broker's certificate and that the host name matches it"
            )
        return (
            f"TLS verification failed for {url} ({reason}); "
            f"pass --ca-cert CA.pem (or set {CA_CERT_ENV}; --insecure skips verification)"
        )

    def _wrong_port_message(self, spoken: str) -> str:
        url = self.display_url
        if spoken == "TLS":
            return (
                f"{url} answered with TLS, not plain HTTP: this port serves HTTPS; "
                f"use {url.replace('http://', 'https://', 1)} in --management-url (or {URL_ENV})"
            )
        return f"{url} answered with AMQP: this is an AMQP port, not the management API; {CHECK_URL}"

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
    """The OpenSSL reason buried in requests' wrapping, e.g. "certificate verify failed: self-signed
    certificate" or "wrong version number", read from the root cause's attributes."""
    verify = tls_verify_message(exc)
    if verify is not None:
        return f"certificate verify failed: {verify}"
    if wrong_tls_version(exc):
        return "wrong version number"
    cause = root_cause(exc)
    reason = getattr(cause, "reason", None)
    return str(reason).lower().replace("_", " ") if isinstance(reason, str) and reason else "handshake failed"


def _other_protocol(exc: BaseException) -> str | None:
    """ "TLS" or "AMQP" when the port answered an HTTP request in that protocol (http.client reads
    the answer as a bad status line: a TLS 1.x alert or handshake record, or AMQP's protocol
    header), else None."""
    pending: list[object] = [exc]
    while pending:
        item = pending.pop()
        if isinstance(item, http.client.BadStatusLine):
            line = str(item.args[0]) if item.args else ""
            if line[:2] in ("\x15\x03", "\x16\x03"):
                return "TLS"
            return "AMQP" if line.startswith("AMQP") else None
        if isinstance(item, BaseException):
            pending.extend(item.args)
    return None


CONNECTION_REASONS = {
    "refused": "connection refused",
    "unknown host": "unknown host",
    "timeout": "connection timed out",
}


def _connection_reason(exc: Exception) -> str:
    """A few words on why a connection failed, chosen by the type of its root cause."""
    return CONNECTION_REASONS.get(socket_failure(exc) or "", "connection failed")

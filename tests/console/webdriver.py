"""A small W3C WebDriver client over requests: enough to drive Debian's Chromium through
chromedriver (start, find, click, type, read text, run a script, screenshot). No new dependency."""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import requests

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
]
T = TypeVar("T")


def available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], T], what: str, timeout: float = 15.0, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except WebDriverError as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}" + (f" (last: {last})" if last else ""))


class WebDriverError(Exception):
    pass


class Element:
    def __init__(self, browser: Browser, element_id: str) -> None:
        self.browser = browser
        self.id = element_id

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return self.browser.call(method, f"/element/{self.id}{path}", body)

    def click(self) -> None:
        self._call("POST", "/click", {})

    def type(self, text: str) -> None:
        self._call("POST", "/value", {"text": text})

    @property
    def text(self) -> str:
        return str(self._call("GET", "/text"))


class Browser:
    """One Chromium session; `url` paths are relative to `base`."""

    def __init__(self, driver_url: str, session_id: str, base: str = "") -> None:
        self.driver_url = driver_url
        self.session_id = session_id
        self.base = base
        self.http = requests.Session()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(
            method, f"{self.driver_url}/session/{self.session_id}{path}", json=body, timeout=60
        )
        value = response.json().get("value")
        if response.status_code >= 400:
            message = value.get("message", "") if isinstance(value, dict) else value
            raise WebDriverError(f"{method} {path}: {message}".splitlines()[0])
        return value

    def get(self, path: str) -> None:
        self.call("POST", "/url", {"url": self.base + path})

    @property
    def current_url(self) -> str:
        return str(self.call("GET", "/url"))

    @property
    def title(self) -> str:
        return str(self.call("GET", "/title"))

    def find(self, css: str) -> Element:
        value = self.call("POST", "/element", {"using": "css selector", "value": css})
        return Element(self, value[ELEMENT])

    def find_all(self, css: str) -> list[Element]:
        values = self.call("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, value[ELEMENT]) for value in values]

    def wait(self, css: str, timeout: float = 15.0) -> Element:
        return wait_for(lambda: self.find(css), f"element {css}", timeout)

    def wait_text(self, css: str, text: str, timeout: float = 15.0) -> Element:
        def shown() -> Element | None:
            element = self.find(css)
            return element if text in element.text else None

        return wait_for(shown, f"{text!r} in {css}", timeout)

    def script(self, source: str, *args: Any) -> Any:
        return self.call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("GET", "/screenshot")))

    def delete_cookies(self) -> None:
        self.call("DELETE", "/cookie")


@contextlib.contextmanager
def chromium(base: str = "") -> Iterator[Browser]:
    """chromedriver on a free port and one headless Chromium with a fresh profile."""
    profile = tempfile.mkdtemp(prefix="rabbitform-chromium-")
    port = _free_port()
    driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver_url = f"http://127.0.0.1:{port}"
    session_id = None
    try:
        wait_for(lambda: _ready(driver_url), "chromedriver", timeout=20)
        options = {"binary": CHROMIUM, "args": [*FLAGS, f"--user-data-dir={profile}"]}
        capabilities = {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}
        response = requests.post(f"{driver_url}/session", json={"capabilities": capabilities}, timeout=60)
        value = response.json()["value"]
        if response.status_code >= 400:
            raise WebDriverError(f"cannot start Chromium: {value.get('message', value)}")
        session_id = value["sessionId"]
        yield Browser(driver_url, session_id, base)
    finally:
        if session_id is not None:
            with contextlib.suppress(requests.RequestException):
                requests.delete(f"{driver_url}/session/{session_id}", timeout=30)
        driver.terminate()
        try:
            driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver.kill()
        shutil.rmtree(profile, ignore_errors=True)


def _ready(driver_url: str) -> bool:
    try:
        return bool(requests.get(f"{driver_url}/status", timeout=2).json()["value"]["ready"])
    except (requests.RequestException, ValueError, KeyError):
        return False

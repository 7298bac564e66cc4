"""The console in a real browser (Debian's Chromium through chromedriver): sign in, a failing
subscriber's group, a message, a replay after confirming, the audit trail; a wrong password; a
read-only user refused; a `<script>` dead letter shown as text."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pika
import pytest

from tests.conftest import PASSWORD, USER
from tests.console.support import MAIL, SCRIPT, VIEWER_PASSWORD, WELCOME, Console
from tests.console.webdriver import Browser, available, chromium, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not available(), reason="needs chromium and chromium-driver (scripts/test-tools-up)"),
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "console.png"


@pytest.fixture(scope="module")
def browser(console: Console) -> Iterator[Browser]:
    with chromium(console.url) as opened:
        yield opened


def sign_in(browser: Browser, user: str, password: str) -> None:
    browser.get("/login")
    browser.delete_cookies()
    browser.get("/login")
    browser.wait("#username").type(user)
    browser.find("#password").type(password)
    browser.find("#sign-in").click()


def group_page(subscriber: str, error_type: str) -> str:
    return "/dead-letters/group?" + urlencode({"subscriber": subscriber, "error_type": error_type})


def depth(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def test_a_wrong_password_is_refused(browser: Browser) -> None:
    sign_in(browser, USER, "not-the-password")
    assert "Wrong user name or password" in browser.wait("#login-error").text
    browser.get("/dead-letters")
    assert browser.current_url.endswith("/login")  # no session, no page


def test_sign_in_open_a_group_replay_it_and_see_the_audit_trail(
    browser: Browser, console: Console, tmp_path: Path
) -> None:
    sign_in(browser, USER, PASSWORD)
    browser.wait_text("#subscribers tbody", "petisco/send_mail_handler")
    browser.wait("#graph svg")

    browser.get("/dead-letters")
    # the broker samples queue lengths every few seconds; the page refreshes itself until it shows them
    row = browser.wait_text("#groups tbody", "SmtpDown", timeout=30)
    assert "petisco/send_mail_handler" in row.text
    browser.find("a.error-type[href*='SmtpDown']").click()

    wait_for(lambda: len(browser.find_all(".message")) == 3, "the group's three messages")
    first = browser.find(".message")
    assert "smtp-0" in first.text and "smtp server down" in first.text
    browser.script("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    assert "rabbitform-error-type" in browser.find(".message pre.headers").text
    assert '"id": "smtp-0"' in browser.find(".message pre.body").text

    browser.find("#replay-group").click()
    question = browser.wait_text("#confirm-text", "3 dead letter(s)")
    assert "send_mail_handler" in question.text and "SmtpDown" in question.text
    shot = SCREENSHOT if os.environ.get("RABBITFORM_UPDATE_SCREENSHOTS") == "1" else tmp_path / "console.png"
    browser.screenshot(shot)
    browser.find("#confirm-yes").click()
    browser.wait_text("#notice", "Replayed 3 dead letter(s).")
    assert depth(console.amqp_url, MAIL) == 3

    browser.get("/audit")
    entry = browser.wait_text("#audit tbody", "replay")
    assert all(word in entry.text for word in (USER, "petisco/send_mail_handler", "SmtpDown", "ok"))


def test_a_read_only_user_may_look_but_not_replay(browser: Browser, console: Console) -> None:
    sign_in(browser, console.viewer, VIEWER_PASSWORD)
    browser.wait_text("#user", console.viewer)
    browser.get(group_page("send_mail_handler", "ValueError"))
    wait_for(lambda: len(browser.find_all(".message")) == 1, "the ValueError dead letter")
    browser.find("#replay-group").click()
    browser.wait_text("#confirm-text", "1 dead letter(s)")
    browser.find("#confirm-yes").click()
    notice = browser.wait_text("#notice", "ACCESS_REFUSED")
    assert console.viewer in notice.text  # the broker's own reason
    assert len(browser.find_all(".message")) == 1  # still there


def test_a_script_in_a_dead_letter_is_shown_as_text(browser: Browser) -> None:
    sign_in(browser, USER, PASSWORD)
    browser.wait("#user")
    browser.get(group_page("welcome_handler", "TemplateError"))
    message = browser.wait_text(".message", SCRIPT)
    assert SCRIPT in message.text
    browser.script("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    assert SCRIPT in browser.find(".message pre.body").text
    assert browser.script("return document.querySelectorAll('#messages script').length") == 0
    assert browser.title != "pwned"
    assert WELCOME  # the subscriber the page names

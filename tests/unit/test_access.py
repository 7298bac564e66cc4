"""Least-privilege grants from a spec's `access:` section, and RabbitMQ's password hashes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topology.compile.access import NOTHING, Grant, compile_access
from topology.compile.passwords import SHA256, hash_password, password_matches
from topology.errors import RabbitformError
from topology.spec.loader import parse_spec

SPEC = """
organization: acme
vhost: prod
services:
  billing:
    events:
      InvoicePaid: {subscribers: {mailer: {}, ledger: {}}}
    commands:
      RefundInvoice: {subscribers: {refunder: {}}}
  accounts:
    events:
      UserCreated: {subscribers: {welcome: {}}}
store: {queue: store}
access:
  billing-svc: {service: billing, password: "p1"}
  store-svc: {store: true, password: "p2"}
"""


def _grants() -> dict[str, Grant]:
    return {grant.user: grant for grant in compile_access(parse_spec(SPEC, "spec.yaml"))}


def test_service_user_reads_its_queues_and_writes_its_exchanges_only() -> None:
    grant = _grants()["billing-svc"]
    assert grant.configure == NOTHING
    write = re.compile(grant.write)
    read = re.compile(grant.read)
    for exchange in ["acme.billing", "retry.acme.billing", "dead_letter.acme.billing"]:
        assert write.search(exchange)
    for exchange in ["acme.accounts", "retry.acme.accounts", "amq.default", "", "acme.billingx", "acme_billing"]:
        assert not write.search(exchange), exchange
    for queue in [
        "acme.billing.1.event.invoice.paid.mailer",
        "acme.billing.1.event.invoice.paid.ledger",
        "acme.billing.1.command.refund.invoice.refunder",
    ]:
        assert read.search(queue)
    for queue in [
        "acme.accounts.1.event.user.created.welcome",
        "retry.acme.billing.1.event.invoice.paid.mailer",
        "store",
        "acme.billing.1.event.invoice.paid.mailerx",
    ]:
        assert not read.search(queue), queue


def test_topic_permissions_narrow_routing_keys() -> None:
    grant = _grants()["billing-svc"]
    topics = {t.exchange: re.compile(t.write) for t in grant.topic_permissions}
    assert topics["acme.billing"].search("acme.billing.1.event.invoice.paid")
    assert not topics["acme.billing"].search("acme.accounts.1.event.user.created")
    assert topics["retry.acme.billing"].search("retry.acme.billing.1.event.invoice.paid.mailer")
    assert not topics["retry.acme.billing"].search("retry.store")


def test_store_user_reads_the_store_and_writes_its_retries_through_every_service() -> None:
    grant = _grants()["store-svc"]
    assert re.compile(grant.read).search("store")
    assert not re.compile(grant.read).search("acme.billing.1.event.invoice.paid.mailer")
    topics = {t.exchange: re.compile(t.write) for t in grant.topic_permissions}
    assert sorted(topics) == [
        "dead_letter.acme.accounts",
        "dead_letter.acme.billing",
        "retry.acme.accounts",
        "retry.acme.billing",
    ]
    assert topics["retry.acme.billing"].search("retry.store")
    assert not topics["retry.acme.billing"].search("retry.storex")


def test_password_is_never_in_a_repr() -> None:
    assert "p1" not in repr(_grants()) and "p1" not in str(parse_spec(SPEC, "spec.yaml"))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{service: nope, password: x}", "access.u.service: unknown service 'nope'"),
        ("{password: x}", "give the user a service"),
        ('{service: billing, password: ""}', "access.u.password: the password is empty"),
    ],
)
def test_access_errors_name_the_field(entry: str, message: str) -> None:
    text = "organization: acme\nservices: {billing: {}}\naccess:\n  u: " + entry + "\n"
    with pytest.raises(RabbitformError, match=re.escape(message)):
        parse_spec(text, "spec.yaml")


def test_a_store_user_needs_a_store() -> None:
    with pytest.raises(RabbitformError, match="the spec has no store"):
        parse_spec("organization: acme\naccess:\n  u: {store: true, password: x}\n", "spec.yaml")


def test_hash_matches_the_broker_format() -> None:
    # Read from RabbitMQ 3.10.8: PUT /api/users/hashprobe {"password": "s3cret"}, then GET.
    broker_hash = "0DYvOlO4SqObr3rji6RPBtyAyl+CuZvdKVdZL429lnVnb0M/"
    assert password_matches("s3cret", broker_hash, SHA256)
    assert not password_matches("s3cret!", broker_hash, SHA256)
    assert not password_matches("s3cret", broker_hash, "rabbit_password_hashing_unknown")
    assert not password_matches("s3cret", "", SHA256)
    assert not password_matches("s3cret", "not base64!", SHA256)


@settings(max_examples=50, derandomize=True)
@given(
    password=st.text(min_size=1, max_size=40),
    other=st.text(min_size=1, max_size=40),
    salt=st.binary(min_size=4, max_size=4),
)
def test_hash_round_trip(password: str, other: str, salt: bytes) -> None:
    stored = hash_password(password, salt)
    assert password_matches(password, stored, SHA256)
    assert password_matches(other, stored, SHA256) == (other == password)


def test_under_layout_petisco_the_store_user_writes_to_the_store_exchanges() -> None:
    spec = parse_spec(SPEC.replace("store: {queue: store}", "layout: petisco\nstore: {queue: store}"), "spec.yaml")
    grant = next(g for g in compile_access(spec) if g.user == "store-svc")
    assert [t.exchange for t in grant.topic_permissions] == ["dead_letter.acme.store", "retry.acme.store"]
    write = re.compile(grant.write)
    assert write.search("retry.acme.store") and not write.search("retry.acme.billing")

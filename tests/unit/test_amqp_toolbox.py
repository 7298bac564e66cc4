"""The AMQP toolbox both sides use (topology.amqp): which tags a confirm covers, and what kind
of failure a connection error is, by exception type."""

from __future__ import annotations

import socket
import ssl

import pika.exceptions
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pika.adapters.utils.connection_workflow import AMQPConnectionWorkflowFailed, AMQPConnectorSocketConnectError

from topology.amqp import FailureKind, classify_failure, covered_tags, root_cause


def test_a_single_confirm_covers_its_tag_only_if_outstanding() -> None:
    assert covered_tags([1, 2, 3], 2, multiple=False) == [2]
    assert covered_tags([1, 3], 2, multiple=False) == []


@given(st.lists(st.integers(min_value=1, max_value=500), unique=True).map(sorted), st.integers(0, 600))
def test_a_multiple_confirm_covers_every_outstanding_tag_up_to_it(outstanding: list[int], tag: int) -> None:
    assert covered_tags(outstanding, tag, multiple=True) == [t for t in outstanding if t <= tag]


def wrapped(cause: BaseException) -> BaseException:
    """As pika raises a failed connection attempt: the cause three wrappers deep."""
    return pika.exceptions.AMQPConnectionError(AMQPConnectionWorkflowFailed([AMQPConnectorSocketConnectError(cause)]))


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "refused"),
        (socket.gaierror(-2, "Name or service not known"), "unknown host"),
        (TimeoutError("timed out"), "timeout"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "tls verify"),
        (ssl.SSLError(1, "wrong version number"), "tls"),
        (pika.exceptions.StreamLostError("Stream connection lost"), "handshake"),
        (pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED"), "closed by broker"),
        (ValueError("something else"), "other"),
    ],
)
def test_failures_are_classified_by_the_type_of_their_root_cause(error: BaseException, kind: FailureKind) -> None:
    assert classify_failure(wrapped(error)) == kind
    assert root_cause(wrapped(error)) is error


def test_login_and_access_refusals_are_named_at_the_top() -> None:
    assert classify_failure(pika.exceptions.ProbableAuthenticationError("ACCESS_REFUSED")) == "login"
    assert classify_failure(pika.exceptions.ProbableAccessDeniedError("NOT_ALLOWED")) == "access"

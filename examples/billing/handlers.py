"""The README's retry tour: a billing service whose payment provider declines some cards.

specs/examples/billing.yaml gives `charge_card_handler` a retry ladder, sends
`PaymentDeclined` (and its subclasses) straight to the dead-letter queue, and puts a circuit
breaker in front of the provider.
"""

from __future__ import annotations

from meiga import BoolResult, Error, Failure, isSuccess

from bus_runtime import Event


class OrderPlaced(Event):
    order_id: str
    card: str


class PaymentDeclined(Error):
    def __init__(self, message: str) -> None:
        self.message = message


class CardExpired(PaymentDeclined):
    pass


def charge_card_handler(event: OrderPlaced) -> BoolResult:
    if event.card == "expired":
        return Failure(CardExpired(f"card of order {event.order_id} expired"))  # no retry can fix it
    if event.card == "timeout":
        raise TimeoutError("payment provider did not answer in 2 s")  # retried along the ladder
    return isSuccess

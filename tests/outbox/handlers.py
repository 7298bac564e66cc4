"""Handlers the outbox tests run through `rabbitform consume --inbox-database-url`.

`bill_order_handler` records its effect in the service's database, in the inbox's transaction.
With `RABBITFORM_TEST_DIE_AFTER_COMMIT=<order id>` the process kills itself (SIGKILL) right
after that order's transaction commits: between the commit and the ack. (The handler's writes are
in a SAVEPOINT of the batch's transaction, whose release is a "commit" to SQLAlchemy's event too:
the kill waits for the outermost one.)
"""

from __future__ import annotations

import os
import signal
from typing import Any

from meiga import isSuccess
from sqlalchemy import event, insert
from sqlalchemy.orm import Session

from tests.outbox.support import OrderPlaced, effects


def bill_order_handler(order: OrderPlaced, session: Session) -> Any:
    session.execute(insert(effects).values(order_id=order.order_id))
    if os.environ.get("RABBITFORM_TEST_DIE_AFTER_COMMIT") == order.order_id:
        event.listen(session, "after_commit", _die_unless_nested)
    return isSuccess


def _die_unless_nested(session: Session) -> None:
    if not session.in_nested_transaction():
        os.kill(os.getpid(), signal.SIGKILL)

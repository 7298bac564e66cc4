"""Dead letters: list, show, replay and purge them, on RabbitMQ or on the in-memory broker.

```python
from bus_runtime.deadletters import DeadLetterQueues

with DeadLetterQueues.connect("specs/alice.yaml") as dlq:        # RABBITMQ_URL, the spec's vhost
    for summary in dlq.list():
        print(summary.subscriber, summary.count, summary.by_error_type)
    letters = dlq.show("send_mail_handler", error_types=["SmtpDown"])   # takes nothing
    outcome = dlq.replay("send_mail_handler", error_types=["SmtpDown"])  # back to its queue alone
    dlq.purge("send_mail_handler", reasons=["poison_message"])

dlq = DeadLetterQueues.in_memory(broker)                          # an InMemoryBroker, in tests
```
"""

from bus_runtime.deadletters.api import DeadLetterQueues
from bus_runtime.deadletters.model import REPLAY_COUNT, REPLAYED_AT, DeadLetter, Selection, Summary
from bus_runtime.deadletters.ops import Outcome
from bus_runtime.deadletters.targets import Target

__all__ = ["REPLAYED_AT", "REPLAY_COUNT", "DeadLetter", "DeadLetterQueues", "Outcome", "Selection", "Summary", "Target"]

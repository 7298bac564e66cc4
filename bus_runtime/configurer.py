"""`RabbitMqEventConfigurer`: the seed's configurer, as a thin wrapper over `topology`.

It turns subscribers into a spec, plans against the live broker and applies only the
creations: it never deletes or replaces anything, so services sharing an organization can
each configure their own subscribers at start-up. The names come from `topology.naming`,
the objects from `topology.compile.compiler`: one set of rules for `rabbitform apply` and services.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.subscriber import EventSubscriber
from bus_runtime.subscriber_spec import spec_for_subscribers
from topology import naming
from topology.apply.executor import describe
from topology.apply.live import ApplyResult, apply_plan, plan_live
from topology.broker.management import ManagementClient
from topology.plan.model import Plan
from topology.spec.model import Spec

log = logging.getLogger("bus_runtime.configurer")


class RabbitMqEventConfigurer:
    """Create the exchanges and queues that `subscribers` need on the connector's vhost.

    The management API is `management_url`, else `RABBITMQ_MANAGEMENT_URL`, else
    `http://localhost:15672`, with the connector's credentials and CA bundle. `retry_ttl` (ms)
    is how long a failed message waits in its retry queue. `main_ttl` (ms, None for none) is
    layout petisco's main-queue TTL, as petisco's `QueueConfig.default_main_ttl`.
    """

    def __init__(
        self,
        connector: RabbitMqConnector | None,
        organization: str,
        service: str,
        *,
        retry_ttl: int = 5000,
        management_url: str | None = None,
        store_queue: str = naming.DEFAULT_STORE_QUEUE,
        layout: naming.Layout = naming.DEFAULT_LAYOUT,
        main_ttl: int | None = naming.PETISCO_MAIN_TTL_MS,
    ) -> None:
        if retry_ttl < 1:
            raise ValueError("retry_ttl must be >= 1 ms")
        self.connector = connector or RabbitMqConnector()
        self.organization = organization
        self.service = service
        self.retry_ttl = retry_ttl
        self.store_queue = store_queue
        self.layout = layout  # `petisco`: the objects petisco 2.2.3's configurer creates
        self.main_ttl = main_ttl
        self.management_url = self.connector.management_url(management_url)
        self.last_plan: Plan | None = None
        self.spec()  # a setting the layout cannot take fails here, not at the first configure

    def spec(self, subscribers: Iterable[EventSubscriber] = (), store: bool = False) -> Spec:
        """The spec for these subscribers on the connector's vhost (pure)."""
        return spec_for_subscribers(
            self.organization,
            self.service,
            subscribers,
            retry_ttl=self.retry_ttl,
            store=store,
            store_queue=self.store_queue,
            vhost=self.connector.vhost,
            layout=self.layout,
            main_ttl=self.main_ttl,
        )

    def configure(self) -> ApplyResult:
        """The service's exchanges only (a service that publishes and subscribes to nothing)."""
        return self.apply(self.spec())

    def configure_subscribers(self, subscribers: Iterable[EventSubscriber], store: bool = False) -> ApplyResult:
        """Exchanges, one queue per handler with its retry and dead-letter queues, bindings;
        with `store=True` the store queue too. Creates what is missing, deletes nothing."""
        return self.apply(self.spec(subscribers, store=store))

    def configure_store(self) -> ApplyResult:
        """The store queue (hears every event and command of the service)."""
        return self.apply(self.spec(store=True))

    def apply(self, spec: Spec) -> ApplyResult:
        client = ManagementClient(
            self.management_url, self.connector.username, self.connector.password, ca_cert=self.connector.ca_cert
        )
        try:
            full = plan_live(spec, client)
            differing = [change for change in full.changes if change.action == "replace"]
            if differing:
                log.warning(
                    "left as they are (the configurer never replaces): %s differ from this configuration; "
                    "change them with `rabbitform plan` / `rabbitform apply`",
                    describe(differing),
                )
            plan = full.creates_only()
            self.last_plan = plan
            return apply_plan(plan, client)
        finally:
            client.close()

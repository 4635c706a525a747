"""Copy Topology: make the Amazon MQ broker carry the on-prem broker's topology before any
client moves, then compare both (the result is shown on the cutover gate).

- RabbitMQ (`mq_cutover.rabbit_topology`): the on-prem definitions (vhosts, exchanges, queues,
  bindings, policies; never users or permissions) through the management API, transformed
  where Amazon MQ requires it, imported through the Amazon MQ broker's management API.
- ActiveMQ (`mq_cutover.activemq_topology`): the on-prem destinations, read through Jolokia,
  become a configuration revision associated with the broker, which applies it on a reboot; the
  step then returns `rebootStarted` and the state machine waits for the broker again and calls
  this step once more, which finds the revision in place.

Nothing on-prem is changed. Run again, it changes nothing more (idempotent).
When the brokers still differ after the copy and no cutover gate will show it to people,
`TopologyCopyFailed` names each difference (before any client moves: the run rolls back).
"""

from __future__ import annotations

from typing import Any

from mq_cutover import activemq_topology, broker_api, rabbit_topology
from mq_cutover.errors import TopologyCopyFailed
from mq_cutover.plan import Engine, MigrationPlan


def on_prem_api(plan: MigrationPlan, secrets: Any) -> broker_api.Endpoint:
    """The on-prem broker's HTTP API (topology.onPremApi), with its user."""
    topology = plan.topology
    assert topology is not None and topology.on_prem_api is not None  # the plan's own rule
    return broker_api.endpoint(
        secrets, topology.on_prem_api.url, topology.on_prem_api.secret_arn, side="on-prem"
    )


def amazon_mq_api(
    plan: MigrationPlan, mq: Any, secrets: Any, broker_id: str
) -> broker_api.Endpoint:
    """The Amazon MQ RabbitMQ broker's management API, as its administrative user."""
    secret_arn = plan.admin_secret_arn
    if secret_arn is None:  # the plan's own rule asks for it; a guard for callers
        raise TopologyCopyFailed("topology.amazonMqSecretArn: the broker's admin user is unknown")
    username = plan.target.create.users[0].username if plan.target.create else None
    return broker_api.endpoint(
        secrets,
        broker_api.amazon_mq_api_url(mq, broker_id),
        secret_arn,
        side="Amazon MQ",
        username=username,
    )


def copy_topology(
    plan: MigrationPlan, mq: Any, secrets: Any, *, broker_id: str, engine: str, gated: bool
) -> dict[str, Any]:
    """Copy, compare, and return the comparison (`contracts.TopologyResult`)."""
    if Engine(engine) == Engine.RABBITMQ:
        vhosts = list(plan.topology.vhosts) if plan.topology else []
        result = rabbit_topology.copy_topology(
            on_prem_api(plan, secrets), amazon_mq_api(plan, mq, secrets, broker_id), vhosts
        )
    else:
        destinations = activemq_topology.read_destinations(on_prem_api(plan, secrets), None)
        result = activemq_topology.apply(mq, broker_id, destinations, plan.migration_id)
    if not result["matches"] and not gated and not result.get("awaitingReboot"):
        shown = "; ".join(result["differences"])
        raise TopologyCopyFailed(
            f"after the copy the Amazon MQ broker still differs from on-prem "
            f"({result['differenceCount']}): {shown} (no cutover gate to decide: nothing moved)"
        )
    return result

"""The steps of the RabbitMQ no-interruption procedure (plan mode `unordered` on a RabbitMQ
broker the plan creates), around `mq_cutover.shovels`:

1. Start Shovels (`start`): one dynamic shovel per watched queue, defined on the on-prem broker
   through its management API, moving what reaches the on-prem queue to the same queue on
   Amazon MQ (acknowledged on-prem only once Amazon MQ confirmed it). The step waits until
   every shovel runs: one that cannot reach Amazon MQ (network, CA bundle, the certificate's
   wildcard name on RabbitMQ 3.x) stops the run before any client moves (ShovelFailed).
   Until the consumers move, they and the shovels share the on-prem queues.
2. Move Consumers First: every consumer to Amazon MQ, where the shovelled messages wait.
3. Mark Shovel Baseline (`baseline`): waits (at most a minute) until no consumer but the shovel
   is left on each on-prem queue, then reads the on-prem acknowledgement counters: producers move
   only once consumers are on Amazon MQ, and later acknowledgements on-prem are the shovels'.
4. Repoint Producers, then the drain of the on-prem broker (the shovels are its consumers).
5. Verify Shovels (`verify`, `shovels.verify_moved`): every on-prem queue empty, every shovel
   running, no consumer but the shovel left, and Amazon MQ counted at least what the shovels
   took since the baseline; not verified yet -> the drain loop goes on.
6. Remove Shovels (`remove`), then the fence and the stop.

A rollback removes the shovels first (`mq_cutover.rollback`), then moves clients back as an
ordered rollback does. Nothing is removed that this migration did not define (shovel names
carry the migration id).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from mq_cutover import broker_api, shovels
from mq_cutover.drain import is_ignored
from mq_cutover.errors import ShovelFailed
from mq_cutover.plan import MigrationPlan
from mq_cutover.topology import amazon_mq_api, on_prem_api

START_WAIT_SECONDS = 90  # for every shovel to be `running`
START_POLL_SECONDS = 1.0
CONSUMERS_LEAVE_SECONDS = 60  # for the consumers to leave the on-prem queues


class ShovelAction(StrEnum):
    START = "start"
    BASELINE = "baseline"
    VERIFY = "verify"
    REMOVE = "remove"


def shovel_vhost(plan: MigrationPlan) -> str:
    """The one vhost whose queues are shovelled: topology.vhosts' only entry, else the
    Amazon MQ metrics' VirtualHost dimension, else `/`."""
    if plan.topology is not None and plan.topology.vhosts:
        return plan.topology.vhosts[0]
    return plan.target.metrics.dimensions.get("VirtualHost", "/")


def shovelled_queues(plan: MigrationPlan) -> list[str]:
    """The watched queues (listed by name: the plan's rule); ignored ones (DLQs) stay on-prem
    and are reported by the drain, as in the other procedures."""
    return [q for q in plan.on_prem.queues if not is_ignored(q, plan.on_prem.ignore_queues)]


def remove(plan: MigrationPlan, secrets: Any) -> dict[str, Any]:
    """Remove this migration's shovels from the on-prem broker (idempotent). `ran`: how many
    had connected to Amazon MQ (any state but `starting`): only those can have moved messages
    there."""
    source, vhost = on_prem_api(plan, secrets), shovel_vhost(plan)
    states = shovels.shovel_states(source, migration_id=plan.migration_id, vhost=vhost)
    removed: dict[str, Any] = shovels.remove_shovels(
        source, migration_id=plan.migration_id, vhost=vhost
    )
    return {**removed, "ran": sum(1 for state in states.values() if state != "starting")}


def _start(
    plan: MigrationPlan,
    secrets: Any,
    source: broker_api.Endpoint,
    endpoint: str,
    now: Callable[[], float],
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    problem = shovels.shovel_plugin_problem(source)
    if problem:
        raise ShovelFailed(f"the on-prem broker cannot run the shovels: {problem}")
    secret_arn = plan.admin_secret_arn
    assert secret_arn is not None and plan.topology is not None  # the plan's rules
    username = plan.target.create.users[0].username if plan.target.create else None
    user, password = broker_api.credentials(secrets, secret_arn, username)
    vhost = shovel_vhost(plan)
    destination = shovels.destination_uri(
        endpoint, user, password, ca_cert_file=plan.topology.shovel_ca_cert_file, vhost=vhost
    )
    started = shovels.start_shovels(
        source,
        migration_id=plan.migration_id,
        vhost=vhost,
        queues=shovelled_queues(plan),
        destination=destination,
    )
    started.pop("baseline", None)  # taken once consumers have moved (Mark Shovel Baseline)
    deadline = now() + START_WAIT_SECONDS
    while True:
        states = shovels.shovel_states(source, migration_id=plan.migration_id, vhost=vhost)
        waiting = {queue: state for queue, state in states.items() if state != "running"}
        if not waiting:
            return {**started, "running": True}
        if now() >= deadline:
            shown = ", ".join(f"{q}: {s}" for q, s in sorted(waiting.items())[:10])
            where = shovels.safe_endpoint(endpoint)
            raise ShovelFailed(
                f"{len(waiting)} shovel(s) on the on-prem broker not running after "
                f"{START_WAIT_SECONDS} s ({shown}): can the on-prem broker reach {where} and "
                "verify its certificate (topology.shovelCaCertFile; RabbitMQ 3.x needs the "
                "HTTPS host-name check for Amazon MQ's wildcard certificate, see the README)?"
            )
        sleep(START_POLL_SECONDS)


def _baseline(
    source: broker_api.Endpoint,
    vhost: str,
    queues: list[str],
    now: Callable[[], float],
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    """Wait until the consumers have really left the on-prem queues (only the shovels are
    left: a client reconnects after it sees its new URL, and the statistics lag about 5 s),
    at most CONSUMERS_LEAVE_SECONDS, then take the baseline, so that producers move only once
    consumers are on Amazon MQ and later acknowledgements on-prem are the shovels'. A consumer
    still there then (one that never reads its parameter) is reported; the fence before the
    stop waits for it."""
    deadline = now() + CONSUMERS_LEAVE_SECONDS
    while True:
        taken = shovels.baseline(source, vhost=vhost, queues=queues)
        if not taken["clientsLeft"] or now() >= deadline:
            return {"baseline": {"acked": taken["acked"]}, "clientsLeft": taken["clientsLeft"]}
        sleep(START_POLL_SECONDS)


def shovel_step(
    plan: MigrationPlan,
    mq: Any,
    secrets: Any,
    *,
    action: ShovelAction,
    broker_id: str,
    endpoint: str,
    baseline: dict[str, Any] | None = None,
    now: Callable[[], float],
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    """One step; `endpoint` is the Amazon MQ AMQP endpoint clients were given, `baseline` the
    Mark Shovel Baseline step's (for verify)."""
    vhost = shovel_vhost(plan)
    source = on_prem_api(plan, secrets)
    queues = shovelled_queues(plan)
    if action == ShovelAction.START:
        return {"action": action.value, **_start(plan, secrets, source, endpoint, now, sleep)}
    if action == ShovelAction.BASELINE:
        return {"action": action.value, **_baseline(source, vhost, queues, now, sleep)}
    if action == ShovelAction.VERIFY:
        target = amazon_mq_api(plan, mq, secrets, broker_id)
        verified = shovels.verify_moved(
            source,
            target,
            vhost=vhost,
            queues=queues,
            migration_id=plan.migration_id,
            baseline=baseline,
        )
        return {"action": action.value, **verified}
    return {"action": action.value, **remove(plan, secrets)}

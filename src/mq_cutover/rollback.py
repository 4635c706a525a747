"""A rollback that brings the messages home, not only the URLs.

Putting the parameters back is not enough once producers have sent to Amazon MQ: those messages
would wait there with no consumer. So a rollback is the cutover run backwards, one action per
call, each derived from where the clients point *now* (read from Parameter Store), so that a
retried or resumed call picks up where the last one stopped:

ordered mode (keeps FIFO order per producer and queue, at the cost of a second interruption):
  producers on Amazon MQ, consumers on-prem  -> drain on-prem (the older backlog first), then
                                                move consumers to Amazon MQ
  producers and consumers on Amazon MQ       -> wait until no consumer is left on-prem (a
                                                fence: a consumer still on its on-prem
                                                connection would take the producers' newest
                                                messages before Amazon MQ's), then producers
                                                back to on-prem
  producers on-prem, consumers on Amazon MQ  -> drain Amazon MQ, then consumers back to on-prem
unordered mode (no interruption; consumers read both brokers while they are emptied):
  producers on Amazon MQ                     -> consumers widened (again, if narrowed), then
                                                producers back to on-prem
  producers on-prem, consumers not           -> drain Amazon MQ, then consumers back to on-prem
and nothing moved at all -> the consumers' parameters back (if any changed), done.
RabbitMQ, mode unordered (shovels, `mq_cutover.shovel_steps`): the migration's shovels are
removed from the on-prem broker first (they would go on moving what producers send on-prem to
Amazon MQ); then the ordered rules above apply, and Amazon MQ is drained before consumers go back
whenever a shovel may have moved messages there: if no consumer had moved yet (a failure between
Start Shovels and Move Consumers First), consumers go to Amazon MQ to empty it, then come back.
"May have moved" (`shovelled`): a shovel the removal found had connected (`ran`), or Start
Shovels succeeded (the state machine adds `shovelsRan`: it waits until every shovel runs), or
Start Shovels failed after it may have defined some (`shovelsStarted`: every failure but a first
attempt refused before defining any) and the removal found none. The last is conservative: a
removal whose response was lost (retried, redriven) cannot be told from shovels never defined,
so they are taken to have run; at worst consumers go to an empty Amazon MQ and come back. A
rollback before Start Shovels was entered, or whose removal found only shovels that never
connected, does not drain Amazon MQ.

A drain is the state machine's loop (the same rules as the forward drain: missing and stale are
never zero, K readings, producers quiet on Amazon MQ); its timeout opens gate
`rollbackDrainTimeout`, which shows the numbers. The on-prem drain of an ordered rollback does not
wait for producers to be quiet: its point is that every message sent before a producer moved was
consumed (a reading at 0 proves it), while a producer that never moved keeps sending on-prem,
where consumers find its messages when they come back.

Which values are "moved" is known without reading labels: a value this migration writes (the
Amazon MQ URL, a widened or narrowed URL) is moved; anything else is on-prem or someone else's
(a conflict the parameter restore reports and leaves alone).

A call may be run again with the memo it was given (the state machine retries a throttled or
unreachable AWS API, a lost response or a Lambda error; a redrive resumes with the variables as
they were): what the lost call learnt must not matter for "nothing is lost". The one thing the
memo knows that the parameters no longer show is that producers were on Amazon MQ once they are
back on-prem. So when it matters (no producer on Amazon MQ now, consumers out, Amazon MQ not yet
drained) and the memo does not say, it is read from the labels (`producers_moved`): a producer
parameter with a version labelled `cutover-<id>` (or `rollback-<id>`) was moved. And a producer
restore whose call was lost may have lost its restart hook too: until a call that restored them
finished (`producersBack`), the restore runs again (it changes nothing, and sends the restart
unless one with its comment was sent since the restore); the consumers' likewise
(`consumersOut`, `consumersBack`). `drained` is added by the state machine after a drain, never
by a call, so a retry cannot lose it; lost `conflicts` are found again. Removed shovels leave
no trace either: whether they may have moved messages is kept by the state machine (`shovelsRan`,
`shovelsStarted`, above).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.client_urls import failover_members
from mq_cutover.drain import SideName
from mq_cutover.errors import ParameterConflict
from mq_cutover.parameters import (
    ClientStep,
    TimeLeft,
    migration_values,
    own_label,
    repoint_clients,
    rollback_label,
    rollback_parameters,
    summarized,
)
from mq_cutover.plan import MigrationPlan, Mode

GET_PARAMETERS_BATCH = 10  # GetParameters' limit
ON_PREM_FENCE = "onPremFence"  # the memo's name for "no consumer left on-prem" (ordered)


class Action(StrEnum):
    DRAIN = "drain"
    CONSUMERS_TO_AMAZON_MQ = "consumers-to-amazon-mq"
    WIDEN_CONSUMERS = "widen-consumers"
    PRODUCERS_BACK = "producers-back"
    CONSUMERS_BACK = "consumers-back"
    REMOVE_SHOVELS = "remove-shovels"
    DONE = "done"


def current_values(ssm: Any, names: list[str]) -> dict[str, str | None]:
    """Every parameter's current value (None: it no longer exists), ten a call."""
    values: dict[str, str | None] = dict.fromkeys(names)
    for offset in range(0, len(names), GET_PARAMETERS_BATCH):
        batch = names[offset : offset + GET_PARAMETERS_BATCH]
        try:
            found = ssm.get_parameters(Names=batch, WithDecryption=True)
        except ClientError as exc:
            raise_if_throttled(exc)
            raise
        for parameter in found.get("Parameters", []):
            values[parameter["Name"]] = str(parameter["Value"])
    return values


@dataclass(frozen=True)
class ProducersMoved:
    """What the labels say of the producers: `moved`, ever (by any attempt of this migration);
    `this_run`, by this execution (a labelled version written since it started)."""

    moved: bool
    this_run: bool
    calls: int  # GetParameters calls made


def producers_moved(plan: MigrationPlan, ssm: Any, since: datetime | None) -> ProducersMoved:
    """Whether any producer parameter was ever moved by this migration, from its labels: a
    version labelled `cutover-<id>` (each version the migration writes), or, for a write whose
    label was never set (an attempt that died between put and label), `rollback-<id>` (each
    version the rollback restored). Ten `name:label` selectors a GetParameters call (an unknown
    label is only an InvalidParameters entry), no values decrypted; it stops at the first
    version written since `since` (this execution's start; None: any counts), and reads every
    producer only when none was (at 10,000 producers: at most 2,000 calls, once a rollback)."""
    moved = False
    calls = 0
    names = list(plan.producers.parameters)
    for label in (own_label(plan.migration_id), rollback_label(plan.migration_id)):
        for offset in range(0, len(names), GET_PARAMETERS_BATCH):
            selectors = [
                f"{name}:{label}" for name in names[offset : offset + GET_PARAMETERS_BATCH]
            ]
            try:
                found = ssm.get_parameters(Names=selectors, WithDecryption=False)
            except ClientError as exc:
                raise_if_throttled(exc)
                raise
            calls += 1
            for version in found.get("Parameters", []):
                moved = True
                written = version.get("LastModifiedDate")
                if since is None or (isinstance(written, datetime) and written >= since):
                    return ProducersMoved(moved=True, this_run=True, calls=calls)
    return ProducersMoved(moved=moved, this_run=False, calls=calls)


def _is_widened(value: str | None, broker: dict[str, Any]) -> bool:
    """Widened: a failover URL with Amazon MQ *and* another member."""
    if not value or not value.startswith("failover:"):
        return False
    members = failover_members(value)
    amazon_mq = set(broker.get("endpoints") or [])
    return bool(amazon_mq & set(members)) and bool(set(members) - amazon_mq)


def where_clients_are(
    plan: MigrationPlan, ssm: Any, broker: dict[str, Any] | None, conflicts: set[str]
) -> dict[str, dict[str, list[str]]]:
    """Per group, the parameters that point at Amazon MQ only (`amazonMq`), at both brokers
    (`widened`), elsewhere (`onPrem`: the original value), or that someone else changed
    (`conflicts`, found by an earlier call: left alone)."""
    ours = migration_values(plan, broker)
    values = current_values(ssm, plan.all_parameters)
    placed: dict[str, dict[str, list[str]]] = {}
    for group_name, group in (("producers", plan.producers), ("consumers", plan.consumers)):
        places: dict[str, list[str]] = {"amazonMq": [], "widened": [], "onPrem": []}
        for name in group.parameters:
            value = values[name]
            if name in conflicts and value not in ours:
                continue
            if value not in ours or broker is None:
                places["onPrem"].append(name)
            elif _is_widened(value, broker):
                places["widened"].append(name)
            else:
                places["amazonMq"].append(name)
        placed[group_name] = places
    return placed


def next_action(
    plan: MigrationPlan,
    placed: dict[str, dict[str, list[str]]],
    memo: dict[str, Any],
) -> tuple[Action, SideName | None, str | None]:
    """What the rollback does next, from where the clients point and what it has done; for a
    wait, on which broker and what for (`rollbackDrain`, or `fence`: no consumer left)."""
    producers, consumers = placed["producers"], placed["consumers"]
    drained = set(memo.get("drained") or [])
    producers_out = bool(producers["amazonMq"] or producers["widened"])
    consumers_out = bool(consumers["amazonMq"] or consumers["widened"])
    if plan.shovels and not memo.get("shovelsRemoved"):
        return Action.REMOVE_SHOVELS, None, None
    if plan.mode == Mode.ORDERED or plan.shovels:
        if producers_out:
            if not consumers["onPrem"]:
                if ON_PREM_FENCE not in drained:
                    return Action.DRAIN, SideName.ON_PREM, "fence"
                return Action.PRODUCERS_BACK, None, None
            if consumers_out or SideName.ON_PREM.value in drained:
                return Action.CONSUMERS_TO_AMAZON_MQ, None, None
            return Action.DRAIN, SideName.ON_PREM, "rollbackDrain"
    elif producers_out:
        if consumers["amazonMq"] or consumers["onPrem"]:
            return Action.WIDEN_CONSUMERS, None, None
        return Action.PRODUCERS_BACK, None, None
    if (
        memo.get("producersOut")
        and not memo.get("producersBack")
        and plan.producers.restart_hook is not None
    ):
        # Producers are back on-prem, but the call that restored them did not finish (a retry
        # or a redrive after it was lost): its restart hook may never have been sent. The
        # restore runs again: it changes nothing, and sends the restart unless it was sent.
        return Action.PRODUCERS_BACK, None, None
    if consumers_out:
        if memo.get("producersMoved") and SideName.AMAZON_MQ.value not in drained:
            return Action.DRAIN, SideName.AMAZON_MQ, "rollbackDrain"
        return Action.CONSUMERS_BACK, None, None
    if plan.shovels and memo.get("shovelled") and SideName.AMAZON_MQ.value not in drained:
        # The shovels ran (or may have) before any consumer moved (a failure in between): what
        # they moved waits on Amazon MQ with no consumer. Consumers go there to empty it, then
        # come back.
        return Action.CONSUMERS_TO_AMAZON_MQ, None, None
    if (
        memo.get("consumersOut")
        and not memo.get("consumersBack")
        and plan.consumers.restart_hook is not None
    ):
        # The same for the consumers' restore: its call did not finish, their restart may
        # never have been sent.
        return Action.CONSUMERS_BACK, None, None
    return Action.DONE, None, None


def roll_back_step(
    plan: MigrationPlan,
    ssm: Any,
    broker: dict[str, Any] | None,
    memo: dict[str, Any] | None,
    cursor: dict[str, Any] | None = None,
    time_left_ms: TimeLeft | None = None,
    remove_shovels: Callable[[], dict[str, Any]] | None = None,
    started_at: datetime | None = None,
) -> dict[str, Any]:
    """One rollback action (or as much of it as the Lambda's time allows). Returns the action,
    what changed, the memo to pass back and the cursor. The memo: `producersMoved` (Amazon MQ
    may hold producers' or shovels' messages: drained before consumers come back),
    `producersOut` (this execution found producers on Amazon MQ), `producersBack` (a call that
    restored them finished, restart hook sent), `producersChecked` (the labels were read),
    `consumersOut` and `consumersBack` (the same for consumers),
    `drained` (added by the state machine), `conflicts`, and the shovels' flags: `shovelsRan`
    and `shovelsStarted` (added by the state machine's Start Shovels), `shovelsRemoved`,
    `shovelled` (Amazon MQ may hold what they moved).
    `remove_shovels` removes the migration's shovels (RabbitMQ, mode unordered); `started_at`
    is when the execution started (labels written since are this execution's)."""
    memo = dict(memo or {})
    placed = where_clients_are(plan, ssm, broker, set(memo.get("conflicts") or []))
    producers_out = bool(placed["producers"]["amazonMq"] or placed["producers"]["widened"])
    consumers_out = bool(placed["consumers"]["amazonMq"] or placed["consumers"]["widened"])
    memo["producersMoved"] = bool(memo.get("producersMoved") or producers_out)
    if producers_out:
        memo["producersOut"] = True
    if consumers_out:
        memo["consumersOut"] = True
    memo.setdefault("drained", [])
    if (
        consumers_out
        and not producers_out
        and not memo.get("producersOut")
        and not memo.get("producersChecked")
        and SideName.AMAZON_MQ.value not in memo["drained"]
    ):
        # The next action depends on whether producers moved (drain Amazon MQ before consumers
        # come back), and the memo does not say: a first call, or a retry or redrive of a call
        # that restored them and was lost. The parameters' labels do.
        found = producers_moved(plan, ssm, started_at)
        memo["producersChecked"] = True
        memo["producersMoved"] = memo["producersMoved"] or found.moved
        if found.this_run:
            memo["producersOut"] = True
    action, side, purpose = next_action(plan, placed, memo)
    start = int((cursor or {}).get("next", 0)) if (cursor or {}).get("action") == action else 0
    result: dict[str, Any] = {
        "action": action.value,
        "side": side.value if side else None,
        "purpose": purpose,
        # What the memo's `drained` records once the wait is over.
        "wait": (ON_PREM_FENCE if purpose == "fence" else side.value) if side else None,
        "finished": action == Action.DONE,
        "restored": [],
        "conflicts": [],
        "moved": [],
        "restartCommandIds": {},
        "memo": memo,
        "cursor": {"action": action.value, "next": 0},
        "where": {
            group: {place: len(names) for place, names in places.items()}
            for group, places in placed.items()
        },
    }
    if action == Action.REMOVE_SHOVELS:
        if remove_shovels is None:
            raise ValueError("remove_shovels is needed for a rollback with shovels")
        removed = remove_shovels()
        memo["shovelsRemoved"] = True
        # A shovel that connected may have moved messages to Amazon MQ: it is drained (by
        # consumers there) before consumers come back. Whether one connected is read from the
        # shovels themselves (`ran`), but removing them leaves no trace: a retry or redrive of
        # a removal whose response was lost finds none. So the state machine's own record
        # counts too: every shovel ran (Start Shovels succeeded), or some may have been defined
        # (it failed) and none is left to look at: assumed to have run.
        lost = bool(memo.get("shovelsStarted")) and not removed.get("count")
        if removed.get("ran") or memo.get("shovelsRan") or lost:
            memo["shovelled"] = True
            memo["producersMoved"] = True
        result["shovels"] = removed
    elif action in (Action.CONSUMERS_TO_AMAZON_MQ, Action.WIDEN_CONSUMERS):
        if broker is None:  # unreachable: clients point at Amazon MQ only if it is known
            raise ParameterConflict("clients point at Amazon MQ but the broker is unknown")
        step = (
            ClientStep.CONSUMERS
            if action == Action.CONSUMERS_TO_AMAZON_MQ
            else ClientStep.WIDEN_CONSUMERS
        )
        moved = repoint_clients(
            plan, ssm, step, broker, time_left_ms=time_left_ms, start=start, skip_conflicts=True
        )
        result["moved"] = moved["changed"]
        result["conflicts"] = moved["conflicts"]
        result["restartCommandIds"] = (
            {"consumers": moved["restartCommandId"]} if moved["restartCommandId"] else {}
        )
        result["cursor"]["next"] = 0 if moved["done"] else moved["next"]
    elif action in (Action.PRODUCERS_BACK, Action.CONSUMERS_BACK):
        group = "producers" if action == Action.PRODUCERS_BACK else "consumers"
        restored = rollback_parameters(
            plan, ssm, broker, time_left_ms=time_left_ms, start=start, groups=(group,)
        )
        result["restored"] = restored["restored"]
        result["conflicts"] = restored["conflicts"]
        result["restartCommandIds"] = restored["restartCommandIds"]
        result["cursor"]["next"] = 0 if restored["done"] else restored["next"]
        if restored["done"]:
            memo[f"{group}Back"] = True
    known = set(memo.get("conflicts") or [])
    # The memo keeps every conflict's name (the next call must leave them alone); the result
    # names the first few of each list and counts them all (it travels in the state).
    memo["conflicts"] = sorted(known | {c["name"] for c in result["conflicts"]})
    return summarized(result, ("restored", "conflicts", "moved"))

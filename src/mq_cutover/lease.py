"""One run per migration: a lease in DynamoDB, held while the execution that took it runs.

No expiry to tune and nothing to release: a later execution may take the lease over only once
Step Functions says the holder is no longer RUNNING (it ended, however it ended).

The lease is taken once, at the start; a redriven execution (Step Functions restarts a failed,
stopped or timed-out one from where it ended) never passes that step again. So every step that
changes something first checks that its execution still holds the lease (`verify_lease`): an
older attempt resumed after a later one took over changes nothing and stops.

The same item carries a person's abort (`mq-cutover abort`) and the two moments after which it
no longer applies, each written conditionally so DynamoDB decides every race on the one item:
- `abortRequested`: who (name, IAM principal), when, why. Recorded only while neither of the
  other two is; from then on `verify_lease` and the wait loops' `check_abort` raise
  AbortRequested, so the run takes its rollback path at its next step or reading.
- `pointOfNoReturn`: the on-prem stop begins (Stop On-Prem, or the manual stop's gate opens);
  written only while no abort is recorded.
- `rollingBack`: the run's rollback began (whatever the cause); its own steps ignore an abort.
A new run of the migration replaces the item (take_lease), so none of them carries over."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.errors import AbortRequested, LeaseLost, MigrationAlreadyRunning


def take_lease(
    table: Any, sfn: Any, *, migration_id: str, execution_arn: str, now: datetime
) -> dict[str, Any]:
    item = {"migrationId": migration_id, "executionArn": execution_arn, "since": now.isoformat()}
    try:
        table.put_item(Item=item, ConditionExpression="attribute_not_exists(migrationId)")
        return {**item, "tookOverFrom": None}
    except ClientError as exc:
        raise_if_throttled(exc)
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
    holder = table.get_item(Key={"migrationId": migration_id}, ConsistentRead=True)["Item"]
    holder_arn = str(holder["executionArn"])
    if holder_arn == execution_arn:
        # A retried take by the holder leaves the item as it is (an abort recorded since too).
        return {**item, "since": holder.get("since"), "tookOverFrom": None}
    try:
        status = sfn.describe_execution(executionArn=holder_arn)["status"]
    except ClientError as exc:
        raise_if_throttled(exc)
        if exc.response["Error"]["Code"] != "ExecutionDoesNotExist":
            raise
        status = "GONE"
    if status == "RUNNING":
        raise MigrationAlreadyRunning(
            f"migration {migration_id} is already being run by {holder_arn.rsplit(':', 1)[-1]} "
            f"(since {holder.get('since')}); nothing was changed. Wait for it to end, or stop it"
        )
    try:
        table.put_item(
            Item=item,
            ConditionExpression="executionArn = :holder",
            ExpressionAttributeValues={":holder": holder_arn},
        )
    except ClientError as exc:
        raise_if_throttled(exc)
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise MigrationAlreadyRunning(
                f"another execution took migration {migration_id} at the same moment; nothing "
                "was changed"
            ) from exc
        raise
    return {**item, "tookOverFrom": holder_arn.rsplit(":", 1)[-1], "holderStatus": status}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _name(execution_arn: str) -> str:
    return execution_arn.rsplit(":", 1)[-1]


ABORT = "abortRequested"
POINT_OF_NO_RETURN = "pointOfNoReturn"
ROLLING_BACK = "rollingBack"
# The manual stop's gate: once it opens, a person may be stopping on-prem by hand.
MANUAL_STOP_GATE = "confirmOnPremStopped"


def abort_text(abort: Mapping[str, Any]) -> str:
    """How an abort is told everywhere: the run's failure cause, its notification, the CLI."""
    return f"aborted by {abort.get('name')} ({abort.get('principal')}): {abort.get('reason')}"


def _read(table: Any, migration_id: str) -> dict[str, Any] | None:
    try:
        item = table.get_item(Key={"migrationId": migration_id}, ConsistentRead=True).get("Item")
    except ClientError as exc:
        raise_if_throttled(exc)
        raise
    return dict(item) if item else None


def _condition_failed(exc: ClientError) -> bool:
    raise_if_throttled(exc)
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


def _check_holder(item: dict[str, Any] | None, migration_id: str, execution_arn: str) -> None:
    holder = str(item["executionArn"]) if item else None
    if holder != execution_arn:
        held_by = (
            f"{_name(holder)} holds it (since {item.get('since') if item else '?'})"
            if holder
            else "nobody holds it"
        )
        raise LeaseLost(
            f"execution {_name(execution_arn)} no longer holds migration {migration_id}'s lease: "
            f"{held_by}; nothing was changed. A later attempt owns the clients now: this run "
            "stops without rolling anything back"
        )


def _raise_if_aborted(item: dict[str, Any] | None) -> None:
    """AbortRequested if a person asked for the rollback and it has not begun yet."""
    if item and item.get(ABORT) and not item.get(ROLLING_BACK):
        raise AbortRequested(abort_text(item[ABORT]))


def verify_lease(table: Any, *, migration_id: str, execution_arn: str) -> dict[str, Any]:
    """The lease, if `execution_arn` holds it; else LeaseLost (nothing may be changed). If a
    person asked for the rollback, AbortRequested: nothing is changed, the run rolls back.

    Read consistently, just before the step's first change: a later attempt can only take the
    lease once this execution is not RUNNING, so one that is running and holds it now is not
    raced by another run's changes (a redrive makes it RUNNING again without taking it)."""
    item = _read(table, migration_id)
    _check_holder(item, migration_id, execution_arn)
    _raise_if_aborted(item)
    return dict(item or {})


def check_abort(table: Any, *, migration_id: str) -> None:
    """For the steps that change nothing (the wait loops' checks: broker creation, restart
    hooks, drain, placement, fence; a gate opening): AbortRequested if a person asked for the
    rollback, so a run waiting there rolls back at its next reading. A rollback's own checks
    pass (it has begun)."""
    _raise_if_aborted(_read(table, migration_id))


def gate_may_open(table: Any, *, migration_id: str, gate: str, now: datetime) -> None:
    """Before a gate is opened (and its links sent): AbortRequested if a person asked for the
    rollback. The manual stop's gate is the point of no return (the person it asks may stop
    on-prem at once), so it is marked as such, in one write that fails if an abort came first."""
    if gate == MANUAL_STOP_GATE:
        pass_point_of_no_return(
            table, migration_id=migration_id, execution_arn=None, step=f"gate {gate}", now=now
        )
    else:
        check_abort(table, migration_id=migration_id)


def pass_point_of_no_return(
    table: Any, *, migration_id: str, execution_arn: str | None, step: str, now: datetime
) -> dict[str, Any]:
    """Mark that the on-prem stop begins, unless an abort was recorded first (then
    AbortRequested: nothing is stopped, the run rolls back). One conditional write, so an abort
    and the stop cannot both win; a retried step finds its own mark and passes.

    `execution_arn`: the run that stops (its lease is checked in the same write); None where the
    caller does not know it (the manual stop's gate)."""
    mark = {"step": step, "at": _iso(now)}
    condition = f"attribute_exists(migrationId) AND attribute_not_exists({ABORT})"
    values: dict[str, Any] = {":mark": mark}
    if execution_arn is not None:
        condition += " AND executionArn = :me"
        values[":me"] = execution_arn
    try:
        return dict(
            table.update_item(
                Key={"migrationId": migration_id},
                UpdateExpression=(
                    f"SET {POINT_OF_NO_RETURN} = if_not_exists({POINT_OF_NO_RETURN}, :mark)"
                ),
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )["Attributes"]
        )
    except ClientError as exc:
        if not _condition_failed(exc):
            raise
    item = _read(table, migration_id)
    if execution_arn is not None:
        _check_holder(item, migration_id, execution_arn)
    if item and item.get(ABORT):
        raise AbortRequested(abort_text(item[ABORT]))
    raise LeaseLost(
        f"nobody holds migration {migration_id}'s lease; {step} changed nothing and this run "
        "stops without rolling anything back"
    )


def mark_rolling_back(
    table: Any,
    *,
    migration_id: str,
    execution_arn: str,
    failure: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """The rollback's lease check (LeaseLost unless `execution_arn` holds the lease), which
    also marks, once, that the rollback began and after what: an abort asked from now on is
    answered "already rolling back", and one recorded before no longer stops the rollback."""
    failure = failure or {}
    began = {
        "at": _iso(now),
        "state": str(failure.get("state") or "?"),
        "error": str(failure.get("error") or "?"),
    }
    try:
        return dict(
            table.update_item(
                Key={"migrationId": migration_id},
                UpdateExpression=f"SET {ROLLING_BACK} = if_not_exists({ROLLING_BACK}, :began)",
                ConditionExpression="executionArn = :me",
                ExpressionAttributeValues={":began": began, ":me": execution_arn},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        )
    except ClientError as exc:
        if not _condition_failed(exc):
            raise
    _check_holder(_read(table, migration_id), migration_id, execution_arn)
    raise LeaseLost(f"migration {migration_id}'s lease changed during the rollback")


def _refusal(item: dict[str, Any] | None, migration_id: str) -> dict[str, Any] | None:
    """Why an abort cannot be recorded now, or None."""
    if item is None:
        return {
            "outcome": "not-running",
            "detail": f"{migration_id} is not running (no run holds it): nothing to abort",
        }
    if item.get(ABORT):
        abort = item[ABORT]
        began = item.get(ROLLING_BACK)
        then = f"its rollback began at {began.get('at')}" if began else "it rolls back next"
        return {
            "outcome": "already-aborted",
            "detail": f"{migration_id} was already {abort_text(abort)} (at {abort.get('at')}); "
            + then,
            "abort": dict(abort),
        }
    if item.get(ROLLING_BACK):
        began = item[ROLLING_BACK]
        return {
            "outcome": "already-rolling-back",
            "detail": f"{migration_id} is already rolling back (or rolled back) since "
            f"{began.get('at')}, after {began.get('state')} failed ({began.get('error')})",
        }
    if item.get(POINT_OF_NO_RETURN):
        mark = item[POINT_OF_NO_RETURN]
        return {
            "outcome": "past-point-of-no-return",
            "detail": f"{migration_id} passed the point of no return at {mark.get('at')} "
            f"({mark.get('step')}: on-prem is being stopped); it can no longer roll back",
        }
    return None


def record_abort(
    table: Any,
    *,
    migration_id: str,
    approver: Mapping[str, str],
    principal: str,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    """Record a verified approver's abort on the run that holds the migration, only while it
    has neither passed the point of no return nor begun rolling back (one conditional write).

    Outcomes: abort-requested (with `abort` and `execution`), or a refusal with its `detail`:
    not-running, past-point-of-no-return, already-aborted (with `abort`), already-rolling-back.
    """
    abort = {
        "by": str(approver["id"]),
        "name": str(approver["name"]),
        "principal": principal,
        "reason": reason,
        "at": _iso(now),
    }
    for _attempt in range(3):  # the lease may change hands between the read and the write
        item = _read(table, migration_id)
        refused = _refusal(item, migration_id)
        if refused is not None or item is None:
            return refused or {}
        try:
            table.update_item(
                Key={"migrationId": migration_id},
                UpdateExpression=f"SET {ABORT} = :abort",
                ConditionExpression=(
                    f"executionArn = :holder AND attribute_not_exists({ABORT}) AND "
                    f"attribute_not_exists({POINT_OF_NO_RETURN}) AND "
                    f"attribute_not_exists({ROLLING_BACK})"
                ),
                ExpressionAttributeValues={":abort": abort, ":holder": item["executionArn"]},
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            continue
        return {
            "outcome": "abort-requested",
            "migrationId": migration_id,
            "execution": _name(str(item["executionArn"])),
            "abort": abort,
            "detail": f"{migration_id} {abort_text(abort)}",
        }
    return _refusal(_read(table, migration_id), migration_id) or {
        "outcome": "not-running",
        "detail": f"{migration_id} changed hands while the abort was being recorded; try again",
    }

"""One run per migration: a lease in DynamoDB, held while the execution that took it runs.

No expiry to tune and nothing to release: a later execution may take the lease over only once
Step Functions says the holder is no longer RUNNING (it ended, however it ended).

The lease is taken once, at the start; a redriven execution (Step Functions restarts a failed,
stopped or timed-out one from where it ended) never passes that step again. So every step that
changes something first checks that its execution still holds the lease (`verify_lease`): an
older attempt resumed after a later one took over changes nothing and stops."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.errors import LeaseLost, MigrationAlreadyRunning


def take_lease(
    table: Any, sfn: Any, *, migration_id: str, execution_arn: str, now: datetime
) -> dict[str, Any]:
    item = {"migrationId": migration_id, "executionArn": execution_arn, "since": now.isoformat()}
    try:
        table.put_item(
            Item=item,
            ConditionExpression="attribute_not_exists(migrationId) OR executionArn = :me",
            ExpressionAttributeValues={":me": execution_arn},
        )
        return {**item, "tookOverFrom": None}
    except ClientError as exc:
        raise_if_throttled(exc)
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
    holder = table.get_item(Key={"migrationId": migration_id}, ConsistentRead=True)["Item"]
    holder_arn = str(holder["executionArn"])
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


def _name(execution_arn: str) -> str:
    return execution_arn.rsplit(":", 1)[-1]


def verify_lease(table: Any, *, migration_id: str, execution_arn: str) -> dict[str, Any]:
    """The lease, if `execution_arn` holds it; else LeaseLost (nothing may be changed).

    Read consistently, just before the step's first change: a later attempt can only take the
    lease once this execution is not RUNNING, so one that is running and holds it now is not
    raced by another run's changes (a redrive makes it RUNNING again without taking it)."""
    try:
        item = table.get_item(Key={"migrationId": migration_id}, ConsistentRead=True).get("Item")
    except ClientError as exc:
        raise_if_throttled(exc)
        raise
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
    return dict(item or {})

"""An approval gate's record in DynamoDB: read it, find a migration's open gates, say why a
conditional write found it closed, reopen it after a decision could not be delivered, and close
it for good when its task attempt failed (withdrawn).

The record holds the task token: it is never logged, emailed, shown or returned. The table's
`ByMigration` index projects no token and is only used to find the keys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from mq_cutover.approvers import approving_votes

DECISIONS = ("approve", "reject", "extend")
OUTCOMES = {"approve": "approved", "reject": "rejected", "extend": "extended"}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def public_outcome(record: dict[str, Any], outcome: str, by: str, now: datetime) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "gate": record["gate"],
        "migrationId": record["migrationId"],
        "decidedBy": by,
        "decidedAt": iso(now),
    }


def load(table: Any, approval_id: str) -> dict[str, Any] | None:
    item = table.get_item(Key={"approvalId": approval_id}, ConsistentRead=True).get("Item")
    return dict(item) if item else None


def open_keys(table: Any, migration_id: str, gate: str | None = None) -> list[dict[str, Any]]:
    """The index entries (keys, gate and status: never a token) of a migration's open gates,
    newest first. The index is eventually consistent: read the record before trusting it."""
    keys: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "IndexName": "ByMigration",
        "KeyConditionExpression": Key("migrationId").eq(migration_id),
        "ScanIndexForward": False,
    }
    while True:
        page = table.query(**kwargs)
        keys.extend(dict(i) for i in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return [
        k for k in keys if k.get("status") == "PENDING" and (gate is None or k.get("gate") == gate)
    ]


def pending_for(table: Any, migration_id: str, gate: str | None = None) -> list[dict[str, Any]]:
    """The open gates of a migration, newest first, read by key (the index holds no token and
    is only used to find them)."""
    keys = open_keys(table, migration_id, gate)
    found = []
    for item in keys:
        record = load(table, str(item["approvalId"]))
        if record is not None and record.get("status") == "PENDING":
            found.append(record)
    return found


def closed_outcome(
    table: Any, approval_id: str, now: datetime, decision: str = ""
) -> dict[str, Any]:
    """Why a conditional write failed: unknown, decided, expired, not extendable, or already
    voted."""
    record = load(table, approval_id)
    if record is None:
        return {"outcome": "not-found"}
    if record.get("status") != "PENDING":
        return {
            "outcome": "already-decided",
            "status": record["status"],
            "decidedBy": record.get("decidedBy"),
            "decidedAt": record.get("decidedAt"),
        }
    if int(record.get("deadlineEpoch", 0)) <= int(now.timestamp()):
        return {"outcome": "expired", "expiresAt": record.get("expiresAt")}
    if decision == "extend" and not record.get("extendMinutes"):
        return {"outcome": "cannot-extend"}
    return {"outcome": "already-voted", "votes": len(approving_votes(record))}


def reopen(table: Any, record: dict[str, Any], status: str) -> None:
    """Undo our status write (only if it is still ours) after a failed delivery."""
    reopen = status == "PENDING"
    table.update_item(
        Key={"approvalId": record["approvalId"]},
        UpdateExpression=(
            "SET #s = :new REMOVE decidedBy, decidedAt" if reopen else "SET #s = :new"
        ),
        ConditionExpression="#s = :ours",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":new": status, ":ours": record["status"]},
    )


# Who "decided" a gate that nobody may answer any more, as its page shows it ("Already
# withdrawn by ..."): a person who opens an old link learns why it decides nothing.
WITHDRAWN_BY = "mq-cutover: this request failed before it was complete"


def close_unanswerable(
    table: Any, record: dict[str, Any], status: str, by: str, now: datetime
) -> bool:
    """Replace a gate's record, only while it is still open, by `record` closed (`status`,
    decided by `by`) and without its task token, which resumes nothing: that task attempt
    failed. A PutItem: the function that opens gates never reads or updates a record (only the
    approval API does). Returns whether it was closed."""
    closed = {k: v for k, v in record.items() if k != "taskToken"}
    closed.update(status=status, decidedBy=by, decidedAt=iso(now))
    try:
        table.put_item(
            Item=closed,
            ConditionExpression="attribute_exists(approvalId) AND #s = :pending",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":pending": "PENDING"},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return False
    return True

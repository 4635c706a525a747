"""Approval gates: a record per gate, an email that says what is about to happen, and a decision
that only a deliberate POST (or the CLI) can make, once.

Mail and chat scanners fetch every link in a message: a GET therefore only shows the facts and
a form. Links carry a signed, expiring id (approval_links), never the task token; the token stays
in DynamoDB and is never logged, emailed, shown or returned.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import BotoCoreError, ClientError

from mq_cutover.approval_links import new_approval_id, sign
from mq_cutover.approval_pages import approval_email

DECISIONS = ("approve", "reject", "extend")
OUTCOMES = {"approve": "approved", "reject": "rejected", "extend": "extended"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def request_approval(
    table: Any,
    sns: Any,
    *,
    key: bytes,
    topic_arn: str,
    api_url: str,
    task_token: str,
    migration_id: str,
    gate: str,
    facts: dict[str, Any],
    quorum: int,
    timeout_seconds: int,
    now: datetime,
    extend_minutes: int | None = None,
) -> dict[str, Any]:
    """Store the gate's record and email the approvers. Returns the approval id (no token).

    `extend_minutes`: the gate may also be answered "wait that much longer" (the drain timeout
    gate, while the plan allows more extensions)."""
    approval_id = new_approval_id()
    expires = now + timedelta(seconds=timeout_seconds)
    deadline = int(expires.timestamp())
    table.put_item(
        Item={
            "approvalId": approval_id,
            "taskToken": task_token,
            "migrationId": migration_id,
            "gate": gate,
            "facts": json.dumps(facts),
            "status": "PENDING",
            "quorum": quorum,
            "votes": [],
            "createdAt": _iso(now),
            "expiresAt": _iso(expires),
            "deadlineEpoch": deadline,
            # DynamoDB TTL: decided records stay 30 days for the audit trail.
            "expiresAtEpoch": int((expires + timedelta(days=30)).timestamp()),
            **({"extendMinutes": extend_minutes} if extend_minutes else {}),
        },
        ConditionExpression="attribute_not_exists(approvalId)",
    )
    link = f"{api_url.rstrip('/')}/{sign(key, approval_id, deadline)}"
    subject, body = approval_email(
        migration_id=migration_id,
        gate=gate,
        facts=facts,
        expires=_iso(expires),
        quorum=quorum,
        link=link,
        extend_minutes=extend_minutes,
    )
    sns.publish(TopicArn=topic_arn, Subject=subject, Message=body)
    return {"approvalId": approval_id, "gate": gate, "expiresAt": _iso(expires)}


def load(table: Any, approval_id: str) -> dict[str, Any] | None:
    item = table.get_item(Key={"approvalId": approval_id}, ConsistentRead=True).get("Item")
    return dict(item) if item else None


def pending_for(table: Any, migration_id: str, gate: str | None = None) -> list[dict[str, Any]]:
    """The open gates of a migration (for the CLI), newest first."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "IndexName": "ByMigration",
        "KeyConditionExpression": Key("migrationId").eq(migration_id),
        "ScanIndexForward": False,
    }
    while True:
        page = table.query(**kwargs)
        items.extend(dict(i) for i in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return [
        i for i in items if i.get("status") == "PENDING" and (gate is None or i["gate"] == gate)
    ]


def _normalised(name: str) -> str:
    """One spelling per person, so "Ana  Ops" and "ana ops" are one approver."""
    return " ".join(name.split()).casefold()


def _approvals(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The approving votes (a rejection whose delivery failed stays in the list, but never
    counts towards a quorum)."""
    return [v for v in record.get("votes") or [] if v.get("decision", "approve") == "approve"]


class ResumeFailed(Exception):
    """The decision could not be delivered to Step Functions; the gate is open again."""


def _closed(table: Any, approval_id: str, now: datetime, decision: str = "") -> dict[str, Any]:
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
    return {"outcome": "already-voted", "votes": len(_approvals(record))}


def _public(record: dict[str, Any], outcome: str, by: str, now: datetime) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "gate": record["gate"],
        "migrationId": record["migrationId"],
        "decidedBy": by,
        "decidedAt": _iso(now),
    }


def decide(
    table: Any,
    sfn: Any,
    *,
    approval_id: str,
    decision: str,
    decided_by: str,
    comment: str,
    source: str,
    now: datetime,
) -> dict[str, Any]:
    """Record a decision, once per person; resume the workflow when the gate is decided.

    Outcomes: approved, rejected, extended, vote-recorded (quorum not reached yet),
    already-decided, already-voted, expired, not-found. Every write is conditional on the gate
    being open and before its deadline, so a double click, a replay or a late click decides
    nothing twice. Rejecting and extending change nothing in the migration, so one person may
    do either whatever the quorum; approving needs the quorum.
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
    vote = {
        "by": decided_by,
        "key": _normalised(decided_by),
        "decision": decision,
        "at": _iso(now),
        "comment": comment,
        "source": source,
    }
    open_gate = "attribute_exists(approvalId) AND #s = :pending AND deadlineEpoch > :now"
    names = {"#s": "status"}
    values: dict[str, Any] = {":pending": "PENDING", ":now": int(now.timestamp())}
    try:
        if decision in ("reject", "extend"):
            record = table.update_item(
                Key={"approvalId": approval_id},
                UpdateExpression=(
                    "SET #s = :status, decidedBy = :by, decidedAt = :at, #c = :comment, "
                    "#src = :src, votes = list_append(votes, :vote)"
                ),
                ConditionExpression=open_gate
                + (" AND attribute_exists(extendMinutes)" if decision == "extend" else ""),
                ExpressionAttributeNames={**names, "#c": "comment", "#src": "source"},
                ExpressionAttributeValues={
                    **values,
                    ":status": "REJECTED" if decision == "reject" else "EXTENDED",
                    ":by": decided_by,
                    ":at": _iso(now),
                    ":comment": comment,
                    ":src": source,
                    ":vote": [vote],
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        else:
            record = _vote(table, approval_id, vote, open_gate, names, values, now)
            if record is None:
                return _closed(table, approval_id, now)
            if len(_approvals(record)) < int(record.get("quorum", 1)):
                result = _public(record, "vote-recorded", decided_by, now)
                result.update(votes=len(_approvals(record)), quorum=int(record["quorum"]))
                return result
            # Quorum reached: exactly one voter flips the gate (the others' writes fail).
            record = table.update_item(
                Key={"approvalId": approval_id},
                UpdateExpression=(
                    "SET #s = :status, decidedBy = :by, decidedAt = :at, #c = :comment, #src = :src"
                ),
                ConditionExpression=open_gate,
                ExpressionAttributeNames={**names, "#c": "comment", "#src": "source"},
                ExpressionAttributeValues={
                    **values,
                    ":status": "APPROVED",
                    ":by": ", ".join(v["by"] for v in _approvals(record)),
                    ":at": _iso(now),
                    ":comment": comment,
                    ":src": source,
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return _closed(table, approval_id, now, decision)
    return _resume(table, sfn, record, decision, now)


def _vote(
    table: Any,
    approval_id: str,
    vote: dict[str, str],
    open_gate: str,
    names: dict[str, str],
    values: dict[str, Any],
    now: datetime,
) -> dict[str, Any] | None:
    """Add a person's approval (once per person). A voter whose earlier click reached quorum
    but could not be delivered may try again: the record is returned as it is."""
    by = vote["key"]  # one vote per person, however they spell their name
    try:
        return dict(
            table.update_item(
                Key={"approvalId": approval_id},
                UpdateExpression="SET votes = list_append(votes, :vote) ADD voters :me",
                ConditionExpression=f"{open_gate} AND NOT contains(voters, :by)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={**values, ":vote": [vote], ":me": {by}, ":by": by},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
    record = load(table, approval_id)
    retry = (
        record is not None
        and record.get("status") == "PENDING"
        and int(record.get("deadlineEpoch", 0)) > int(now.timestamp())
        and by in (record.get("voters") or set())
        and len(_approvals(record)) >= int(record.get("quorum", 1))
    )
    return record if retry else None


def _reopen(table: Any, record: dict[str, Any], status: str) -> None:
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


def _resume(
    table: Any, sfn: Any, record: dict[str, Any], decision: str, now: datetime
) -> dict[str, Any]:
    token = record["taskToken"]
    by = str(record["decidedBy"])
    comment = str(record.get("comment") or "")
    try:
        if decision == "approve":
            sfn.send_task_success(
                taskToken=token,
                output=json.dumps(
                    {"approved": True, "gate": record["gate"], "by": by, "comment": comment}
                ),
            )
        elif decision == "extend":
            sfn.send_task_success(
                taskToken=token,
                output=json.dumps(
                    {
                        "approved": False,
                        "extend": True,
                        "extendMinutes": int(record["extendMinutes"]),
                        "gate": record["gate"],
                        "by": by,
                        "comment": comment,
                    }
                ),
            )
        else:
            why = f": {comment}" if comment else " (no reason given)"
            sfn.send_task_failure(
                taskToken=token,
                error="Rejected",
                cause=f"{record['gate']} rejected by {by}{why}"[:32768],
            )
    except BotoCoreError as exc:  # no answer at all (connection, timeout): not delivered
        _reopen(table, record, "PENDING")
        raise ResumeFailed(str(exc)) from exc
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
            # The workflow no longer waits here (timed out, or the run ended): say so for good.
            _reopen(table, record, "EXPIRED")
            return {"outcome": "expired", "expiresAt": record.get("expiresAt")}
        # Not delivered (throttled, network): the gate is open again; the person can retry.
        _reopen(table, record, "PENDING")
        raise ResumeFailed(str(exc)) from exc
    return _public(record, OUTCOMES[decision], by, now)

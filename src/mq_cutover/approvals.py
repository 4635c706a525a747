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
from mq_cutover.approvers import (
    Approver,
    approving_votes,
    check_subscriptions,
    verified_approvers,
)
from mq_cutover.errors import ApproversInvalid

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
    approvers: dict[str, Approver],
    extend_minutes: int | None = None,
) -> dict[str, Any]:
    """Store the gate's record and send each registered approver their own link. Returns the
    approval id (no token, no link).

    Nothing is stored or sent unless the approvers can prove who they are: at least `quorum` of
    them, and no subscription that could deliver one approver's link to someone else.
    `extend_minutes`: the gate may also be answered "wait that much longer" (the timeout gates,
    while the plan allows more extensions)."""
    if len(approvers) < quorum:
        raise ApproversInvalid(
            f"gate {gate} needs {quorum} different approvers; the stack has {len(approvers)} "
            f"registered ({', '.join(sorted(approvers)) or 'none'})"
        )
    problems = check_subscriptions(sns, topic_arn, approvers)
    if problems:
        raise ApproversInvalid("the approval topic is not safe: " + "; ".join(problems))
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
            "approvers": [a.snapshot() for a in approvers.values()],
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
    for approver in approvers.values():
        link = f"{api_url.rstrip('/')}/{sign(key, approval_id, approver.id, deadline)}"
        subject, body = approval_email(
            migration_id=migration_id,
            gate=gate,
            facts=facts,
            expires=_iso(expires),
            quorum=quorum,
            approver=approver.public(),
            link=link,
            extend_minutes=extend_minutes,
        )
        sns.publish(
            TopicArn=topic_arn,
            Subject=subject,
            Message=body,
            # Only this approver's subscription lets the message through (its filter policy).
            MessageAttributes={"approver": {"DataType": "String", "StringValue": approver.id}},
        )
    return {
        "approvalId": approval_id,
        "gate": gate,
        "expiresAt": _iso(expires),
        "approvers": sorted(approvers),
    }


def load(table: Any, approval_id: str) -> dict[str, Any] | None:
    item = table.get_item(Key={"approvalId": approval_id}, ConsistentRead=True).get("Item")
    return dict(item) if item else None


def pending_for(table: Any, migration_id: str, gate: str | None = None) -> list[dict[str, Any]]:
    """The open gates of a migration, newest first, read by key (the index holds no token and
    is only used to find them)."""
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
    found = []
    for item in keys:
        if item.get("status") != "PENDING" or (gate is not None and item.get("gate") != gate):
            continue
        record = load(table, str(item["approvalId"]))
        if record is not None and record.get("status") == "PENDING":
            found.append(record)
    return found


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
    return {"outcome": "already-voted", "votes": len(approving_votes(record))}


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
    approver: dict[str, str],
    comment: str,
    source: str,
    now: datetime,
    registry: dict[str, Approver],
    principal: str | None = None,
) -> dict[str, Any]:
    """Record a verified approver's decision, once per approver; resume the workflow when the
    gate is decided.

    `approver` ({"id", "name"}) is who the link was issued to or whose IAM principal signed the
    request: the caller has proven it, nobody typed it; `registry` is the stack's approvers now
    (a vote, and a quorum, count only approvers still registered under the gate's enrolment).

    Outcomes: approved, rejected, extended, vote-recorded (quorum not reached yet),
    already-decided, already-voted, expired, not-found, not-an-approver. Every write is
    conditional on the gate being open and before its deadline, so a double click, a replay or
    a late click decides nothing twice. One approver may reject or extend whatever the quorum;
    approving needs `quorum` distinct approvers.
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
    record = load(table, approval_id)
    if record is None:
        return {"outcome": "not-found"}
    verified = verified_approvers(record, registry)
    if approver["id"] not in verified:
        return {"outcome": "not-an-approver", "gate": record["gate"]}
    decided_by = approver["name"]
    vote = {
        "approver": approver["id"],
        "name": decided_by,
        "decision": decision,
        "at": _iso(now),
        "comment": comment,
        "source": source,
        **({"principal": principal} if principal else {}),
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
            record = _vote(table, approval_id, vote, open_gate, names, values, now, verified)
            if record is None:
                return _closed(table, approval_id, now)
            counted = approving_votes(record, verified)
            if len(counted) < int(record.get("quorum", 1)):
                result = _public(record, "vote-recorded", decided_by, now)
                result.update(votes=len(counted), quorum=int(record["quorum"]))
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
                    ":by": ", ".join(str(v["name"]) for v in counted),
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
    verified: set[str],
) -> dict[str, Any] | None:
    """Add a person's approval (once per person). A voter whose earlier click reached quorum
    but could not be delivered may try again: the record is returned as it is."""
    by = vote["approver"]  # one vote per approver, by the link or the IAM principal
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
        and len(approving_votes(record, verified)) >= int(record.get("quorum", 1))
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

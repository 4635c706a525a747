"""Counting an approval gate's votes: a decision only a deliberate POST (or the CLI, through
the signed decision API) can make, once per verified approver, and the quorum that opens it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.approval_records import DECISIONS, closed_outcome, iso, load, public_outcome
from mq_cutover.approval_resume import resume
from mq_cutover.approvers import Approver, approving_votes, verified_approvers


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
        "at": iso(now),
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
                    ":at": iso(now),
                    ":comment": comment,
                    ":src": source,
                    ":vote": [vote],
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        else:
            record = _vote(table, approval_id, vote, open_gate, names, values, now, verified)
            if record is None:
                return closed_outcome(table, approval_id, now)
            counted = approving_votes(record, verified)
            if len(counted) < int(record.get("quorum", 1)):
                result = public_outcome(record, "vote-recorded", decided_by, now)
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
                    ":at": iso(now),
                    ":comment": comment,
                    ":src": source,
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return closed_outcome(table, approval_id, now, decision)
    return resume(table, sfn, record, decision, now)


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

"""Opening an approval gate: store its record and send each registered approver their own
link, an email that says what approving is about to do.

Mail and chat scanners fetch every link in a message: a GET therefore only shows the facts and
a form. Links carry a signed, expiring id (approval_links), never the task token.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from mq_cutover.approval_links import new_approval_id, sign
from mq_cutover.approval_pages import approval_email
from mq_cutover.approval_records import iso
from mq_cutover.approvers import Approver, check_subscriptions
from mq_cutover.errors import ApproversInvalid


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
            "createdAt": iso(now),
            "expiresAt": iso(expires),
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
            expires=iso(expires),
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
        "expiresAt": iso(expires),
        "approvers": sorted(approvers),
    }

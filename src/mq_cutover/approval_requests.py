"""Opening an approval gate: store its record and send each registered approver their own
link, an email that says what approving is about to do.

Mail and chat scanners fetch every link in a message: a GET therefore only shows the facts and
a form. Links carry a signed, expiring id (approval_links), never the task token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.approval_links import new_approval_id, sign
from mq_cutover.approval_pages import approval_email
from mq_cutover.approval_records import WITHDRAWN_BY, close_unanswerable, iso
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
    last_check: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Store the gate's record and send each registered approver their own link. Returns the
    approval id (no token, no link).

    Nothing is stored or sent unless the approvers can prove who they are: at least `quorum` of
    them, and no subscription that could deliver one approver's link to someone else.
    `extend_minutes`: the gate may also be answered "wait that much longer" (the timeout gates,
    while the plan allows more extensions). `last_check` runs once every email is sent, as
    part of this attempt (what it raises withdraws the record too).

    A failed attempt withdraws its record (its task token resumes nothing): its links, if any
    were sent, say why they decide nothing. (Records are not closed across attempts: another
    execution of the migration, e.g. an older one redriven, may wait at the same gate.)"""
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
    item = {
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
    }
    try:
        table.put_item(
            Item=item,
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
        if last_check is not None:
            last_check()
    except Exception as exc:
        if not _conflict(exc):  # our record may exist: its token dies with this attempt
            withdraw(table, item, now, exc)
        raise
    return {
        "approvalId": approval_id,
        "gate": gate,
        "expiresAt": iso(expires),
        "approvers": sorted(approvers),
    }


def withdraw(table: Any, item: dict[str, Any], now: datetime, failure: Exception) -> None:
    """Close this attempt's record after `failure`: its task token resumes nothing, so a link
    already emailed must not look valid. Best effort: a withdrawal that failed is noted on
    `failure`, which the handler raises (its links then reach a task token that resumes
    nothing: the approval API answers that the gate could not be decided)."""
    try:
        close_unanswerable(table, item, "WITHDRAWN", WITHDRAWN_BY, now)
    except Exception as cleanup:  # the first failure is the one to report
        failure.add_note(
            f"gate record {item['approvalId']} not withdrawn: {type(cleanup).__name__}"
        )


def _conflict(exc: Exception) -> bool:
    """The id was taken (nothing of ours was written)."""
    return (
        isinstance(exc, ClientError)
        and exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
    )

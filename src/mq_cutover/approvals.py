"""Approval gates: a record per gate, an email that says what is about to happen, and a decision
that only a POST from the confirmation page can make (mail scanners prefetch every GET link).

The link carries a random approval id (192 bits, unguessable), never the task token; the token
stays in DynamoDB and is never logged, emailed or returned.
"""

from __future__ import annotations

import html
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

GATE_TITLES = {
    "cutover": "Start the cutover: repoint clients to Amazon MQ",
    "stopOnPrem": "Stop the on-prem broker (point of no return)",
    "drainTimeout": "Drain timed out: proceed anyway?",
    "confirmOnPremStopped": "Confirm that you stopped the on-prem broker",
}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def render_facts(details: dict[str, Any]) -> list[str]:
    """Plain-text lines for the email and the page: `key: value`, nested keys indented."""
    lines: list[str] = []

    def walk(value: Any, indent: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if isinstance(inner, dict | list) and inner:
                    lines.append(f"{indent}{key}:")
                    walk(inner, indent + "  ")
                else:
                    lines.append(f"{indent}{key}: {_scalar(inner)}")
        elif isinstance(value, list):
            for inner in value:
                if isinstance(inner, dict | list):
                    lines.append(f"{indent}-")
                    walk(inner, indent + "  ")
                else:
                    lines.append(f"{indent}- {_scalar(inner)}")

    walk(details, "")
    return lines


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def request_approval(
    table: Any,
    sns: Any,
    *,
    topic_arn: str,
    api_url: str,
    task_token: str,
    migration_id: str,
    gate: str,
    details: dict[str, Any],
    timeout_seconds: int,
    now: datetime,
) -> dict[str, Any]:
    """Store the gate's record and email the approvers. Returns the approval id (no token)."""
    approval_id = secrets.token_urlsafe(24)
    expires = now + timedelta(seconds=timeout_seconds)
    table.put_item(
        Item={
            "approvalId": approval_id,
            "taskToken": task_token,
            "migrationId": migration_id,
            "gate": gate,
            "details": json.dumps(details),
            "status": "PENDING",
            "createdAt": _iso(now),
            "expiresAt": _iso(expires),
            # TTL keeps decided records 30 days for the audit trail.
            "expiresAtEpoch": int((expires + timedelta(days=30)).timestamp()),
            "deadlineEpoch": int(expires.timestamp()),
        },
        ConditionExpression="attribute_not_exists(approvalId)",
    )
    link = f"{api_url.rstrip('/')}/{approval_id}"
    title = GATE_TITLES.get(gate, gate)
    body = "\n".join(
        [
            f"mq-cutover needs your decision for migration {migration_id}.",
            "",
            f"Gate: {gate} - {title}",
            f"Decide before: {_iso(expires)} (after that the migration rolls back).",
            "",
            "What happens next and where things stand:",
            *("  " + line for line in render_facts(details)),
            "",
            "Open this page to approve or reject (opening it decides nothing):",
            f"  {link}",
        ]
    )
    sns.publish(
        TopicArn=topic_arn,
        Subject=f"[mq-cutover] {migration_id}: approve {gate}?"[:100],
        Message=body,
    )
    return {"approvalId": approval_id, "gate": gate, "expiresAt": _iso(expires)}


class Decision:
    APPROVE = "approve"
    REJECT = "reject"


def load(table: Any, approval_id: str) -> dict[str, Any] | None:
    item = table.get_item(Key={"approvalId": approval_id}, ConsistentRead=True).get("Item")
    return dict(item) if item else None


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
    """Record the decision once (conditional write), then resume the workflow.

    Returns {"outcome": "approved"|"rejected"|"already-decided"|"expired"|"not-found", ...}.
    """
    if decision not in (Decision.APPROVE, Decision.REJECT):
        raise ValueError("decision must be approve or reject")
    status = "APPROVED" if decision == Decision.APPROVE else "REJECTED"
    try:
        result = table.update_item(
            Key={"approvalId": approval_id},
            UpdateExpression=(
                "SET #s = :status, decidedBy = :by, decidedAt = :at, #c = :comment, #src = :src"
            ),
            ConditionExpression=(
                "attribute_exists(approvalId) AND #s = :pending AND deadlineEpoch > :now"
            ),
            ExpressionAttributeNames={"#s": "status", "#c": "comment", "#src": "source"},
            ExpressionAttributeValues={
                ":status": status,
                ":by": decided_by,
                ":at": _iso(now),
                ":comment": comment,
                ":src": source,
                ":pending": "PENDING",
                ":now": int(now.timestamp()),
            },
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
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
        return {"outcome": "expired", "expiresAt": record.get("expiresAt")}
    record = result["Attributes"]
    token = record["taskToken"]
    try:
        if status == "APPROVED":
            sfn.send_task_success(
                taskToken=token,
                output=json.dumps(
                    {"approved": True, "gate": record["gate"], "by": decided_by, "comment": comment}
                ),
            )
        else:
            sfn.send_task_failure(
                taskToken=token,
                error="Rejected",
                cause=f"{record['gate']} rejected by {decided_by}: {comment}"[:32768],
            )
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
            return {"outcome": "expired", "expiresAt": record.get("expiresAt")}
        raise
    return {
        "outcome": status.lower(),
        "gate": record["gate"],
        "migrationId": record["migrationId"],
        "decidedBy": decided_by,
        "decidedAt": _iso(now),
    }


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46em;margin:2em auto;padding:0 1em}"
    "pre{background:#f4f4f4;padding:1em;white-space:pre-wrap}"
    "button{font-size:1.1em;margin-right:1em;padding:.4em 1.2em}"
)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def confirmation_page(record: dict[str, Any] | None, now: datetime) -> str:
    """What a GET shows: the gate's facts and a form. It decides nothing."""
    if record is None:
        return _page("Unknown approval", "<p>This link is not valid. Nothing was changed.</p>")
    gate = str(record["gate"])
    facts = "\n".join(render_facts(json.loads(record.get("details") or "{}")))
    header = (
        f"<p>Migration <b>{html.escape(str(record['migrationId']))}</b>, gate "
        f"<b>{html.escape(gate)}</b>: {html.escape(GATE_TITLES.get(gate, gate))}</p>"
        f"<pre>{html.escape(facts)}</pre>"
    )
    if record.get("status") != "PENDING":
        return _page(
            "Already decided",
            header + f"<p>Already {html.escape(str(record['status']).lower())} by "
            f"<b>{html.escape(str(record.get('decidedBy')))}</b> at "
            f"{html.escape(str(record.get('decidedAt')))}.</p>",
        )
    if int(record.get("deadlineEpoch", 0)) <= int(now.timestamp()):
        return _page(
            "Approval expired",
            header + f"<p>This gate expired at {html.escape(str(record.get('expiresAt')))}.</p>",
        )
    form = (
        "<form method='post'>"
        "<p><label>Your name <input name='name' required maxlength='100'></label></p>"
        "<p><label>Comment <input name='comment' maxlength='500' size='50'></label></p>"
        "<p><button name='decision' value='approve'>Approve</button>"
        "<button name='decision' value='reject'>Reject</button></p></form>"
        f"<p>Decide before {html.escape(str(record.get('expiresAt')))}.</p>"
    )
    return _page(f"Approve {gate}?", header + form)


def result_page(result: dict[str, Any]) -> str:
    outcome = result["outcome"]
    if outcome in ("approved", "rejected"):
        return _page(
            f"{outcome.capitalize()}",
            f"<p>Gate <b>{html.escape(result['gate'])}</b> of migration "
            f"<b>{html.escape(result['migrationId'])}</b> {outcome} by "
            f"{html.escape(result['decidedBy'])} at {html.escape(result['decidedAt'])}.</p>",
        )
    if outcome == "already-decided":
        return _page(
            "Already decided",
            f"<p>Already {html.escape(str(result['status']).lower())} by "
            f"<b>{html.escape(str(result.get('decidedBy')))}</b> at "
            f"{html.escape(str(result.get('decidedAt')))}. Nothing was changed.</p>",
        )
    if outcome == "expired":
        return _page("Approval expired", "<p>This gate is closed. Nothing was changed.</p>")
    return _page("Unknown approval", "<p>This link is not valid. Nothing was changed.</p>")

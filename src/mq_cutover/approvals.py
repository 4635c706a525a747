"""Approval gates: a record per gate, an email that says what is about to happen, and a decision
that only a deliberate POST (or the CLI) can make, once.

Mail and chat scanners fetch every link in a message: a GET therefore only shows the facts and
a form. Links carry a signed, expiring id (approval_links), never the task token; the token stays
in DynamoDB and is never logged, emailed, shown or returned.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import BotoCoreError, ClientError

from mq_cutover.approval_links import new_approval_id, sign
from mq_cutover.gate_facts import GATE_TITLES, render_facts

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
    needs = f"{quorum} different approvers" if quorum > 1 else "one approver"
    body = "\n".join(
        [
            f"mq-cutover needs a decision for migration {migration_id}.",
            "",
            f"Gate: {gate} - {GATE_TITLES.get(gate, gate)}",
            f"Decide before: {_iso(expires)}; after that the migration rolls back.",
            f"This gate needs {needs}.",
            "",
            *render_facts(facts),
            "",
            "Each link opens a page that shows these facts again; nothing is decided until you",
            "press a button there.",
            f"  Approve: {link}?decision=approve",
            f"  Reject:  {link}?decision=reject",
            *(
                [f"  Extend:  {link}?decision=extend  (wait {extend_minutes} more minutes)"]
                if extend_minutes
                else []
            ),
        ]
    )
    sns.publish(
        TopicArn=topic_arn,
        Subject=f"[mq-cutover] {migration_id}: approve {gate}?"[:99],
        Message=body,
    )
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


# --- the pages -----------------------------------------------------------------------------

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:48em;margin:2em auto;padding:0 1em}"
    "pre{background:#f4f4f4;padding:1em;white-space:pre-wrap}"
    "button{font-size:1.1em;margin-right:1em;padding:.4em 1.2em}"
    ".chosen{outline:3px solid #0a7}"
)


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='robots' content='noindex'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _header(record: dict[str, Any]) -> str:
    gate = str(record["gate"])
    facts = json.loads(record.get("facts") or "{}")
    votes = _approvals(record)
    quorum = int(record.get("quorum", 1))
    tally = (
        f"<p id='votes'>Approvals so far: {len(votes)} of {quorum} "
        f"({html.escape(', '.join(str(v['by']) for v in votes)) or 'none'}).</p>"
        if quorum > 1
        else ""
    )
    return (
        f"<p>Migration <b id='migration'>{html.escape(str(record['migrationId']))}</b>, gate "
        f"<b id='gate'>{html.escape(gate)}</b>: {html.escape(GATE_TITLES.get(gate, gate))}</p>"
        f"<pre id='facts'>{html.escape(chr(10).join(render_facts(facts)))}</pre>{tally}"
    )


def confirmation_page(record: dict[str, Any] | None, now: datetime, preselect: str = "") -> str:
    """What a GET shows: the gate's facts and a form. It decides nothing."""
    if record is None:
        return page("Unknown approval", "<p>This link is not valid. Nothing was changed.</p>")
    expired = int(record.get("deadlineEpoch", 0)) <= int(now.timestamp())
    if record.get("status") == "EXPIRED" or (record.get("status") == "PENDING" and expired):
        return page(
            "Approval expired",
            _header(record) + f"<p id='result'>This gate closed at "
            f"{html.escape(str(record.get('expiresAt')))} without a decision. "
            "Nothing was changed.</p>",
        )
    if record.get("status") != "PENDING":
        return page(
            "Already decided",
            _header(record)
            + f"<p id='result'>Already {html.escape(str(record['status']).lower())} by "
            f"<b>{html.escape(str(record.get('decidedBy')))}</b> at "
            f"{html.escape(str(record.get('decidedAt')))}. Nothing was changed.</p>",
        )
    approve_class = " class='chosen'" if preselect == "approve" else ""
    reject_class = " class='chosen'" if preselect == "reject" else ""
    extend = ""
    if record.get("extendMinutes"):
        extend_class = " class='chosen'" if preselect == "extend" else ""
        extend = (
            f"<button id='extend' name='decision' value='extend'{extend_class}>"
            f"Wait {int(record['extendMinutes'])} more minutes</button>"
        )
    form = (
        "<form method='post'>"
        "<p><label>Your name <input id='name' name='name' required maxlength='100'></label></p>"
        "<p><label>Comment <input id='comment' name='comment' maxlength='500' size='50'>"
        "</label></p>"
        f"<p><button id='approve' name='decision' value='approve'{approve_class}>Approve</button>"
        f"<button id='reject' name='decision' value='reject'{reject_class}>Reject</button>"
        f"{extend}</p>"
        "</form>"
        f"<p>Decide before {html.escape(str(record.get('expiresAt')))}.</p>"
    )
    return page(f"Approve {record['gate']}?", _header(record) + form)


_RESULT_TITLES = {
    "approved": "Approved",
    "rejected": "Rejected",
    "extended": "Wait extended",
    "vote-recorded": "Vote recorded",
    "already-decided": "Already decided",
    "already-voted": "Already voted",
    "expired": "Approval expired",
    "not-found": "Unknown approval",
    "cannot-extend": "Cannot wait longer",
    "invalid-link": "Invalid link",
}


def result_page(result: dict[str, Any]) -> str:
    outcome = result["outcome"]
    esc = {k: html.escape(str(v)) for k, v in result.items()}
    if outcome == "extended":
        text = (
            f"Gate <b>{esc['gate']}</b> of migration <b>{esc['migrationId']}</b>: "
            f"{esc['decidedBy']} chose to wait longer at {esc['decidedAt']}. The drain check "
            "goes on; if it times out again you will get a new email."
        )
    elif outcome in ("approved", "rejected"):
        text = (
            f"Gate <b>{esc['gate']}</b> of migration <b>{esc['migrationId']}</b> {outcome} by "
            f"{esc['decidedBy']} at {esc['decidedAt']}. The workflow has been told."
        )
    elif outcome == "vote-recorded":
        text = (
            f"Your approval is recorded ({esc['votes']} of {esc['quorum']}). The gate opens "
            "when enough different people have approved."
        )
    elif outcome == "already-decided":
        text = (
            f"Already {html.escape(str(result['status']).lower())} by <b>{esc['decidedBy']}</b> "
            f"at {esc['decidedAt']}. Nothing was changed."
        )
    elif outcome == "already-voted":
        text = "You have already approved this gate. Nothing was changed."
    elif outcome == "expired":
        text = "This gate is closed: its deadline has passed. Nothing was changed."
    elif outcome == "cannot-extend":
        text = (
            "This gate cannot be extended (the plan's drain.maxExtensions is used up, or the "
            "gate is not a drain timeout). Nothing was changed: approve or reject."
        )
    elif outcome == "invalid-link":
        text = "This link was not issued by mq-cutover or has been altered. Nothing was changed."
    else:
        text = "This link is not valid. Nothing was changed."
    return page(_RESULT_TITLES.get(outcome, outcome), f"<p id='result'>{text}</p>")

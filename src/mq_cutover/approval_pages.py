"""What people see of a gate: the approval email and the pages behind its links. Rendering only:
nothing here reads or writes the gate."""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any

from mq_cutover.gate_facts import GATE_TITLES, render_facts


def approval_email(
    *,
    migration_id: str,
    gate: str,
    facts: dict[str, Any],
    expires: str,
    quorum: int,
    link: str,
    extend_minutes: int | None,
    approver: dict[str, str] | None = None,
) -> tuple[str, str]:
    """The subject and body of a gate's email."""
    needs = f"{quorum} different approvers" if quorum > 1 else "one approver"
    body = "\n".join(
        [
            f"mq-cutover needs a decision for migration {migration_id}.",
            "",
            f"Gate: {gate} - {GATE_TITLES.get(gate, gate)}",
            f"Decide before: {expires}; after that the migration rolls back.",
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
    return f"[mq-cutover] {migration_id}: approve {gate}?"[:99], body


def _approvals(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in record.get("votes") or [] if v.get("decision", "approve") == "approve"]


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


def confirmation_page(
    record: dict[str, Any] | None,
    now: datetime,
    approver: dict[str, str] | None = None,
    preselect: str = "",
) -> str:
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

"""The approval API's input and output rules: strict, bounded input (a clear 400 naming the
field, before anything is read or written), the status of each outcome, the security headers of
every answer, and what a terminal is told about a migration's open gates (never a token)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from mq_cutover.approval_records import DECISIONS
from mq_cutover.approvers import Approver, approving_votes, verified_approvers
from mq_cutover.gate_facts import EXTENDABLE_GATES, GATE_TITLES, render_facts
from mq_cutover.plan import MIGRATION_ID_PATTERN

MAX_BODY = 4096
MAX_COMMENT = 500
MAX_REASON = 500
ABORT = "abort"
_GATE = re.compile(r"[A-Za-z]{1,40}")

HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
STATUS = {
    "approved": 200,
    "rejected": 200,
    "extended": 200,
    "vote-recorded": 200,
    "already-decided": 409,
    "already-voted": 409,
    "expired": 410,
    "not-found": 404,
    "invalid-link": 403,
    "not-an-approver": 403,
    "cannot-extend": 409,
    "abort-requested": 200,
    "already-aborted": 409,
    "already-rolling-back": 409,
    "past-point-of-no-return": 409,
    "not-running": 404,
}


class BadRequest(Exception):
    """The request is malformed; the message names the field and why. Nothing was read."""


def _text(raw: bytes) -> str:
    if len(raw) > MAX_BODY:
        raise BadRequest(f"the request body is larger than {MAX_BODY} bytes")
    try:
        return raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not UTF-8") from None


def _comment(value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest("comment must be text")
    comment = value.strip()
    if len(comment) > MAX_COMMENT:
        raise BadRequest(f"comment is longer than {MAX_COMMENT} characters")
    if not comment.isprintable():
        raise BadRequest("comment has control characters or line breaks")
    return comment


def _decision(value: Any) -> str:
    if value not in DECISIONS:
        raise BadRequest(f"decision must be one of {', '.join(DECISIONS)}")
    return str(value)


def _reason(value: Any) -> str:
    if value is None:
        raise BadRequest("reason is required: say why the migration must roll back")
    if not isinstance(value, str):
        raise BadRequest("reason must be text")
    reason = value.strip()
    if not reason:
        raise BadRequest("reason is required: say why the migration must roll back")
    if len(reason) > MAX_REASON:
        raise BadRequest(f"reason is longer than {MAX_REASON} characters")
    if not reason.isprintable():
        raise BadRequest("reason has control characters or line breaks")
    return reason


def _content_type(headers: Mapping[str, str] | None) -> str:
    for key, value in (headers or {}).items():
        if key.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return ""


def form_fields(raw: bytes, headers: Mapping[str, str] | None) -> dict[str, str]:
    """The confirmation page's form: `decision` (required) and `comment` (optional), each once,
    UTF-8, nothing else."""
    if _content_type(headers) != "application/x-www-form-urlencoded":
        raise BadRequest("send the form as application/x-www-form-urlencoded")
    text = _text(raw)
    try:
        fields = parse_qs(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            errors="strict",
            max_num_fields=5,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the form is malformed ({type(exc).__name__})") from None
    unknown = sorted(set(fields) - {"decision", "comment"})
    if unknown:
        raise BadRequest(f"unknown form field {unknown[0]!r} (only decision and comment)")
    repeated = sorted(k for k, v in fields.items() if len(v) > 1)
    if repeated:
        raise BadRequest(f"form field {repeated[0]!r} is given more than once")
    return {
        "decision": _decision(fields.get("decision", [""])[0]),
        "comment": _comment(fields.get("comment", [""])[0]),
    }


def checked_migration_id(migration_id: str) -> str:
    if not re.fullmatch(MIGRATION_ID_PATTERN.strip("^$"), migration_id):
        raise BadRequest(f"migration id {migration_id[:80]!r} is not a valid migration id")
    return migration_id


def decision_request(raw: bytes, headers: Mapping[str, str] | None) -> dict[str, Any]:
    """A terminal's decision: JSON {"decision", "gate", "comment"?}, or an abort: JSON
    {"decision": "abort", "reason"} (reason required, at most 500 printable characters)."""
    if _content_type(headers) != "application/json":
        raise BadRequest("send the decision as application/json")
    try:
        body = json.loads(_text(raw))
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON ({exc.msg})") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    if body.get("decision") == ABORT:
        unknown = sorted(set(body) - {"decision", "reason"})
        if unknown:
            raise BadRequest(f"unknown field {unknown[0]!r} (an abort takes decision and reason)")
        return {"decision": ABORT, "reason": _reason(body.get("reason"))}
    unknown = sorted(set(body) - {"decision", "gate", "comment"})
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r} (only decision, gate and comment)")
    gate = body.get("gate")
    if gate is None:
        # Never "whichever gate is open when the request arrives": a retried approval of the
        # cutover must not land on the stop.
        raise BadRequest("gate is required: name the gate you decide (mq-cutover pending)")
    if not (isinstance(gate, str) and _GATE.fullmatch(gate)):
        raise BadRequest("gate must be a gate name such as cutover or stopOnPrem")
    return {
        "decision": _decision(body.get("decision")),
        "gate": gate,
        "comment": _comment(body.get("comment", "")),
    }


def pending_summary(
    migration_id: str,
    pending: list[dict[str, Any]],
    approver: dict[str, str],
    registry: dict[str, Approver],
    now: datetime,
) -> dict[str, Any]:
    """The open gates of a migration as a terminal shows them (no token, no link)."""
    gates = []
    for record in pending:
        gate = str(record["gate"])
        verified = verified_approvers(record, registry)
        votes = [
            {k: str(v.get(k, "")) for k in ("approver", "name", "decision", "at", "source")}
            for v in record.get("votes") or []
        ]
        gates.append(
            {
                "gate": gate,
                "title": GATE_TITLES.get(gate, gate),
                "expiresAt": record.get("expiresAt"),
                "secondsLeft": max(0, int(record.get("deadlineEpoch", 0)) - int(now.timestamp())),
                "quorum": int(record.get("quorum", 1)),
                "approvals": len(approving_votes(record, verified)),
                "votes": votes,
                "canExtend": gate in EXTENDABLE_GATES and bool(record.get("extendMinutes")),
                "youMayVote": approver["id"] in verified,
                "facts": render_facts(json.loads(record.get("facts") or "{}")),
            }
        )
    return {"migrationId": migration_id, "you": approver, "pending": gates}

"""What people see of a gate: the approval email and the pages behind its links. Rendering only:
nothing here reads or writes the gate.

Every value from the broker, the account or the plan is untrusted text (a queue can be named
like an "Approve: https://..." line): the email shows it quoted (`gate_facts.quoted`) after the
approver's own links, and the pages html-escape everything they did not write themselves.
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime
from typing import Any

from mq_cutover.approvers import approving_votes
from mq_cutover.gate_facts import (
    GATE_TITLES,
    SIDE_NAMES,
    hook_frequency,
    quoted,
    render_facts,
)

# A name or id shown as it is only when it cannot pass for anything else; quoted otherwise.
_PLAIN = re.compile(r"[\w][\w .'-]{0,99}")


def _plain(value: Any) -> str:
    text = str(value)
    return text if _PLAIN.fullmatch(text) and "://" not in text else quoted(text)


def approval_email(
    *,
    migration_id: str,
    gate: str,
    facts: dict[str, Any],
    expires: str,
    quorum: int,
    approver: dict[str, Any],
    link: str,
    extend_minutes: int | None,
) -> tuple[str, str]:
    """The subject and body of one approver's email: their own links first, then the facts
    (every untrusted value quoted, so nothing in them can pose as a link or a line of ours)."""
    name = _plain(approver.get("name") or approver.get("id"))
    needs = f"{quorum} different approvers" if quorum > 1 else "one approver"
    body = "\n".join(
        [
            f"{name}: mq-cutover needs your decision on migration {_plain(migration_id)}, "
            f"gate {gate}.",
            f"  {GATE_TITLES.get(gate, gate)}",
            "",
            f"Your links (personal: each votes as you, {name}; do not forward them):",
            f"  Approve: {link}?decision=approve",
            f"  Reject:  {link}?decision=reject",
            *(
                [f"  Extend:  {link}?decision=extend  (wait {extend_minutes} more minutes)"]
                if extend_minutes
                else []
            ),
            "Each link opens a page that shows these facts again; nothing is decided until you",
            "press a button there.",
            "",
            f"Decide before: {expires}; after that the migration rolls back.",
            f"This gate needs {needs}.",
            "",
            "The facts (values from the broker, the account and the plan are shown in quotes;",
            "no link below this line is ours):",
            "",
            *render_facts(facts),
        ]
    )
    return f"[mq-cutover] {migration_id}: approve {gate}?"[:99], body


_STYLE = (
    "*{box-sizing:border-box}"
    "body{font:16px/1.4 system-ui,sans-serif;max-width:48em;margin:0 auto;padding:.5em .75em;"
    "color:#111;background:#fff}"
    "h1{font-size:1.4em;margin:.4em 0}h2{font-size:1.1em;margin:1.2em 0 .3em}"
    "table{border-collapse:collapse;width:100%;table-layout:fixed;margin:.3em 0}"
    "th,td{border:1px solid #bbb;padding:.3em .4em;text-align:left;vertical-align:top;"
    "overflow-wrap:anywhere;word-break:break-word}"
    "th{background:#f0f0f0}th.item{background:#e6eefa}"
    "col.k{width:6.5em}th.k,td.k{overflow-wrap:normal;word-break:normal}"
    "td.n,th.n{width:5.5em;text-align:right}"
    "code{font-family:ui-monospace,monospace;font-size:.92em}"
    "ul{padding-left:1.2em}"
    ".you{background:#fff6cc;border:1px solid #d9c36a;padding:.5em}"
    ".warn{color:#a00;font-weight:bold}"
    "textarea{width:100%;font:inherit}"
    "button{font-size:1.1em;margin:.3em .6em .3em 0;padding:.5em 1.2em}"
    ".chosen{outline:3px solid #0a7}"
)


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<meta name='robots' content='noindex'>"
        # No phone, address or mail link made of a planted value on a phone.
        "<meta name='format-detection' content='telephone=no,date=no,email=no,address=no'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _e(value: Any) -> str:
    """Html-escaped, with line breaks and every other invisible or control character shown as
    an escape (\\n, \\u202e): a value cannot break its line or hide what it says."""
    text = "".join(
        c if c.isprintable() else json.dumps(c)[1:-1] if c in "\n\r\t" else f"\\u{ord(c):04x}"
        for c in str(value)
    )
    return html.escape(text, quote=True)


def _code(value: Any) -> str:
    return f"<code>{_e(value)}</code>"


KEYED = "<colgroup><col class='k'><col></colgroup>"


def _table(
    table_id: str,
    head: list[str] | None,
    rows: list[str],
    classes: list[str] | None = None,
    *,
    keyed: bool = False,
) -> str:
    """A table that fits the screen (fixed layout, long values wrap); `keyed`: a narrow first
    column of labels."""
    colgroup = KEYED if keyed else ""
    thead = ""
    if head:
        marks = [f" class='{c}'" if c else "" for c in classes or [""] * len(head)]
        thead = (
            "<thead><tr>"
            + "".join(f"<th{m}>{_e(h)}</th>" for h, m in zip(head, marks, strict=True))
            + "</tr></thead>"
        )
    return f"<table id='{table_id}'>{colgroup}{thead}<tbody>{''.join(rows)}</tbody></table>"


def _voter_name(vote: dict[str, Any]) -> str:
    return str(vote.get("name") or vote.get("by") or vote.get("approver") or "?")


def time_left(seconds: int) -> str:
    """A duration a person reads at a glance: '3 h 58 min', '12 min', '40 s'."""
    if seconds <= 0:
        return "none"
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


def _status(record: dict[str, Any], now: datetime) -> str:
    """The tally, who may still vote, and the time left."""
    quorum = int(record.get("quorum", 1))
    approving = approving_votes(record)
    more = max(0, quorum - len(approving))
    seconds = int(record.get("deadlineEpoch", 0)) - int(now.timestamp())
    status = _table(
        "status",
        None,
        [
            f"<tr><th class='k'>Approvals</th><td id='votes'>{len(approving)} of {quorum}"
            + (f" ({more} more needed)" if more else "")
            + "</td></tr>",
            f"<tr><th class='k'>Time left</th><td id='time-left'>{_e(time_left(seconds))} "
            f"(until {_e(record.get('expiresAt'))})</td></tr>",
        ],
        keyed=True,
    )
    votes = {str(v.get("approver") or _voter_name(v)): v for v in record.get("votes") or []}
    rows = []
    listed = set()
    for who in record.get("approvers") or []:
        listed.add(str(who.get("id")))
        vote = votes.get(str(who.get("id")))
        rows.append(_voter_row(str(who.get("name") or who.get("id")), vote))
    for key, vote in votes.items():
        if key not in listed:
            rows.append(_voter_row(_voter_name(vote), vote))
    voters = _table("voters", ["Approver", "Vote"], rows) if rows else ""
    return "<h2>Votes</h2>" + status + voters


def _voter_row(name: str, vote: dict[str, Any] | None) -> str:
    if vote is None:
        return f"<tr><td>{_e(name)}</td><td>not yet</td></tr>"
    comment = f"<br>&ldquo;{_e(vote['comment'])}&rdquo;" if vote.get("comment") else ""
    return (
        f"<tr><td>{_e(name)}</td><td>{_e(vote.get('decision', 'approve'))}d at "
        f"{_e(vote.get('at', '?'))}{comment}</td></tr>"
    )


def _targets(found: dict[str, Any]) -> str:
    parts = [f"instance {_code(i)}" for i in found.get("instanceIds") or []]
    for key, values in (found.get("targetTags") or {}).items():
        parts.append(f"tag {_code(key)} = " + " or ".join(_code(v) for v in values))
    return ", ".join(parts) or "(no target)"


def _hook_cell(hook: dict[str, Any] | None, label: str) -> str:
    if not hook:
        return f"{_e(label)}: none"
    commands = "".join(f"<br>command {_code(c)}" for c in hook.get("commands") or [])
    return (
        f"{_e(label)}: SSM Run Command {_code(hook.get('documentName'))} on "
        f"{_targets(hook)}{commands}"
    )


def _unlocks(unlocked: dict[str, Any] | None) -> str:
    if unlocked is None:
        return ""
    rows = []
    for number, step in enumerate(unlocked.get("steps") or [], 1):
        head = f"<tr><th class='item' colspan='2'>{number}. {_e(step['step'])}</th></tr>"
        details = [("when", _e(step.get("when")))]
        if "stop" in step:
            stop = step["stop"]
            method = str(stop.get("method"))
            how = _e(method)
            if method == "ssm-command":
                how = f"SSM Run Command {_code(stop.get('documentName'))}"
            elif method == "ec2-stop":
                how = "EC2 StopInstances"
            details.append(("stop", how))
            if method != "manual":
                details.append(("targets", _targets(stop)))
            for command in stop.get("commands") or []:
                details.append(("command", _code(command)))
        elif "group" not in step and "restartHooks" not in step:  # a shovel step
            details.append(("what", _e(step.get("what"))))
        elif "restartHooks" in step:
            details.append(("what", _e(step.get("what"))))
            for group, hook in (step.get("restartHooks") or {}).items():
                details.append(("restart", _hook_cell(hook, f"{group}' hook")))
        else:
            details.append(
                (
                    "what",
                    f"{_e(step.get('what'))} ({_e(step.get('parameters'))} "
                    f"{_e(str(step.get('group'))[:-1])} parameter(s))",
                )
            )
            each = hook_frequency(step)
            details.append(("then", _hook_cell(step.get("restartHook"), f"restart hook{each}")))
        rows.append(
            head + "".join(f"<tr><td class='k'>{k}</td><td>{v}</td></tr>" for k, v in details)
        )
    if not rows:
        rows.append("<tr><td colspan='2'>Nothing more changes in the migration.</td></tr>")
    notes = []
    if unlocked.get("mayAsk"):
        waits = ", ".join(_e(g) for g in unlocked["mayAsk"])
        notes.append(f"If a wait on the way times out, a person is asked first (gate {waits}).")
    if unlocked.get("nextGate"):
        notes.append(f"Then the workflow waits at gate {_e(unlocked['nextGate'])}.")
    return (
        "<h2>What approving unlocks</h2><table id='unlocks'>"
        + KEYED
        + "<tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + "".join(f"<p>{n}</p>" for n in notes)
    )


def _changes(facts: dict[str, Any]) -> str:
    changes = facts.get("changes") or []
    if not changes:
        return ""
    rows = [
        f"<tr><th class='item' colspan='2'>{_code(c.get('parameter'))}</th></tr>"
        f"<tr><td class='k'>from</td><td>{_code(c.get('from'))}</td></tr>"
        f"<tr><td class='k'>to</td><td>{_code(c.get('to'))}</td></tr>"
        f"<tr><td class='k'>when</td><td>{_e(c.get('when'))}</td></tr>"
        for c in changes
    ]
    more = facts.get("changesNotListed")
    if more:
        rows.append(f"<tr><td colspan='2'>... and {_e(more)} more</td></tr>")
    return (
        "<h2>Client parameters (from &rarr; to)</h2><table id='parameters'>"
        + KEYED
        + "<tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _messages(facts: dict[str, Any]) -> str:
    reading = facts.get("onPrem")
    if not reading:
        return ""
    where = SIDE_NAMES.get(str(reading.get("side")), "On-prem")
    rows = [
        f"<tr><td>{_code(q.get('queue'))}</td><td class='n'>{_e(q.get('messages'))}</td>"
        # In flight per queue is not known from aggregate readings: shown as not read, never 0.
        f"<td class='n'>{_e(q.get('inFlight') if q.get('inFlight') is not None else '—')}"
        "</td></tr>"
        for q in reading.get("queuesWithMessages") or []
    ]
    rows.append(
        f"<tr><th>Total</th><td class='n' id='messages-left'>{_e(reading.get('messagesLeft'))}"
        "</td><td class='n'></td></tr>"
    )
    notes: list[tuple[Any, str]] = [
        (q, "no recent metrics (not counted as empty)") for q in reading.get("missingMetrics") or []
    ]
    notes += [
        (s.get("queue"), f"newest metrics {s.get('ageSeconds')} s old (not counted as empty)")
        for s in reading.get("staleMetrics") or []
    ]
    notes += [
        (q.get("queue"), f"still receiving ({q.get('enqueued')} in the newest period)")
        for q in reading.get("stillReceiving") or []
    ]
    notes += [
        (q.get("queue"), f"will never drain ({q.get('messages')} and no consumer here)")
        for q in reading.get("neverDrain") or []
    ]
    notes += [
        (q.get("queue"), f"{q.get('consumers')} consumer(s) still connected")
        for q in reading.get("connected") or []
    ]
    notes += [
        (
            q.get("queue"),
            f"consumers on-prem {q.get('onPrem')}, on Amazon MQ {q.get('amazonMq')} "
            "(needs 1 on each)",
        )
        for q in reading.get("unplaced") or []
    ]
    note_rows = [
        f"<tr><td>{_code(q)}</td><td class='warn'>{_e(text)}</td></tr>" for q, text in notes
    ]
    note_rows += [
        f"<tr><td>{_code(q.get('queue'))}</td><td>{_e(q.get('messages'))} ignored (e.g. a DLQ)"
        "</td></tr>"
        for q in reading.get("ignored") or []
    ]
    warnings = _table("queue-notes", ["Queue", "Note"], note_rows) if note_rows else ""
    readings = (
        f"<p>Empty readings {_e(reading.get('consecutiveEmptyReadings'))} of "
        f"{_e(reading.get('requiredEmptyReadings'))} needed"
        + (
            f"; drain deadline {_e(reading.get('deadlineAt'))}, extensions left "
            f"{_e(reading.get('extensionsLeft'))}"
            if reading.get("deadlineAt")
            else ""
        )
        + ".</p>"
    )
    return (
        f"<h2>Messages per queue on the {_e(where if where != 'On-prem' else 'on-prem')} broker"
        "</h2>"
        + _table("messages", ["Queue", "Waiting", "In flight"], rows, ["", "n", "n"])
        + warnings
        + readings
    )


def _topology(facts: dict[str, Any]) -> str:
    topology = facts.get("topology")
    if not topology:
        return ""
    verdict = "matches" if topology.get("matches") else "DIFFERS"
    rows = [
        f"<tr><td>{_e(title)}</td><td class='{css}'>{_e(item)}</td></tr>"
        for title, key, css in (
            ("Difference", "differences", "warn"),
            ("Changed on the way", "changes", ""),
            ("Not copied", "refused", "warn"),
        )
        for item in topology.get(key) or []
    ]
    return (
        f"<h2>Topology on Amazon MQ: {_e(verdict)}</h2>"
        f"<p id='topology-summary'>{_e(topology.get('summary'))}</p>"
        + (_table("topology", ["", "Detail"], rows, ["k", ""], keyed=True) if rows else "")
    )


def _brokers(facts: dict[str, Any]) -> str:
    broker = facts.get("broker") or {}
    return "<h2>Brokers</h2>" + _table(
        "brokers",
        ["Broker", "Details"],
        [
            f"<tr><td>Amazon MQ</td><td>{_code(broker.get('id'))} ({_e(broker.get('state'))})"
            f"<br>clients will use {_code(broker.get('clientUrl'))}</td></tr>",
            f"<tr><td>On-prem</td><td>{_code(facts.get('onPremUrl'))}</td></tr>",
        ],
        ["k", ""],
        keyed=True,
    )


def _facts(facts: dict[str, Any]) -> str:
    """The gate's facts as tables; every value html-escaped."""
    steps = "".join(f"<li>{_e(step)}</li>" for step in facts.get("next") or [])
    return (
        "<div id='facts'>"
        f"<h2>What each answer does</h2><ul>{steps}</ul>"
        + _unlocks(facts.get("unlocks"))
        + _changes(facts)
        + _messages(facts)
        + _topology(facts)
        + _brokers(facts)
        + f"<p>Mode: {_e(facts.get('mode'))}</p></div>"
    )


def _header(record: dict[str, Any]) -> str:
    gate = str(record["gate"])
    return (
        f"<p>Migration <b id='migration'>{_e(record['migrationId'])}</b>, gate "
        f"<b id='gate'>{_e(gate)}</b>: {_e(GATE_TITLES.get(gate, gate))}</p>"
    )


def _details(record: dict[str, Any], now: datetime) -> str:
    facts = json.loads(record.get("facts") or "{}")
    return _header(record) + _status(record, now) + _facts(facts)


def confirmation_page(
    record: dict[str, Any] | None,
    now: datetime,
    approver: dict[str, Any] | None = None,
    preselect: str = "",
) -> str:
    """What a GET shows: who is voting (the approver the link was issued to), the gate's facts
    and a form. It decides nothing."""
    if record is None:
        return page("Unknown approval", "<p>This link is not valid. Nothing was changed.</p>")
    expired = int(record.get("deadlineEpoch", 0)) <= int(now.timestamp())
    if record.get("status") == "EXPIRED" or (record.get("status") == "PENDING" and expired):
        return page(
            "Approval expired",
            _header(record) + f"<p id='result'>This gate closed at "
            f"{_e(record.get('expiresAt'))} without a decision. Nothing was changed.</p>",
        )
    if record.get("status") != "PENDING":
        return page(
            "Already decided",
            _header(record) + f"<p id='result'>Already {_e(str(record['status']).lower())} by "
            f"<b>{_e(record.get('decidedBy'))}</b> at {_e(record.get('decidedAt'))}. "
            "Nothing was changed.</p>",
        )
    you = ""
    voted = None
    if approver is not None:
        name = approver.get("name") or approver.get("id")
        you = (
            f"<p class='you' id='you'>You are voting as <b>{_e(name)}</b>. This link is "
            "yours: it votes as you; do not forward it.</p>"
        )
        voted = next(
            (
                v
                for v in approving_votes(record)
                if str(v.get("approver")) == str(approver.get("id"))
            ),
            None,
        )
    if voted is not None:
        form = (
            f"<p id='result'>You approved at {_e(voted.get('at'))}; the gate opens when enough "
            "different people have approved.</p>"
        )
        return page(f"Approve {record['gate']}?", you + _details(record, now) + form)
    chosen = {
        d: " class='chosen'" if preselect == d else "" for d in ("approve", "reject", "extend")
    }
    extend = ""
    if record.get("extendMinutes"):
        extend = (
            f"<button id='extend' name='decision' value='extend'{chosen['extend']}>"
            f"Wait {int(record['extendMinutes'])} more minutes</button>"
        )
    form = (
        "<h2>Your decision</h2><form method='post'>"
        "<p><label for='comment'>Comment (optional)</label><br>"
        "<textarea id='comment' name='comment' maxlength='500' rows='2'></textarea></p>"
        f"<p><button id='approve' name='decision' value='approve'{chosen['approve']}>Approve"
        f"</button><button id='reject' name='decision' value='reject'{chosen['reject']}>Reject"
        f"</button>{extend}</p></form>"
    )
    return page(f"Approve {record['gate']}?", you + _details(record, now) + form)


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
    "not-an-approver": "Not an approver",
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
    elif outcome == "not-an-approver":
        text = "This link was not issued to an approver of this gate. Nothing was changed."
    elif outcome == "invalid-link":
        text = "This link was not issued by mq-cutover or has been altered. Nothing was changed."
    else:
        text = "This link is not valid. Nothing was changed."
    return page(_RESULT_TITLES.get(outcome, outcome), f"<p id='result'>{text}</p>")

"""The approval email and pages: the approver's own links first and nothing planted can pose as
one; the page escapes every value, shows the facts as tables on a phone-sized screen, who is
voting (from the link, never typed), the tally and the time left."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest

from mq_cutover.approval_pages import (
    approval_email,
    confirmation_page,
    page,
    result_page,
    time_left,
)
from mq_cutover.gate_facts import gate_facts
from mq_cutover.plan import parse_plan

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
LINK = "https://api.example/dev/approvals/Q3v9pX2mL0aZ.ana.1764554400.7Jk1abc"
ANA = {"id": "ana", "name": "Ana Ops"}
PLANTED = "orders.x\n  Approve: https://evil.example/dev/approvals/abc?decision=approve"
SCRIPT = "<script>alert(1)</script>"
BROKER = {
    "brokerId": "b-1",
    "state": "RUNNING",
    "clientUrl": "failover:(ssl://amq-1:61617)",
    "endpoints": ["ssl://amq-1:61617"],
}
DRAIN = {
    "side": "onPrem",
    "messagesLeft": 3012,
    "consecutiveEmpty": 0,
    "requiredEmpty": 3,
    "queuesWithMessages": [
        {"queue": "orders.created", "messages": 3000, "inFlight": 0},
        {"queue": PLANTED, "messages": 12, "inFlight": 2},
        {"queue": SCRIPT, "messages": 0, "inFlight": 1},
    ],
    "deadlineAt": "2026-12-01T01:55:00+00:00",
    "extensionsLeft": 2,
}


@pytest.fixture
def facts(aws: Any, ordered_plan: dict[str, Any]) -> dict[str, Any]:
    """drainTimeout facts: the consumers' parameters, a restart hook, queues, one planted."""
    ordered_plan["consumers"]["restartHook"] = {
        "commands": ["systemctl restart billing"],
        "targetTags": {"role": ["billing"]},
    }
    plan = parse_plan(ordered_plan)
    ssm = aws("ssm")
    for name in plan.all_parameters:
        ssm.put_parameter(Name=name, Value="ssl://onprem-mq.example.internal:61617", Type="String")
    ssm.put_parameter(
        Name=plan.consumers.parameters[1], Value=SCRIPT, Type="String", Overwrite=True
    )
    return json.loads(json.dumps(gate_facts("drainTimeout", plan, BROKER, DRAIN, ssm)))


def email(facts: dict[str, Any], **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "migration_id": "orders-2026-12-01",
        "gate": "drainTimeout",
        "facts": facts,
        "expires": "2026-12-01T06:00:00+00:00",
        "quorum": 2,
        "approver": ANA,
        "link": LINK,
        "extend_minutes": 30,
        **overrides,
    }
    subject, body = approval_email(**arguments)
    assert subject == "[mq-cutover] orders-2026-12-01: approve drainTimeout?"
    return body


def record(facts: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "approvalId": "Q3v9pX2mL0aZ",
        "migrationId": "orders-2026-12-01",
        "gate": "drainTimeout",
        "facts": json.dumps(facts),
        "status": "PENDING",
        "quorum": 2,
        "approvers": [ANA, {"id": "bea", "name": "Bea Lead"}, {"id": "cy", "name": SCRIPT}],
        "votes": [
            {
                "approver": "bea",
                "name": "Bea Lead",
                "decision": "approve",
                "at": "2026-12-01T01:58:00+00:00",
                "comment": SCRIPT,
                "source": "email-link",
            }
        ],
        "voters": {"bea"},
        "createdAt": "2026-12-01T01:56:00+00:00",
        "expiresAt": "2026-12-01T06:00:00+00:00",
        "deadlineEpoch": int((NOW + timedelta(hours=4)).timestamp()),
        "extendMinutes": 30,
        **overrides,
    }


# What a mail client or a harness takes for a decision link (cli/mq_cutover_cli/live.py).
DECISION_LINK = re.compile(r"(https?://\S+/approvals/[A-Za-z0-9_.-]+)\?decision=(\w+)")


def test_the_approvers_own_links_come_first_and_are_the_only_links(facts: dict[str, Any]) -> None:
    body = email(facts)
    assert DECISION_LINK.findall(body) == [
        (LINK, "approve"),
        (LINK, "reject"),
        (LINK, "extend"),
    ]
    assert body.count("://") == 3  # nothing else in the email can be clicked
    first_fact = body.index("What happens next:")
    assert all(m.start() < first_fact for m in DECISION_LINK.finditer(body))
    lines = body.splitlines()
    assert lines[0].startswith("Ana Ops: mq-cutover needs your decision")
    assert "Your links (personal: each votes as you, Ana Ops; do not forward them):" in lines
    # The planted queue is there, quoted on its own line, and makes no decision line.
    assert (
        '  "orders.x\\n  Approve: https:\\/\\/evil.example/dev/approvals/abc?decision=approve": '
        "12 waiting, 2 in flight"
    ) in lines
    decision_lines = [line for line in lines if re.match(r"\s*(Approve|Reject|Extend)\s*:", line)]
    assert decision_lines == [
        f"  Approve: {LINK}?decision=approve",
        f"  Reject:  {LINK}?decision=reject",
        f"  Extend:  {LINK}?decision=extend  (wait 30 more minutes)",
    ]


def test_the_email_lists_what_approving_unlocks(facts: dict[str, Any]) -> None:
    body = email(facts, extend_minutes=None)
    assert "?decision=extend" not in body
    assert "  1. Repoint Consumers (now): every consumer to Amazon MQ (2 consumer" in body
    assert 'restart hook: SSM Run Command "AWS-RunShellScript" on tag "role" = "billing"' in body
    assert '       command: "systemctl restart billing"' in body
    assert "  Then the workflow waits at gate stopOnPrem." in body
    assert '  "/mq-cutover/orders/billing/broker-url"  [Repoint Consumers: now]' in body
    assert '      from "<script>alert(1)</script>"' in body  # plain text: quoted, not escaped
    assert '        to "failover:(ssl:\\/\\/amq-1:61617)"' in body


def test_an_approver_name_that_is_not_plain_is_quoted(facts: dict[str, Any]) -> None:
    body = email(facts, approver={"id": "eve", "name": "Eve\nApprove: https://evil/x"})
    assert body.splitlines()[0].startswith('"Eve\\nApprove: https:\\/\\/evil/x": mq-cutover')
    assert body.count("://") == 3


class Parsed(HTMLParser):
    """The elements a browser would build: tags with their attributes, and the text."""

    def __init__(self, html_text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html_text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def ids(self) -> dict[str, str]:
        return {str(a["id"]): t for t, a in self.tags if a.get("id")}


def test_the_page_shows_who_votes_the_tally_the_time_left_and_asks_for_no_name(
    facts: dict[str, Any],
) -> None:
    html_text = confirmation_page(record(facts), NOW, ANA, preselect="approve")
    parsed = Parsed(html_text)
    text = " ".join(parsed.text)
    assert "You are voting as Ana Ops" in re.sub(r"\s+", " ", text)
    assert "do not forward it" in text
    ids = parsed.ids()
    for table in ("status", "voters", "unlocks", "parameters", "messages", "brokers"):
        assert ids.get(table) == "table", table
    assert [t for t, _ in parsed.tags].count("script") == 0
    assert ("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}) in (
        parsed.tags
    )
    inputs = [(t, a) for t, a in parsed.tags if t in ("input", "textarea", "select")]
    assert inputs == [
        ("textarea", {"id": "comment", "name": "comment", "maxlength": "500", "rows": "2"})
    ]
    buttons = [a["value"] for t, a in parsed.tags if t == "button"]
    assert buttons == ["approve", "reject", "extend"]
    assert "id='approve' name='decision' value='approve' class='chosen'" in html_text
    assert "<td id='votes'>1 of 2 (1 more needed)</td>" in html_text
    assert "<td id='time-left'>4 h 0 min (until 2026-12-01T06:00:00+00:00)</td>" in html_text
    # Who has voted and who not (every registered approver of the gate).
    assert "<tr><td>Ana Ops</td><td>not yet</td></tr>" in html_text
    assert "<tr><td>Bea Lead</td><td>approved at 2026-12-01T01:58:00+00:00" in html_text
    # The facts: a parameter from -> to, a queue's count, the hook.
    assert "<code>/mq-cutover/orders/fulfilment/broker-url</code>" in html_text
    assert (
        "<tr><td class='k'>from</td><td><code>ssl://onprem-mq.example.internal:61617</code>"
        in html_text
    )
    assert "<tr><td class='k'>to</td><td><code>failover:(ssl://amq-1:61617)</code>" in html_text
    assert "<tr><td><code>orders.created</code></td><td class='n'>3000</td>" in html_text
    assert "<code>systemctl restart billing</code>" in html_text
    assert "<td class='n' id='messages-left'>3012</td>" in html_text


def test_the_page_escapes_every_untrusted_value(facts: dict[str, Any]) -> None:
    html_text = confirmation_page(record(facts, migrationId=SCRIPT), NOW, ANA)
    assert SCRIPT not in html_text and "<script" not in html_text
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    # The queue, a parameter's value, a voter's name, a comment, the migration id.
    assert html_text.count(escaped) >= 5
    # The planted queue stays one value in its cell: the line break shown, no link element.
    assert (
        "<code>orders.x\\n  Approve: https://evil.example/dev/approvals/abc?decision=approve"
        "</code>" in html_text
    )
    assert "<a " not in html_text and "href" not in html_text
    invisible = confirmation_page(
        record(facts, approvers=[{"id": "ana", "name": "Ana\u202eOps\u2028x"}]), NOW, ANA
    )
    assert "Ana\\u202eOps\\u2028x" in invisible and "\u202e" not in invisible


def test_an_approver_who_has_approved_sees_no_buttons(facts: dict[str, Any]) -> None:
    html_text = confirmation_page(record(facts), NOW, {"id": "bea", "name": "Bea Lead"})
    assert "You approved at 2026-12-01T01:58:00+00:00" in html_text
    assert "<button" not in html_text and "<form" not in html_text


def test_closed_gates_show_no_form(facts: dict[str, Any]) -> None:
    expired = confirmation_page(record(facts), NOW + timedelta(hours=5), ANA)
    assert "Approval expired" in expired and "<form" not in expired
    decided = confirmation_page(
        record(facts, status="APPROVED", decidedBy=SCRIPT, decidedAt="2026-12-01T02:01:00+00:00"),
        NOW,
        ANA,
    )
    assert "Already approved by <b>&lt;script&gt;" in decided and "<form" not in decided
    assert "Unknown approval" in confirmation_page(None, NOW, ANA)


def test_result_pages_escape_and_name_the_outcome() -> None:
    html_text = result_page(
        {
            "outcome": "approved",
            "gate": "cutover",
            "migrationId": "m-1",
            "decidedBy": SCRIPT,
            "decidedAt": "2026-12-01T02:00:00+00:00",
        }
    )
    assert "approved by &lt;script&gt;" in html_text and "<script" not in html_text
    assert "not issued to an approver" in result_page({"outcome": "not-an-approver"})
    assert "<meta name='viewport'" in page("t", "")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "none"), (-5, "none"), (40, "40 s"), (600, "10 min"), (14_280, "3 h 58 min")],
)
def test_time_left_reads_at_a_glance(seconds: int, shown: str) -> None:
    assert time_left(seconds) == shown


def test_in_flight_not_read_is_shown_as_not_read_never_as_zero(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    """Aggregate readings name queues from the per-queue detail, which has no in-flight figure:
    the page shows a dash, not 0 and not "None"."""
    plan = parse_plan(ordered_plan)
    ssm = aws("ssm")
    for name in plan.all_parameters:
        ssm.put_parameter(Name=name, Value="ssl://onprem-mq.example.internal:61617", Type="String")
    drain = {
        **DRAIN,
        "queuesWithMessages": [{"queue": "orders.paid", "messages": 7, "inFlight": None}],
    }
    facts = json.loads(json.dumps(gate_facts("drainTimeout", plan, BROKER, drain, ssm)))
    html_text = confirmation_page(record(facts), NOW, ANA, preselect="approve")
    assert "<td class='n'>7</td><td class='n'>—</td>" in html_text
    assert "None" not in html_text

"""Approval gates on the real state machine: links that cannot be fooled, GET never decides,
one decision per gate, rejections and timeouts roll back, and no task token leaks."""

from __future__ import annotations

from typing import Any

import pytest

from mq_cutover_cli.live import LiveRun, live_run

pytestmark = pytest.mark.workflow

APPROVE = {"decision": "approve", "comment": "window confirmed"}
REJECT = {"decision": "reject"}


def at_gate(run: LiveRun, gate: str) -> bool:
    return run.status()["status"] == "RUNNING" and run.entered()[-1].endswith(
        {"cutover": "Approve Cutover", "stopOnPrem": "Approve Stop On-Prem"}[gate]
    )


def test_opening_links_any_number_of_times_decides_nothing(ordered_plan: dict[str, Any]) -> None:
    with live_run(ordered_plan) as run:
        email = run.wait_for_gate("cutover")
        for _ in range(5):  # a mail scanner, a chat preview, the person, twice more
            for link in (email.approve_link, email.reject_link):
                for query in ("?decision=approve", "?decision=reject", ""):
                    page = run.api.get(link + query)
                    assert page["statusCode"] == 200
                    assert "Start the cutover" in page["body"]
        assert at_gate(run, "cutover")
        assert "Repoint Producers" not in run.entered()
        assert run.parameter_values() == run.initial
        response = run.api.post(email.approve_link, APPROVE)
        assert response["statusCode"] == 200 and "approved by Ana Ops" in response["body"]
        run.wait_until("producers moved", lambda: "Repoint Producers" in run.entered())


def test_forged_expired_and_replayed_links_change_nothing(ordered_plan: dict[str, Any]) -> None:
    with live_run(ordered_plan) as run:
        email = run.wait_for_gate("cutover")
        base, link = email.approve_link.rsplit("/", 1)
        ident, who, expires, tag = link.split(".")
        flipped = ("B" if tag[0] == "A" else "A") + tag[1:]
        forgeries = [
            f"{base}/{ident}.{who}.{expires}.{flipped}",  # forged signature
            f"{base}/{ident}.{who}.{int(expires) + 86400}.{tag}",  # stretched expiry
            f"{base}/{ident}.{who}.0{expires}.{tag}",  # the same expiry, zero-padded
            f"{base}/{'x' * len(ident)}.{who}.{expires}.{tag}",  # another gate
            f"{base}/{ident}.bea.{expires}.{tag}",  # Ana's signature, Bea's name
            f"{base}/{ident}.{expires}.{tag}",  # the old form, without an approver
            f"{base}/{ident}",  # a bare id (the old, guessable style)
        ]
        for url in forgeries:
            assert run.api.get(url)["statusCode"] == 403
            refused = run.api.post(url, APPROVE)
            assert refused["statusCode"] == 403 and "Nothing was changed" in refused["body"]
        assert at_gate(run, "cutover")
        # The same, genuine link after its deadline (simulated time moves on 5 hours).
        run.emulator.clock.advance(5 * 3600)
        expired = run.api.post(email.approve_link, APPROVE)
        assert expired["statusCode"] == 410 and "Nothing was changed" in expired["body"]
        assert at_gate(run, "cutover")
        run.emulator.clock.advance(-5 * 3600)
        # Approve, then replay the same POST: the second one decides nothing.
        assert run.api.post(email.approve_link, APPROVE)["statusCode"] == 200
        replay = run.api.post(email.approve_link, APPROVE)
        assert (
            replay["statusCode"] == 409 and "Already approved by <b>Ana Ops</b>" in replay["body"]
        )
        # Another approver's reject after the gate closed does not roll anything back.
        late = run.api.post(run.wait_for_gate("cutover", approver="bea").reject_link, REJECT)
        assert late["statusCode"] == 409
        run.api.post(run.wait_for_gate("stopOnPrem").approve_link, APPROVE)
        status = run.wait_until_done()
        assert status["status"] == "SUCCEEDED"
        # One email per registered approver per gate, each in that approver's own inbox.
        assert sorted((e.gate, e.to) for e in run.approval_emails()) == [
            (gate, who) for gate in ("cutover", "stopOnPrem") for who in ("ana", "bea", "cy")
        ]
        assert all(e.approver == e.to for e in run.approval_emails())


def test_reject_through_the_page_rolls_back_and_says_who_and_why(
    unordered_plan: dict[str, Any],
) -> None:
    with live_run(unordered_plan) as run:
        run.api.post(run.wait_for_gate("cutover").approve_link, APPROVE)
        email = run.wait_for_gate("stopOnPrem")
        page = run.api.get(email.reject_link + "?decision=reject")
        assert "Stop the on-prem broker" in page["body"] and "class='chosen'" in page["body"]
        bea = run.wait_for_gate("stopOnPrem", approver="bea")
        run.api.post(bea.reject_link, {**REJECT, "comment": "DLQ"})
        status = run.wait_until_done()
        assert status["status"] == "FAILED" and status["error"] == "Rejected"
        assert "stopOnPrem rejected by Bea Lead: DLQ" in status["cause"]
        assert run.parameter_values() == run.initial
        (note,) = [
            m for m in run.emulator.inbox("NotificationTopic") if "rolled back" in m["subject"]
        ]
        assert "Cause: stopOnPrem rejected by Bea Lead: DLQ" in note["message"]


def test_a_gate_nobody_decides_times_out_and_rolls_back(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["approvals"] = {"timeoutMinutes": 2}
    # 2 minutes of gate time pass in about a second of real time (see harness.py).
    with live_run(ordered_plan, approval_timeout_scale=1 / 120) as run:
        run.wait_for_gate("cutover")
        status = run.wait_until_done()
        assert status["status"] == "FAILED" and status["error"] == "ApprovalTimedOut"
        assert "Nobody decided gate cutover within 2 minutes" in status["cause"]
        assert run.entered()[-4:] == [
            "Roll Back",
            "Rollback Next?",
            "Notify Rolled Back",
            "Rolled Back",
        ]
        assert run.parameter_values() == run.initial


def test_quorum_of_two_distinct_approvers(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["approvals"] = {"quorum": {"cutover": 2}}
    with live_run(ordered_plan) as run:
        email = run.wait_for_gate("cutover")
        assert "This gate needs 2 different approvers" in email.message
        first = run.api.post(email.approve_link, APPROVE)
        assert "recorded (1 of 2)" in first["body"]
        assert run.api.post(email.approve_link, APPROVE)["statusCode"] == 409  # same person
        assert at_gate(run, "cutover")
        run.api.post(run.wait_for_gate("cutover", approver="bea").approve_link, APPROVE)
        run.api.post(run.wait_for_gate("stopOnPrem").approve_link, APPROVE)
        assert run.wait_until_done()["status"] == "SUCCEEDED"
        table = run.emulator.resources["ApprovalsTable"]
        records = run.emulator.client("dynamodb").scan(TableName=table)["Items"]
        (cutover,) = [r for r in records if r["gate"]["S"] == "cutover"]
        assert cutover["decidedBy"]["S"] == "Ana Ops, Bea Lead"
        assert [v["M"]["approver"]["S"] for v in cutover["votes"]["L"]] == ["ana", "bea"]


def test_the_task_token_appears_in_no_email_or_page(ordered_plan: dict[str, Any]) -> None:
    """(Logs at every level: tests/workflow/test_no_secrets_in_logs.py.)"""
    with live_run(ordered_plan) as run:
        emulator = run.emulator
        pages = []
        for gate in ("cutover", "stopOnPrem"):
            email = run.wait_for_gate(gate)
            pages.append(run.api.get(email.approve_link)["body"])
            pages.append(run.api.post(email.approve_link, APPROVE)["body"])
        run.wait_until_done()
        items = emulator.client("dynamodb").scan(TableName=emulator.resources["ApprovalsTable"])
        tokens = [item["taskToken"]["S"] for item in items["Items"]]
        assert len(tokens) == 2 and all(len(t) > 20 for t in tokens)
        mail = [
            m["message"] for t in ("ApprovalTopic", "NotificationTopic") for m in emulator.inbox(t)
        ]
        assert len(mail) >= 6 and len(pages) == 4
        for token in tokens:
            # Nor any long piece of it (a token cut or wrapped by a mailer).
            assert all(token[10:40] not in text for text in mail + pages)


def test_the_simulator_rehearses_a_plan_with_quorums(ordered_plan: dict[str, Any]) -> None:
    """`mq-cutover simulate` on a plan whose gates need 2 and 3 people: distinct simulated
    approvers vote one after another until each gate opens (it used to wait for a second vote
    that never came)."""
    from tests.workflow.conftest import run as simulate

    ordered_plan["approvals"] = {"quorum": {"cutover": 2, "stopOnPrem": 3}}
    sim = simulate(ordered_plan)
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
    people = {"Ana Ops", "Bea Lead", "Cy Oncall"}
    decided = {a["gate"]: a["decidedBy"].split(", ") for a in sim.report["approvals"]}
    for gate, quorum in (("cutover", 2), ("stopOnPrem", 3)):
        assert len(decided[gate]) == len(set(decided[gate]) & people) == quorum, decided
        # One vote per person, every vote counted (nobody answered a gate already open).
        votes = [a for a in sim.report["approverActions"] if a["gate"] == gate]
        assert len({a["approver"] for a in votes}) == len(votes) == quorum, votes
        assert {a["postStatus"] for a in votes} == {200}

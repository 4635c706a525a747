"""Approval gates on the real state machine: links that cannot be fooled, GET never decides,
one decision per gate, rejections and timeouts roll back, and no task token leaks."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from mq_cutover_cli.decide import decide_from_terminal
from mq_cutover_cli.live import LiveRun, live_run

pytestmark = pytest.mark.workflow

APPROVE = {"decision": "approve", "name": "Ana Ops", "comment": "window confirmed"}


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
        ident, expires, tag = link.split(".")
        flipped = ("B" if tag[0] == "A" else "A") + tag[1:]
        forgeries = [
            f"{base}/{ident}.{expires}.{flipped}",  # forged signature
            f"{base}/{ident}.{int(expires) + 86400}.{tag}",  # stretched expiry
            f"{base}/{'x' * len(ident)}.{expires}.{tag}",  # another id
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
        replay = run.api.post(email.approve_link, {**APPROVE, "name": "Mallory"})
        assert (
            replay["statusCode"] == 409 and "Already approved by <b>Ana Ops</b>" in replay["body"]
        )
        # A reject after the gate closed does not roll anything back.
        late = run.api.post(email.reject_link, {"decision": "reject", "name": "Bob"})
        assert late["statusCode"] == 409
        run.api.post(run.wait_for_gate("stopOnPrem").approve_link, APPROVE)
        status = run.wait_until_done()
        assert status["status"] == "SUCCEEDED"
        assert [e.gate for e in run.approval_emails()] == ["cutover", "stopOnPrem"]


def test_reject_through_the_page_rolls_back_and_says_who_and_why(
    unordered_plan: dict[str, Any],
) -> None:
    with live_run(unordered_plan) as run:
        run.api.post(run.wait_for_gate("cutover").approve_link, APPROVE)
        email = run.wait_for_gate("stopOnPrem")
        page = run.api.get(email.reject_link + "?decision=reject")
        assert "Stop the on-prem broker" in page["body"] and "class='chosen'" in page["body"]
        run.api.post(email.reject_link, {"decision": "reject", "name": "Bob", "comment": "DLQ"})
        status = run.wait_until_done()
        assert status["status"] == "FAILED" and status["error"] == "Rejected"
        assert "stopOnPrem rejected by Bob: DLQ" in status["cause"]
        assert run.parameter_values() == run.initial
        (note,) = [
            m for m in run.emulator.inbox("NotificationTopic") if "rolled back" in m["subject"]
        ]
        assert "Cause: stopOnPrem rejected by Bob: DLQ" in note["message"]


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
    ordered_plan["approvals"] = {"gates": ["cutover"], "quorum": {"cutover": 2}}
    with live_run(ordered_plan) as run:
        email = run.wait_for_gate("cutover")
        assert "This gate needs 2 different approvers" in email.message
        first = run.api.post(email.approve_link, APPROVE)
        assert "recorded (1 of 2)" in first["body"]
        assert run.api.post(email.approve_link, APPROVE)["statusCode"] == 409  # same person
        assert at_gate(run, "cutover")
        run.api.post(email.approve_link, {**APPROVE, "name": "Bea Lead"})
        assert run.wait_until_done()["status"] == "SUCCEEDED"
        record = run.emulator.client("dynamodb").scan(
            TableName=run.emulator.resources["ApprovalsTable"]
        )["Items"][0]
        assert record["decidedBy"]["S"] == "Ana Ops, Bea Lead"


def test_approve_from_a_terminal_records_the_iam_identity(ordered_plan: dict[str, Any]) -> None:
    with live_run(ordered_plan) as run:
        run.wait_for_gate("cutover")
        emulator = run.emulator
        table = boto3.resource("dynamodb", region_name="us-east-1").Table(
            emulator.resources["ApprovalsTable"]
        )
        sfn, sts = emulator.client("stepfunctions"), emulator.client("sts")
        kwargs: dict[str, Any] = {
            "migration_id": "orders-2026-12-01",
            "comment": "go",
            "now": emulator.clock.now(),
        }
        wrong = decide_from_terminal(
            table, sfn, sts, decision="approve", gate="stopOnPrem", **kwargs
        )
        assert wrong["outcome"] == "nothing-pending"
        result = decide_from_terminal(table, sfn, sts, decision="approve", gate=None, **kwargs)
        assert result["outcome"] == "approved"
        assert result["decidedBy"] == sts.get_caller_identity()["Arn"]
        run.wait_for_gate("stopOnPrem")
        record = table.scan()["Items"]
        cutover = next(r for r in record if r["gate"] == "cutover")
        assert cutover["source"] == "cli" and cutover["decidedBy"].startswith("arn:aws:")


def test_the_task_token_appears_in_no_log_email_or_page(ordered_plan: dict[str, Any]) -> None:
    with live_run(ordered_plan, log_level="DEBUG") as run:
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
        logs = emulator.captured_output.getvalue()
        assert "approval requested" in logs  # the handlers' logs were captured
        mail = [
            m["message"] for t in ("ApprovalTopic", "NotificationTopic") for m in emulator.inbox(t)
        ]
        for token in tokens:
            assert token not in logs
            assert all(token not in text for text in mail + pages)
            # Nor any long piece of it (a token cut or wrapped by a mailer).
            assert all(token[10:40] not in text for text in [logs, *mail, *pages])

"""One run per migration, and a later attempt that resumes safely."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mq_cutover_cli.live import live_run
from tests.workflow.conftest import run

pytestmark = pytest.mark.workflow

APPROVE = {"decision": "approve", "name": "Ana Ops"}


def test_a_second_execution_of_a_running_migration_is_refused(ordered_plan: dict[str, Any]) -> None:
    with live_run(ordered_plan) as first:
        first.wait_for_gate("cutover")  # the first run holds the lease and waits at its gate
        emulator = first.emulator
        second = emulator.start(json.dumps(ordered_plan), name="orders-2026-12-01--2")
        status = first.wait_until(
            "the second run to end",
            lambda: s if (s := emulator.status(second))["status"] != "RUNNING" else None,
        )
        assert status["status"] == "FAILED" and status["error"] == "MigrationAlreadyRunning"
        assert "already being run by orders-2026-12-01 " in status["cause"]
        assert emulator.states_entered(second) == [
            "Validate Plan",
            "Take Migration Lease",
            "Notify Not Started",
            "Not Started",
        ]
        # Nothing of the first run was touched, and it goes on.
        assert len(emulator.client("mq").list_brokers()["BrokerSummaries"]) == 1
        assert first.status()["status"] == "RUNNING"
        first.api.post(first.wait_for_gate("cutover").approve_link, APPROVE)
        first.api.post(first.wait_for_gate("stopOnPrem").approve_link, APPROVE)
        assert first.wait_until_done()["status"] == "SUCCEEDED"


def test_a_later_attempt_after_a_rollback_adopts_the_broker_and_succeeds(
    ordered_plan: dict[str, Any],
) -> None:
    def second_attempt(emulator: Any, first_arn: str) -> None:
        # The first attempt was rejected at stopOnPrem and rolled back; now try again.
        arn = emulator.start(json.dumps(ordered_plan), name="orders-2026-12-01--2")
        from mq_cutover_cli.simulate import Approver

        approver = Approver(emulator, "auto")
        approver._read = len(emulator.inbox("ApprovalTopic"))  # the first run's mail is read
        import time

        deadline = time.monotonic() + 60
        while emulator.status(arn)["status"] == "RUNNING" and time.monotonic() < deadline:
            approver.service()
            time.sleep(0.05)
        status = emulator.status(arn)
        assert status["status"] == "SUCCEEDED", status
        output = json.loads(status["output"])
        assert output["broker"]["created"] is False  # adopted: CreatorRequestId / tag
        assert len(emulator.client("mq").list_brokers()["BrokerSummaries"]) == 1
        ssm = emulator.client("ssm")
        for name in ordered_plan["producers"]["parameters"]:
            assert (
                ssm.get_parameter(Name=name)["Parameter"]["Value"] == output["broker"]["clientUrl"]
            )
        outcomes.append(status["status"])

    outcomes: list[str] = []
    first = run(ordered_plan, approve="reject:stopOnPrem", after_run=second_attempt)
    assert first.report["execution"]["status"] == "FAILED"
    assert outcomes == ["SUCCEEDED"]

"""Waiting for the clients' restart hooks: every host must succeed, in time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mq_cutover.errors import RestartHookFailed
from mq_cutover.plan import MigrationPlan, parse_plan
from mq_cutover.restart_hooks import check_restart

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
COMMAND = "0b1c2d3e-4f5a-6071-8a9b-0c1d2e3f4a5b"


class FakeSsm:
    """ListCommands and ListCommandInvocations answered from what a test sets (SSM's shapes)."""

    def __init__(self, status: str, invocations: list[tuple[str, str, str]], targets: int = 0):
        self.command = {"CommandId": COMMAND, "Status": status, "TargetCount": targets}
        self.invocations = [
            {"CommandId": COMMAND, "InstanceId": host, "Status": s, "StatusDetails": d}
            for host, s, d in invocations
        ]

    def list_commands(self, CommandId: str) -> dict[str, Any]:
        return {"Commands": [self.command] if CommandId == COMMAND else []}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_command_invocations"
        ssm = self

        class Pages:
            def paginate(self, CommandId: str) -> list[dict[str, Any]]:
                # Two pages, as SSM returns them past MaxResults.
                half = len(ssm.invocations) // 2
                return [
                    {"CommandInvocations": ssm.invocations[:half], "NextToken": "t"},
                    {"CommandInvocations": ssm.invocations[half:]},
                ]

        return Pages()


@pytest.fixture
def plan(ordered_plan: dict[str, Any]) -> MigrationPlan:
    ordered_plan["producers"]["restartHook"] = {
        "commands": ["systemctl restart checkout"],
        "instanceIds": ["i-0a1b2c3d4e5f60718", "i-0b1c2d3e4f5a60718"],
        "timeoutSeconds": 120,
        "pollIntervalSeconds": 15,
    }
    return parse_plan(ordered_plan)


def _check(plan: MigrationPlan, ssm: FakeSsm, previous: Any = None, now: datetime = NOW) -> Any:
    commands = [{"group": "producers", "commandId": COMMAND}]
    return check_restart(plan, ssm, commands, previous, now=now, step="Repoint Producers")


def test_done_when_every_host_succeeded(plan: MigrationPlan) -> None:
    ssm = FakeSsm(
        "Success",
        [
            ("i-0a1b2c3d4e5f60718", "Success", "Success"),
            ("i-0b1c2d3e4f5a60718", "Success", "Success"),
        ],
        targets=2,
    )
    result = _check(plan, ssm)
    assert result["done"] and result["hosts"] == 2 and result["succeeded"] == 2
    assert result["pollIntervalSeconds"] == 15
    assert result["deadlineAt"] == (NOW + timedelta(seconds=120)).isoformat()


def test_a_host_still_running_is_waited_for_until_the_deadline(plan: MigrationPlan) -> None:
    ssm = FakeSsm(
        "InProgress",
        [("i-0a1b2c3d4e5f60718", "Success", "Success"), ("i-0b1c2d3e4f5a60718", "InProgress", "")],
    )
    first = _check(plan, ssm)
    assert not first["done"] and first["pending"] == ["i-0b1c2d3e4f5a60718 (InProgress)"]
    # The deadline counts from the first look, whatever the clock says later.
    later = _check(plan, ssm, first, NOW + timedelta(seconds=119))
    assert later["startedAt"] == first["startedAt"] and later["checks"] == 2
    with pytest.raises(RestartHookFailed) as failed:
        _check(plan, ssm, later, NOW + timedelta(seconds=120))
    message = str(failed.value)
    assert "after Repoint Producers did not finish within 120 s" in message
    assert "(1 of 2 host(s) succeeded); still running: i-0b1c2d3e4f5a60718 (InProgress)" in message


@pytest.mark.parametrize(
    ("status", "detail", "shown"),
    [
        ("Failed", "Failed", "Failed"),
        ("TimedOut", "Execution Timed Out", "Execution Timed Out"),
        ("Cancelled", "Cancelled", "Cancelled"),
        ("Failed", "Undeliverable", "Undeliverable"),
        ("Pending", "Delivery Timed Out", "Delivery Timed Out"),
    ],
)
def test_a_host_that_fails_fails_the_step_and_is_named(
    plan: MigrationPlan, status: str, detail: str, shown: str
) -> None:
    ssm = FakeSsm(
        "InProgress",
        [("i-0a1b2c3d4e5f60718", "InProgress", ""), ("i-0b1c2d3e4f5a60718", status, detail)],
    )
    with pytest.raises(RestartHookFailed) as failed:
        _check(plan, ssm)  # at once: no need to wait for the others
    assert str(failed.value) == (
        f"restart hook of producers after Repoint Producers (command {COMMAND}) failed on 1 of "
        f"2 host(s): i-0b1c2d3e4f5a60718 ({shown})"
    )


def test_a_command_that_reached_no_host_fails(plan: MigrationPlan) -> None:
    with pytest.raises(RestartHookFailed, match=r"reached no host .*0 targets"):
        _check(plan, FakeSsm("Success", []))


def test_a_command_not_yet_delivered_is_waited_for(plan: MigrationPlan) -> None:
    result = _check(plan, FakeSsm("Pending", []))
    assert not result["done"]
    assert result["pending"] == [f"(no host yet for command {COMMAND}) (Pending)"]


def test_an_unknown_command_fails(plan: MigrationPlan) -> None:
    with pytest.raises(RestartHookFailed, match="unknown to SSM"):
        check_restart(
            plan, FakeSsm("Success", []), [{"group": "producers", "commandId": "x"}], None, now=NOW
        )


def test_many_failed_hosts_are_counted_past_twenty(plan: MigrationPlan) -> None:
    hosts = [(f"i-{n:017x}", "Failed", "Failed") for n in range(25)]
    with pytest.raises(RestartHookFailed) as failed:
        _check(plan, FakeSsm("Failed", hosts))
    assert "failed on 25 of 25 host(s)" in str(failed.value)
    assert str(failed.value).endswith("and 5 more")

"""One run per migration: the lease is refused while its holder runs, taken over after; only
its holder may change anything."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from mq_cutover.errors import LeaseLost, MigrationAlreadyRunning
from mq_cutover.lease import take_lease, verify_lease

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
FIRST = "arn:aws:states:us-east-1:123456789012:execution:Migration:m1"
SECOND = "arn:aws:states:us-east-1:123456789012:execution:Migration:m1--2"


class Executions:
    """describe_execution answers from a dict (the workflow tests use real executions)."""

    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses

    def describe_execution(self, executionArn: str) -> dict[str, str]:
        return {"status": self.statuses[executionArn]}


@pytest.fixture
def table(aws: Any) -> Any:
    aws("dynamodb").create_table(
        TableName="migrations",
        KeySchema=[{"AttributeName": "migrationId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "migrationId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return boto3.resource("dynamodb", region_name="us-east-1").Table("migrations")


def test_second_run_is_refused_while_the_first_runs(table: Any) -> None:
    sfn = Executions({FIRST: "RUNNING"})
    take_lease(table, sfn, migration_id="m1", execution_arn=FIRST, now=NOW)
    # The holder taking it again (a retried step) is fine.
    take_lease(table, sfn, migration_id="m1", execution_arn=FIRST, now=NOW)
    with pytest.raises(MigrationAlreadyRunning, match="already being run by m1 "):
        take_lease(table, sfn, migration_id="m1", execution_arn=SECOND, now=NOW)
    assert table.get_item(Key={"migrationId": "m1"})["Item"]["executionArn"] == FIRST


@pytest.mark.parametrize("ended", ["SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"])
def test_lease_is_taken_over_once_the_holder_ended(table: Any, ended: str) -> None:
    sfn = Executions({FIRST: ended})
    take_lease(table, sfn, migration_id="m1", execution_arn=FIRST, now=NOW)
    lease = take_lease(table, sfn, migration_id="m1", execution_arn=SECOND, now=NOW)
    assert lease["tookOverFrom"] == "m1" and lease["holderStatus"] == ended
    assert table.get_item(Key={"migrationId": "m1"})["Item"]["executionArn"] == SECOND


def test_the_holder_may_change_things(table: Any) -> None:
    take_lease(table, Executions({}), migration_id="m1", execution_arn=FIRST, now=NOW)
    assert verify_lease(table, migration_id="m1", execution_arn=FIRST)["executionArn"] == FIRST


def test_an_older_attempt_redriven_after_a_later_one_took_over_is_refused(table: Any) -> None:
    """A redrive resumes a failed run past Take Migration Lease: it must not touch the clients
    the later attempt now owns."""
    sfn = Executions({FIRST: "FAILED"})
    take_lease(table, sfn, migration_id="m1", execution_arn=FIRST, now=NOW)
    take_lease(table, sfn, migration_id="m1", execution_arn=SECOND, now=NOW)
    with pytest.raises(LeaseLost) as lost:
        verify_lease(table, migration_id="m1", execution_arn=FIRST)
    assert str(lost.value).startswith(
        "execution m1 no longer holds migration m1's lease: m1--2 holds it "
        f"(since {NOW.isoformat()}); nothing was changed"
    )
    assert table.get_item(Key={"migrationId": "m1"})["Item"]["executionArn"] == SECOND


def test_no_lease_at_all_is_refused(table: Any) -> None:
    with pytest.raises(LeaseLost, match="nobody holds it"):
        verify_lease(table, migration_id="m1", execution_arn=FIRST)

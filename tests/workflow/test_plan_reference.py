"""Plans by reference, end to end: a run started with `{"planRef": ...}` (the stack's plan
bucket, or Parameter Store under the plan parameter prefix) validates and runs the plan it names;
a plan too large for the state is stored by Validate Plan and every step reads it through a
reference, so no state carries the plan's lists; a bad reference fails at Validate Plan, naming
planRef and why, with nothing changed; the template's schedule starts a run with a reference."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from mq_cutover.plan import PACKED_PREFIX, PLAN_REF_PREFIX, parse_plan
from mq_cutover_cli.harness import STACK_NAME, Emulator, SimClock, bucket_name, load_template
from mq_cutover_cli.live import TERMINAL, _drive_to_an_end
from mq_cutover_cli.world import World, default_world
from tests import iam_policies as iam
from tests.workflow.conftest import final_values, run, task_results

pytestmark = pytest.mark.workflow

BUCKET = bucket_name("PlanBucket")
PLAN_PREFIX = "/mq-cutover-plans/"


def large(plan: dict[str, Any], producers: int = 800) -> dict[str, Any]:
    """Producer parameters whose names do not compress: the packed plan passes 8 KB."""
    plan["producers"]["parameters"] = [
        f"/mq-cutover/fleet/p-{hashlib.sha256(str(i).encode()).hexdigest()[:12]}/broker-url"
        for i in range(producers)
    ]
    return plan


def payloads(history: list[dict[str, Any]]) -> list[str]:
    """Every state's input, output and task parameters (the execution's own input left out)."""
    found = []
    for event in history:
        if event["type"] == "ExecutionStarted":
            continue
        for key, details in event.items():
            if not key.endswith("EventDetails") or not isinstance(details, dict):
                continue
            found += [
                details[k]
                for k in ("input", "output", "parameters")
                if isinstance(details.get(k), str)
            ]
    return found


def started_input(history: list[dict[str, Any]]) -> Any:
    (started,) = [e for e in history if e["type"] == "ExecutionStarted"]
    return json.loads(started["executionStartedEventDetails"]["input"])


def test_a_large_plan_in_the_stacks_bucket_runs_and_the_state_carries_a_reference(
    ordered_plan: dict[str, Any],
) -> None:
    plan = large(ordered_plan)
    parameters = plan["producers"]["parameters"] + plan["consumers"]["parameters"]
    sim = run(plan, plan_reference="s3")
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
    # The run was started with a reference to the plan, as `mq-cutover start` does.
    text = json.dumps(plan).encode()
    key = f"plans/{plan['migrationId']}/{hashlib.sha256(text).hexdigest()}.json"
    assert started_input(sim.history) == {"planRef": f"s3://{BUCKET}/{key}"}
    # Validate Plan stored the packed plan; every step got the reference, never the plan.
    (validated,) = task_results(sim, "Validate Plan")
    packed = validated["packed"]
    assert re.fullmatch(
        rf"{PLAN_REF_PREFIX}s3://{BUCKET}/validated/{plan['migrationId']}/([0-9a-f]{{64}})\.mqc1#\1",
        packed,
    ), packed
    assert validated["summary"]["producers"]["parameterCount"] == 800
    states = payloads(sim.history)
    assert not any(PACKED_PREFIX + "H4s" in p for p in states)  # no gzipped plan anywhere
    assert not any(json.dumps(plan["onPrem"]["queues"]) in p for p in states)
    assert not any(json.dumps(plan["producers"]["parameters"]) in p for p in states)
    # A step names at most the first 50 parameters it moved (and counts the rest).
    assert max(sum(name in p for name in parameters) for p in states) <= 50
    assert max(len(p.encode()) for p in states) < 64 * 1024
    # And the plan it named was the one run: every parameter moved to the broker.
    client_url = sim.report["execution"]["output"]["broker"]["clientUrl"]
    assert set(final_values(sim).values()) == {client_url}
    assert len(final_values(sim)) == len(parameters)


def test_a_plan_in_parameter_store_runs_and_a_small_plan_stays_inline(
    ordered_plan: dict[str, Any],
) -> None:
    sim = run(ordered_plan, plan_reference="ssm")
    assert sim.report["execution"]["status"] == "SUCCEEDED", sim.report["execution"]
    name = f"{PLAN_PREFIX}{ordered_plan['migrationId']}"
    assert started_input(sim.history) == {"planRef": f"ssm:{name}"}
    (validated,) = task_results(sim, "Validate Plan")
    assert validated["packed"].startswith(PACKED_PREFIX)  # ~1 KB packed: no need to store it
    assert parse_plan(validated["packed"]) == parse_plan(ordered_plan)
    client_url = sim.report["execution"]["output"]["broker"]["clientUrl"]
    assert set(final_values(sim).values()) == {client_url}


# ----------------------------------------------------------------------------- bad references
Prepare = Callable[[Emulator, dict[str, Any]], dict[str, Any]]


def _foreign_bucket(emulator: Emulator, plan: dict[str, Any]) -> dict[str, Any]:
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="someone-elses-plans")
    s3.put_object(Bucket="someone-elses-plans", Key="plans/p.json", Body=json.dumps(plan))
    return {"planRef": "s3://someone-elses-plans/plans/p.json"}


def _missing_key(_emulator: Emulator, _plan: dict[str, Any]) -> dict[str, Any]:
    return {"planRef": f"s3://{BUCKET}/plans/ghost.json"}


def _outside_the_prefix(emulator: Emulator, plan: dict[str, Any]) -> dict[str, Any]:
    emulator.client("ssm").put_parameter(
        Name="/team/plans/orders", Value=json.dumps(plan), Type="String"
    )
    return {"planRef": "ssm:/team/plans/orders"}


def _not_json(emulator: Emulator, _plan: dict[str, Any]) -> dict[str, Any]:
    emulator.client("s3").put_object(Bucket=BUCKET, Key="plans/p.yaml", Body=b"mode: ordered")
    return {"planRef": f"s3://{BUCKET}/plans/p.yaml"}


BAD_REFERENCES: dict[str, tuple[Prepare, str]] = {
    "foreign bucket": (_foreign_bucket, "not the stack's plan bucket"),
    "missing key": (_missing_key, "no such key"),
    "parameter outside the prefix": (_outside_the_prefix, "outside the plan parameter prefix"),
    "not JSON": (_not_json, "not JSON"),
}


@dataclass
class StartedRun:
    emulator: Emulator
    arn: str
    world: World


@contextmanager
def started_by_reference(
    plan: dict[str, Any], execution_input: Callable[[Emulator], str], name: str
) -> Iterator[StartedRun]:
    """A run started (under `name`) in `plan`'s world with the execution input that
    `execution_input` prepares (a reference, and whatever it names), driven to an end after."""
    parsed = parse_plan(plan)
    world = default_world(parsed)
    world.fill_defaults(parsed)
    emulator = Emulator(SimClock())
    with emulator.running():
        world.install(emulator, parsed)
        arn = emulator.start(execution_input(emulator), name=name)
        try:
            yield StartedRun(emulator, arn, world)
        finally:
            _drive_to_an_end(emulator, arn)


def _wait(emulator: Emulator, arn: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (status := emulator.status(arn))["status"] not in TERMINAL:
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.05)
    return status


@pytest.mark.parametrize("case", sorted(BAD_REFERENCES))
def test_a_bad_reference_fails_at_validate_plan_naming_plan_ref_and_changes_nothing(
    ordered_plan: dict[str, Any], case: str
) -> None:
    prepare, why = BAD_REFERENCES[case]

    def reference(emulator: Emulator) -> str:
        return json.dumps(prepare(emulator, ordered_plan))

    with started_by_reference(ordered_plan, reference, ordered_plan["migrationId"]) as started:
        emulator, arn = started.emulator, started.arn
        status = _wait(emulator, arn)
        history = emulator.history(arn)
        entered = emulator.states_entered(arn)
        s3 = emulator.client("s3")
        stored = s3.list_objects_v2(Bucket=BUCKET, Prefix="validated/").get("KeyCount", 0)
        brokers = emulator.client("mq").list_brokers()["BrokerSummaries"]
        ssm = emulator.client("ssm")
        versions = {
            n: ssm.get_parameter(Name=n)["Parameter"]["Version"] for n in started.world.parameters
        }
    assert status["status"] == "FAILED"
    (failed,) = [e for e in history if e["type"] == "TaskFailed"]
    assert failed["taskFailedEventDetails"]["error"] == "PlanInvalid"
    message = json.loads(failed["taskFailedEventDetails"]["cause"])["errorMessage"]
    assert message.startswith("planRef: ") and why in message, message
    assert "Validate Plan" in entered and "Take Migration Lease" not in entered
    # Nothing changed: no broker, no client parameter written, nothing stored.
    assert brokers == [] and stored == 0
    assert set(versions.values()) == {1}


# ------------------------------------------------------------------------- the schedule's path
def test_the_templates_schedule_starts_the_run_with_a_reference(
    ordered_plan: dict[str, Any],
) -> None:
    """CutoverPlanRef (a key in the plan bucket, here) becomes the execution input
    {"planRef": ...}; Validate Plan reads the plan from the stack's bucket."""
    parameters = {
        "CutoverAt": "2026-12-01T02:00:00",
        "CutoverMigrationId": ordered_plan["migrationId"],
        "CutoverPlanRef": "plans/orders-2026-12-01.json",
    }
    stack = iam.Stack(parameters=parameters)
    assert stack.exists("CutoverSchedule")
    target = stack.resolve(stack.resources["CutoverSchedule"]["Properties"]["Target"])
    started = json.loads(target["Input"])
    assert started["Name"] == ordered_plan["migrationId"]
    assert json.loads(started["Input"]) == {"planRef": "plans/orders-2026-12-01.json"}
    assert len(target["Input"].encode()) < 512  # whatever the plan's size
    # The parameter takes a reference, never a plan.
    pattern = load_template()["Parameters"]["CutoverPlanRef"]["AllowedPattern"]
    for accepted in (
        "",
        "plans/orders-2026-12-01.json",
        f"s3://{BUCKET}/plans/orders/0a1b.json",
        "ssm:/mq-cutover-plans/orders-2026-12-01",
    ):
        assert re.fullmatch(pattern, accepted), accepted
    for refused in (
        json.dumps(ordered_plan),
        'plans/a"b.json',
        "s3://bucket/validated/x.mqc1",
        "https://example.com/plan.json",
    ):
        assert not re.fullmatch(pattern, refused), refused

    def scheduled(emulator: Emulator) -> str:
        emulator.client("s3").put_object(
            Bucket=BUCKET, Key=parameters["CutoverPlanRef"], Body=json.dumps(ordered_plan)
        )
        return str(started["Input"])

    with started_by_reference(ordered_plan, scheduled, started["Name"]) as scheduled_run:
        emulator, arn = scheduled_run.emulator, scheduled_run.arn
        deadline = time.monotonic() + 60
        while "Take Migration Lease" not in emulator.states_entered(arn):
            assert emulator.status(arn)["status"] == "RUNNING", emulator.status(arn)
            assert time.monotonic() < deadline
            time.sleep(0.05)
        validated = next(
            json.loads(e["taskSucceededEventDetails"]["output"])["Payload"]
            for e in emulator.history(arn)
            if e["type"] == "TaskSucceeded"
        )
    assert validated["summary"]["migrationId"] == ordered_plan["migrationId"]
    assert parse_plan(validated["packed"]) == parse_plan(ordered_plan)
    assert STACK_NAME in BUCKET

"""mq-cutover benchmark: prints the drain and scale figures of the README (issue 15's targets).

Runs the real state machine and handlers in the offline harness (moto), against a simulated
draining on-prem broker whose statistics the product's metrics bridge code publishes to the
simulated CloudWatch (`cli/mq_cutover_cli/world.py`). Time is simulated, so a 12-hour drain
takes minutes; the wall-clock figures are this machine's, in-process, against moto.

    .venv/bin/python bench/benchmark.py            # everything (about an hour here)
    .venv/bin/python bench/benchmark.py --quick    # a smoke run (10 queues, fewer trials)

For 10, 100, 1,000 and 10,000 queues and client parameters:
1. drain-detection lag: seconds from the last message consumed on-prem to leaving the drain
   loop, p50 and p95, per setting (fewer trials at the larger sizes: printed);
2. cost per drain-hour, MEASURED on a simulated drain: every AWS call the bridge and the
   handlers make is counted (GetMetricData metrics requested, ListMetrics and PutMetricData
   requests, distinct custom metrics that received data), state transitions and Lambda calls
   come from the execution history and the simulated clock; priced at us-east-1 list prices,
   with the ratio to the broker's hourly price; and history events per drain hour;
3. a whole migration with a 12-hour drain at the largest size and the fastest setting (history
   events of the drain loop and of the whole execution);
4. one whole offline run per size and mode: status, wall time, history events, the largest
   state payload (with and without the execution input) and the largest sum of the workflow's
   variables.
Then the issue's targets, PASS or FAIL.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import functools
import json
import multiprocessing
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "cli")]

from botocore.client import BaseClient  # noqa: E402

from mq_cutover.plan import AMAZON_MQ_MONITORED_DESTINATIONS, Engine  # noqa: E402
from mq_cutover_cli.harness import Emulator  # noqa: E402
from mq_cutover_cli.simulate import Simulation  # noqa: E402
from mq_cutover_cli.world import SimQueue, World  # noqa: E402

# us-east-1 list prices (USD).
PRICE_TRANSITION = 0.025 / 1000  # Step Functions standard, per state transition
PRICE_LAMBDA_GB_SECOND = 0.0000133334  # arm64
PRICE_LAMBDA_REQUEST = 0.20 / 1_000_000
PRICE_GET_METRIC_DATA = 0.01 / 1000  # per metric requested
PRICE_CLOUDWATCH_REQUEST = 0.01 / 1000  # PutMetricData, ListMetrics: per request
PRICE_METRIC_HOUR = 0.30 / 730  # a custom metric, prorated by the hour it receives data in
BROKER_PER_HOUR = 0.288  # mq.m5.large, single instance
LAMBDA_GB = 256 / 1024  # MemorySize in template.yaml
# The scheduled bridge Lambda (template.yaml MetricsBridgeFunction): one call a minute that
# samples for about 50 s. The simulator's bridge is not a Lambda: this one figure is a formula.
BRIDGE_LAMBDA_SECONDS_PER_HOUR = 60 * 52
BRIDGE_LAMBDA_CALLS_PER_HOUR = 60

HISTORY_LIMIT = 25_000  # Step Functions standard: events in one execution
PAYLOAD_TARGET = 64 * 1024
EVENTS_12H_TARGET = 5_000
COST_TARGET = 1.0  # USD per drain-hour at 1,000 queues, fastest setting
LAG_P95_TARGET = 5.0  # seconds at 1,000 queues, fastest setting


@dataclass(frozen=True)
class Setting:
    name: str
    period: int  # onPrem.metrics.periodSeconds (= the bridge's sampling interval)
    poll: int  # drain.pollIntervalSeconds
    k: int  # drain.consecutiveEmptyReadings

    def describe(self) -> str:
        return f"period {self.period} s, reading every {self.poll} s, K={self.k}"


SETTINGS = [
    Setting("default", 60, 60, 3),
    Setting("10-second", 10, 10, 3),
    Setting("fastest", 1, 1, 3),
]
SIZES = [10, 100, 1000, 10_000]
# Lag trials per setting and size (whole runs): fewer at the larger sizes, printed as such.
TRIALS = {10: 15, 100: 10, 1000: 5, 10_000: 2}
# Simulated minutes of the never-ending drain each cost figure is measured over.
COST_MINUTES = {10: 60, 100: 60, 1000: 30, 10_000: 15}


# Where the plans over Amazon MQ's metrics quota read the Amazon MQ broker's per-queue figures.
TARGET_BRIDGE_NAMESPACE = "MqCutover/AmazonMq"


def base_plan(mode: str = "ordered") -> dict[str, Any]:
    return json.loads((ROOT / "events" / f"plan-{mode}.json").read_text())


def make_plan(
    setting: Setting,
    *,
    queues: int = 3,
    params: int = 4,
    mode: str = "ordered",
    timeout_minutes: int = 120,
    migration_id: str = "bench",
) -> dict[str, Any]:
    plan = copy.deepcopy(base_plan(mode))
    plan["migrationId"] = migration_id
    plan["onPrem"]["metrics"]["periodSeconds"] = setting.period
    plan["onPrem"]["queues"] = [f"app.queue-{i:05d}" for i in range(queues)]
    producers = max(1, params // 2)
    plan["producers"]["parameters"] = [
        f"/mq-cutover/fleet/producer-{i:05d}/broker-url" for i in range(producers)
    ]
    plan["consumers"]["parameters"] = [
        f"/mq-cutover/fleet/consumer-{i:05d}/broker-url" for i in range(params - producers)
    ]
    plan["producers"].pop("restartHook", None)
    plan["consumers"].pop("restartHook", None)
    plan["drain"] = {
        "pollIntervalSeconds": setting.poll,
        "consecutiveEmptyReadings": setting.k,
        "timeoutMinutes": timeout_minutes,
        "maxExtensions": 0,
    }
    plan["approvals"] = {"gates": []}
    if queues > AMAZON_MQ_MONITORED_DESTINATIONS[Engine.ACTIVEMQ]:
        # Amazon MQ's own metrics cover a broker's first 1,000 destinations only (AWS's quota;
        # Validate Plan refuses more listed queues in AWS/AmazonMQ): a second metrics bridge on
        # the Amazon MQ broker publishes them here (simulated by the world, every queue).
        plan["target"].setdefault("metrics", {})["namespace"] = TARGET_BRIDGE_NAMESPACE
    return plan


# The benchmark measures the drain, not people: its plans have no gate, so its simulated stack
# requires none (a deployed stack requires cutover and stopOnPrem by default).
NO_REQUIRED_GATES = {"RequiredGates": ""}


def world_for(
    plan: dict[str, Any], backlogs: list[tuple[int, int]], delay: float, retain: float | None
) -> World:
    """backlogs: (messages, drained per minute) per queue, in the plan's queue order."""
    parameters = {
        name: plan["onPrem"]["url"]
        for group in ("producers", "consumers")
        for name in plan[group]["parameters"]
    }
    queues = [
        SimQueue(name=name, messages=messages, drain_per_minute=rate)
        for name, (messages, rate) in zip(plan["onPrem"]["queues"], backlogs, strict=True)
    ]
    world = World(parameters=parameters, queues=queues, visibility_delay_seconds=delay)
    world.retain_seconds = retain
    return world


def simulate(
    plan: dict[str, Any],
    world: World,
    approve: str = "auto",
    before_start: Callable[[Emulator], None] | None = None,
    plan_reference: str | None = None,
) -> tuple[Simulation, float]:
    simulation = Simulation(
        plan_reference=plan_reference,
        plan_document=json.dumps(plan),
        world=world,
        approve=approve,
        timeout_seconds=4 * 3600,
        stack_parameters=NO_REQUIRED_GATES,
        before_start=before_start,
        follow_seconds=1.0,
    )
    began = time.perf_counter()
    simulation.run()
    return simulation, time.perf_counter() - began


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# --- what a run costs: every AWS call, on the simulated clock ----------------------------------
@dataclass
class Meter:
    """AWS calls made during a run (the bridge's and the handlers'), each at its simulated
    time, and each Lambda call's simulated start and end."""

    clock: Callable[[], datetime] | None = None
    calls: list[tuple[datetime, str, int]] = field(default_factory=list)  # (at, op, metrics)
    published: list[tuple[datetime, tuple[str, str, tuple[tuple[str, str], ...]]]] = field(
        default_factory=list
    )
    lambdas: list[tuple[str, datetime, datetime | None]] = field(default_factory=list)

    def attach(self, emulator: Emulator) -> None:
        self.clock = emulator.clock.now
        open_calls: dict[int, int] = {}

        def before(function: str, event: dict[str, Any]) -> None:
            open_calls[id(event)] = len(self.lambdas)
            self.lambdas.append((function, emulator.clock.now(), None))

        def after(function: str, event: dict[str, Any], _result: Any) -> None:
            index = open_calls.pop(id(event), None)
            if index is not None:
                self.lambdas[index] = (function, self.lambdas[index][1], emulator.clock.now())

        emulator.hooks.insert(0, before)
        emulator.after_hooks.append(after)

    @contextmanager
    def counting(self) -> Iterator[None]:
        original = BaseClient._make_api_call

        def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if self.clock is not None and operation in (
                "GetMetricData",
                "PutMetricData",
                "ListMetrics",
            ):
                now = self.clock()
                metrics = 0
                if operation == "GetMetricData":
                    metrics = sum(
                        1 for q in params.get("MetricDataQueries", []) if "MetricStat" in q
                    )
                elif operation == "PutMetricData" and str(params.get("Namespace")).startswith(
                    "AWS/"
                ):
                    # The simulated Amazon MQ broker's own metrics: AWS publishes them, free of
                    # charge (vended metrics), not the bridge. Not counted.
                    return original(client, operation, params)
                elif operation == "PutMetricData":
                    data = params.get("MetricData", [])
                    metrics = len(data)
                    namespace = str(params.get("Namespace"))
                    for datum in data:
                        dims = tuple(
                            sorted((d["Name"], d["Value"]) for d in datum.get("Dimensions", []))
                        )
                        self.published.append((now, (namespace, datum["MetricName"], dims)))
                self.calls.append((now, operation, metrics))
            return original(client, operation, params)

        with mock.patch.object(BaseClient, "_make_api_call", make_api_call):
            yield

    def window(self, began: datetime, ended: datetime) -> dict[str, float]:
        """Counts between two simulated moments."""
        inside = [c for c in self.calls if began <= c[0] <= ended]
        lambdas = [
            (name, start, end)
            for name, start, end in self.lambdas
            if began <= start <= ended and end is not None
        ]
        return {
            "getMetricDataRequests": sum(1 for c in inside if c[1] == "GetMetricData"),
            "metricsRequested": sum(c[2] for c in inside if c[1] == "GetMetricData"),
            "listMetricsRequests": sum(1 for c in inside if c[1] == "ListMetrics"),
            "putMetricDataRequests": sum(1 for c in inside if c[1] == "PutMetricData"),
            "datapoints": sum(c[2] for c in inside if c[1] == "PutMetricData"),
            "distinctMetrics": len({key for at, key in self.published if began <= at <= ended}),
            "lambdaCalls": len(lambdas),
            "drainLambdaCalls": sum(1 for n, _, _ in lambdas if n == "CheckDrainFunction"),
            "lambdaSeconds": sum(
                (end - start).total_seconds() for _, start, end in lambdas if end is not None
            ),
        }


# --- 1. drain-detection lag -----------------------------------------------------------------
def lag_trial(setting: Setting, queues: int, delay: float, seed: int) -> dict[str, float]:
    """One whole run (ordered, `queues` queues, 4 parameters) whose queues empty at random
    moments 2 to 7 minutes into the drain."""
    rng = random.Random(seed)  # noqa: S311 - reproducible trials, not secrets
    plan = make_plan(setting, queues=queues, migration_id=f"lag-{setting.name}-{queues}-{seed}")
    backlogs = [(rng.randint(600, 2100), 300) for _ in plan["onPrem"]["queues"]]
    world = world_for(plan, backlogs, delay, retain=900)
    repointed: list[datetime] = []

    def watch(emulator: Emulator) -> None:
        def after(function: str, event: dict[str, Any], result: Any) -> None:
            consumers = function == "RepointClientsFunction" and event.get("step") == "consumers"
            if consumers and result.get("done"):
                repointed.append(emulator.clock.now())

        emulator.after_hooks.append(after)

    simulation, wall = simulate(plan, world, before_start=watch)
    if simulation.report["execution"]["status"] != "SUCCEEDED":
        raise RuntimeError(f"lag trial failed: {simulation.report['execution']}")
    last_consumed = world.last_consumed_at()
    assert last_consumed is not None
    drained = next(d for d in simulation.task_results("Check Drain") if d["drained"])
    left_loop = datetime.fromisoformat(drained["checkedAt"])
    return {
        "lag": (left_loop - last_consumed).total_seconds(),
        "extra": (repointed[0] - last_consumed).total_seconds(),
        "wall": wall,
    }


# --- 2. a drain hour: cost and history ----------------------------------------------------------
def drain_hour(setting: Setting, queues: int, minutes: int, delay: float) -> dict[str, Any]:
    """A drain that does not finish within `minutes` (every queue keeps a backlog its
    consumers work on); then the approver rolls back. Everything between the first drain
    check and the last reading is counted, per hour."""
    plan = make_plan(
        setting,
        queues=queues,
        timeout_minutes=minutes,
        migration_id=f"hour-{setting.name}-{queues}",
    )
    world = world_for(plan, [(10**9, 1)] * queues, delay, retain=600)
    # What is measured is the drain's own cost. The producers (moved to Amazon MQ) send nothing
    # there meanwhile, so the rollback after the measured window ends quickly: its drain of
    # Amazon MQ reads the broker's per-queue metrics (AWS/AmazonMQ, or over 1,000 queues a
    # second bridge's namespace, simulated and not counted; not measured here; see the README).
    world.amazon_mq_enqueue_per_minute = 0
    meter = Meter()
    with meter.counting():
        simulation, wall = simulate(
            plan, world, approve="reject:drainTimeout", before_start=meter.attach
        )
    names = [e.get("stateEnteredEventDetails", {}).get("name") for e in simulation.history]
    first = names.index("Check Drain")
    last = names.index("Approve Drain Timeout")
    window = simulation.history[first:last]
    drains = simulation.task_results("Check Drain")
    began = datetime.fromisoformat(drains[0]["startedAt"])
    ended = datetime.fromisoformat(drains[-1]["checkedAt"])
    hours = (ended - began).total_seconds() / 3600
    counted = meter.window(began, ended)
    per_hour = {key: value / hours for key, value in counted.items() if key != "distinctMetrics"}
    # A custom metric is billed for each hour it receives data in: the distinct metrics
    # published in a window of up to an hour are the metric-hours of an hour.
    per_hour["distinctMetrics"] = counted["distinctMetrics"] / max(1.0, hours)
    per_hour["events"] = len(window) / hours
    per_hour["transitions"] = sum(1 for e in window if "stateEnteredEventDetails" in e) / hours
    per_hour["readings"] = drains[-1]["readings"] / hours
    return {
        "queues": queues,
        "setting": setting.name,
        "hours": hours,
        "perHour": per_hour,
        "events": len(window),
        "totalEvents": len(simulation.history),
        "calls": len(drains),
        "readings": drains[-1]["readings"],
        "wall": wall,
        "cost": cost_of(per_hour),
    }


def long_drain(setting: Setting, queues: int, minutes: int, delay: float) -> dict[str, Any]:
    """A whole migration whose drain takes `minutes` (3. the 12-hour drain): every queue holds a
    backlog its consumers finish between 10 minutes before and the end of that time, so the
    drain succeeds and the run goes on to its end (ordered mode, no gates). Counts the whole
    execution's history and the drain loop's share (first Check Drain to the drained one)."""
    plan = make_plan(
        setting,
        queues=queues,
        timeout_minutes=minutes + 60,
        migration_id=f"long-{setting.name}-{queues}",
    )
    rate = 100  # messages a minute per queue
    backlogs = [(rate * (minutes - 10 * (i % 11) / 10), rate) for i in range(queues)]
    world = world_for(plan, [(int(m), r) for m, r in backlogs], delay, retain=600)
    simulation, wall = simulate(plan, world)
    status = simulation.report["execution"]["status"]
    names = [e.get("stateEnteredEventDetails", {}).get("name") for e in simulation.history]
    drains = simulation.task_results("Check Drain")
    first = names.index("Check Drain") if "Check Drain" in names else 0
    last = len(names) - 1 - names[::-1].index("Check Drain") if drains else first
    began = datetime.fromisoformat(drains[0]["startedAt"]) if drains else None
    ended = datetime.fromisoformat(drains[-1]["checkedAt"]) if drains else None
    last_consumed = world.last_consumed_at()
    return {
        "queues": queues,
        "setting": setting.name,
        "status": status,
        "error": simulation.report["execution"].get("error"),
        "hours": (ended - began).total_seconds() / 3600 if began and ended else 0.0,
        "drained": bool(drains and drains[-1].get("drained")),
        "lag": (ended - last_consumed).total_seconds() if ended and last_consumed else None,
        "events": last + 1 - first,
        "totalEvents": len(simulation.history),
        "calls": len(drains),
        "readings": drains[-1]["readings"] if drains else 0,
        "wall": wall,
    }


def cost_of(per_hour: dict[str, float]) -> dict[str, float]:
    reads = (
        per_hour["metricsRequested"] * PRICE_GET_METRIC_DATA
        + per_hour["listMetricsRequests"] * PRICE_CLOUDWATCH_REQUEST
    )
    writes = (
        per_hour["distinctMetrics"] * PRICE_METRIC_HOUR
        + per_hour["putMetricDataRequests"] * PRICE_CLOUDWATCH_REQUEST
    )
    transitions = per_hour["transitions"] * PRICE_TRANSITION
    drain_lambda = (
        per_hour["lambdaSeconds"] * LAMBDA_GB * PRICE_LAMBDA_GB_SECOND
        + per_hour["lambdaCalls"] * PRICE_LAMBDA_REQUEST
    )
    bridge_lambda = (
        BRIDGE_LAMBDA_SECONDS_PER_HOUR * LAMBDA_GB * PRICE_LAMBDA_GB_SECOND
        + BRIDGE_LAMBDA_CALLS_PER_HOUR * PRICE_LAMBDA_REQUEST
    )
    total = reads + writes + transitions + drain_lambda + bridge_lambda
    return {
        "reads": reads,
        "writes": writes,
        "transitions": transitions,
        "lambda": drain_lambda,
        "bridgeLambda": bridge_lambda,
        "total": total,
        "ratio": total / BROKER_PER_HOUR,
    }


# --- 4. scale ------------------------------------------------------------------------------
PAYLOAD_KEYS = ("input", "output", "parameters")


def payload_sizes(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The largest input/output/parameters of any event, and the largest sum of the workflow's
    (top-level) variables at any moment. `payload` leaves out the execution's input as it
    enters the first state (ExecutionStarted, the first state's input and its Lambda's
    parameters, until that task ends): while the plan is the input, that is the plan's size;
    `withInput` counts every event."""
    largest = (0, "")
    with_input = 0
    first_task_ended = False
    variables: dict[str, int] = {}
    largest_variables = (0, "")
    state = ""  # a task's own events do not name their state: the last one entered does
    for event in history:
        if event["type"] in ("TaskSucceeded", "TaskFailed", "TaskTimedOut"):
            first_task_ended = True  # its output is the first payload of the state's own
        for key, details in event.items():
            if not key.endswith("EventDetails") or not isinstance(details, dict):
                continue
            if event["type"].endswith("StateEntered"):
                state = str(details.get("name") or "")
            where = str(details.get("name") or state)
            for name in PAYLOAD_KEYS:
                value = details.get(name)
                if not isinstance(value, str):
                    continue
                size = len(value.encode())
                with_input = max(with_input, size)
                if first_task_ended and size > largest[0]:
                    largest = (size, f"{event['type']} {where}".strip())
            assigned = details.get("assignedVariables")
            if isinstance(assigned, dict) and "Map" not in event["type"]:
                for name, value in assigned.items():
                    variables[name] = len(str(value).encode())
                total = sum(variables.values())
                if total > largest_variables[0]:
                    biggest = max(variables, key=lambda n: variables[n])
                    largest_variables = (total, f"{where}; largest ${biggest}")
    return {
        "payload": largest[0],
        "where": largest[1],
        "withInput": with_input,
        "variables": largest_variables[0],
        "variablesWhere": largest_variables[1],
    }


@contextmanager
def indexed_describe_parameters() -> Iterator[None]:
    """Simulator speed only: moto's DescribeParameters reads every parameter of the account for
    each call (0.7 s at 10,000); a filter of exact names (what the product sends) is answered
    from moto's own dictionary, the same parameters. Anything else goes to moto as it is."""
    from moto.ssm.models import SimpleSystemManagerBackend

    original = SimpleSystemManagerBackend.describe_parameters

    def describe_parameters(
        self: Any, filters: list[dict[str, Any]], parameter_filters: list[dict[str, Any]]
    ) -> Any:
        names = (parameter_filters or [{}])[0].get("Values") or []
        exact = (
            not filters
            and len(parameter_filters or []) == 1
            and parameter_filters[0]["Key"] == "Name"
            and parameter_filters[0].get("Option", "Equals") == "Equals"
            and all(str(n).startswith("/") for n in names)
        )
        if not exact:
            return original(self, filters, parameter_filters)
        wanted = set(names)
        return [self.get_parameter(n) for n in self._parameters if n in wanted]

    with mock.patch.object(SimpleSystemManagerBackend, "describe_parameters", describe_parameters):
        yield


# Simulated: a Repoint Clients or Roll Back call with 12 s of work (SSM takes about that long
# per few hundred parameters in AWS), so the steps resume by cursor as they would there.
CLIENT_CALL_MS = 42_000


def scale_run(size: int, mode: str, pattern: bool = False) -> dict[str, Any]:
    setting = SETTINGS[0]
    plan = make_plan(
        setting, queues=size, params=size, mode=mode, migration_id=f"scale-{mode}-{size}"
    )
    world = world_for(plan, [(0, 1000)] * size, 0.0, retain=None)
    if pattern:  # the plan names its queues by one glob pattern; the bridge publishes them all
        plan["onPrem"]["queues"] = ["app.queue-*"]

    repoints: list[str] = []

    def short_client_calls(emulator: Emulator) -> None:
        for function in ("RepointClientsFunction", "RollbackFunction"):
            emulator.function_timeouts[function] = CLIENT_CALL_MS

        def count(function: str, _event: dict[str, Any]) -> None:
            if function == "RepointClientsFunction":
                repoints.append(function)

        emulator.hooks.append(count)

    began = time.perf_counter()
    try:
        with indexed_describe_parameters():
            # Over 1,000 queues and parameters the plan goes by reference (the stack's plan
            # bucket), as `mq-cutover start` sends a plan over its inline limit.
            reference = "s3" if size > 1000 else None
            simulation, wall = simulate(
                plan, world, before_start=short_client_calls, plan_reference=reference
            )
    except Exception as exc:  # a run that cannot end is a figure too
        return {
            "size": size,
            "mode": mode,
            "pattern": pattern,
            "status": "DID NOT END",
            "error": f"{type(exc).__name__}: {str(exc)[:300]}",
            "wall": time.perf_counter() - began,
            "events": 0,
            "repointCalls": len(repoints),
            "mapIterations": 0,
            "planBytes": len(json.dumps(plan).encode()),
            **payload_sizes([]),
        }
    status = simulation.report["execution"]["status"]
    return {
        "size": size,
        "mode": mode,
        "pattern": pattern,
        "status": status,
        "error": simulation.report["execution"].get("error"),
        "wall": wall,
        "events": len(simulation.history),
        "repointCalls": len(repoints),
        "mapIterations": sum(1 for e in simulation.history if e["type"] == "MapIterationStarted"),
        "planBytes": len(json.dumps(plan).encode()),
        **payload_sizes(simulation.history),
    }


# --- running jobs (processes: each job is a whole emulator, and moto's state is per process) ----
class Jobs:
    """Every job is submitted before the first figure is printed (the longest first), so that
    the processes stay busy; each figure waits for its own jobs. One worker: run on demand."""

    def __init__(self, workers: int) -> None:
        self.pool = None
        if workers > 1:
            context = multiprocessing.get_context("fork")
            self.pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)

    def submit(self, function: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        if self.pool is None:
            return functools.partial(function, *args)
        return self.pool.submit(function, *args).result

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def money(value: float) -> str:
    return f"${value:.4f}" if value < 0.1 else f"${value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10 queues, short")
    parser.add_argument("--sizes", help="queues (= client parameters), e.g. 10,1000")
    parser.add_argument("--trials", type=int, help="drain-lag trials per setting and size")
    parser.add_argument("--jobs", type=int, help="processes (default 2; 1 with --quick)")
    parser.add_argument(
        "--visibility-delay",
        type=float,
        default=2.0,
        help="seconds between a datapoint's timestamp and CloudWatch returning it (default 2)",
    )
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--only", default="1,2,3,4", help="sections to run, e.g. 1 or 2,4")
    parser.add_argument(
        "--long-hours",
        type=float,
        default=2.0,
        help="section 3's drain in hours (default 2; 12 at 10,000 queues needs about 20 GB of "
        "memory in the simulator here)",
    )
    args = parser.parse_args(argv)
    only = {int(part) for part in args.only.split(",")}
    sizes = [10] if args.quick else SIZES
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    workers = args.jobs or (1 if args.quick else 2)
    settings = SETTINGS[:2] if args.quick else SETTINGS
    delay = args.visibility_delay
    targets: list[str] = []
    began = time.perf_counter()

    def trials_at(size: int) -> int:
        return args.trials or (2 if args.quick else TRIALS.get(size, 2))

    jobs = Jobs(workers)
    long_setting = settings[-1]
    long_queues = max(sizes)
    # The longest jobs first: the 12-hour drain at the largest size, the largest whole runs,
    # then the rest. (A smoke run's long drain is 20 minutes.)
    long_job = (
        jobs.submit(
            long_drain,
            long_setting,
            long_queues,
            20 if args.quick else round(args.long_hours * 60),
            delay,
        )
        if 3 in only
        else None
    )
    runs = [(size, "ordered", False) for size in sizes]
    # Unordered mode moves producers one at a time (an inline Map, ~11 history events a
    # producer): 5,000 producers exceed Step Functions' 25,000 events. Run up to 1,000.
    runs += [(size, "unordered", False) for size in sizes if size <= 1000]
    runs.append((min(1000, max(sizes)), "ordered", True))
    scale_jobs = (
        {run: jobs.submit(scale_run, *run) for run in sorted(runs, key=lambda r: -r[0])}
        if 4 in only
        else {}
    )
    hour_jobs = {
        (size, setting.name): jobs.submit(
            drain_hour, setting, size, 6 if args.quick else COST_MINUTES.get(size, 15), delay
        )
        for size in sorted(sizes, reverse=True)
        for setting in settings
        if 2 in only
    }
    lag_jobs = {
        (size, setting.name): [
            jobs.submit(lag_trial, setting, size, delay, args.seed + trial)
            for trial in range(trials_at(size))
        ]
        for size in sorted(sizes, reverse=True)
        for setting in settings
        if 1 in only
    }

    print("mq-cutover benchmark (offline: real state machine and handlers on moto, simulated")
    print(
        f"on-prem broker and time; CloudWatch visibility delay {delay:g} s; {workers} process(es))"
    )
    print()
    if 1 in only:
        print("1. Drain-detection lag (ordered mode, N queues that empty at random moments 2-7")
        print("   minutes into the drain): lag = last message consumed on-prem -> drain loop left;")
        print("   extra interruption = last message consumed -> consumers repointed")
        for size in sizes:
            trials = trials_at(size)
            for setting in settings:
                mine = [result() for result in lag_jobs[(size, setting.name)]]
                lags = [r["lag"] for r in mine]
                extras = [r["extra"] for r in mine]
                p95 = percentile(lags, 95)
                print(
                    f"   N={size:<6} {setting.name:<10} ({setting.describe()}): lag p50 "
                    f"{percentile(lags, 50):.0f} s, p95 {p95:.0f} s; extra interruption p50 "
                    f"{percentile(extras, 50):.0f} s, p95 {percentile(extras, 95):.0f} s "
                    f"[{trials} trials, {sum(r['wall'] for r in mine) / trials:.0f} s wall each]",
                    flush=True,
                )
                if size == 1000 and setting.name == "fastest":
                    targets.append(
                        f"1,000 queues, fastest: lag p95 {p95:.0f} s <= {LAG_P95_TARGET:g} s: "
                        f"{verdict(p95 <= LAG_P95_TARGET)}"
                    )
        print()
    hours: dict[tuple[int, str], dict[str, Any]] = {}
    if 2 in only:
        print("2. A drain hour, measured: a simulated drain that does not finish (N queues, each")
        print("   with a backlog) for the minutes shown; every CloudWatch call of the bridge and")
        print("   the drain counted, transitions and Lambda time from the history and the clock.")
        print("   USD per drain-hour, us-east-1 list prices: reads = GetMetricData $0.01/1,000")
        print(
            "   metrics + ListMetrics $0.01/1,000 requests; writes = custom metrics $0.30/metric-"
        )
        print("   month by the hour + PutMetricData $0.01/1,000 requests; Step Functions $0.025/")
        print(
            "   1,000 transitions; Lambda arm64 256 MB (the drain's, measured; the bridge's, 52 s"
        )
        print(f"   a minute: a formula); ratio to the broker (mq.m5.large ${BROKER_PER_HOUR}/h)")
        for size in sizes:
            for setting in settings:
                result = hours[(size, setting.name)] = hour_jobs[(size, setting.name)]()
                h, c = result["perHour"], result["cost"]
                print(
                    f"   N={size:<6} {setting.name:<10} total {money(c['total'])}/h"
                    f" = {c['ratio'] * 100:.1f}% of the broker (reads {money(c['reads'])}, writes "
                    f"{money(c['writes'])}, Step Functions {money(c['transitions'])}, Lambda "
                    f"{money(c['lambda'])} + bridge {money(c['bridgeLambda'])})",
                    flush=True,
                )
                print(
                    f"   {'':<17} per hour: {h['metricsRequested']:.0f} metrics read in "
                    f"{h['getMetricDataRequests']:.0f} GetMetricData, "
                    f"{h['listMetricsRequests']:.0f} ListMetrics; "
                    f"{h['putMetricDataRequests']:.0f} PutMetricData, {h['datapoints']:.0f} "
                    f"datapoints, {h['distinctMetrics']:.0f} distinct metrics; "
                    f"{h['transitions']:.0f} transitions, {h['events']:.0f} history events, "
                    f"{h['drainLambdaCalls']:.0f} drain Lambda calls ({h['lambdaSeconds']:.0f} s), "
                    f"{h['readings']:.0f} readings [{result['hours'] * 60:.0f} simulated min, "
                    f"{result['wall']:.0f} s wall]",
                    flush=True,
                )
        for size in (1000,):
            fastest = hours.get((size, "fastest"))
            if fastest:
                total = fastest["cost"]["total"]
                targets.append(
                    f"1,000 queues, fastest: {money(total)} per drain-hour incl. the bridge's "
                    f"writes <= ${COST_TARGET:g}: {verdict(total <= COST_TARGET)}"
                )
        print()
    if 3 in only:
        assert long_job is not None
        long_run = long_job()
        long_hours = round(long_run["hours"] * 6) / 6  # to the 10 minutes
        total = long_run["totalEvents"]
        print(
            f"3. A whole migration with a {long_hours:.3g}-hour drain, {long_run['queues']:,} "
            f"queues at the {long_setting.name} setting (each queue's backlog gone between 10 "
            f"minutes before and the end; ordered, no gates): {long_run['status']}"
            f"{' (' + str(long_run['error']) + ')' if long_run['error'] else ''}; "
            f"{long_run['events']} drain-loop events, {total} events in the whole execution "
            f"(Step Functions' limit {HISTORY_LIMIT:,}); {long_run['readings']:,} readings in "
            f"{long_run['calls']} Check Drain calls; lag {long_run['lag']:.0f} s "
            f"[{long_run['wall']:.0f} s wall]",
            flush=True,
        )
        if long_queues >= 10_000 and not args.quick and long_run["hours"]:
            # The drain loop's events grow with its hours (one Check Drain call per 240 s); the
            # rest of the execution does not.
            per_hour = long_run["events"] / long_run["hours"]
            twelve = total if long_hours >= 12 else round(total + per_hour * (12 - long_hours))
            how = "measured" if long_hours >= 12 else f"{per_hour:.0f} drain-loop events/h x 12 h"
            print(
                f"   a 12-hour drain at N={long_queues:,}: {twelve} events in the execution ({how})"
            )
            ok = long_run["status"] == "SUCCEEDED" and twelve < EVENTS_12H_TARGET
            targets.append(
                f"10,000 queues: a 12-hour drain, {twelve} events in the whole execution < "
                f"{EVENTS_12H_TARGET:,} ({how}): {verdict(ok)}"
            )
        print()
    if 4 in only:
        print("4. Scale: one whole run (default setting, no gates) with N queues and N client")
        print("   parameters (half producers); Repoint Clients and Roll Back calls have 12 s of")
        print(
            "   work each (simulated), so steps resume by cursor as SSM's pace makes them in AWS."
        )
        print("   Largest state payload: any event's input, output or parameters once the first")
        print(
            "   state's task ended (the execution input as it enters the run left out), then with"
        )
        print("   it; variables: the largest sum of the workflow's variables at one moment")
        per_producer = None
        for run in runs:
            r = scale_jobs[run]()
            queues = "queues by pattern" if r["pattern"] else "queues listed"
            print(
                f"   {r['mode']:<9} N={r['size']:<6} {queues}: {r['status']}"
                f"{' (' + str(r['error']) + ')' if r['error'] else ''}, {r['wall']:.0f} s wall, "
                f"{r['events']} history events, {r['repointCalls']} Repoint Clients calls; "
                f"largest state payload {r['payload'] / 1024:.1f} KB ({r['where']}), "
                f"{r['withInput'] / 1024:.1f} KB with the execution input (plan "
                f"{r['planBytes'] / 1024:.1f} KB); variables at most "
                f"{r['variables'] / 1024:.1f} KB ({r['variablesWhere']})",
                flush=True,
            )
            if r["mode"] == "unordered" and r["mapIterations"]:
                per_producer = (r["events"], r["mapIterations"])
            if r["size"] == 10_000 and r["mode"] == "ordered" and not r["pattern"]:
                ok = r["status"] == "SUCCEEDED"
                targets.append(
                    f"10,000 queues and parameters: the whole run {r['status']}: {verdict(ok)}"
                )
                targets.append(
                    f"10,000: largest state payload {r['payload'] / 1024:.1f} KB < 64 KB: "
                    f"{verdict(r['payload'] < PAYLOAD_TARGET)} (with the execution input "
                    f"{r['withInput'] / 1024:.1f} KB: {verdict(r['withInput'] < PAYLOAD_TARGET)})"
                )
        if per_producer and max(sizes) >= 10_000:
            events, producers = per_producer
            projected = round(events / producers * (max(sizes) // 2))
            print(
                f"   unordered N={max(sizes)}: not run: producers move one at a time, "
                f"{events / producers:.1f} events a producer -> about {projected:,} events "
                f"(Step Functions' limit {HISTORY_LIMIT:,}); unordered mode holds about "
                f"{HISTORY_LIMIT * producers // events:,} producers"
            )
        print()
    print("Issue 15's targets:")
    for line in targets or ["   (none measured in this run: sizes or sections left out)"]:
        print(f"   {line}")
    print(f"\nbenchmark wall time: {time.perf_counter() - began:.0f} s")
    jobs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

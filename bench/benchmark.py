"""mq-cutover benchmark: prints the drain and scale figures of the README.

Runs the real state machine and handlers in the offline harness (moto), against a simulated
draining on-prem broker whose statistics the product's metrics bridge code publishes to the
simulated CloudWatch (`cli/mq_cutover_cli/world.py`). Time is simulated, so a 12-hour drain
takes minutes; the wall-clock figures are this machine's, in-process, against moto.

    .venv/bin/python bench/benchmark.py            # everything (about 45 minutes here)
    .venv/bin/python bench/benchmark.py --quick    # a smoke run (fewer trials, small sizes)

Figures:
1. drain-detection lag: seconds from the last message consumed on-prem to leaving the drain
   loop, p50 and p95, per setting; and the extra interruption in ordered mode (last message
   consumed -> consumers repointed) beyond the drain itself;
2. history events and state transitions per drain hour, and a whole 12-hour drain;
3. cost per migration hour while draining, at 10, 100 and 1,000 queues;
4. wall time and the largest state payload of a whole run at 10, 100 and 1,000 queues and
   client parameters, in both modes.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "cli")]

from mq_cutover_cli.harness import Emulator  # noqa: E402
from mq_cutover_cli.simulate import Simulation  # noqa: E402
from mq_cutover_cli.world import SimQueue, World  # noqa: E402

# us-east-1 list prices (USD) used for the cost figures.
PRICE_TRANSITION = 0.025 / 1000  # Step Functions standard, per state transition
PRICE_LAMBDA_GB_SECOND = 0.0000133334  # arm64
PRICE_LAMBDA_REQUEST = 0.20 / 1_000_000
PRICE_GET_METRIC_DATA = 0.01 / 1000  # per metric requested
PRICE_PUT_METRIC_DATA = 0.01 / 1000  # per request
PRICE_METRIC_HOUR = 0.30 / 730  # a custom metric, prorated by the hour (first 10,000)
LAMBDA_GB = 256 / 1024  # MemorySize in template.yaml
BRIDGE_LAMBDA_SECONDS_PER_HOUR = 60 * 52  # one run a minute, 50 s of samples plus start-up
METRICS_PER_QUEUE_READ = 4  # QueueSize, InFlightCount, EnqueueCount, ConsumerCount
METRICS_PER_QUEUE_PUBLISHED = 6  # + DequeueCount, ExpiredCount


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


def base_plan() -> dict[str, Any]:
    return json.loads((ROOT / "events" / "plan-ordered.json").read_text())


def make_plan(
    setting: Setting,
    *,
    queues: int = 3,
    params: int = 4,
    mode: str = "ordered",
    timeout_minutes: int = 120,
    migration_id: str = "bench",
) -> dict[str, Any]:
    plan = copy.deepcopy(base_plan())
    if mode == "unordered":
        plan = json.loads((ROOT / "events" / "plan-unordered.json").read_text())
    plan["migrationId"] = migration_id
    plan["onPrem"]["metrics"]["periodSeconds"] = setting.period
    plan["onPrem"]["queues"] = [f"app.queue-{i:04d}" for i in range(queues)]
    producers = max(1, params // 2)
    plan["producers"]["parameters"] = [
        f"/mq-cutover/fleet/producer-{i:04d}/broker-url" for i in range(producers)
    ]
    plan["consumers"]["parameters"] = [
        f"/mq-cutover/fleet/consumer-{i:04d}/broker-url" for i in range(params - producers)
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


def simulate(plan: dict[str, Any], world: World, approve: str = "auto") -> tuple[Simulation, float]:
    simulation = Simulation(
        plan_document=json.dumps(plan),
        world=world,
        approve=approve,
        timeout_seconds=3600,
        stack_parameters=NO_REQUIRED_GATES,
    )
    began = time.perf_counter()
    simulation.run()
    return simulation, time.perf_counter() - began


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# --- 1. drain-detection lag -----------------------------------------------------------------
def lag_trials(setting: Setting, trials: int, delay: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - reproducible trials, not secrets
    lags: list[float] = []
    extras: list[float] = []
    for trial in range(trials):
        plan = make_plan(setting, migration_id=f"lag-{setting.name}-{trial}")
        # Three queues that empty at different, random moments 2 to 7 minutes into the drain.
        backlogs = [(rng.randint(600, 2100), 300) for _ in plan["onPrem"]["queues"]]
        world = world_for(plan, backlogs, delay, retain=900)
        repointed: list[datetime] = []

        def watch(emulator: Emulator, marks: list[datetime] = repointed) -> None:
            def after(function: str, event: dict[str, Any], result: Any) -> None:
                consumers = (
                    function == "RepointClientsFunction" and event.get("step") == "consumers"
                )
                if consumers and result.get("done"):
                    marks.append(emulator.clock.now())

            emulator.after_hooks.append(after)

        simulation = Simulation(
            plan_document=json.dumps(plan),
            world=world,
            timeout_seconds=3600,
            before_start=watch,
            stack_parameters=NO_REQUIRED_GATES,
        )
        simulation.run()
        if simulation.report["execution"]["status"] != "SUCCEEDED":
            raise RuntimeError(f"trial failed: {simulation.report['execution']}")
        last_consumed = world.last_consumed_at()
        assert last_consumed is not None
        drained = next(d for d in simulation.task_results("Check Drain") if d["drained"])
        left_loop = datetime.fromisoformat(drained["checkedAt"])
        lags.append((left_loop - last_consumed).total_seconds())
        extras.append((repointed[0] - last_consumed).total_seconds())
    return {
        "lagP50": percentile(lags, 50),
        "lagP95": percentile(lags, 95),
        "extraP50": percentile(extras, 50),
        "extraP95": percentile(extras, 95),
        "trials": trials,
    }


# --- 2. history events per drain hour ------------------------------------------------------
def drain_history(setting: Setting, hours: float, delay: float) -> dict[str, Any]:
    """A drain that never finishes, for `hours`; then the approver rolls back."""
    minutes = round(hours * 60)
    plan = make_plan(
        setting, queues=3, timeout_minutes=minutes, migration_id=f"hist-{setting.name}"
    )
    world = world_for(plan, [(10**9, 0)] * 3, delay, retain=600)
    began = time.perf_counter()
    simulation, _ = simulate(plan, world, approve="reject:drainTimeout")
    wall = time.perf_counter() - began
    names = [e.get("stateEnteredEventDetails", {}).get("name") for e in simulation.history]
    first = names.index("Check Drain")
    last = names.index("Approve Drain Timeout")
    window = simulation.history[first:last]
    drains = simulation.task_results("Check Drain")
    seconds = (
        datetime.fromisoformat(drains[-1]["checkedAt"])
        - datetime.fromisoformat(drains[0]["startedAt"])
    ).total_seconds()
    transitions = sum(1 for e in window if "stateEnteredEventDetails" in e)
    return {
        "hours": seconds / 3600,
        "events": len(window),
        "transitions": transitions,
        "calls": len(drains),
        "readings": drains[-1]["readings"],
        "eventsPerHour": len(window) / (seconds / 3600),
        "transitionsPerHour": transitions / (seconds / 3600),
        "callsPerHour": len(drains) / (seconds / 3600),
        "readingsPerHour": drains[-1]["readings"] / (seconds / 3600),
        "totalEvents": len(simulation.history),
        "wallSeconds": wall,
    }


def lambda_seconds_per_hour(setting: Setting, max_seconds_per_check: int = 240) -> float:
    """A drain check call reads for its window, then the state machine waits one interval."""
    readings = 1 + max_seconds_per_check // setting.poll
    busy = (readings - 1) * setting.poll
    return 3600 * busy / (readings * setting.poll) if busy else 3600 * 0.5 / setting.poll


# --- 3. cost per migration hour ------------------------------------------------------------
def cost_per_hour(setting: Setting, per_hour: dict[str, Any], queues: int) -> dict[str, float]:
    transitions = per_hour["transitionsPerHour"] * PRICE_TRANSITION
    lam = (
        lambda_seconds_per_hour(setting) * LAMBDA_GB * PRICE_LAMBDA_GB_SECOND
        + per_hour["callsPerHour"] * PRICE_LAMBDA_REQUEST
    )
    get_data = per_hour["readingsPerHour"] * METRICS_PER_QUEUE_READ * queues * PRICE_GET_METRIC_DATA
    published = METRICS_PER_QUEUE_PUBLISHED * queues + 1
    samples = 3600 / setting.period
    put_calls = samples * -(-published // 1000)
    custom = published * PRICE_METRIC_HOUR + put_calls * PRICE_PUT_METRIC_DATA
    bridge = BRIDGE_LAMBDA_SECONDS_PER_HOUR * LAMBDA_GB * PRICE_LAMBDA_GB_SECOND
    return {
        "transitions": transitions,
        "lambda": lam + bridge,
        "getMetricData": get_data,
        "customMetrics": custom,
        "total": transitions + lam + bridge + get_data + custom,
    }


# --- 4. scale ------------------------------------------------------------------------------
PAYLOAD_KEYS = ("input", "output", "parameters")


def largest_payload(history: list[dict[str, Any]]) -> tuple[int, str]:
    best = (0, "")
    names: dict[int, str] = {}
    for event in history:
        for key, details in event.items():
            if not key.endswith("EventDetails") or not isinstance(details, dict):
                continue
            if "name" in details:
                names[event["id"]] = details["name"]
            for field in PAYLOAD_KEYS:
                value = details.get(field)
                if isinstance(value, str) and len(value.encode()) > best[0]:
                    where = details.get("name") or names.get(event.get("previousEventId", -1))
                    best = (len(value.encode()), f"{event['type']} {where or ''}".strip())
    return best


def scale_run(size: int, mode: str, pattern: bool = False) -> dict[str, Any]:
    setting = SETTINGS[0]
    plan = make_plan(
        setting, queues=size, params=size, mode=mode, migration_id=f"scale-{mode}-{size}"
    )
    world = world_for(plan, [(0, 1000)] * size, 0.0, retain=None)
    if pattern:  # the plan names its queues by one glob pattern; the bridge publishes them all
        plan["onPrem"]["queues"] = ["app.queue-*"]
    simulation, wall = simulate(plan, world)
    status = simulation.report["execution"]["status"]
    size_bytes, where = largest_payload(simulation.history)
    return {
        "status": status,
        "wall": wall,
        "events": len(simulation.history),
        "payload": size_bytes,
        "where": where,
        "planBytes": len(json.dumps(plan).encode()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small and short")
    parser.add_argument("--trials", type=int, help="drain-lag trials per setting (default 15)")
    parser.add_argument(
        "--visibility-delay",
        type=float,
        default=2.0,
        help="seconds between a datapoint's timestamp and CloudWatch returning it (default 2)",
    )
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument(
        "--only", default="1,2,3,4", help="sections to run, e.g. 1 or 2,3 (3 needs 2)"
    )
    args = parser.parse_args(argv)
    only = {int(part) for part in args.only.split(",")}
    trials = args.trials or (2 if args.quick else 15)
    sizes = [10] if args.quick else [10, 100, 1000]
    settings = SETTINGS[:2] if args.quick else SETTINGS

    print("mq-cutover benchmark (offline: real state machine and handlers on moto, simulated")
    print(f"on-prem broker and time; CloudWatch visibility delay {args.visibility_delay:g} s)")
    print()
    if 1 in only:
        print(f"1. Drain-detection lag, {trials} trials per setting (ordered mode, 3 queues)")
        print("   lag = last message consumed on-prem -> drain loop left;")
        print("   extra interruption = last message consumed -> consumers repointed")
        for setting in settings:
            lag = lag_trials(setting, trials, args.visibility_delay, args.seed)
            print(
                f"   {setting.name:<10} ({setting.describe()}): lag p50 {lag['lagP50']:.0f} s, "
                f"p95 {lag['lagP95']:.0f} s; extra interruption p50 {lag['extraP50']:.0f} s, "
                f"p95 {lag['extraP95']:.0f} s",
                flush=True,
            )
        print()
    if 2 in only or 3 in only:
        print("2. History per drain hour (a drain that never finishes, 3 queues)")
        per_hour: dict[str, dict[str, Any]] = {}
        for setting in settings:
            figures = drain_history(setting, 0.5 if args.quick else 1.0, args.visibility_delay)
            per_hour[setting.name] = figures
            print(
                f"   {setting.name:<10}: {figures['eventsPerHour']:.0f} history events/h, "
                f"{figures['transitionsPerHour']:.0f} state transitions/h, "
                f"{figures['callsPerHour']:.0f} Lambda calls/h, "
                f"{figures['readingsPerHour']:.0f} readings/h",
                flush=True,
            )
        long_setting = settings[-1]
        hours = 1.0 if args.quick else 12.0
        long_run = drain_history(long_setting, hours, args.visibility_delay)
        print(
            f"   a whole {long_run['hours']:.0f}-hour drain at the {long_setting.name} setting: "
            f"{long_run['events']} drain-loop events, {long_run['totalEvents']} events in the "
            f"execution (Step Functions' limit: 25,000); {long_run['readings']} readings in "
            f"{long_run['calls']} Lambda calls ({long_run['wallSeconds']:.0f} s wall)",
            flush=True,
        )
        print()
    if 3 in only:
        print("3. Cost per migration hour while draining (USD, us-east-1 list prices;")
        print("   metrics bridge as the scheduled Lambda)")
        for setting in settings:
            for queues in (10, 100, 1000):
                cost = cost_per_hour(setting, per_hour[setting.name], queues)
                print(
                    f"   {setting.name:<10} {queues:>5} queues: total {cost['total']:.2f} "
                    f"(transitions {cost['transitions']:.3f}, Lambda {cost['lambda']:.3f}, "
                    f"GetMetricData {cost['getMetricData']:.2f}, custom metrics "
                    f"{cost['customMetrics']:.2f})"
                )
        print()
    if 4 in only:
        print("4. Scale: one whole run (default setting) with N queues and N client parameters")
        print("   (the plan is the execution input: its size is the ExecutionStarted payload)")
        runs = [(mode, size, False) for mode in ("ordered", "unordered") for size in sizes]
        runs.append(("ordered", sizes[-1], True))
        for mode, size, pattern in runs:
            figures = scale_run(size, mode, pattern)
            queues = "queues by pattern" if pattern else "queues listed"
            print(
                f"   {mode:<9} N={size:<5} {queues}: {figures['status']}, "
                f"{figures['wall']:.0f} s wall, {figures['events']} history events, largest state "
                f"payload {figures['payload'] / 1024:.1f} KB ({figures['where']}), plan "
                f"{figures['planBytes'] / 1024:.1f} KB",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

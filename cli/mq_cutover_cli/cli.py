"""`mq-cutover`: run a plan offline (`simulate`), decide a gate from a terminal (`approve`,
`reject`, `extend`), publish the on-prem broker's metrics (`publish-metrics`), or print the
plan's JSON Schema (`schema`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mq_cutover.plan import json_schema
from mq_cutover_cli.faults import parse as parse_fault
from mq_cutover_cli.simulate import Simulation, summary_lines
from mq_cutover_cli.world import World


def _simulate(args: argparse.Namespace) -> int:
    try:
        plan_text = Path(args.plan).read_text()
    except OSError as exc:
        print(f"mq-cutover: cannot read the plan: {exc}", file=sys.stderr)
        return 2
    world = World.from_file(Path(args.world)) if args.world else None
    if args.approve not in ("auto", "none") and not args.approve.startswith(("reject:", "extend:")):
        print("mq-cutover: --approve takes auto, none, reject:GATE or extend:GATE", file=sys.stderr)
        return 2
    printer = None if args.quiet else print
    try:
        for spec in args.fail_at:
            parse_fault(spec)
    except ValueError as exc:
        print(f"mq-cutover: {exc}", file=sys.stderr)
        return 2
    simulation = Simulation(
        plan_document=plan_text,
        world=world,
        approve=args.approve,
        printer=printer,
        pace_seconds=args.pace,
        fail_at=list(args.fail_at),
    )
    report = simulation.run()
    for line in summary_lines(report):
        print(line)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"  report: {args.report}")
    return 0 if report["execution"]["status"] == "SUCCEEDED" else 1


def _decide(args: argparse.Namespace) -> int:
    import boto3

    from mq_cutover import clock
    from mq_cutover_cli.decide import approvals_table_name, decide_from_terminal

    session = boto3.session.Session(region_name=args.region)
    table_name = args.table or approvals_table_name(session.client("cloudformation"), args.stack)
    result = decide_from_terminal(
        session.resource("dynamodb").Table(table_name),
        session.client("stepfunctions"),
        session.client("sts"),
        migration_id=args.migration_id,
        decision=args.command,
        gate=args.gate,
        comment=args.comment,
        now=clock.utcnow(),
    )
    outcome = result["outcome"]
    if outcome in ("approved", "rejected", "extended"):
        print(f"{result['gate']} of {result['migrationId']} {outcome} by {result['decidedBy']}")
    elif outcome == "vote-recorded":
        print(f"approval recorded ({result['votes']} of {result['quorum']}): the gate stays closed")
    else:
        print(f"nothing decided ({outcome}): {result.get('detail', result)}", file=sys.stderr)
    return 0 if outcome in ("approved", "rejected", "extended", "vote-recorded") else 1


def _publish_metrics(args: argparse.Namespace) -> int:
    """The metrics bridge on a host next to the broker (the same code as the bridge Lambda)."""
    import os
    from datetime import UTC, datetime

    import boto3

    from mq_cutover import clock
    from mq_cutover.errors import PlanInvalid
    from mq_cutover.metrics_bridge import Source, SourceType, run
    from mq_cutover.plan import parse_plan

    try:
        plan = parse_plan(Path(args.plan).read_text())
    except (OSError, PlanInvalid) as exc:
        print(f"mq-cutover: cannot use the plan: {exc}", file=sys.stderr)
        return 2
    source = Source(
        type=SourceType(args.source),
        url=args.url,
        broker_name=args.broker_name,
        vhost=args.vhost,
        username=args.username,
        password=os.environ.get("MQ_CUTOVER_SOURCE_PASSWORD"),
    )
    metrics = plan.on_prem.metrics
    interval = float(args.interval or metrics.period_seconds)
    cloudwatch = boto3.session.Session(region_name=args.region).client("cloudwatch")

    def show(result: dict[str, object]) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        if "error" in result:
            print(f"[{stamp}] sample failed: {result['error']}", file=sys.stderr, flush=True)
        else:
            print(
                f"[{stamp}] {result['queues']} queues, {result['messages']} messages, "
                f"{result['inFlight']} in flight -> {metrics.namespace} "
                f"({result['datums']} datums, {result['putCalls']} calls)",
                flush=True,
            )

    duration = 0.0 if args.once else (args.duration if args.duration else float("inf"))
    try:
        summary = run(
            source,
            metrics,
            cloudwatch,
            interval_seconds=interval,
            duration_seconds=duration,
            now=clock.utcnow,
            sleep=clock.sleep,
            on_sample=show,
        )
    except KeyboardInterrupt:
        return 0
    return 0 if summary["samples"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mq-cutover", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    simulate = commands.add_parser(
        "simulate",
        help="run a plan offline: the real state machine under moto, a simulated on-prem broker",
    )
    simulate.add_argument("--plan", required=True, help="the migration plan (JSON)")
    simulate.add_argument("--world", help="the simulated world (JSON); default: from the plan")
    simulate.add_argument(
        "--approve",
        default="auto",
        help="auto (approve every gate), reject:GATE (reject that gate), extend:drainTimeout "
        "(wait longer while the plan allows, then approve), none (never decide)",
    )
    simulate.add_argument("--report", help="write a JSON report here")
    simulate.add_argument(
        "--fail-at",
        action="append",
        default=[],
        metavar="STEP[:KIND]",
        help="inject a simulated fault at a state (e.g. 'Repoint Producers:transient'); KIND is "
        "transient, throttle or permanent (default); repeatable",
    )
    simulate.add_argument("--quiet", action="store_true", help="print only the summary")
    simulate.add_argument(
        "--pace", type=float, default=0.0, help="real seconds per Wait state (to watch it run)"
    )
    for verb in ("approve", "reject", "extend"):
        decide = commands.add_parser(
            verb, help=f"{verb} a migration's open gate as your IAM identity (needs AWS access)"
        )
        decide.add_argument("migration_id")
        decide.add_argument("--gate", help="cutover, drainTimeout, stopOnPrem, ...")
        decide.add_argument("--comment", default="", help="why (shown in the notification)")
        where = decide.add_mutually_exclusive_group(required=True)
        where.add_argument("--stack", help="the deployed stack (its approvals table is found)")
        where.add_argument("--table", help="the approvals table name")
        decide.add_argument("--region", help="AWS region (default: your configuration)")
    bridge = commands.add_parser(
        "publish-metrics",
        help="publish the on-prem broker's queue metrics to CloudWatch (run next to the broker)",
        description="Samples ActiveMQ's Jolokia or RabbitMQ's management API and publishes "
        "every queue's depth, in-flight, enqueue, dequeue and consumer counts under the plan's "
        "onPrem.metrics namespace and dimensions. The password is read from the environment "
        "variable MQ_CUTOVER_SOURCE_PASSWORD, never from the command line.",
    )
    bridge.add_argument("--plan", required=True, help="the migration plan (its onPrem.metrics)")
    bridge.add_argument("--source", choices=["activemq", "rabbitmq"], required=True)
    bridge.add_argument(
        "--url",
        required=True,
        help="Jolokia base URL (http://HOST:8161/api/jolokia) or management API base URL "
        "(http://HOST:15672)",
    )
    bridge.add_argument("--broker-name", default="localhost", help="ActiveMQ brokerName")
    bridge.add_argument("--vhost", default="/", help="RabbitMQ virtual host")
    bridge.add_argument("--username", help="a read-only monitoring user")
    bridge.add_argument(
        "--interval", type=float, help="seconds between samples (default: the plan's periodSeconds)"
    )
    runtime = bridge.add_mutually_exclusive_group()
    runtime.add_argument("--once", action="store_true", help="one sample, then exit")
    runtime.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    bridge.add_argument("--region", help="AWS region (default: your configuration)")
    commands.add_parser("schema", help="print the migration plan's JSON Schema")
    args = parser.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
        return 0
    if args.command in ("approve", "reject", "extend"):
        return _decide(args)
    if args.command == "publish-metrics":
        return _publish_metrics(args)
    return _simulate(args)


if __name__ == "__main__":
    sys.exit(main())

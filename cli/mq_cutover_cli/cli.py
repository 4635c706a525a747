"""`mq-cutover`: check a plan against the account (`preflight`), run it (`start`), follow it
(`status`), ask for its rollback (`abort`), keep its record (`report`), see and decide a gate from
a terminal (`pending`, `approve`, `reject`, `extend`), manage who may approve (`approvers`),
publish the on-prem broker's metrics (`publish-metrics`), print the plan's JSON Schema (`schema`),
or rehearse a plan offline (`simulate`, needs the `simulator` extra)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mq_cutover.plan import json_schema

if TYPE_CHECKING:
    from mq_cutover_cli.api import Transport


# What `simulate` needs beyond the operator's CLI: pyproject.toml's `simulator` extra.
_SIMULATOR_MODULES = ("moto", "jsonata", "flask", "werkzeug")


def _simulate(args: argparse.Namespace) -> int:
    # The simulator (moto, jsonata, the harness) is loaded only for `simulate`: the operator's
    # commands (approve, approvers, publish-metrics, ...) never import it.
    try:
        from mq_cutover_cli.faults import parse as parse_fault
        from mq_cutover_cli.simulate import CannotSimulate, Simulation, summary_lines
        from mq_cutover_cli.world import World
    except ModuleNotFoundError as exc:
        if exc.name not in _SIMULATOR_MODULES:
            raise
        print(
            f"mq-cutover: simulate needs the simulator ({exc.name} is not installed): "
            "pip install 'mq-cutover[simulator]'",
            file=sys.stderr,
        )
        return 2

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
        plan_reference=args.by_reference,
    )
    try:
        report = simulation.run()
    except CannotSimulate as exc:
        print(f"mq-cutover: cannot simulate this plan: {exc}", file=sys.stderr)
        return 2
    for line in summary_lines(report):
        print(line)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"  report: {args.report}")
    return 0 if report["execution"]["status"] == "SUCCEEDED" else 1


def _session(args: argparse.Namespace, session: Any) -> Any:
    if session is not None:
        return session
    import boto3

    return boto3.session.Session(region_name=args.region)


def _outputs(session: Any, stack: str) -> dict[str, str]:
    from mq_cutover_cli.decide import stack_outputs

    return stack_outputs(session.client("cloudformation"), stack)


def _decision_api(args: argparse.Namespace, session: Any, transport: Transport | None) -> Any:
    """The decision API as this session's identity; SystemExit(2) with a message if it cannot
    be called (no URL, no credentials, no region)."""
    from mq_cutover_cli.api import DecisionApi, region_of, urllib_transport
    from mq_cutover_cli.decide import stack_output

    url = args.api_url or stack_output(_outputs(session, args.stack), "DecisionApiUrl", args.stack)
    credentials = session.get_credentials()
    if credentials is None:
        raise _Usage("no AWS credentials found (set a profile, SSO login or environment keys)")
    # The API's own region is the one its signature must name; the session's otherwise.
    region = region_of(url) or session.region_name
    if not region:
        raise _Usage("no region: give --region")

    def whoami() -> str:
        return str(session.client("sts").get_caller_identity()["Arn"])

    return DecisionApi(url, credentials, region, transport or urllib_transport, whoami)


class _Usage(Exception):
    """The command cannot run as given (exit status 2)."""


def _decide(args: argparse.Namespace, session: Any, transport: Transport | None) -> int:
    from mq_cutover_cli.decide import decide, decision_line

    api = _decision_api(args, session, transport)
    answer = decide(
        api,
        migration_id=args.migration_id,
        decision=args.command,
        gate=args.gate,
        comment=args.comment,
    )
    decided, line = decision_line(answer)
    print(line, file=sys.stdout if decided else sys.stderr)
    return 0 if decided else 1


def _pending(args: argparse.Namespace, session: Any, transport: Transport | None) -> int:
    from mq_cutover_cli.decide import pending, pending_lines

    answer = pending(_decision_api(args, session, transport), args.migration_id)
    for line in pending_lines(answer, args.migration_id):
        print(line)
    return 0


def _registry_of(args: argparse.Namespace, session: Any) -> tuple[str, str]:
    """(ApproverRegistryPath, ApprovalTopicArn) of the stack."""
    from mq_cutover_cli.decide import stack_output

    outputs = _outputs(session, args.stack)
    return (
        stack_output(outputs, "ApproverRegistryPath", args.stack),
        stack_output(outputs, "ApprovalTopicArn", args.stack),
    )


def _approvers(args: argparse.Namespace, session: Any) -> int:
    from mq_cutover.approvers import (
        Approver,
        add_approver,
        check_subscriptions,
        load_registry,
        remove_approver,
        subscription_status,
    )
    from mq_cutover.errors import ApproversInvalid
    from mq_cutover_cli.decide import shown

    path, topic_arn = _registry_of(args, session)
    ssm, sns = session.client("ssm"), session.client("sns")
    if args.action == "list":
        registry = load_registry(path, ssm)
        status = subscription_status(sns, topic_arn, registry)
        print(f"approvers of {args.stack} ({path}): {len(registry)}")
        for approver in registry.values():
            print(
                f"  {approver.id}: {shown(approver.name)} <{approver.protocol}:"
                f"{shown(approver.endpoint)}>, IAM principal "
                f"{shown(approver.iam_principal or '-')}, subscription {status[approver.id]}"
            )
        problems = check_subscriptions(sns, topic_arn, registry)
        for problem in problems:
            print(f"  problem: {shown(problem)}")
        if not problems:
            print("  no problem: each approver's links reach only that approver")
        return 1 if problems else 0
    if args.action == "add":
        approver = Approver(args.id, args.name, "email", args.email, args.iam_principal)
        try:
            existing = load_registry(path, ssm)
        except ApproversInvalid:
            existing = {}  # a broken entry elsewhere must not stop an admin from adding
        if args.id in existing and not args.replace:
            raise _Usage(
                f"approver {args.id} exists ({shown(existing[args.id].name)}); "
                "use --replace to replace them (their links already sent stop counting)"
            )
        if args.id in existing:
            remove_approver(ssm, sns, path=path, topic_arn=topic_arn, approver_id=args.id)
        subscription = add_approver(ssm, sns, path=path, topic_arn=topic_arn, approver=approver)
        confirmed = subscription.startswith("arn:") and (
            sns.get_subscription_attributes(SubscriptionArn=subscription)["Attributes"].get(
                "PendingConfirmation"
            )
            != "true"
        )
        print(
            f"approver {approver.id} ({shown(approver.name)}) added; "
            + (
                f"{shown(approver.endpoint)} is subscribed"
                if confirmed
                else f"{shown(approver.endpoint)} must confirm the subscription email "
                "before their links are sent"
            )
        )
        return 0
    registry = load_registry(path, ssm)
    removed = remove_approver(ssm, sns, path=path, topic_arn=topic_arn, approver_id=args.id)
    if args.id not in registry and not removed:
        print(f"mq-cutover: no approver {args.id}; nothing removed", file=sys.stderr)
        return 1
    print(
        f"approver {args.id} removed ({removed} subscription{'s' if removed != 1 else ''} "
        "deleted); their links already sent no longer count"
    )
    return 0


def _aws_command(args: argparse.Namespace, session: Any, transport: Transport | None) -> int:
    """A command that calls AWS; its failures are one line on stderr, never a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    from mq_cutover.errors import ApproversInvalid
    from mq_cutover_cli.api import DecisionApiError
    from mq_cutover_cli.decide import StackOutputMissing

    try:
        session = _session(args, session)
        if args.command == "approvers":
            return _approvers(args, session)
        if args.command == "pending":
            return _pending(args, session, transport)
        if args.command == "preflight":
            from mq_cutover_cli import preflight_cmd

            return preflight_cmd.run(args, session)
        if args.command in ("start", "status", "report"):
            from mq_cutover_cli import operate

            command = {"start": operate.start, "status": operate.status, "report": operate.report}
            return command[args.command](args, session, transport)
        if args.command == "abort":
            from mq_cutover_cli import abort_cmd

            return abort_cmd.run(args, session, transport)
        return _decide(args, session, transport)
    except (_Usage, StackOutputMissing, ApproversInvalid) as exc:
        print(f"mq-cutover: {exc}", file=sys.stderr)
        return 2
    except DecisionApiError as exc:
        print(f"mq-cutover: {exc}", file=sys.stderr)
        return 3
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(
            f"mq-cutover: {exc.operation_name} failed: {error.get('Code')}: {error.get('Message')}",
            file=sys.stderr,
        )
        return 3
    except BotoCoreError as exc:
        print(f"mq-cutover: {exc}", file=sys.stderr)
        return 3


def _publish_metrics(args: argparse.Namespace) -> int:
    """The metrics bridge on a host next to the broker (the same code as the bridge Lambda)."""
    import os
    from datetime import UTC, datetime

    import boto3

    from mq_cutover import clock
    from mq_cutover.errors import PlanInvalid
    from mq_cutover.metrics_bridge import Publishing, Source, SourceType, parse_queue_list, run
    from mq_cutover.plan import parse_plan
    from mq_cutover.queue_set import DetailFigures, QueueSet

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
    # The plan's queue set and detail period; the flags override them.
    planned = Publishing.from_plan(plan, DetailFigures(args.detail_figures))
    queue_set = QueueSet.of(
        parse_queue_list(args.queues) if args.queues is not None else plan.on_prem.queues,
        parse_queue_list(args.ignore_queues)
        if args.ignore_queues is not None
        else plan.on_prem.ignore_queues,
    )
    detail_seconds = float(args.detail_seconds or planned.detail_seconds)
    if detail_seconds < interval:
        print(
            f"mq-cutover: --detail-seconds ({detail_seconds:g}) is shorter than the sampling "
            f"interval ({interval:g})",
            file=sys.stderr,
        )
        return 2
    publishing = Publishing(queue_set, detail_seconds, planned.detail_figures)
    cloudwatch = boto3.session.Session(region_name=args.region).client("cloudwatch")
    print(
        f"watching {_describe_set(queue_set)} as QueueSet={queue_set.digest} under "
        f"{metrics.namespace}; per-queue {publishing.detail_figures.value} every "
        f"{detail_seconds:g} s",
        flush=True,
    )

    def show(result: dict[str, object]) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        if "error" in result:
            print(f"[{stamp}] sample failed: {result['error']}", file=sys.stderr, flush=True)
            return
        detail = f", per-queue {result['detail']}" if result["detail"] else ""
        print(
            f"[{stamp}] {result['watched']} of {result['queues']} queues: "
            f"{result['messages']} messages, {result['inFlight']} in flight, "
            f"{result['consumers']} consumers, enqueued {result['enqueued']}, "
            f"{result['neverDraining']} never draining, {result['ignoredMessages']} ignored "
            f"-> {metrics.namespace} ({result['datums']} datums{detail}, "
            f"{result['putCalls']} calls)",
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
            publishing=publishing,
            on_sample=show,
        )
    except KeyboardInterrupt:
        return 0
    return 0 if summary["samples"] else 1


def _describe_set(queue_set: Any) -> str:
    watched = (
        "every queue"
        if not queue_set.names and not queue_set.patterns
        else ", ".join([*queue_set.patterns, *queue_set.names[:5]])
        + (f" and {len(queue_set.names) - 5} more" if len(queue_set.names) > 5 else "")
    )
    ignored = ", ".join(queue_set.ignore) or "nothing"
    return f"{watched} (ignoring {ignored})"


def _api_arguments(command: argparse.ArgumentParser) -> None:
    where = command.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="the deployed stack (its DecisionApiUrl output is used)")
    where.add_argument("--api-url", help="the stack's DecisionApiUrl (https://…/<stage>/decisions)")
    command.add_argument(
        "--region",
        help="AWS region of the stack (default: your configuration); requests to an "
        "execute-api URL are signed for that API's own region",
    )


_AWS_COMMANDS = (
    "approve",
    "reject",
    "extend",
    "pending",
    "approvers",
    "preflight",
    "start",
    "status",
    "abort",
    "report",
)


def _operator_commands(commands: Any) -> None:
    """preflight, start, status, abort, report: a migration run against a deployed stack."""
    preflight = commands.add_parser(
        "preflight",
        help="check a plan against the account and the stack, read-only, before the window",
        description="Every check the Validate Plan step makes, and more, run from a terminal: "
        "one line per check (the plan field, what is wrong, how to fix it); exit status 1 if "
        "any check fails. Nothing is changed.",
    )
    preflight.add_argument("--plan", required=True, help="the migration plan (JSON)")
    preflight.add_argument("--json", action="store_true", help="print the checks as JSON")
    start = commands.add_parser(
        "start",
        help="preflight the plan, then start the migration (now, or --at a time)",
        description="Runs the preflight first and starts nothing if any check fails. The "
        "execution is named after the migration id. With --at, a one-time EventBridge "
        "Scheduler schedule starts it instead.",
    )
    start.add_argument("--plan", required=True, help="the migration plan (JSON)")
    start.add_argument(
        "--at", help="start at this local time, e.g. 2026-12-01T02:00:00 (one-time schedule)"
    )
    start.add_argument("--time-zone", default="UTC", help="IANA time zone of --at (default UTC)")
    start.add_argument(
        "--retry",
        action="store_true",
        help="start the next attempt (<migrationId>--<n>) of a migration whose last attempt "
        "ended without success (rolled back, aborted, failed); refused while it runs or after "
        "it succeeded",
    )
    start.add_argument(
        "--by-reference",
        action="store_true",
        help="upload the plan to the stack's plan bucket and start the run with a reference to "
        "it (always done with --at, and for a plan over 200 KiB)",
    )
    status = commands.add_parser(
        "status",
        help="where a migration stands: step, messages left per queue, open gate, parameters",
    )
    status.add_argument("migration_id")
    status.add_argument("--watch", action="store_true", help="refresh in place until it ends")
    status.add_argument(
        "--interval", type=float, default=10.0, help="seconds between refreshes (--watch)"
    )
    abort = commands.add_parser(
        "abort",
        help="ask for a migration's rollback (refused once on-prem is being stopped)",
        description="Asks the running migration to roll back through its own rollback path "
        "(nothing is lost: the same drains as a rejected gate). Your IAM identity and the "
        "reason are recorded. Refused, with the reason, after the point of no return.",
    )
    abort.add_argument("migration_id")
    abort.add_argument("--reason", required=True, help="why (recorded and notified)")
    report = commands.add_parser(
        "report",
        help="the record of a migration: timeline, approvals, parameter changes, counts",
    )
    report.add_argument("migration_id")
    report.add_argument("--json", dest="json_path", help="write the report as JSON here")
    report.add_argument("--html", dest="html_path", help="write a single-file HTML page here")
    for command in (preflight, start, status, report):
        command.add_argument("--stack", required=True, help="the deployed stack")
        command.add_argument("--region", help="AWS region (default: your configuration)")
    _api_arguments(abort)


def main(
    argv: list[str] | None = None, *, session: Any = None, transport: Transport | None = None
) -> int:
    """`session` (a boto3 Session) and `transport` (see mq_cutover_cli.api) are for tests."""
    from mq_cutover import redaction

    # A user who turns on botocore's DEBUG logging must not log their own credentials.
    redaction.install()
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
        "--by-reference",
        choices=["s3", "ssm"],
        help='start the run with {"planRef": ...}: the plan put in the simulated stack\'s plan '
        "bucket (s3) or under its plan parameter prefix (ssm) first",
    )
    simulate.add_argument(
        "--pace", type=float, default=0.0, help="real seconds per Wait state (to watch it run)"
    )
    for verb in ("approve", "reject", "extend"):
        decide = commands.add_parser(
            verb,
            help=f"{verb} a migration's open gate as your IAM identity (execute-api:Invoke on "
            "the stack's decision API is all it needs)",
        )
        decide.add_argument("migration_id")
        decide.add_argument(
            "--gate",
            required=True,
            help="the gate you decide: cutover, drainTimeout, stopOnPrem, ... (required, so a "
            "retried approval never lands on a later gate; `pending` lists the open ones)",
        )
        decide.add_argument("--comment", default="", help="why (shown in the notification)")
        _api_arguments(decide)
    listing = commands.add_parser(
        "pending", help="a migration's open gates: their facts, votes and time left"
    )
    listing.add_argument("migration_id")
    _api_arguments(listing)
    approvers = commands.add_parser(
        "approvers",
        help="who may approve (the stack's registry; needs the ApproverAdminPolicy)",
        description="Approvers are registered in the stack: one SSM parameter each under "
        "ApproverRegistryPath, and an email subscription to ApprovalTopic filtered on their id, "
        "so each receives only their own links.",
    )
    actions = approvers.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register an approver and subscribe their email")
    add.add_argument("--id", required=True, help="1-32 lower-case letters, digits or '-'")
    add.add_argument("--name", required=True, help="as shown on pages and in the record")
    add.add_argument("--email", required=True, help="where their approval links are sent")
    add.add_argument(
        "--iam-principal",
        help="the IAM user or role ARN they approve with from a terminal (a role: anyone who "
        "can assume it counts as this one person)",
    )
    add.add_argument("--replace", action="store_true", help="replace an approver with this id")
    remove = actions.add_parser("remove", help="unsubscribe an approver and delete their entry")
    remove.add_argument("--id", required=True)
    actions.add_parser("list", help="approvers, their subscriptions and any problem")
    for action in (add, remove, actions.choices["list"]):
        action.add_argument("--stack", required=True, help="the deployed stack")
        action.add_argument("--region", help="AWS region (default: your configuration)")
    bridge = commands.add_parser(
        "publish-metrics",
        help="publish the on-prem broker's queue metrics to CloudWatch (run next to the broker)",
        description="Samples ActiveMQ's Jolokia or RabbitMQ's management API and publishes, "
        "each sample, the aggregates of the queues the plan watches (messages, in flight, "
        "enqueued, consumers, queues reported, ...) and, every detail period, each of those "
        "queues' own series, under the plan's onPrem.metrics namespace and dimensions. The "
        "password is read from the environment variable MQ_CUTOVER_SOURCE_PASSWORD, never from "
        "the command line.",
    )
    bridge.add_argument(
        "--plan",
        required=True,
        help="the migration plan: its onPrem.metrics (namespace, dimensions, names, period, "
        "detailPeriodSeconds) and the queues it watches (onPrem.queues, onPrem.ignoreQueues)",
    )
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
    bridge.add_argument(
        "--queues",
        help="comma-separated queue names or glob patterns to aggregate (default: the plan's "
        "onPrem.queues); the drain reads the aggregates only of the set its plan watches",
    )
    bridge.add_argument(
        "--ignore-queues",
        help="comma-separated patterns of queues counted apart, never waited for (default: the "
        "plan's onPrem.ignoreQueues); '-' for none",
    )
    bridge.add_argument(
        "--detail-seconds",
        type=int,
        choices=[1, 5, 10, 30, 60, 300],
        help="seconds between per-queue samples (default: the plan's "
        "onPrem.metrics.detailPeriodSeconds, 60)",
    )
    bridge.add_argument(
        "--detail-figures",
        choices=["messages", "all"],
        default="messages",
        help="per-queue series: the messages metric only (default: one custom metric per "
        "queue), or all six (in flight, enqueued, dequeued, consumers, expired too)",
    )
    runtime = bridge.add_mutually_exclusive_group()
    runtime.add_argument("--once", action="store_true", help="one sample, then exit")
    runtime.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    bridge.add_argument("--region", help="AWS region (default: your configuration)")
    commands.add_parser("schema", help="print the migration plan's JSON Schema")
    _operator_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
        return 0
    if args.command in _AWS_COMMANDS:
        return _aws_command(args, session, transport)
    if args.command == "publish-metrics":
        return _publish_metrics(args)
    return _simulate(args)


if __name__ == "__main__":
    sys.exit(main())

"""`mq-cutover`: run a migration plan offline (`simulate`), or export the plan's JSON Schema."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mq_cutover.plan import json_schema
from mq_cutover_cli.simulate import Simulation, summary_lines
from mq_cutover_cli.world import World


def _simulate(args: argparse.Namespace) -> int:
    try:
        plan_text = Path(args.plan).read_text()
    except OSError as exc:
        print(f"mq-cutover: cannot read the plan: {exc}", file=sys.stderr)
        return 2
    world = World.from_file(Path(args.world)) if args.world else None
    if args.approve != "auto" and not args.approve.startswith("reject:") and args.approve != "none":
        print("mq-cutover: --approve takes auto, none or reject:GATE", file=sys.stderr)
        return 2
    printer = None if args.quiet else print
    simulation = Simulation(
        plan_document=plan_text,
        world=world,
        approve=args.approve,
        printer=printer,
        pace_seconds=args.pace,
    )
    report = simulation.run()
    for line in summary_lines(report):
        print(line)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"  report: {args.report}")
    return 0 if report["execution"]["status"] == "SUCCEEDED" else 1


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
        help="auto (approve every gate), reject:GATE (reject that gate), none (never decide)",
    )
    simulate.add_argument("--report", help="write a JSON report here")
    simulate.add_argument("--quiet", action="store_true", help="print only the summary")
    simulate.add_argument(
        "--pace", type=float, default=0.0, help="real seconds per Wait state (to watch it run)"
    )
    commands.add_parser("schema", help="print the migration plan's JSON Schema")
    args = parser.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
        return 0
    return _simulate(args)


if __name__ == "__main__":
    sys.exit(main())

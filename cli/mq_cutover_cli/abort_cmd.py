"""`mq-cutover abort MIGRATION_ID --reason TEXT`: a person asks for the running migration's
rollback, at any point before the point of no return (the on-prem stop).

Like approve/reject, it is a SigV4-signed request to the stack's decision API: the server takes
who asks from the verified signature (a registered approver), records the abort with the reason
on the migration's lease item, and fails any gate the run waits at. The run then takes the same
rollback path a rejected gate takes (mq_cutover.abort, mq_cutover.lease)."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from mq_cutover_cli.api import Transport


def run(args: argparse.Namespace, session: Any, transport: Transport | None = None) -> int:
    """0 when the abort was recorded; 1 when the server refused it (the line says why)."""
    from mq_cutover_cli.cli import _decision_api
    from mq_cutover_cli.decide import abort, abort_line

    api = _decision_api(args, session, transport)
    answer = abort(api, migration_id=args.migration_id, reason=args.reason)
    stack = shlex.quote(args.stack) if args.stack else "<stack>"
    follow = f"mq-cutover status {shlex.quote(args.migration_id)} --stack {stack}"
    recorded, line = abort_line(answer, follow)
    if recorded:
        print(line)
        return 0
    print(f"mq-cutover: {line}", file=sys.stderr)
    return 1

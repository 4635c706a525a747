"""`mq-cutover preflight --plan FILE --stack NAME`: the plan checked against the account and the
stack, read-only, before the window.

The checks are the Validate Plan step's (`mq_cutover.preflight`): what passes here passes there,
with the caller's credentials instead of the function's role. Exit status: 0 every check holds,
1 any check fails, 2 the plan cannot be read (or the stack cannot be found), 4 none fails but
AWS did not answer some (throttled or unreachable): retry.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mq_cutover.preflight import Check, Clients, StackSettings, run_checks
from mq_cutover_cli.decide import shown, stack_output

__all__ = ["Check", "checks_for", "print_checks", "run", "stack_settings"]


def stack_settings(cloudformation: Any, stack: str) -> StackSettings:
    """What the deployed stack decides (its outputs and parameters, DescribeStacks)."""
    (described,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    outputs = {str(o["OutputKey"]): str(o["OutputValue"]) for o in described.get("Outputs", [])}
    parameters = {
        str(p["ParameterKey"]): str(p.get("ResolvedValue") or p.get("ParameterValue", ""))
        for p in described.get("Parameters", [])
    }
    defaults = StackSettings()
    return StackSettings(
        parameter_prefix=parameters.get("ParameterPathPrefix", defaults.parameter_prefix),
        approval_topic_arn=stack_output(outputs, "ApprovalTopicArn", stack),
        approver_registry_path=stack_output(outputs, "ApproverRegistryPath", stack),
        required_gates=tuple(
            gate.strip()
            for gate in parameters.get("RequiredGates", "cutover,stopOnPrem").split(",")
            if gate.strip()
        ),
        minimum_quorum=int(parameters.get("MinimumQuorum") or 1),
        state_machine_arn=stack_output(outputs, "StateMachineArn", stack),
        secrets_prefix=parameters.get("BrokerUserSecretsPrefix", defaults.secrets_prefix),
        on_prem_tag_key=parameters.get("OnPremTagKey", defaults.on_prem_tag_key),
        client_host_tag_key=parameters.get("ClientHostTagKey", defaults.client_host_tag_key),
    )


def checks_for(session: Any, stack: str, plan_document: Any) -> list[Check]:
    """Every preflight check of a plan (a dict, or its JSON text) against `stack`, with the
    session's credentials. Raises StackOutputMissing (or a ClientError) if the stack cannot be
    read."""
    settings = stack_settings(session.client("cloudformation"), stack)
    # A check AWS did not answer is listed (to retry) and the others are still made.
    return run_checks(
        plan_document, settings, Clients.from_factory(session.client), retry_unanswered=False
    )


def print_checks(checks: list[Check], as_json: bool = False) -> None:
    """One line per check and a summary line; or a JSON list."""
    if as_json:
        print(json.dumps([check.as_dict() for check in checks], indent=2))
        return
    for check in checks:
        print(shown(check.line()))
    failed = sum(1 for check in checks if not check.ok and not check.transient)
    unanswered = sum(1 for check in checks if check.transient)
    retry = f"{unanswered} could not be checked (AWS unreachable or throttled): retry"
    if failed:
        print(
            f"{failed} of {len(checks)} checks failed: fix them before the window"
            + (f"; {retry}" if unanswered else "")
        )
    elif unanswered:
        print(f"{retry}; the other {len(checks) - unanswered} of {len(checks)} passed")
    else:
        print(f"all {len(checks)} checks passed")


def run(args: argparse.Namespace, session: Any, transport: Any = None) -> int:
    try:
        text = Path(args.plan).read_text()
        document = json.loads(text)
    except OSError as exc:
        print(f"mq-cutover: cannot read the plan: {exc}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"mq-cutover: the plan is not JSON: {exc}", file=sys.stderr)
        return 2
    checks = checks_for(session, args.stack, document)
    print_checks(checks, as_json=bool(args.json))
    if any(not check.ok and not check.transient for check in checks):
        return 1
    return 4 if any(check.transient for check in checks) else 0

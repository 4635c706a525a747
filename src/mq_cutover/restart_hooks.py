"""Wait for the clients' restart hooks: has the SSM Run Command succeeded on every host?

A client step that changed URLs sends its group's `restartHook` (`parameters.send_restart_hook`)
and returns the command id; the state machine then calls `check_restart` in a Wait/Choice loop
(never a wait inside a Lambda) until every host reports Success. A host that fails, times out,
is cancelled or cannot be reached, a command that reached no host at all, or any host still
running when the hook's `timeoutSeconds` has passed, raises RestartHookFailed naming each host
and its status: the forward path rolls back, the rollback reports it and goes on.

Hosts are read with ListCommandInvocations (one invocation per host, paginated) — for a command
sent to tags, the hosts are only known there — and the command itself with ListCommands (its
status and target count: "reached no host" is a finished command with no target).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.errors import RestartHookFailed
from mq_cutover.plan import MigrationPlan, RestartHook

# Invocation statuses (and status details, spaces removed) that will not become Success.
FAILED_STATUSES = {"Failed", "TimedOut", "Cancelled", "Cancelling"}
FAILED_DETAILS = {
    "Failed",
    "TimedOut",
    "Cancelled",
    "Canceled",
    "Cancelling",
    "Undeliverable",
    "Terminated",
    "DeliveryTimedOut",
    "ExecutionTimedOut",
    "AccessDenied",
    "InvalidPlatform",
}
COMMAND_RUNNING = {"Pending", "InProgress"}
HOSTS_NAMED = 20  # in a cause or a result; the rest are counted


def _status(invocation: dict[str, Any]) -> str:
    """What a person reads: the detail where it says more (Undeliverable, Delivery Timed Out)."""
    status = str(invocation.get("Status") or "Pending")
    detail = str(invocation.get("StatusDetails") or "")
    return detail if detail and detail.replace(" ", "") != status else status


def _failed(invocation: dict[str, Any]) -> bool:
    detail = str(invocation.get("StatusDetails") or "").replace(" ", "")
    return invocation.get("Status") in FAILED_STATUSES or detail in FAILED_DETAILS


def _named(hosts: dict[str, str]) -> str:
    shown = [f"{host} ({status})" for host, status in sorted(hosts.items())[:HOSTS_NAMED]]
    more = len(hosts) - HOSTS_NAMED
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _command(ssm: Any, command_id: str) -> dict[str, Any]:
    try:
        commands = ssm.list_commands(CommandId=command_id).get("Commands", [])
    except ClientError as exc:
        raise_if_throttled(exc)
        if exc.response["Error"]["Code"] == "InvalidCommandId":
            commands = []
        else:
            raise
    if not commands:
        raise RestartHookFailed(f"restart hook command {command_id} is unknown to SSM")
    return dict(commands[0])


def _invocations(ssm: Any, command_id: str) -> list[dict[str, Any]]:
    try:
        pages = ssm.get_paginator("list_command_invocations").paginate(CommandId=command_id)
        return [inv for page in pages for inv in page.get("CommandInvocations", [])]
    except ClientError as exc:
        raise_if_throttled(exc)
        raise


def _hook(plan: MigrationPlan, group: str) -> RestartHook:
    hook = (plan.producers if group == "producers" else plan.consumers).restart_hook
    if hook is None:
        raise RestartHookFailed(f"the plan has no {group}.restartHook, yet a command was sent")
    return hook


def check_restart(
    plan: MigrationPlan,
    ssm: Any,
    commands: list[dict[str, str]],
    previous: dict[str, Any] | None,
    *,
    now: datetime,
    step: str | None = None,
) -> dict[str, Any]:
    """One look at the restart commands `[{group, commandId}]` a client step sent. Returns
    `done` (every host succeeded) or how many hosts are still running, with the deadline (set
    at the first look: now + the hooks' timeoutSeconds) and the interval to wait before the
    next look. Raises RestartHookFailed when a host failed, a command reached no host, or the
    deadline has passed."""
    hooks = {entry["group"]: _hook(plan, entry["group"]) for entry in commands}
    timeout = max((hook.timeout_seconds for hook in hooks.values()), default=0)
    interval = min((hook.poll_interval_seconds for hook in hooks.values()), default=10)
    started = datetime.fromisoformat(previous["startedAt"]) if previous else now
    deadline = started + timedelta(seconds=timeout)
    after = f" after {step}" if step else ""
    pending: dict[str, str] = {}
    failed: list[str] = []
    succeeded = total = 0
    summaries = []
    for entry in commands:
        group, command_id = entry["group"], entry["commandId"]
        command = _command(ssm, command_id)
        invocations = _invocations(ssm, command_id)
        bad = {inv["InstanceId"]: _status(inv) for inv in invocations if _failed(inv)}
        waiting = {
            inv["InstanceId"]: _status(inv)
            for inv in invocations
            if inv.get("Status") != "Success" and not _failed(inv)
        }
        command_status = str(command.get("Status") or "Pending")
        if bad:
            failed.append(
                f"restart hook of {group}{after} (command {command_id}) failed on {len(bad)} of "
                f"{len(invocations)} host(s): {_named(bad)}"
            )
        elif not invocations and command_status not in COMMAND_RUNNING:
            detail = command.get("StatusDetails") or command_status
            failed.append(
                f"restart hook of {group}{after} (command {command_id}) reached no host "
                f"({detail}, {int(command.get('TargetCount', 0))} targets): check "
                f"{group}.restartHook.instanceIds/targetTags, the hosts' ClientHostTagKey tag "
                "and their SSM agent"
            )
        if not invocations and command_status in COMMAND_RUNNING:
            waiting[f"(no host yet for command {command_id})"] = command_status
        pending.update(waiting)
        total += len(invocations)
        succeeded += sum(1 for inv in invocations if inv.get("Status") == "Success")
        summaries.append(
            {
                "group": group,
                "commandId": command_id,
                "status": command_status,
                "hosts": len(invocations),
            }
        )
    if failed:
        raise RestartHookFailed("; ".join(failed))
    done = not pending
    if not done and now >= deadline:
        groups = " and ".join(sorted(hooks))
        raise RestartHookFailed(
            f"restart hook of {groups}{after} did not finish within {timeout} s "
            f"({succeeded} of {total} host(s) succeeded); still running: {_named(pending)}"
        )
    return {
        "done": done,
        "startedAt": started.isoformat(),
        "deadlineAt": deadline.isoformat(),
        "checks": int((previous or {}).get("checks", 0)) + 1,
        "pollIntervalSeconds": interval,
        "hosts": total,
        "succeeded": succeeded,
        "pendingCount": len(pending),
        "pending": [f"{host} ({status})" for host, status in sorted(pending.items())][:HOSTS_NAMED],
        "commands": summaries,
    }

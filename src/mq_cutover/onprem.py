"""Stop the on-prem broker (the point of no return) and follow the stop until it is done."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.errors import OnPremStopFailed
from mq_cutover.plan import MigrationPlan, StopMethod

_COMMAND_FAILED = {"Cancelled", "TimedOut", "Failed", "Cancelling", "Undeliverable", "Terminated"}


def _earlier_stop(ssm: Any, comment: str) -> str | None:
    """The stop command an earlier try of this step already sent (SendCommand has no
    idempotency token, so the command's comment names the migration)."""
    pages = ssm.get_paginator("list_commands").paginate()
    for page in pages:
        for command in page.get("Commands", []):
            if command.get("Comment") == comment and command["Status"] not in _COMMAND_FAILED:
                return str(command["CommandId"])
    return None


def stop_on_prem(plan: MigrationPlan, ssm: Any, ec2: Any) -> dict[str, Any]:
    """Start stopping the on-prem broker (once: a retried step finds its earlier command).
    Manual stops are confirmed at an approval gate."""
    stop = plan.stop_on_prem
    try:
        if stop.method == StopMethod.SSM_COMMAND:
            comment = f"mq-cutover {plan.migration_id}: stop on-prem broker"[:100]
            earlier = _earlier_stop(ssm, comment)
            if earlier:
                return {"method": stop.method.value, "commandId": earlier}
            request: dict[str, Any] = {
                "DocumentName": stop.document_name,
                "Parameters": {"commands": list(stop.commands)},
                "Comment": comment,
                "TimeoutSeconds": stop.timeout_minutes * 60,
            }
            if stop.instance_ids:
                request["InstanceIds"] = list(stop.instance_ids)
            else:
                request["Targets"] = [
                    {"Key": f"tag:{k}", "Values": v} for k, v in stop.target_tags.items()
                ]
            command = ssm.send_command(**request)["Command"]
            return {"method": stop.method.value, "commandId": command["CommandId"]}
        if stop.method == StopMethod.EC2_STOP:
            ec2.stop_instances(InstanceIds=list(stop.instance_ids))
            return {"method": stop.method.value, "instanceIds": list(stop.instance_ids)}
    except ClientError as exc:
        raise_if_throttled(exc)
        raise OnPremStopFailed(f"could not start the stop ({stop.method.value}): {exc}") from exc
    return {"method": stop.method.value}


def check_on_prem_stop(ssm: Any, ec2: Any, stop: dict[str, Any]) -> dict[str, Any]:
    """Is the stop finished? Raises OnPremStopFailed when it will not finish."""
    try:
        if stop.get("commandId"):
            commands = ssm.list_commands(CommandId=stop["commandId"]).get("Commands", [])
            if not commands:
                raise OnPremStopFailed(f"stop command {stop['commandId']} is unknown to SSM")
            command = commands[0]
            status = command["Status"]
            if status in _COMMAND_FAILED or int(command.get("ErrorCount", 0)):
                raise OnPremStopFailed(
                    f"stop command {stop['commandId']} ended {status} "
                    f"({command.get('ErrorCount', 0)} of {command.get('TargetCount', 0)} failed)"
                )
            done = status == "Success"
            if done and int(command.get("TargetCount", 0)) == 0:
                raise OnPremStopFailed(
                    f"stop command {stop['commandId']} reached no instance: check the targets"
                )
            return {
                **stop,
                "done": done,
                "status": status,
                "completed": int(command.get("CompletedCount", 0)),
                "targets": int(command.get("TargetCount", 0)),
            }
        if stop.get("instanceIds"):
            pages = ec2.get_paginator("describe_instances").paginate(
                InstanceIds=stop["instanceIds"]
            )
            states = {
                inst["InstanceId"]: inst["State"]["Name"]
                for page in pages
                for reservation in page.get("Reservations", [])
                for inst in reservation.get("Instances", [])
            }
            gone = {i: s for i, s in states.items() if s in ("terminated", "shutting-down")}
            if gone:
                raise OnPremStopFailed(f"instances were terminated, not stopped: {gone}")
            done = bool(states) and all(s == "stopped" for s in states.values())
            return {**stop, "done": done, "instances": states}
    except ClientError as exc:
        raise_if_throttled(exc)
        raise OnPremStopFailed(f"could not follow the stop: {exc}") from exc
    return {**stop, "done": True}

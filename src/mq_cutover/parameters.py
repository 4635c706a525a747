"""Client broker URLs in SSM Parameter Store: change them reversibly, and roll them back.

Before the first change of a parameter, its current version is labelled `pre-<migrationId>`;
every version this migration writes is labelled `cutover-<migrationId>` (the label moves to the
newest one). Rollback puts the `pre-` value back unless someone else wrote the parameter since:
then the current version no longer carries the `cutover-` label and it is reported as a conflict.
No value is ever returned or logged (parameters may be SecureStrings): only names and versions.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover.aws import raise_if_throttled
from mq_cutover.client_urls import narrowed_url, widened_url
from mq_cutover.errors import ParameterConflict
from mq_cutover.plan import MigrationPlan, RestartHook


class ClientStep(StrEnum):
    PRODUCERS = "producers"
    CONSUMERS = "consumers"
    WIDEN_CONSUMERS = "widen-consumers"
    NARROW_CONSUMERS = "narrow-consumers"


def pre_label(migration_id: str) -> str:
    return f"pre-{migration_id}"


def own_label(migration_id: str) -> str:
    return f"cutover-{migration_id}"


def rollback_label(migration_id: str) -> str:
    return f"rollback-{migration_id}"


def _get(ssm: Any, selector: str) -> dict[str, Any] | None:
    """A parameter (or a labelled version of it with `name:label`), or None when absent."""
    try:
        return dict(ssm.get_parameter(Name=selector, WithDecryption=True)["Parameter"])
    except ClientError as exc:
        raise_if_throttled(exc)
        if exc.response["Error"]["Code"] in ("ParameterNotFound", "ParameterVersionNotFound"):
            return None
        raise


def _put(ssm: Any, current: dict[str, Any], value: str) -> int:
    try:
        response = ssm.put_parameter(
            Name=current["Name"], Value=value, Type=current["Type"], Overwrite=True
        )
    except ClientError as exc:
        raise_if_throttled(exc)
        raise
    return int(response["Version"])


def _label(ssm: Any, name: str, version: int, label: str) -> None:
    try:
        ssm.label_parameter_version(Name=name, ParameterVersion=version, Labels=[label])
    except ClientError as exc:
        raise_if_throttled(exc)
        raise


def target_value(step: ClientStep, plan: MigrationPlan, broker: dict[str, Any]) -> str:
    """The URL this step gives its clients."""
    if step in (ClientStep.PRODUCERS, ClientStep.CONSUMERS):
        return str(broker["clientUrl"])
    if step == ClientStep.WIDEN_CONSUMERS:
        return widened_url(plan.on_prem.url, list(broker["endpoints"]))
    return narrowed_url(list(broker["endpoints"]))


def set_parameter(ssm: Any, name: str, value: str, migration_id: str) -> dict[str, Any]:
    """Set one client parameter, reversibly and idempotently. Returns what happened."""
    current = _get(ssm, name)
    if current is None:
        raise ParameterConflict(f"{name} no longer exists")
    pre = _get(ssm, f"{name}:{pre_label(migration_id)}")
    own = _get(ssm, f"{name}:{own_label(migration_id)}")
    if pre is None:
        _label(ssm, name, int(current["Version"]), pre_label(migration_id))
    elif int(current["Version"]) not in {int(pre["Version"]), int(own["Version"]) if own else -1}:
        raise ParameterConflict(
            f"{name} was changed by someone else during migration {migration_id} "
            f"(version {current['Version']} is neither the original nor ours)"
        )
    if current["Value"] == value:
        return {"name": name, "changed": False, "version": int(current["Version"])}
    version = _put(ssm, current, value)
    _label(ssm, name, version, own_label(migration_id))
    return {
        "name": name,
        "changed": True,
        "fromVersion": int(current["Version"]),
        "version": version,
    }


def send_restart_hook(ssm: Any, hook: RestartHook, comment: str) -> str:
    """Ask the clients' hosts to restart so they reconnect with their new URL."""
    request: dict[str, Any] = {
        "DocumentName": hook.document_name,
        "Parameters": {"commands": list(hook.commands)},
        "Comment": comment[:100],
    }
    if hook.instance_ids:
        request["InstanceIds"] = list(hook.instance_ids)
    else:
        request["Targets"] = [
            {"Key": f"tag:{key}", "Values": values} for key, values in hook.target_tags.items()
        ]
    try:
        return str(ssm.send_command(**request)["Command"]["CommandId"])
    except ClientError as exc:
        raise_if_throttled(exc)
        raise


def repoint_clients(
    plan: MigrationPlan,
    ssm: Any,
    step: ClientStep,
    broker: dict[str, Any],
    only: str | None = None,
) -> dict[str, Any]:
    """Point one client group (or the one parameter `only`) at the step's URL."""
    group = plan.producers if step == ClientStep.PRODUCERS else plan.consumers
    names = list(group.parameters)
    if only is not None:
        if only not in names:
            raise ParameterConflict(f"{only} is not one of the plan's {step.value} parameters")
        names = [only]
    value = target_value(step, plan, broker)
    results = [set_parameter(ssm, name, value, plan.migration_id) for name in names]
    changed = [r["name"] for r in results if r["changed"]]
    command_id = None
    if changed and group.restart_hook is not None:
        command_id = send_restart_hook(
            ssm, group.restart_hook, f"mq-cutover {plan.migration_id}: {step.value}"
        )
    return {
        "step": step.value,
        "changed": changed,
        "unchanged": [r["name"] for r in results if not r["changed"]],
        "restartCommandId": command_id,
    }


def rollback_parameters(plan: MigrationPlan, ssm: Any) -> dict[str, Any]:
    """Put every parameter this migration changed back to its `pre-` value.

    Producers go back first, so that no new message is sent to Amazon MQ while consumers are
    still reading there; then consumers. A parameter someone else changed is left as it is.
    """
    restored: list[str] = []
    conflicts: list[dict[str, Any]] = []
    untouched: list[str] = []
    migration_id = plan.migration_id
    order = [*reversed(plan.producers.parameters), *reversed(plan.consumers.parameters)]
    for name in order:
        pre = _get(ssm, f"{name}:{pre_label(migration_id)}")
        current = _get(ssm, name)
        if pre is None or current is None:
            untouched.append(name)
            continue
        if current["Value"] == pre["Value"]:
            untouched.append(name)
            continue
        own = _get(ssm, f"{name}:{own_label(migration_id)}")
        if own is None or int(own["Version"]) != int(current["Version"]):
            conflicts.append(
                {
                    "name": name,
                    "version": int(current["Version"]),
                    "reason": "changed by someone else since this migration wrote it; left as is",
                }
            )
            continue
        version = _put(ssm, current, str(pre["Value"]))
        _label(ssm, name, version, rollback_label(migration_id))
        restored.append(name)
    return {"restored": restored, "conflicts": conflicts, "untouched": untouched}

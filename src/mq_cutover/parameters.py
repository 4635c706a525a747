"""Client broker URLs in SSM Parameter Store: change them reversibly, and roll them back.

Before the first change of a parameter, its current version is labelled `pre-<migrationId>`;
every version this migration writes is labelled `cutover-<migrationId>` (the label moves to the
newest one). Rollback puts the `pre-` value back unless someone else wrote the parameter since:
then the current version no longer carries the `cutover-` label and it is reported as a conflict.
No value is ever returned or logged (parameters may be SecureStrings): only names and versions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
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


def _paged(call: Callable[..., Any], **kwargs: Any) -> list[dict[str, Any]]:
    """Every "Parameters" item of a paged SSM call (NextToken), all pages read; throttling is
    AwsThrottled."""
    items: list[dict[str, Any]] = []
    try:
        while True:
            page = call(**kwargs)
            items += page.get("Parameters", [])
            if not page.get("NextToken"):
                return items
            kwargs["NextToken"] = page["NextToken"]
    except ClientError as exc:
        raise_if_throttled(exc)
        raise


DESCRIBE_BATCH = 50  # DescribeParameters: at most 50 values in a filter


class Described:
    """Each parameter's tier and KMS key (DescribeParameters), asked for 50 names at a time:
    one call a parameter is slow at thousands (DescribeParameters' own quota is low)."""

    def __init__(self, ssm: Any, names: list[str]) -> None:
        self.ssm = ssm
        self.names = names
        self.position = {name: number for number, name in enumerate(names)}
        self.known: dict[str, dict[str, Any]] = {}

    def _describe(self, batch: list[str]) -> None:
        found = _paged(
            self.ssm.describe_parameters,
            ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": batch}],
            MaxResults=DESCRIBE_BATCH,
        )
        self.known.update({p["Name"]: p for p in found})
        for name in batch:
            self.known.setdefault(name, {})

    def __call__(self, name: str) -> dict[str, Any]:
        if name not in self.known:
            start = self.position.get(name)
            batch = [name] if start is None else self.names[start : start + DESCRIBE_BATCH]
            self._describe(batch)
        return self.known[name]


def _put(ssm: Any, current: dict[str, Any], value: str, described: Described | None = None) -> int:
    """Overwrite, keeping the parameter's type, tier and KMS key (a SecureString written without
    its KeyId would silently move to the aws/ssm key)."""
    request: dict[str, Any] = {
        "Name": current["Name"],
        "Value": value,
        "Type": current["Type"],
        "Overwrite": True,
    }
    try:
        found = (described or Described(ssm, []))(current["Name"])
        if found.get("Tier"):
            request["Tier"] = found["Tier"]
        if current["Type"] == "SecureString" and found.get("KeyId"):
            request["KeyId"] = found["KeyId"]
        response = ssm.put_parameter(**request)
    except ClientError as exc:
        raise_if_throttled(exc)
        raise
    return int(response["Version"])


def _written_by_us(ssm: Any, name: str, pre_version: int, ours: set[str]) -> bool:
    """Every version after the `pre-` one holds a value this migration writes: an earlier
    attempt wrote it and died before labelling it (put and label are two calls)."""
    if not ours:
        return False
    history = _paged(ssm.get_parameter_history, Name=name, WithDecryption=True, MaxResults=50)
    later = [p for p in history if int(p["Version"]) > pre_version]
    return bool(later) and all(p["Value"] in ours for p in later)


def migration_values(plan: MigrationPlan, broker: dict[str, Any] | None) -> set[str]:
    """Every value this migration may write into a client parameter."""
    if not broker or not broker.get("clientUrl") or not broker.get("endpoints"):
        return set()
    return {target_value(step, plan, broker, index) for step in ClientStep for index in (0, 1)}


def _label(ssm: Any, name: str, version: int, label: str) -> None:
    try:
        response = ssm.label_parameter_version(Name=name, ParameterVersion=version, Labels=[label])
    except ClientError as exc:
        raise_if_throttled(exc)
        raise
    if response.get("InvalidLabels"):  # SSM reports a refused label here, not as an error
        raise ParameterConflict(f"{name}: SSM refused the label(s) {response['InvalidLabels']}")


def target_value(
    step: ClientStep, plan: MigrationPlan, broker: dict[str, Any], index: int = 0
) -> str:
    """The URL this step gives the client whose parameter is number `index` of its group."""
    if step in (ClientStep.PRODUCERS, ClientStep.CONSUMERS):
        return str(broker["clientUrl"])
    options = plan.target.failover_options
    if step == ClientStep.WIDEN_CONSUMERS:
        return widened_url(plan.on_prem.url, list(broker["endpoints"]), index, options)
    return narrowed_url(list(broker["endpoints"]), options)


def set_parameter(
    ssm: Any,
    name: str,
    value: str,
    migration_id: str,
    ours: set[str] | None = None,
    described: Described | None = None,
) -> dict[str, Any]:
    """Set one client parameter, reversibly and idempotently. Returns what happened.

    `ours` are the values this migration writes: a version holding one of them that lacks our
    label (a retry after a crash between put and label) is recognised and labelled."""
    current = _get(ssm, name)
    if current is None:
        raise ParameterConflict(f"{name} no longer exists")
    version = int(current["Version"])
    pre = _get(ssm, f"{name}:{pre_label(migration_id)}")
    own = _get(ssm, f"{name}:{own_label(migration_id)}")
    original_version = int(pre["Version"]) if pre is not None else version
    if pre is None or (version != original_version and current["Value"] == pre["Value"]):
        # First change; or a later attempt after a rollback put the original value back: the
        # current version is the original (again), so the label moves to it.
        _label(ssm, name, version, pre_label(migration_id))
        original_version = version
    elif version not in {original_version, int(own["Version"]) if own else -1}:
        if not _written_by_us(ssm, name, original_version, (ours or set()) | {value}):
            raise ParameterConflict(
                f"{name} was changed by someone else during migration {migration_id} "
                f"(version {version} is neither the original nor ours)"
            )
        _label(ssm, name, version, own_label(migration_id))
    if current["Value"] == value:
        # Already at its target: written by this migration (an earlier try of this call, or an
        # earlier attempt) unless the current version is the original one.
        written = current.get("LastModifiedDate") if version != original_version else None
        return {"name": name, "changed": False, "version": version, "writtenAt": written}
    written = _put(ssm, current, value, described)
    _label(ssm, name, written, own_label(migration_id))
    return {"name": name, "changed": True, "fromVersion": version, "version": written}


def send_restart_hook(ssm: Any, hook: RestartHook, comment: str) -> str:
    """Ask the clients' hosts to restart so they reconnect with their new URL. The workflow
    waits for the result (`mq_cutover.restart_hooks`) for `timeoutSeconds`: a host that has not
    received the command by then never runs it, and one still running it is stopped, so no
    client restarts after the workflow has moved on (or started rolling back)."""
    request: dict[str, Any] = {
        "DocumentName": hook.document_name,
        "Parameters": {
            "commands": list(hook.commands),
            "executionTimeout": [str(hook.timeout_seconds)],
        },
        "Comment": comment[:100],
        "TimeoutSeconds": hook.timeout_seconds,
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


def _restart_sent_since(ssm: Any, comment: str, since: datetime) -> str | None:
    """The restart command with this comment sent after `since` (SendCommand has no
    idempotency token, so the command's comment names the migration and the step)."""
    after = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        pages = ssm.get_paginator("list_commands").paginate(
            Filters=[{"key": "InvokedAfter", "value": after}]
        )
        for page in pages:
            for command in page.get("Commands", []):
                if command.get("Comment") == comment and command["RequestedDateTime"] >= since:
                    return str(command["CommandId"])
    except ClientError as exc:
        raise_if_throttled(exc)
        raise
    return None


def restart_clients(
    ssm: Any,
    hook: RestartHook | None,
    comment: str,
    changed: bool,
    written_before: list[datetime],
) -> str | None:
    """The restart command the workflow waits for after a call that moved clients: sent now if
    the call changed a URL. If it changed none but found URLs this migration had already
    written (`written_before`: a retried call whose first response was lost, or a later
    attempt), the command sent since the newest of them was written; or, if none was (the
    earlier try died before sending it), a new one. So every client whose URL changed is
    restarted, and its restart awaited, however often a call is retried."""
    if hook is None:
        return None
    comment = comment[:100]
    if not changed:
        if not written_before:
            return None
        earlier = _restart_sent_since(ssm, comment, max(written_before))
        if earlier:
            return earlier
    return send_restart_hook(ssm, hook, comment)


# Stop taking on parameters when less than this is left of the Lambda's time: the state machine
# calls again for the rest (every call is idempotent), so hundreds of parameters fit in one run
# even when SSM throttles (PutParameter's default quota is a few calls a second).
RESERVE_MS = 30_000
TimeLeft = Callable[[], int]
# A result names at most this many parameters of each kind (the rest are counted): the state
# machine carries results, and 10,000 parameter names would be about 450 KB.
NAMES_SHOWN = 50


def _enough_time(time_left_ms: TimeLeft | None, done_any: bool) -> bool:
    return not done_any or time_left_ms is None or time_left_ms() >= RESERVE_MS


def repoint_clients(
    plan: MigrationPlan,
    ssm: Any,
    step: ClientStep,
    broker: dict[str, Any],
    only: str | None = None,
    time_left_ms: TimeLeft | None = None,
    start: int = 0,
    index: int | None = None,
    skip_conflicts: bool = False,
    count: int | None = None,
    written_before: datetime | None = None,
) -> dict[str, Any]:
    """Point one client group (or the one parameter `only`, or the group's `index`th) at the
    step's URL, from position `start`, as many as the time allows (at least one). `next` is
    where the following call starts; `done` says whether the whole group is. With
    `skip_conflicts` (a rollback moving clients) a parameter someone else changed is reported
    in `conflicts` and left alone instead of failing the step.

    With `count` (a batch: the group's parameters [index, index+count)), `start` is a position
    in the group inside the batch (default: its first), and the restart hook is sent once, by
    the call that finishes the batch: a call that ran out of time sends none and returns
    `lastWrite` (when it last wrote a parameter of the batch), which the next call of the batch
    passes back as `written_before`, so that the finishing call restarts the batch's clients
    even when it changed none itself (and a retry of it finds the command already sent)."""
    group = plan.producers if step == ClientStep.PRODUCERS else plan.consumers
    names = list(group.parameters)
    end = len(names)
    if count is not None:
        if index is None or count < 1 or not 0 <= index < len(names):
            raise ParameterConflict(f"{step.value} has no batch of {count} from number {index}")
        end = min(index + count, len(names))
        start = min(max(start, index), end)
        only = None
    elif index is not None:
        if not 0 <= index < len(names):
            raise ParameterConflict(f"{step.value} has no parameter number {index}")
        only = names[index]
    if only is not None:
        if only not in names:
            raise ParameterConflict(f"{only} is not one of the plan's {step.value} parameters")
        names, start, end = [only], 0, 1
    ours = migration_values(plan, broker)
    position = {name: number for number, name in enumerate(group.parameters)}
    results: list[dict[str, Any]] = []
    described = Described(ssm, names[start:end])
    for name in names[start:end]:
        if not _enough_time(time_left_ms, bool(results)):
            break
        value = target_value(step, plan, broker, position[name])
        try:
            results.append(set_parameter(ssm, name, value, plan.migration_id, ours, described))
        except ParameterConflict as exc:
            if not skip_conflicts:
                raise
            results.append({"name": name, "changed": False, "conflict": str(exc)})
    changed = [r["name"] for r in results if r["changed"]]
    unchanged = [r["name"] for r in results if not r["changed"] and "conflict" not in r]
    conflicts = [{"name": r["name"], "reason": r["conflict"]} for r in results if "conflict" in r]
    done = start + len(results) >= end
    written = [r["writtenAt"] for r in results if r.get("writtenAt")]
    if written_before is not None:
        written.append(written_before)
    command_id = None
    extra: dict[str, Any] = {}
    if count is None or done:
        command_id = restart_clients(
            ssm,
            group.restart_hook,
            f"mq-cutover {plan.migration_id}: {step.value}",
            bool(changed),
            written,
        )
    elif group.restart_hook is not None:
        # The batch goes on in the next call, which restarts its clients: tell it since when.
        if changed:
            last = _get(ssm, changed[-1])
            if last is not None and last.get("LastModifiedDate"):
                written.append(last["LastModifiedDate"])
        if written:
            extra["lastWrite"] = max(written).isoformat()
    return {
        "step": step.value,
        "changed": changed,
        "unchanged": unchanged,
        "conflicts": conflicts,
        "start": start,
        "restartCommandId": command_id,
        "next": start + len(results),
        "done": done,
        "remaining": end - start - len(results),
        **extra,
    }


def summarized(result: dict[str, Any], lists: tuple[str, ...]) -> dict[str, Any]:
    """`result` as the state machine gets it: each of `lists` cut to its first NAMES_SHOWN
    entries, with its full length in `<list>Count`. A call may handle thousands of parameters
    and its result travels in the state (kept under 64 KB). The names a client step handled are
    its group's parameters [start:next] (or the one it was asked for), and Parameter Store keeps
    every version it wrote."""
    short = dict(result)
    for key in lists:
        values = list(result.get(key) or [])
        short[key] = values[:NAMES_SHOWN]
        short[f"{key}Count"] = len(values)
    return short


def rollback_parameters(
    plan: MigrationPlan,
    ssm: Any,
    broker: dict[str, Any] | None = None,
    time_left_ms: TimeLeft | None = None,
    start: int = 0,
    groups: tuple[str, ...] = ("producers", "consumers"),
) -> dict[str, Any]:
    """Put every parameter this migration changed (of `groups`) back to its `pre-` value, then
    restart the clients whose URL was restored (they read it when they start).

    Producers go back first, so that no new message is sent to Amazon MQ while consumers are
    still reading there; then consumers. A parameter someone else changed is left as it is.
    """
    restored: list[str] = []
    conflicts: list[dict[str, Any]] = []
    untouched: list[str] = []
    migration_id = plan.migration_id
    ours = migration_values(plan, broker)
    restart_commands: dict[str, str] = {}
    handled = 0
    position = 0
    chosen = [
        (name, group)
        for name, group in (("producers", plan.producers), ("consumers", plan.consumers))
        if name in groups
    ]
    total = sum(len(group.parameters) for _, group in chosen)
    for group_name, group in chosen:
        restored_here = []
        restored_before: list[datetime] = []  # by an earlier try of this call
        described = Described(ssm, list(reversed(group.parameters)))
        for name in reversed(group.parameters):
            position += 1
            if position <= start:
                continue  # done by an earlier call
            if not _enough_time(time_left_ms, bool(handled)):
                break
            handled += 1
            pre = _get(ssm, f"{name}:{pre_label(migration_id)}")
            current = _get(ssm, name)
            if pre is None or current is None or current["Value"] == pre["Value"]:
                untouched.append(name)
                if pre and current and int(current["Version"]) != int(pre["Version"]):
                    restored_before.append(current["LastModifiedDate"])
                continue
            own = _get(ssm, f"{name}:{own_label(migration_id)}")
            mine = own is not None and int(own["Version"]) == int(current["Version"])
            if not mine and not _written_by_us(ssm, name, int(pre["Version"]), ours):
                conflicts.append(
                    {
                        "name": name,
                        "version": int(current["Version"]),
                        "reason": "changed by someone else since this migration wrote it; "
                        "left as is",
                    }
                )
                continue
            version = _put(ssm, current, str(pre["Value"]), described)
            _label(ssm, name, version, rollback_label(migration_id))
            restored_here.append(name)
        restored += restored_here
        command_id = restart_clients(
            ssm,
            group.restart_hook,
            f"mq-cutover {migration_id}: rollback {group_name}",
            bool(restored_here),
            restored_before,
        )
        if command_id:
            restart_commands[group_name] = command_id
    return {
        "restored": restored,
        "conflicts": conflicts,
        "untouched": untouched,
        "restartCommandIds": restart_commands,
        "next": start + handled,
        "done": start + handled >= total,
        "remaining": total - start - handled,
    }

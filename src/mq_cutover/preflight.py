"""Preflight: a plan checked against the account and the stack, read-only, before the window.

One library for two callers: `mq-cutover preflight` (the operator's credentials, before the
window) and the Validate Plan step (the function's role, at the start of every run), so a run
fails before any change for every reason the terminal would have shown.

Every check gives a `Check`: the plan field it is about, whether it holds, and if not, what is
wrong and how to fix it. Checks fail closed: one that cannot be made (AccessDenied, an API
error) is a failed check saying so, never a pass. One AWS did not answer (throttled, or
unreachable, after botocore's own retries) is no finding either way: Validate Plan stops at the
first one and raises AwsThrottled (the state machine retries the step; the plan is not refused)
unless a check made before it failed; the CLI lists it as a check to retry (`transient`) and
goes on with the others.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mq_cutover import aws
from mq_cutover.approvers import Approver, able_to_vote, load_registry, subscription_report
from mq_cutover.broker_api import credentials
from mq_cutover.client_urls import failover_members
from mq_cutover.drain import (
    Purpose,
    is_ignored,
    is_pattern,
    on_prem_side,
    read_queues,
    stale_after_seconds,
    watched_queues,
)
from mq_cutover.errors import (
    ApproversInvalid,
    AwsThrottled,
    BrokerApiFailed,
    MigrationError,
    PlanInvalid,
)
from mq_cutover.parameters import own_label
from mq_cutover.plan import (
    AMAZON_MQ_METRICS_FIX,
    DeploymentMode,
    MigrationPlan,
    Mode,
    RestartHook,
    StopMethod,
    parse_plan,
)
from mq_cutover.redaction import redact_text

ATTEMPT_SEPARATOR = "--"  # execution "orders-1--2" is attempt 2 of migration "orders-1"
HISTORY_LIMIT = 25_000  # Step Functions' events per execution history (a hard quota)
# Amazon MQ's rules for a broker user's password (CreateBroker refuses others).
PASSWORD_MIN_LENGTH = 12
PASSWORD_MIN_UNIQUE = 4
PASSWORD_FORBIDDEN = ",:="  # noqa: S105 - characters, not a password
# Parameters one RepointClients / Roll Back call is counted to move in the history estimate
# (each call moves as many as its time allows; fewer when SSM throttles).
PARAMETERS_PER_CALL = 50
ROLLBACK_ACTIONS = 8  # the most Roll Back actions one rollback takes (rollback.py's phases)
UNANSWERED = "could not be checked (AWS unreachable or throttled)"


@dataclass(frozen=True)
class Check:
    """One check: the plan field, whether it holds, what is wrong and how to fix it."""

    field: str
    check: str
    ok: bool
    problem: str = ""
    fix: str = ""
    detail: str = ""
    # Not made because AWS did not answer (throttled or unreachable): retry; no finding.
    transient: bool = False
    error: BaseException | None = dataclasses.field(default=None, compare=False, repr=False)

    def line(self) -> str:
        if self.ok:
            return f"✅ {self.field}: {self.detail or 'ok'}"
        if self.transient:
            return f"⏳ {self.field}: {self.problem} — {self.fix}"
        fix = f" — fix: {self.fix}" if self.fix else ""
        return f"❌ {self.field}: {self.problem}{fix}"

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "error"}


@dataclass(frozen=True)
class StackSettings:
    """What the stack decides: read from the Lambda's environment (Validate Plan) or from the
    stack's outputs and parameters (the CLI)."""

    parameter_prefix: str = "/mq-cutover/"
    approval_topic_arn: str = ""
    approver_registry_path: str = ""
    required_gates: tuple[str, ...] = ()
    minimum_quorum: int = 1
    state_machine_arn: str = ""
    secrets_prefix: str = "mq-cutover/"
    on_prem_tag_key: str = "mq-cutover:on-prem"
    client_host_tag_key: str = "mq-cutover:client-host"


@dataclass(frozen=True)
class Clients:
    """The boto3 clients the checks read with (nothing here writes)."""

    ssm: Any
    mq: Any
    sns: Any
    cloudwatch: Any
    ec2: Any
    secretsmanager: Any
    stepfunctions: Any

    @classmethod
    def from_factory(cls, make: Callable[[str], Any]) -> Clients:
        return cls(
            ssm=make("ssm"),
            mq=make("mq"),
            sns=make("sns"),
            cloudwatch=make("cloudwatch"),
            ec2=make("ec2"),
            secretsmanager=make("secretsmanager"),
            stepfunctions=make("stepfunctions"),
        )


class _CannotCheck(Exception):
    """A check could not be made (an AWS call failed): the check fails, saying why."""


class _Unanswered(Exception):
    """Validate Plan: AWS did not answer a check; the checks stop there (within the step's
    timeout: each unanswered call has already taken botocore's retries)."""


def _aws_error(exc: BaseException) -> str:
    if not isinstance(exc, ClientError) and isinstance(exc.__cause__, ClientError):
        exc = exc.__cause__  # the AWS call under a typed failure (DrainCheckFailed, ...)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Error")
        message = redact_text(str(error.get("Message", "")))[:200]
        return f"{exc.operation_name}: {code}" + (f" ({message})" if message else "")
    return redact_text(str(exc))[:200]


def unanswered(exc: BaseException) -> BaseException | None:
    """The AWS error under `exc` if AWS did not answer (throttled, or unreachable: no
    connection, a connect or read timeout, after botocore's own retries), else None. Such a
    check says nothing about the plan or the account: a retry makes it."""
    for error in (exc, exc.__cause__):
        if isinstance(error, AwsThrottled):  # already classified (drain's readings)
            return error.__cause__ or error
        if isinstance(error, Exception):
            try:
                aws.raise_if_transient(error)
            except AwsThrottled:
                return error
    return None


def _cannot(field_name: str, check: str, exc: Exception) -> Check:
    error = unanswered(exc)
    if error is not None:
        said = (
            _aws_error(error)
            if isinstance(error, ClientError)
            else f"{type(error).__name__}: {redact_text(str(error))[:200]}"
        )
        return Check(
            field_name,
            check,
            False,
            f"{UNANSWERED}: {said}",
            "retry (nothing was found wrong here; run the preflight again)",
            transient=True,
            error=error,
        )
    return Check(
        field_name,
        check,
        False,
        f"could not be checked: {_aws_error(exc)}",
        "give the caller the read permission named (or correct what the error names)",
    )


@dataclass
class _Run:
    plan: MigrationPlan
    stack: StackSettings
    clients: Clients
    execution_name: str | None
    now: datetime
    definition: dict[str, Any] | None
    checks: list[Check] = field(default_factory=list)
    offered_zones: set[str] | None = None  # where the instance type is offered (engine check)
    consumers_moved: bool = False  # an earlier attempt moved consumers off on-prem already
    retry_unanswered: bool = True  # AWS did not answer a check: AwsThrottled (Validate Plan)

    def ok(self, field_name: str, check: str, detail: str) -> None:
        self.checks.append(Check(field_name, check, True, detail=detail))

    def fail(self, field_name: str, check: str, problem: str, fix: str) -> None:
        self.checks.append(Check(field_name, check, False, problem, fix))

    def cannot(self, field_name: str, check: str, exc: Exception) -> None:
        """A check whose AWS call failed: it fails (fails closed). One AWS did not answer is
        listed as such (`transient`); in Validate Plan the checks stop there."""
        made = _cannot(field_name, check, exc)
        self.checks.append(made)
        if made.transient and self.retry_unanswered:
            raise _Unanswered(field_name)

    def guarded(self, field_name: str, check: str, body: Callable[[], None]) -> None:
        """Run one check; an AWS call it could not make fails it (fails closed)."""
        try:
            body()
        except (ClientError, BotoCoreError, MigrationError, _CannotCheck) as exc:
            self.cannot(field_name, check, exc)


# --- the checks ------------------------------------------------------------------------------


def approval_problems(
    plan: MigrationPlan,
    *,
    required_gates: tuple[str, ...],
    approvers: dict[str, Approver],
    unsafe: list[str],
    minimum_quorum: int = 1,
) -> list[str]:
    """Gates the stack requires, and enough registered approvers who can be told apart."""
    problems = [
        f"approvals.gates: the stack requires the gate '{gate}' (stack parameter RequiredGates); "
        "a plan cannot switch it off"
        for gate in required_gates
        if gate not in plan.approvals.gates
    ]
    if not approvers:
        problems.append(
            "approvals: the stack has no approver who can vote (none registered with a "
            "confirmed subscription or an IAM principal: mq-cutover approvers add)"
        )
    if approvers and minimum_quorum > len(approvers):
        problems.append(
            f"approvals: the stack requires {minimum_quorum} different approvers at every gate "
            f"(stack parameter MinimumQuorum); it has {len(approvers)} who can vote "
            f"({', '.join(sorted(approvers))})"
        )
    for gate, quorum in sorted(plan.approvals.quorum.items()):
        # (a quorum at or below the stack's minimum is covered by the message above)
        if approvers and quorum > len(approvers) and quorum > minimum_quorum:
            problems.append(
                f"approvals.quorum.{gate}: needs {quorum} different approvers; the stack has "
                f"{len(approvers)} who can vote ({', '.join(sorted(approvers))})"
            )
    problems.extend(f"approvals: {problem}" for problem in unsafe)
    return problems


def _approvals(run: _Run) -> None:
    stack = run.stack
    try:
        registry = load_registry(stack.approver_registry_path, run.clients.ssm)
        unsafe, reached = subscription_report(run.clients.sns, stack.approval_topic_arn, registry)
        approvers = able_to_vote(registry, reached)
    except ApproversInvalid as exc:
        approvers, unsafe = {}, [str(exc)]
    problems = approval_problems(
        run.plan,
        required_gates=stack.required_gates,
        approvers=approvers,
        unsafe=unsafe,
        minimum_quorum=stack.minimum_quorum,
    )
    for problem in problems:
        where, _, what = problem.partition(": ")
        run.fail(
            where,
            "approvals",
            what,
            "register approvers and confirm their subscriptions (mq-cutover approvers add / "
            "list), remove stray subscriptions, or keep the gates the stack requires",
        )
    if not problems:
        run.ok(
            "approvals",
            "approvals",
            f"{len(approvers)} approver(s) with a confirmed subscription can vote "
            f"({', '.join(sorted(approvers))}); required gates kept",
        )


def _execution_name(run: _Run) -> None:
    name, migration_id = run.execution_name, run.plan.migration_id
    if name is None:
        return
    if name == migration_id or name.startswith(f"{migration_id}{ATTEMPT_SEPARATOR}"):
        return
    run.fail(
        "migrationId",
        "execution name",
        f"the execution name '{name}' must be the migration id '{migration_id}' (or "
        f"'{migration_id}{ATTEMPT_SEPARATOR}<attempt>' for a later attempt), so that runs of "
        "one migration can be told and kept apart",
        "start the execution with the migration id as its name (mq-cutover start does)",
    )


def _running(run: _Run) -> None:
    migration_id = run.plan.migration_id
    arn = run.stack.state_machine_arn
    if not arn:
        run.fail(
            "migrationId",
            "running",
            "cannot tell whether this migration is already running: the state machine is unknown",
            "deploy this version of the template (its Validate Plan step passes the state "
            "machine; the stack output StateMachineArn names it)",
        )
        return
    running: list[str] = []
    pages = run.clients.stepfunctions.get_paginator("list_executions").paginate(
        stateMachineArn=arn, statusFilter="RUNNING"
    )
    for page in pages:
        for execution in page.get("executions", []):
            name = str(execution["name"])
            ours = name == migration_id or name.startswith(f"{migration_id}{ATTEMPT_SEPARATOR}")
            if ours and name != run.execution_name:
                running.append(name)
    if running:
        run.fail(
            "migrationId",
            "running",
            f"migration {migration_id} is already running as {', '.join(sorted(running))}",
            "wait for it to end (mq-cutover status), or stop it before starting another attempt",
        )
    else:
        run.ok("migrationId", "running", f"no execution of {migration_id} is running")


def _parameter_field(plan: MigrationPlan) -> dict[str, str]:
    return {
        name: f"{group}.parameters[{index}]"
        for group in ("producers", "consumers")
        for index, name in enumerate(getattr(plan, group).parameters)
    }


def _on_prem(plan: MigrationPlan, value: str) -> bool:
    members = set(failover_members(plan.on_prem.url)) | {plan.on_prem.url}
    return value in members or (
        value.startswith("failover:") and set(failover_members(value)) <= members
    )


def _shown(value: str) -> str:
    return redact_text(value)[:120]


def _parameters(run: _Run) -> None:
    plan, prefix = run.plan, run.stack.parameter_prefix
    fields = _parameter_field(plan)
    inside: list[str] = []
    for name, where in fields.items():
        if name.startswith(prefix):
            inside.append(name)
            continue
        run.fail(
            where,
            "parameter",
            f"{name} is outside {prefix}, the only path this stack may change",
            f"move the client's URL under {prefix} (stack parameter ParameterPathPrefix)",
        )
    found: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    ssm = run.clients.ssm
    for offset in range(0, len(inside), 10):  # GetParameters takes 10 names a call
        try:
            response = ssm.get_parameters(Names=inside[offset : offset + 10], WithDecryption=True)
        except (ClientError, BotoCoreError) as exc:
            for name in inside[offset : offset + 10]:
                run.cannot(fields[name], "parameter", exc)
            continue
        missing.extend(response.get("InvalidParameters", []))
        for parameter in response.get("Parameters", []):
            found[str(parameter["Name"])] = parameter
    good: dict[str, int] = {"producers": 0, "consumers": 0}
    own = own_label(plan.migration_id)
    for name in inside:
        where = fields[name]
        if name in missing:
            run.fail(
                where,
                "parameter",
                f"{name} does not exist",
                f"create it with the client's current (on-prem) URL, {_shown(plan.on_prem.url)}",
            )
            continue
        if name not in found:
            continue  # could not be read: already reported
        parameter = found[name]
        kind = str(parameter.get("Type", "String"))
        if kind == "StringList":
            run.fail(
                where,
                "parameter",
                f"{name} is a StringList: its clients would split a failover:(a,b) URL at the "
                "comma",
                "recreate it as a String (or SecureString) holding the URL",
            )
            continue
        data_type = str(parameter.get("DataType", "text"))
        if data_type != "text":
            run.fail(
                where,
                "parameter",
                f"{name} has data type {data_type}: it cannot hold a broker URL",
                "recreate it with data type text",
            )
            continue
        value = str(parameter.get("Value", ""))
        if not _on_prem(plan, value):
            try:
                moved = _labelled(ssm, name, own, int(parameter.get("Version", 0)))
            except (ClientError, BotoCoreError) as exc:
                run.cannot(where, "parameter", exc)
                continue
            if moved:
                run.ok(where, "parameter", f"{name} was already moved by this migration")
                run.consumers_moved |= where.startswith("consumers.")
                good[where.split(".")[0]] += 1
                continue
            shown = "(SecureString, value not shown)" if kind == "SecureString" else _shown(value)
            run.fail(
                where,
                "parameter",
                f"{name} does not point at the on-prem broker (onPrem.url): it holds {shown}",
                "check that it is the right parameter and that onPrem.url is the URL its clients "
                "use now; a parameter already moved by hand should leave the plan",
            )
            continue
        good[where.split(".")[0]] += 1
    for group in ("producers", "consumers"):
        total = len(getattr(plan, group).parameters)
        if good[group] == total:
            run.ok(
                f"{group}.parameters",
                "parameter",
                f"all {total} exist under {prefix}, are writable (String/SecureString) and "
                "hold the on-prem URL",
            )


def _labelled(ssm: Any, name: str, label: str, version: int) -> bool:
    """Is the parameter's current version the one this migration wrote (an earlier attempt)?"""
    try:
        labelled = ssm.get_parameter(Name=f"{name}:{label}")["Parameter"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ParameterNotFound", "ParameterVersionNotFound"):
            return False
        raise
    return int(labelled.get("Version", -1)) == version


def _adopted_broker(run: _Run) -> None:
    broker_id = run.plan.target.adopt_broker_id
    if not broker_id:
        return
    try:
        broker = run.clients.mq.describe_broker(BrokerId=broker_id)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("NotFoundException", "NotFound"):
            raise
        run.fail(
            "target.adoptBrokerId",
            "broker",
            f"broker {broker_id} not found",
            "give the id of an existing Amazon MQ broker in this account and region, or use "
            "target.create",
        )
        return
    run.ok(
        "target.adoptBrokerId",
        "broker",
        f"broker {broker_id} ({broker.get('BrokerName')}) exists, {broker.get('BrokerState')}",
    )


def _engine(run: _Run) -> None:
    spec = run.plan.target.create
    if spec is None:
        return
    mq = run.clients.mq
    versions: list[str] = []
    token = None
    while True:
        kwargs: dict[str, Any] = {"EngineType": spec.engine.value, "MaxResults": 100}
        if token:
            kwargs["NextToken"] = token
        page = mq.describe_broker_engine_types(**kwargs)
        for engine in page.get("BrokerEngineTypes", []):
            versions += [str(v["Name"]) for v in engine.get("EngineVersions", [])]
        token = page.get("NextToken")
        if not token:
            break
    if spec.engine_version not in versions:
        run.fail(
            "target.create.engineVersion",
            "engine",
            f"Amazon MQ does not offer {spec.engine.value} {spec.engine_version} here",
            f"choose one of {', '.join(versions) or '(none listed)'}",
        )
    else:
        run.ok(
            "target.create.engineVersion",
            "engine",
            f"{spec.engine.value} {spec.engine_version} is offered",
        )
    options: list[dict[str, Any]] = []
    token = None
    while True:
        kwargs = {
            "EngineType": spec.engine.value,
            "HostInstanceType": spec.host_instance_type,
            "MaxResults": 100,
        }
        if token:
            kwargs["NextToken"] = token
        page = mq.describe_broker_instance_options(**kwargs)
        options += list(page.get("BrokerInstanceOptions", []))
        token = page.get("NextToken")
        if not token:
            break
    mode = spec.deployment_mode.value
    fitting = [
        option
        for option in options
        if mode in option.get("SupportedDeploymentModes", [])
        and spec.engine_version in option.get("SupportedEngineVersions", [spec.engine_version])
    ]
    if not fitting:
        run.fail(
            "target.create.hostInstanceType",
            "instance type",
            f"{spec.host_instance_type} is not offered for {spec.engine.value} "
            f"{spec.engine_version} {mode}",
            "choose a host instance type Amazon MQ offers for this engine, version and "
            "deployment mode (aws mq describe-broker-instance-options)",
        )
        return
    run.ok(
        "target.create.hostInstanceType",
        "instance type",
        f"{spec.host_instance_type} is offered for {mode}",
    )
    zones = {str(z["Name"]) for option in fitting for z in option.get("AvailabilityZones", [])}
    run.offered_zones = zones or None


def _described(
    describe: Any, ids_key: str, ids: list[str], list_key: str, id_key: str, not_found: str
) -> dict[str, dict[str, Any]]:
    """EC2 Describe* of these ids, by id. EC2 refuses the whole call when one id is unknown
    (`not_found`): then each is described alone, so the missing ones are known by name."""
    try:
        return {str(i[id_key]): i for i in describe(**{ids_key: ids}).get(list_key, [])}
    except ClientError as exc:
        if exc.response["Error"]["Code"] != not_found:
            raise
    found: dict[str, dict[str, Any]] = {}
    for one in ids:
        try:
            found.update(
                {str(i[id_key]): i for i in describe(**{ids_key: [one]}).get(list_key, [])}
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != not_found:
                raise
    return found


def _network(run: _Run) -> None:
    spec = run.plan.target.create
    if spec is None:
        return
    ec2 = run.clients.ec2
    subnets = _described(
        ec2.describe_subnets,
        "SubnetIds",
        list(spec.subnet_ids),
        "Subnets",
        "SubnetId",
        "InvalidSubnetID.NotFound",
    )
    problems = False
    for index, subnet_id in enumerate(spec.subnet_ids):
        if subnet_id not in subnets:
            problems = True
            run.fail(
                f"target.create.subnetIds[{index}]",
                "subnet",
                f"subnet {subnet_id} does not exist in this account and region",
                "give an existing subnet id (aws ec2 describe-subnets)",
            )
    zones: dict[str, list[str]] = {}
    for subnet_id in spec.subnet_ids:
        if subnet_id in subnets:
            zones.setdefault(str(subnets[subnet_id]["AvailabilityZone"]), []).append(subnet_id)
    shared = {zone: ids for zone, ids in zones.items() if len(ids) > 1}
    if shared:
        problems = True
        where = "; ".join(f"{', '.join(ids)} in {zone}" for zone, ids in sorted(shared.items()))
        run.fail(
            "target.create.subnetIds",
            "subnet zones",
            f"subnets share an Availability Zone ({where}); Amazon MQ needs each subnet of the "
            f"broker ({spec.deployment_mode.value}) in a different zone",
            "give subnets in distinct Availability Zones",
        )
    elif spec.deployment_mode == DeploymentMode.ACTIVE_STANDBY_MULTI_AZ and len(zones) < 2:
        problems = True
        run.fail(
            "target.create.subnetIds",
            "subnet zones",
            "ACTIVE_STANDBY_MULTI_AZ needs two subnets in two Availability Zones",
            "give two subnets in different Availability Zones",
        )
    offered = run.offered_zones
    outside = sorted(zone for zone in zones if offered and zone not in offered)
    if outside:
        problems = True
        run.fail(
            "target.create.subnetIds",
            "subnet zones",
            f"Amazon MQ does not offer {spec.host_instance_type} in {', '.join(outside)}",
            f"use subnets in {', '.join(sorted(offered or []))}",
        )
    vpcs = {str(s.get("VpcId")) for s in subnets.values()}
    if len(vpcs) > 1:
        problems = True
        run.fail(
            "target.create.subnetIds",
            "subnet vpc",
            f"the subnets are in different VPCs ({', '.join(sorted(vpcs))})",
            "give subnets of one VPC",
        )
    if not problems:
        run.ok(
            "target.create.subnetIds",
            "subnets",
            f"{len(subnets)} subnet(s) exist in {len(zones)} Availability Zone(s) "
            f"({', '.join(sorted(zones))})",
        )
    groups = _described(
        ec2.describe_security_groups,
        "GroupIds",
        list(spec.security_groups),
        "SecurityGroups",
        "GroupId",
        "InvalidGroup.NotFound",
    )
    group_problems = False
    for index, group_id in enumerate(spec.security_groups):
        if group_id not in groups:
            group_problems = True
            run.fail(
                f"target.create.securityGroups[{index}]",
                "security group",
                f"security group {group_id} does not exist in this account and region",
                "give an existing security group id (aws ec2 describe-security-groups)",
            )
        elif vpcs and str(groups[group_id].get("VpcId")) not in vpcs:
            group_problems = True
            run.fail(
                f"target.create.securityGroups[{index}]",
                "security group",
                f"security group {group_id} is in {groups[group_id].get('VpcId')}, not in the "
                f"subnets' VPC ({', '.join(sorted(vpcs))})",
                "give a security group of the subnets' VPC",
            )
    if not group_problems:
        run.ok(
            "target.create.securityGroups",
            "security groups",
            f"{len(groups)} security group(s) exist in the subnets' VPC",
        )


def password_problem(password: str) -> str | None:
    """What Amazon MQ would refuse in a broker user's password (never the password itself)."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"the password is shorter than {PASSWORD_MIN_LENGTH} characters"
    if len(set(password)) < PASSWORD_MIN_UNIQUE:
        return f"the password has fewer than {PASSWORD_MIN_UNIQUE} different characters"
    if any(char in password for char in PASSWORD_FORBIDDEN):
        return "the password contains a comma, colon or equal sign"
    return None


def _secret(
    run: _Run, where: str, arn: str, what: str, problem_of: Callable[[str], str | None], fix: str
) -> None:
    """One secret the workflow reads: under the stack's prefix, existing, not being deleted,
    and its value acceptable (`problem_of(arn)`; the value is never shown)."""
    prefix = run.stack.secrets_prefix
    name = arn.split(":secret:", 1)[1]
    if not name.startswith(prefix):
        run.fail(
            where,
            "secret",
            f"secret {name} is outside the stack's BrokerUserSecretsPrefix {prefix}: the "
            "workflow may not read it",
            f"store the {what} in a secret named {prefix}...",
        )
        return

    def one() -> None:
        try:
            described = run.clients.secretsmanager.describe_secret(SecretId=arn)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            run.fail(
                where,
                "secret",
                f"secret {name} does not exist",
                f"create it (aws secretsmanager create-secret) with the {what}, or correct the "
                "ARN (a secret's ARN ends with a random suffix)",
            )
            return
        if described.get("DeletedDate"):
            run.fail(
                where,
                "secret",
                f"secret {described.get('Name')} is scheduled for deletion",
                "restore it (aws secretsmanager restore-secret)",
            )
            return
        problem = problem_of(arn)
        if problem:
            run.fail(where, "secret", f"secret {described.get('Name')}: {problem}", fix)
            return
        run.ok(where, "secret", f"secret {described.get('Name')} exists and is readable")

    run.guarded(where, "secret", one)


def _secrets(run: _Run) -> None:
    spec = run.plan.target.create
    if spec is None:
        return
    from mq_cutover.broker import _password

    def amazon_mq_refuses(arn: str) -> str | None:
        problem = password_problem(_password(run.clients.secretsmanager, arn))
        return f"{problem}; Amazon MQ would refuse it" if problem else None

    for index, user in enumerate(spec.users):
        _secret(
            run,
            f"target.create.users[{index}].passwordSecretArn",
            user.password_secret_arn,
            "broker user's password",
            amazon_mq_refuses,
            "store a password of 12+ characters, 4+ different, without , : =",
        )


def _topology_secrets(run: _Run) -> None:
    """The brokers' API users of the topology copy (and of management-API readings)."""
    topology = run.plan.topology
    if topology is None or not (run.plan.topology_copied or run.plan.needs_management_api):
        return

    def unusable(arn: str) -> str | None:
        try:
            credentials(run.clients.secretsmanager, arn)
        except BrokerApiFailed:
            return "it holds no JSON username and password"
        return None

    fix = 'store JSON {"username": "...", "password": "..."} in it'
    if topology.on_prem_api is not None and topology.copy_enabled:
        _secret(
            run,
            "topology.onPremApi.secretArn",
            topology.on_prem_api.secret_arn,
            "on-prem broker API user",
            unusable,
            fix,
        )
    if topology.amazon_mq_secret_arn and run.plan.needs_management_api:
        _secret(
            run,
            "topology.amazonMqSecretArn",
            topology.amazon_mq_secret_arn,
            "Amazon MQ broker's administrative user",
            unusable,
            fix,
        )


def _amazon_mq_covers(run: _Run, queues: list[str]) -> None:
    """Queues found by onPrem.queues' patterns, counted (the plan's own rule counts only the
    listed names): more than Amazon MQ's own metrics cover and the Amazon MQ side, which
    matches the same patterns against what AWS/AmazonMQ holds, would not even see the rest:
    a rollback's drain of Amazon MQ could call it empty while they hold messages."""
    plan = run.plan
    limit = plan.amazon_mq_metrics_limit()
    if limit is None or not any(is_pattern(q) for q in plan.on_prem.queues or ["*"]):
        return
    waited = [q for q in queues if not is_ignored(q, plan.on_prem.ignore_queues)]
    if len(waited) <= limit:
        return
    run.fail(
        "target.metrics",
        "metrics",
        f"onPrem.queues' patterns match {len(waited)} queues on-prem (less onPrem.ignoreQueues), "
        f"but Amazon MQ's own metrics ({plan.target.metrics.namespace}) cover only a broker's "
        f"first {limit} destinations (Quotas in Amazon MQ): the Amazon MQ side (a rollback's "
        "drain, the placement check) would not see the others",
        f"{AMAZON_MQ_METRICS_FIX} (RabbitMQ: or target.metrics.source managementApi), or "
        "list fewer queues",
    )


def _metrics(run: _Run) -> None:
    plan = run.plan
    metrics = plan.on_prem.metrics
    side = on_prem_side(plan)
    queues = watched_queues(side.listed, run.clients.cloudwatch, metrics, side.metrics.dimensions)
    where = "onPrem.metrics"
    if not queues:
        run.fail(
            where,
            "metrics",
            f"no queue found: nothing publishes {metrics.messages_metric} in {metrics.namespace} "
            "with the plan's dimensions",
            "start the metrics bridge (OnPremMetricsUrl, or mq-cutover publish-metrics) or list "
            "onPrem.queues",
        )
        return
    _amazon_mq_covers(run, queues)
    # Placement's reading asks for each queue's consumers too (and not for producers quiet).
    reading = read_queues(plan, run.clients.cloudwatch, run.now, queues, purpose=Purpose.PLACEMENT)
    limit = stale_after_seconds(plan)
    fix = (
        "run the metrics bridge for every queue (OnPremMetricsUrl, or mq-cutover "
        "publish-metrics) with the plan's namespace, dimensions and period"
    )
    bad = False
    if reading.read_error and not (reading.missing or reading.stale):
        # Aggregate readings: the bridge's QueueSet aggregates are absent, stale or short (the
        # error says which and what to run); never read as empty.
        bad = True
        run.fail("onPrem.metrics", "metrics", reading.read_error, fix)
    if reading.missing:
        bad = True
        run.fail(
            "onPrem.queues",
            "metrics",
            f"no recent {metrics.namespace} figures for {len(reading.missing)} queue(s): "
            f"{', '.join(reading.missing[:20])} (missing is never zero)",
            fix,
        )
    if reading.stale:
        bad = True
        stale = ", ".join(f"{q['queue']} ({q['ageSeconds']} s old)" for q in reading.stale[:20])
        run.fail(
            "onPrem.queues",
            "metrics",
            f"figures older than {limit} s for {len(reading.stale)} queue(s): {stale}",
            fix,
        )
    consumers = {q["queue"] for q in reading.connected}
    fresh = [
        q
        for q in queues
        if q not in reading.missing
        and q not in {s["queue"] for s in reading.stale}
        and q not in {i["queue"] for i in reading.ignored}
    ]
    # (a later attempt whose consumers an earlier one moved finds none on-prem, rightly)
    if metrics.consumers_metric and not run.consumers_moved:
        lonely = [q for q in fresh if q not in consumers]
        count = len(lonely)
        if reading.connected_count is not None:
            # Aggregate readings count the queues with consumers (SetQueuesWithConsumers); the
            # names are known only when the detail can tell which ones (else counted only).
            count = max(0, len(fresh) - reading.connected_count)
            if not reading.connected and reading.connected_count:
                lonely = [q["queue"] for q in reading.never_drain]
        if count and not (reading.read_error and not (reading.missing or reading.stale)):
            bad = True
            named = f": {', '.join(lonely[:20])}" if lonely else ""
            run.fail(
                "onPrem.queues",
                "consumers",
                f"no consumer on-prem for {count} queue(s){named} "
                "(their messages would never drain)",
                "start their consumers, or leave those queues out (onPrem.ignoreQueues)",
            )
    if not bad:
        run.ok(
            "onPrem.metrics",
            "metrics",
            f"{reading.watched} queue(s) report fresh figures (within {limit} s)"
            + (
                " with consumers on each"
                if metrics.consumers_metric and not run.consumers_moved
                else ""
            ),
        )


def _managed(ssm: Any, filters: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    pages = ssm.get_paginator("describe_instance_information").paginate(Filters=filters)
    for page in pages:
        for info in page.get("InstanceInformationList", []):
            found[str(info["InstanceId"])] = info
    return found


def _hosts(
    run: _Run,
    where: str,
    instance_ids: list[str],
    target_tags: dict[str, list[str]],
    tag_key: str,
    stack_parameter: str,
) -> None:
    ssm = run.clients.ssm
    tagged = _managed(ssm, [{"Key": f"tag:{tag_key}", "Values": ["true"]}])
    if instance_ids:
        hosts = _managed(ssm, [{"Key": "InstanceIds", "Values": list(instance_ids)}])
        targeted = "instanceIds"
    else:
        filters = [{"Key": f"tag:{k}", "Values": list(v)} for k, v in target_tags.items()]
        hosts = _managed(ssm, filters)
        targeted = "targetTags"
        if not hosts:
            tags = ", ".join(f"{k}={'|'.join(v)}" for k, v in target_tags.items())
            run.fail(
                f"{where}.targetTags",
                "hosts",
                f"no SSM managed instance carries {tags}",
                "tag the hosts (EC2 tags, or SSM tags of hybrid instances) and check that "
                "their SSM Agent is registered",
            )
            return
    problems = False
    for host in instance_ids:
        if host not in hosts:
            problems = True
            run.fail(
                f"{where}.instanceIds",
                "hosts",
                f"{host} is not an SSM managed instance (no SSM Agent registered)",
                "install and register the SSM Agent (hybrid activation for on-prem hosts)",
            )
    offline = {i: h for i, h in hosts.items() if h.get("PingStatus") != "Online"}
    for host, info in sorted(offline.items()):
        problems = True
        last = info.get("LastPingDateTime")
        since = f" since {last.isoformat() if hasattr(last, 'isoformat') else last}" if last else ""
        run.fail(
            f"{where}.{targeted}",
            "hosts",
            f"{host} is {info.get('PingStatus', 'not Online')}{since}: a command would never "
            "reach it",
            "start the host or its SSM Agent (systemctl status amazon-ssm-agent)",
        )
    untagged = sorted(i for i in hosts if i not in tagged)
    if untagged:
        problems = True
        run.fail(
            f"{where}.{targeted}",
            "hosts",
            f"{', '.join(untagged)} not tagged {tag_key}=true: the stack may not run commands "
            "on them",
            f"tag them {tag_key}=true (stack parameter {stack_parameter})",
        )
    if not problems:
        run.ok(
            f"{where}.{targeted}",
            "hosts",
            f"{len(hosts)} host(s) online in SSM and tagged {tag_key}=true",
        )


def _all_hosts(run: _Run) -> None:
    plan, stack = run.plan, run.stack
    for group in ("producers", "consumers"):
        hook: RestartHook | None = getattr(plan, group).restart_hook
        if hook is not None:
            where = f"{group}.restartHook"

            def one(hook: RestartHook = hook, where: str = where) -> None:
                _hosts(
                    run,
                    where,
                    list(hook.instance_ids),
                    dict(hook.target_tags),
                    stack.client_host_tag_key,
                    "ClientHostTagKey",
                )

            run.guarded(where, "hosts", one)
    stop = plan.stop_on_prem
    if stop.method == StopMethod.SSM_COMMAND:
        run.guarded(
            "stopOnPrem",
            "hosts",
            lambda: _hosts(
                run,
                "stopOnPrem",
                list(stop.instance_ids),
                dict(stop.target_tags),
                stack.on_prem_tag_key,
                "OnPremTagKey",
            ),
        )
    elif stop.method == StopMethod.EC2_STOP:
        run.guarded("stopOnPrem.instanceIds", "hosts", lambda: _ec2_hosts(run))


def _ec2_hosts(run: _Run) -> None:
    stop, key = run.plan.stop_on_prem, run.stack.on_prem_tag_key
    instances: dict[str, dict[str, Any]] = {}
    try:
        pages = run.clients.ec2.get_paginator("describe_instances").paginate(
            InstanceIds=list(stop.instance_ids)
        )
        for page in pages:
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    instances[str(instance["InstanceId"])] = instance
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "InvalidInstanceID.NotFound":
            raise
    problems = False
    for host in stop.instance_ids:
        instance = instances.get(host)
        if instance is None:
            problems = True
            run.fail(
                "stopOnPrem.instanceIds",
                "hosts",
                f"EC2 instance {host} does not exist",
                "give the on-prem broker's EC2 instance ids",
            )
            continue
        state = instance.get("State", {}).get("Name")
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        if state != "running":
            problems = True
            run.fail(
                "stopOnPrem.instanceIds",
                "hosts",
                f"EC2 instance {host} is {state}, not running",
                "check that the plan names the broker's running instances",
            )
        if tags.get(key) != "true":
            problems = True
            run.fail(
                "stopOnPrem.instanceIds",
                "hosts",
                f"EC2 instance {host} is not tagged {key}=true: the stack may not stop it",
                f"tag it {key}=true (stack parameter OnPremTagKey)",
            )
    if not problems:
        run.ok(
            "stopOnPrem.instanceIds",
            "hosts",
            f"{len(instances)} EC2 instance(s) running and tagged {key}=true",
        )


# --- the history budget ------------------------------------------------------------------------

# Events one state adds to an execution's history each time it is passed (Step Functions'
# history shape: <Type>StateEntered/Exited, plus Scheduled/Started/Succeeded for a Task and
# Submitted for a callback Task).
_EVENTS_PER_STATE = {"Task": 5, "Choice": 2, "Wait": 2, "Pass": 2, "Succeed": 2, "Fail": 1}
_MAP_EVENTS = 4  # MapStateEntered, MapStateStarted, MapStateSucceeded, MapStateExited
_ITERATION_EVENTS = 2  # MapIterationStarted, MapIterationSucceeded
_EXECUTION_EVENTS = 2  # ExecutionStarted, ExecutionSucceeded/Failed


def state_events(state: dict[str, Any]) -> int:
    kind = str(state["Type"])
    if kind == "Task" and str(state.get("Resource", "")).endswith(".waitForTaskToken"):
        return _EVENTS_PER_STATE["Task"] + 1
    if kind == "Map":
        return _MAP_EVENTS
    return _EVENTS_PER_STATE.get(kind, 2)


def _next_states(state: dict[str, Any]) -> Iterator[str]:
    for name in [state.get("Next"), state.get("Default")]:
        if name:
            yield str(name)
    for choice in state.get("Choices", []):
        yield str(choice["Next"])


def loop_events(states: dict[str, Any], start: str) -> int:
    """History events of one turn of the loop through `start` (its shortest cycle in the ASL)."""
    best: dict[str, int] = {start: 0}
    frontier = [start]
    cycle: int | None = None
    while frontier:
        following: list[str] = []
        for name in frontier:
            cost = best[name] + state_events(states[name])
            for nxt in _next_states(states[name]):
                if nxt == start:
                    cycle = cost if cycle is None else min(cycle, cost)
                elif nxt in states and (nxt not in best or cost < best[nxt]):
                    best[nxt] = cost
                    following.append(nxt)
        frontier = following
    if cycle is None:
        raise ValueError(f"state {start} is on no loop")
    return cycle


def _map_state(states: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    return next(((n, s) for n, s in states.items() if s["Type"] == "Map"), None)


def _polls(total_seconds: int, interval: int) -> int:
    return 1 + -(-total_seconds // interval)


def history_estimate(plan: MigrationPlan, definition: dict[str, Any]) -> dict[str, int]:
    """The most history events this plan's run can take, by loop, from the state machine's
    definition (each loop's events per turn) and the plan's timeouts and intervals: the whole
    forward path, its longest waits, then a rollback's longest waits."""
    states: dict[str, Any] = definition["States"]
    drain, stop = plan.drain, plan.stop_on_prem
    extensions = drain.max_extensions * drain.extend_minutes
    poll = drain.seconds_per_poll()
    turns: dict[str, tuple[str, int]] = {
        "target": (
            "Wait For Broker",
            _polls(plan.target.creation_timeout_minutes * 60, plan.target.poll_interval_seconds),
        ),
        "drain": ("Wait For Drain", _polls((drain.timeout_minutes + extensions) * 60, poll)),
        "fence": ("Wait For Fence", _polls((drain.fence_timeout_minutes + extensions) * 60, poll)),
        "rollbackDrain": (
            "Wait For Rollback Drain",
            2 * _polls((drain.rollback_timeout_minutes + extensions) * 60, poll),
        ),
    }
    if plan.mode == Mode.UNORDERED:
        turns["placement"] = (
            "Wait For Placement",
            _polls((drain.placement_timeout_minutes + extensions) * 60, poll),
        )
    if stop.method != StopMethod.MANUAL:
        turns["stopOnPrem"] = (
            "Wait For On-Prem Stop",
            _polls(stop.timeout_minutes * 60, stop.poll_interval_seconds),
        )
    producers, consumers = plan.producers, plan.consumers
    unordered = plan.mode == Mode.UNORDERED
    client_waits = 0
    if producers.restart_hook is not None and not unordered:
        client_waits += producers.restart_hook.polls()
    if consumers.restart_hook is not None:
        client_waits += (2 if unordered else 1) * consumers.restart_hook.polls()
    if client_waits:
        turns["restartHooks"] = ("Wait For Client Restart", client_waits)
    rollback_waits = sum(
        times * hook.polls()
        for hook, times in ((producers.restart_hook, 1), (consumers.restart_hook, 2))
        if hook is not None
    )
    if rollback_waits:
        turns["rollbackRestartHooks"] = ("Wait For Rollback Restart", rollback_waits)
    timeout_gates: tuple[str, ...] = ("Extend Drain", "Extend Fence", "Extend Rollback Drain")
    if unordered:
        timeout_gates += ("Extend Placement",)
    for gate in timeout_gates:
        turns[f"extensions:{gate}"] = (gate, drain.max_extensions)
    moves = -(-len(producers.parameters) // PARAMETERS_PER_CALL) + 2 * -(
        -len(consumers.parameters) // PARAMETERS_PER_CALL
    )
    turns["clientMoves"] = ("Repoint Consumers", moves)
    turns["rollbackActions"] = (
        "Roll Back",
        ROLLBACK_ACTIONS + -(-len(plan.all_parameters) // PARAMETERS_PER_CALL),
    )
    estimate = {
        "states": _EXECUTION_EVENTS + sum(state_events(s) for s in states.values()),
    }
    for name, (state, count) in turns.items():
        if state in states:
            estimate[name] = count * loop_events(states, state)
    mapped = _map_state(states)
    if unordered and mapped is not None:
        # One Map iteration per batch of producers.batchSize (1: per producer).
        inner: dict[str, Any] = mapped[1]["ItemProcessor"]["States"]
        per_batch = _ITERATION_EVENTS + sum(state_events(s) for s in inner.values())
        calls = -(-producers.batch_size // PARAMETERS_PER_CALL)
        if calls > 1:  # a batch more than one call moves: the call again, and its choice
            per_batch += (calls - 1) * loop_events(inner, mapped[1]["ItemProcessor"]["StartAt"])
        if producers.restart_hook is not None:
            waits = next((n for n, s in inner.items() if s["Type"] == "Wait"), None)
            if waits is not None:
                per_batch += producers.restart_hook.polls() * loop_events(inner, waits)
        estimate["unorderedProducers"] = producers.batches() * per_batch
    return estimate


def _history(run: _Run) -> None:
    definition = run.definition
    if definition is None:
        arn = run.stack.state_machine_arn
        if not arn:
            run.fail(
                "(plan)",
                "history budget",
                "cannot estimate the run's history: the state machine is unknown",
                "deploy this version of the template (stack output StateMachineArn)",
            )
            return
        described = run.clients.stepfunctions.describe_state_machine(stateMachineArn=arn)
        definition = json.loads(described["definition"])
    estimate = history_estimate(run.plan, definition)
    total = sum(estimate.values())
    largest = sorted(estimate.items(), key=lambda item: -item[1])[:4]
    detail = ", ".join(f"{name} {count:,}" for name, count in largest)
    if total > HISTORY_LIMIT:
        run.fail(
            "(plan)",
            "history budget",
            f"a run could take {total:,} history events ({detail}); Step Functions stops an "
            f"execution at {HISTORY_LIMIT:,}, with no rollback",
            (
                "mode unordered: raise producers.batchSize (producers move one batch a Map "
                "iteration); or "
                if "unorderedProducers" in estimate
                else ""
            )
            + "raise drain.pollIntervalSeconds / drain.maxSecondsPerCheck or a hook's "
            "pollIntervalSeconds, or lower a timeoutMinutes or drain.maxExtensions",
        )
    else:
        run.ok(
            "(plan)",
            "history budget",
            f"worst case {total:,} of {HISTORY_LIMIT:,} history events ({detail})",
        )


# --- entry point -----------------------------------------------------------------------------


def plan_checks(problems: list[str]) -> list[Check]:
    """A plan that does not parse: one failed check per field."""
    checks = []
    for problem in problems:
        where, _, what = problem.partition(": ")
        checks.append(
            Check(
                where,
                "plan",
                False,
                what,
                "correct the plan (mq-cutover schema prints the plan's JSON Schema)",
            )
        )
    return checks


def run_checks(
    document: Any,
    stack: StackSettings,
    clients: Clients,
    *,
    execution_name: str | None = None,
    now: datetime | None = None,
    definition: dict[str, Any] | None = None,
    retry_unanswered: bool = True,
) -> list[Check]:
    """Every check, in order (read-only). `execution_name`: the run being validated (Validate
    Plan), whose lease step checks for another running attempt; `definition`: the state
    machine's ASL, if already at hand (else read from the stack's state machine).
    `retry_unanswered` (Validate Plan): the checks stop at the first one AWS does not answer
    (throttled or unreachable); unless a check made before it failed (the plan is refused for
    that, this one listed as not checked), AwsThrottled is raised, so the step is retried
    rather than the plan refused. False (the CLI): that check is listed as `transient` and the
    others are made."""
    try:
        plan = parse_plan(document)
    except PlanInvalid as exc:
        return plan_checks(exc.problems)
    run = _Run(plan, stack, clients, execution_name, now or datetime.now(UTC), definition)
    run.retry_unanswered = retry_unanswered
    try:
        _every_check(run)
    except _Unanswered:
        unanswered_check = run.checks[-1]
        if all(check.ok or check.transient for check in run.checks):
            raise AwsThrottled(
                f"{unanswered_check.field}: {unanswered_check.problem}"
            ) from unanswered_check.error
    return run.checks


def _every_check(run: _Run) -> None:
    run.guarded("approvals", "approvals", lambda: _approvals(run))
    _execution_name(run)
    if run.execution_name is None:
        # Inside a run (Validate Plan) the next step, Take Migration Lease, refuses a second
        # run atomically and names the holder; a listing here would only race it.
        run.guarded("migrationId", "running", lambda: _running(run))
    _parameters(run)
    run.guarded("target.adoptBrokerId", "broker", lambda: _adopted_broker(run))
    run.guarded("target.create.engineVersion", "engine", lambda: _engine(run))
    run.guarded("target.create.subnetIds", "network", lambda: _network(run))
    _secrets(run)
    _topology_secrets(run)
    run.guarded("onPrem.metrics", "metrics", lambda: _metrics(run))
    _all_hosts(run)
    run.guarded("(plan)", "history budget", lambda: _history(run))


def failures(checks: list[Check]) -> list[str]:
    """The failed checks as PlanInvalid problems: `field: problem`."""
    return [f"{check.field}: {check.problem}" for check in checks if not check.ok]

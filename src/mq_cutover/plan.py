"""The migration plan: the execution input, validated field by field.

Field names are camelCase in JSON (the execution input) and snake_case in Python. Every field is
documented in the README and exported as `schema/migration-plan.schema.json`
(`python -m mq_cutover.plan > schema/migration-plan.schema.json`).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from mq_cutover.errors import PlanInvalid
from mq_cutover.queue_set import QueueSet

# Execution names and SSM labels both accept this shape; labels may not start with a digit,
# "aws" or "ssm" (checked below), execution names are at most 80 characters.
MIGRATION_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,59}$"
PARAMETER_NAME_PATTERN = r"^/[A-Za-z0-9_.\-/]{1,1010}$"
SECRET_ARN_PATTERN = r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$"  # noqa: S105

MAX_POLLS = 2000  # x ~9 history events a poll, inside Step Functions' 25,000-event cap
MAX_SECONDS_PER_CHECK = 240  # readings in one CheckDrain call; its Lambda Timeout is 300 s
ParameterName = Annotated[str, StringConstraints(pattern=PARAMETER_NAME_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Mode(StrEnum):
    ORDERED = "ordered"
    UNORDERED = "unordered"


class Engine(StrEnum):
    ACTIVEMQ = "ACTIVEMQ"
    RABBITMQ = "RABBITMQ"


class DeploymentMode(StrEnum):
    SINGLE_INSTANCE = "SINGLE_INSTANCE"
    ACTIVE_STANDBY_MULTI_AZ = "ACTIVE_STANDBY_MULTI_AZ"
    CLUSTER_MULTI_AZ = "CLUSTER_MULTI_AZ"


class Protocol(StrEnum):
    """Which of the broker's endpoints the clients get."""

    OPENWIRE = "openwire"
    AMQP = "amqp"
    STOMP = "stomp"
    MQTT = "mqtt"
    WSS = "wss"


ENGINE_PROTOCOLS = {
    Engine.ACTIVEMQ: {
        Protocol.OPENWIRE,
        Protocol.AMQP,
        Protocol.STOMP,
        Protocol.MQTT,
        Protocol.WSS,
    },
    Engine.RABBITMQ: {Protocol.AMQP},
}


class BrokerUser(_Model):
    """A broker user. The password is never in the plan: it is read from Secrets Manager."""

    username: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.~-]{2,100}$")]
    password_secret_arn: Annotated[str, StringConstraints(pattern=SECRET_ARN_PATTERN)]
    console_access: bool = False
    groups: list[str] = Field(default_factory=list)


class BrokerSpec(_Model):
    """A broker to create (CreateBroker)."""

    broker_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,50}$")]
    engine: Engine
    engine_version: Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+){1,2}$")]
    deployment_mode: DeploymentMode = DeploymentMode.SINGLE_INSTANCE
    host_instance_type: Annotated[str, StringConstraints(pattern=r"^mq\.[a-z0-9]+\.[a-z0-9]+$")]
    subnet_ids: list[Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8,17}$")]]
    security_groups: list[Annotated[str, StringConstraints(pattern=r"^sg-[0-9a-f]{8,17}$")]]
    publicly_accessible: bool = False
    auto_minor_version_upgrade: bool = True
    users: list[BrokerUser] = Field(min_length=1)
    kms_key_id: str | None = None
    general_logs: bool = True
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _engine_rules(self) -> BrokerSpec:
        need = {
            DeploymentMode.SINGLE_INSTANCE: 1,
            DeploymentMode.ACTIVE_STANDBY_MULTI_AZ: 2,
        }
        if self.deployment_mode == DeploymentMode.ACTIVE_STANDBY_MULTI_AZ and (
            self.engine != Engine.ACTIVEMQ
        ):
            raise ValueError("deploymentMode ACTIVE_STANDBY_MULTI_AZ is for ACTIVEMQ only")
        if self.deployment_mode == DeploymentMode.CLUSTER_MULTI_AZ and (
            self.engine != Engine.RABBITMQ
        ):
            raise ValueError("deploymentMode CLUSTER_MULTI_AZ is for RABBITMQ only")
        wanted = need.get(self.deployment_mode)
        if wanted is not None and len(self.subnet_ids) != wanted:
            raise ValueError(
                f"subnetIds: {self.deployment_mode.value} needs exactly {wanted} subnet(s), "
                f"got {len(self.subnet_ids)}"
            )
        if self.deployment_mode == DeploymentMode.CLUSTER_MULTI_AZ and len(self.subnet_ids) < 2:
            raise ValueError("subnetIds: CLUSTER_MULTI_AZ needs at least 2 subnets")
        if self.engine == Engine.RABBITMQ and len(self.users) != 1:
            raise ValueError("users: a RABBITMQ broker takes exactly one user")
        return self


class QueueMetrics(_Model):
    """Where the on-prem queue depth lives in CloudWatch (a metrics bridge publishes it)."""

    namespace: Annotated[str, StringConstraints(min_length=1, max_length=255)] = "MqCutover/OnPrem"
    queue_dimension: str = "Queue"
    dimensions: dict[str, str] = Field(default_factory=dict)
    messages_metric: str = "QueueSize"
    in_flight_metric: str | None = "InFlightCount"
    enqueue_metric: str | None = "EnqueueCount"
    consumers_metric: str | None = "ConsumerCount"
    period_seconds: Literal[1, 5, 10, 30, 60] = 60
    stale_after_seconds: int | None = Field(default=None, ge=5, le=3600)


class OnPremMetrics(QueueMetrics):
    """Where the on-prem broker's figures live: what the metrics bridge publishes under
    `namespace` and `dimensions`. `periodSeconds` is the period of the bridge's aggregate series
    (its sampling interval).

    `readings`: `aggregate` (the default) reads, on every reading, the aggregates the bridge
    publishes for the plan's queue set (a handful of series, whatever the number of queues:
    `mq_cutover.queue_set`), and each queue's own messages series (published every
    `detailPeriodSeconds`) only when it is needed: at a check's first reading, when the
    aggregates first look empty, and to name the queues with messages. `perQueue` reads every
    queue's messages, in flight, enqueue and consumer series on every reading, as a publisher of
    one's own that publishes per-queue series only needs (about five times the CloudWatch reads
    at a thousand queues).

    `detailPeriodSeconds`: the period of the per-queue series in aggregate readings (the
    bridge's `--detail-seconds`, default 60); at least `periodSeconds`."""

    readings: Literal["aggregate", "perQueue"] = Field(
        default="aggregate",
        description=(
            "aggregate: the bridge's queue-set aggregates every reading, per-queue series when "
            "needed; perQueue: every queue's series every reading (a per-queue-only publisher)"
        ),
    )
    detail_period_seconds: Literal[1, 5, 10, 30, 60, 300] = Field(
        default=60,
        description=(
            "The period of the per-queue series (the bridge's detail period); at least "
            "periodSeconds"
        ),
    )

    @model_validator(mode="after")
    def _detail_not_faster(self) -> OnPremMetrics:
        if self.detail_period_seconds < self.period_seconds:
            raise ValueError(
                f"detailPeriodSeconds ({self.detail_period_seconds}) must be at least "
                f"periodSeconds ({self.period_seconds}): the per-queue series are the slower ones"
            )
        return self


class MetricsSource(StrEnum):
    CLOUDWATCH = "cloudwatch"  # the namespace below (Amazon MQ's own, or a bridge's)
    MANAGEMENT_API = "managementApi"  # read live from the broker's RabbitMQ management API


# Amazon MQ's own CloudWatch metrics cover only a broker's first destinations ("Quotas in
# Amazon MQ", https://docs.aws.amazon.com/amazon-mq/latest/developer-guide/amazon-mq-limits.html):
# ActiveMQ, "CloudWatch monitors only the first 1000 destinations" (queues and topics); RabbitMQ,
# "only the first 500 destinations, ordered by number of consumers".
AMAZON_MQ_NAMESPACE = "AWS/AmazonMQ"
AMAZON_MQ_QUOTAS_URL = (
    "https://docs.aws.amazon.com/amazon-mq/latest/developer-guide/amazon-mq-limits.html"
)
AMAZON_MQ_MONITORED_DESTINATIONS = {Engine.ACTIVEMQ: 1000, Engine.RABBITMQ: 500}
# How to read more queues than that (the plan rule's and the preflight's fix).
AMAZON_MQ_METRICS_FIX = (
    "publish the Amazon MQ broker's per-queue statistics into a namespace of your own with the "
    "metrics bridge (mq-cutover publish-metrics --detail-figures all, reading the broker's "
    "Jolokia or RabbitMQ management API) and set target.metrics.namespace to that namespace"
)


class AmazonMqMetrics(QueueMetrics):
    """Where the Amazon MQ broker's per-queue statistics live: its own `AWS/AmazonMQ` metrics
    (every minute, for a broker's first 1,000 destinations on ActiveMQ, its first 500 queues by
    number of consumers on RabbitMQ: "Quotas in Amazon MQ" in the Amazon MQ Developer Guide), or
    the namespace a metrics bridge on the Amazon MQ broker publishes to. The `Broker` dimension
    (`<name>-1`, and `<name>-2` for an active/standby standby) is added by the workflow unless
    given here. A RabbitMQ 4.x broker publishes no per-queue metrics: `source: managementApi`
    reads them from its management API instead (the same reader as the metrics bridge; the user
    and password of `topology.amazonMqSecretArn`, or of the created broker's user)."""

    namespace: Annotated[str, StringConstraints(min_length=1, max_length=255)] = AMAZON_MQ_NAMESPACE
    source: MetricsSource = MetricsSource.CLOUDWATCH


# ActiveMQ's failover transport options a plan may set (name -> type; ints may be -1 where
# ActiveMQ gives -1 a meaning). `randomize` is mq-cutover's: placement must not be left to chance.
FAILOVER_OPTIONS: dict[str, type] = {
    "initialReconnectDelay": int,
    "maxReconnectDelay": int,
    "useExponentialBackOff": bool,
    "backOffMultiplier": float,
    "maxReconnectAttempts": int,
    "startupMaxReconnectAttempts": int,
    "timeout": int,
    "backup": bool,
    "trackMessages": bool,
    "maxCacheSize": int,
    "updateURIsSupported": bool,
    "priorityBackup": bool,
    "warnAfterReconnectAttempts": int,
}
FailoverValue = StrictBool | StrictInt | StrictFloat | StrictStr
# Connection factory options may ride on the failover URL too (e.g. the consumers' prefetch,
# `jms.prefetchPolicy.queuePrefetch`): a URL mq-cutover writes would otherwise drop them.
JMS_OPTION = re.compile(r"^jms\.[A-Za-z][A-Za-z0-9.]*$")
JMS_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


# Amazon MQ for RabbitMQ's own per-queue metrics (dimensions Broker, VirtualHost, Queue): no
# cumulative enqueue counter. A created RabbitMQ broker's `target.metrics` defaults to them.
RABBITMQ_AMAZON_MQ_METRICS = {
    "messagesMetric": "MessageCount",
    "inFlightMetric": "MessageUnacknowledgedCount",
    "enqueueMetric": None,
    "consumersMetric": "ConsumerCount",
}


class TargetBroker(_Model):
    """The Amazon MQ broker to migrate to: create one, or adopt an existing one by id."""

    @model_validator(mode="before")
    @classmethod
    def _rabbitmq_metric_names(cls, data: Any) -> Any:
        """A created RabbitMQ broker's metrics are named as Amazon MQ for RabbitMQ names them
        (and carry its VirtualHost dimension, `/` unless given), unless the plan names them."""
        if not isinstance(data, dict):
            return data
        create = data.get("create")
        if not isinstance(create, dict) or create.get("engine") != "RABBITMQ":
            return data
        metrics = data.get("metrics")
        if metrics is not None and not isinstance(metrics, dict):
            return data  # the type check says what is wrong
        given = dict(metrics or {})
        for alias, default in RABBITMQ_AMAZON_MQ_METRICS.items():
            snake = re.sub(r"([A-Z])", lambda m: "_" + m[1].lower(), alias)
            if alias not in given and snake not in given:
                given[alias] = default
        dimensions = given.get("dimensions")
        if dimensions is None or isinstance(dimensions, dict):
            given["dimensions"] = {"VirtualHost": "/", **(dimensions or {})}
        return {**data, "metrics": given}

    create: BrokerSpec | None = None
    adopt_broker_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")] | None = (
        None
    )
    protocol: Protocol | None = None
    poll_interval_seconds: int = Field(default=60, ge=10, le=600)
    creation_timeout_minutes: int = Field(default=60, ge=5, le=240)
    metrics: AmazonMqMetrics = Field(default_factory=AmazonMqMetrics)
    failover_options: dict[str, FailoverValue] = Field(default_factory=dict)

    @field_validator("failover_options", mode="before")
    @classmethod
    def _known_options(cls, options: Any) -> Any:
        if not isinstance(options, dict):
            return options  # the type check says what is wrong
        for name, value in options.items():
            if name == "randomize":
                raise ValueError(
                    "randomize is set by mq-cutover (randomize=false: consumers are placed by "
                    "design, never by chance)"
                )
            if JMS_OPTION.match(name):
                if isinstance(value, float) or not JMS_VALUE.match(str(value)):
                    raise ValueError(f"{name} must be true, false, a whole number or a word")
                continue
            kind = FAILOVER_OPTIONS.get(name)
            if kind is None:
                raise ValueError(
                    f"{name} is not a failover transport option mq-cutover passes on (one of "
                    f"{', '.join(sorted(FAILOVER_OPTIONS))}, or a jms.* connection option)"
                )
            if kind is bool and not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name} must be a whole number")
            if kind is float and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise ValueError(f"{name} must be a number above 0")
            if kind is int and value < (-1 if "Attempts" in name or name == "timeout" else 0):
                raise ValueError(f"{name} must not be negative (-1 only where ActiveMQ allows)")
        return options

    @model_validator(mode="after")
    def _one_of(self) -> TargetBroker:
        if (self.create is None) == (self.adopt_broker_id is None):
            raise ValueError("give exactly one of create or adoptBrokerId")
        if self.failover_options and self.protocol not in (None, Protocol.OPENWIRE):
            raise ValueError("failoverOptions: only OpenWire clients use the failover transport")
        if (
            self.create is not None
            and self.protocol is not None
            and self.protocol not in ENGINE_PROTOCOLS[self.create.engine]
        ):
            raise ValueError(
                f"protocol: {self.protocol.value} is not offered by {self.create.engine.value}"
            )
        return self


class OnPremBroker(_Model):
    """The broker being migrated away from."""

    url: Annotated[str, StringConstraints(pattern=r"^(failover:\(.+\).*|[a-z+]+://\S+)$")]
    metrics: OnPremMetrics = Field(default_factory=OnPremMetrics)
    queues: list[str] = Field(default_factory=list)
    ignore_queues: list[str] = Field(
        default_factory=lambda: ["ActiveMQ.DLQ", "DLQ.*", "*.DLQ", "*.dlq"]
    )


class BrokerApi(_Model):
    """A broker's HTTP API: RabbitMQ's management API (`http://host:15672`) or ActiveMQ's
    Jolokia (`http://host:8161/api/jolokia`). The secret holds JSON
    `{"username": ..., "password": ...}` of a user allowed to read the broker's definitions
    (RabbitMQ: the `administrator` tag; ActiveMQ: a web console user)."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+(/\S*)?$")]
    secret_arn: Annotated[str, StringConstraints(pattern=SECRET_ARN_PATTERN)]


VHOST_PATTERN = r"^[^\s]{1,255}$"


class Topology(_Model):
    """The on-prem broker's topology, copied to the Amazon MQ broker before the cutover gate.

    RabbitMQ: vhosts, exchanges, queues, bindings and policies (never users or permissions),
    read from the on-prem management API and imported through Amazon MQ's; classic mirrored
    queues become quorum queues. ActiveMQ: destinations read through Jolokia become an Amazon MQ
    configuration revision associated with the broker. Nothing on-prem is changed."""

    copy_enabled: bool = Field(default=True, alias="copy")
    on_prem_api: BrokerApi | None = None
    # The Amazon MQ broker's administrative user (RabbitMQ). Default: the created broker's user.
    amazon_mq_secret_arn: Annotated[str, StringConstraints(pattern=SECRET_ARN_PATTERN)] | None = (
        None
    )
    vhosts: list[Annotated[str, StringConstraints(pattern=VHOST_PATTERN)]] = Field(
        default_factory=list
    )  # RabbitMQ: the vhosts to copy; empty = every vhost of the on-prem broker
    # RabbitMQ, mode unordered: the CA bundle, on the on-prem broker's host, with which the
    # shovels (defined on the on-prem broker) verify Amazon MQ's certificate.
    shovel_ca_cert_file: Annotated[str, StringConstraints(pattern=r"^/[^\s?&#]{1,1000}$")] = (
        "/etc/ssl/certs/ca-certificates.crt"
    )

    @model_validator(mode="after")
    def _source(self) -> Topology:
        if self.copy_enabled and self.on_prem_api is None:
            raise ValueError(
                "onPremApi: copying the topology reads the on-prem broker's HTTP API (RabbitMQ "
                "management API or ActiveMQ Jolokia); give it, or copy false"
            )
        return self


ShellDocument = Literal["AWS-RunShellScript", "AWS-RunPowerShellScript"]


class RestartHook(_Model):
    """An SSM Run Command that makes clients reconnect after their URL changed."""

    document_name: ShellDocument = "AWS-RunShellScript"
    commands: list[str] = Field(min_length=1)
    instance_ids: list[Annotated[str, StringConstraints(pattern=r"^(i|mi)-[0-9a-f]{8,17}$")]] = (
        Field(default_factory=list)
    )
    target_tags: dict[str, list[str]] = Field(default_factory=dict)
    # The workflow waits for the command on every host (a Wait/Choice loop): a host that fails,
    # or any host still running after timeoutSeconds, fails the step.
    timeout_seconds: int = Field(default=300, ge=30, le=3600)
    poll_interval_seconds: int = Field(default=10, ge=5, le=300)

    def polls(self) -> int:
        """The most checks one wait for this hook takes (the first one comes at once)."""
        return 1 + -(-self.timeout_seconds // self.poll_interval_seconds)

    @model_validator(mode="after")
    def _has_target(self) -> RestartHook:
        if not self.instance_ids and not self.target_tags:
            raise ValueError("give instanceIds or targetTags")
        return self


class ClientGroup(_Model):
    """Producers or consumers: the SSM parameters that hold their broker URL."""

    parameters: list[ParameterName] = Field(min_length=1)
    restart_hook: RestartHook | None = None

    @field_validator("parameters")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"{name} is listed twice")
            seen.add(name)
        return names


MAX_BATCH_SIZE = 1000  # producers one Map iteration moves
# Producers one Repoint Producer call is counted to write (it writes as many as its time allows
# and the iteration calls again for the rest): the same count as the preflight's estimate.
PARAMETERS_PER_CALL = 50


class ProducerGroup(ClientGroup):
    """The producers: a client group that, in mode unordered, moves in batches.

    `batchSize`: how many producers one step of mode unordered moves (1, the default: one by
    one, as the AWS procedure says). A batch is the producers [i*batchSize, (i+1)*batchSize) in
    plan order, written one after another, then the restart hook sent once for the batch and
    waited for before the next batch moves. Mode ordered moves every producer in one step: a
    batchSize other than 1 is refused there."""

    batch_size: int = Field(
        default=1,
        ge=1,
        le=MAX_BATCH_SIZE,
        description=(
            "Mode unordered: producers moved per step, then one restart hook for the batch "
            "(1: one by one); refused in mode ordered"
        ),
    )

    def batches(self) -> int:
        """How many batches the producers move in."""
        return -(-len(self.parameters) // self.batch_size)


class DrainSettings(_Model):
    """When the on-prem queues count as drained."""

    poll_interval_seconds: int = Field(default=60, ge=1, le=3600)
    consecutive_empty_readings: int = Field(default=3, ge=1, le=100)
    timeout_minutes: int = Field(default=120, ge=1, le=7 * 24 * 60)
    max_seconds_per_check: int = Field(default=240, ge=0, le=MAX_SECONDS_PER_CHECK)
    require_producers_quiet: bool = True
    extend_minutes: int = Field(default=30, ge=1, le=24 * 60)
    max_extensions: int = Field(default=3, ge=0, le=10)
    placement_timeout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    rollback_timeout_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    fence_timeout_minutes: int = Field(default=15, ge=1, le=24 * 60)

    def seconds_per_poll(self) -> int:
        """Seconds one state machine poll covers: its readings in one call, then the Wait."""
        readings = 1 + self.max_seconds_per_check // self.poll_interval_seconds
        return readings * self.poll_interval_seconds


GateName = Literal["cutover", "stopOnPrem"]
AnyGate = Literal[
    "cutover",
    "stopOnPrem",
    "drainTimeout",
    "confirmOnPremStopped",
    "placementTimeout",
    "fenceTimeout",
    "rollbackDrainTimeout",
]
DEFAULT_GATES: list[GateName] = ["cutover", "stopOnPrem"]


class ApprovalSettings(_Model):
    """Manual approval gates (an SNS email with a link to a confirmation page)."""

    gates: list[GateName] = Field(default_factory=lambda: list(DEFAULT_GATES))
    timeout_minutes: int = Field(default=24 * 60, ge=1, le=7 * 24 * 60)
    quorum: dict[AnyGate, Annotated[int, Field(ge=1, le=10)]] = Field(default_factory=dict)

    def quorum_of(self, gate: str, minimum: int = 1) -> int:
        """The gate's quorum: the plan's, but never below the stack's MinimumQuorum."""
        return max(minimum, int(self.quorum.get(gate, 1)))  # type: ignore[call-overload]


class StopMethod(StrEnum):
    SSM_COMMAND = "ssm-command"
    EC2_STOP = "ec2-stop"
    MANUAL = "manual"


class StopOnPrem(_Model):
    """How the on-prem broker is stopped once drained and approved."""

    method: StopMethod = StopMethod.MANUAL
    document_name: ShellDocument = "AWS-RunShellScript"
    commands: list[str] = Field(default_factory=list)
    instance_ids: list[Annotated[str, StringConstraints(pattern=r"^(i|mi)-[0-9a-f]{8,17}$")]] = (
        Field(default_factory=list)
    )
    target_tags: dict[str, list[str]] = Field(default_factory=dict)
    poll_interval_seconds: int = Field(default=15, ge=1, le=600)
    timeout_minutes: int = Field(default=30, ge=1, le=24 * 60)

    @model_validator(mode="after")
    def _method_rules(self) -> StopOnPrem:
        if self.method == StopMethod.SSM_COMMAND:
            if not self.commands:
                raise ValueError("commands: ssm-command needs at least one command")
            if not self.instance_ids and not self.target_tags:
                raise ValueError("ssm-command needs instanceIds or targetTags")
        if self.method == StopMethod.EC2_STOP and (
            not self.instance_ids or any(i.startswith("mi-") for i in self.instance_ids)
        ):
            raise ValueError("instanceIds: ec2-stop needs EC2 instance ids (i-...)")
        return self


class MigrationPlan(_Model):
    """The whole execution input."""

    migration_id: Annotated[str, StringConstraints(pattern=MIGRATION_ID_PATTERN)]
    mode: Mode
    target: TargetBroker
    on_prem: OnPremBroker
    producers: ProducerGroup
    consumers: ClientGroup
    drain: DrainSettings = Field(default_factory=DrainSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    stop_on_prem: StopOnPrem = Field(default_factory=StopOnPrem)
    topology: Topology | None = None

    @field_validator("migration_id")
    @classmethod
    def _label_safe(cls, value: str) -> str:
        if value.lower().startswith(("aws", "ssm")):
            raise ValueError("must not start with 'aws' or 'ssm' (it becomes an SSM label)")
        return value

    @model_validator(mode="after")
    def _history_budget(self) -> MigrationPlan:
        """Every poll adds about 9 events to the execution history, which Step Functions caps
        at 25,000 (a run that hits the cap fails with no Catch, no rollback, no notification).
        Keep the loops' worst case well inside it."""
        polls = self._polls(self.producers.batch_size)
        if sum(polls.values()) <= MAX_POLLS:
            return self
        detail = ", ".join(f"{name}: {count}" for name, count in polls.items())
        fix = (
            "raise a pollIntervalSeconds or drain.maxSecondsPerCheck, or lower a "
            "timeoutMinutes, timeoutSeconds or drain.maxExtensions"
        )
        if self.mode == Mode.UNORDERED and not self.shovels:
            fitting = next(
                (
                    size
                    for size in range(self.producers.batch_size + 1, MAX_BATCH_SIZE + 1)
                    if sum(self._polls(size).values()) <= MAX_POLLS
                ),
                None,
            )
            if fitting is not None:
                fix = (
                    f"move producers in batches: producers.batchSize {fitting} or more fits "
                    f"(now {self.producers.batch_size}); or {fix}"
                )
        raise ValueError(
            f"the polling loops could take {sum(polls.values())} polls ({detail}); at most "
            f"{MAX_POLLS} fit in one execution's history: {fix}"
        )

    def _polls(self, batch_size: int) -> dict[str, int]:
        """The most polls each loop may take (history events / 9), producers moved in batches
        of `batch_size` in mode unordered."""
        drain = self.drain
        extensions = drain.max_extensions * drain.extend_minutes
        loops = {
            "drain": ((drain.timeout_minutes + extensions) * 60, drain.seconds_per_poll()),
            # A rollback's two drains at worst (on-prem, then Amazon MQ).
            "rollbackDrain": (
                2 * (drain.rollback_timeout_minutes + extensions) * 60,
                drain.seconds_per_poll(),
            ),
            "placement": (
                (drain.placement_timeout_minutes + extensions) * 60,
                drain.seconds_per_poll(),
            ),
            "fence": ((drain.fence_timeout_minutes + extensions) * 60, drain.seconds_per_poll()),
            "target": (
                self.target.creation_timeout_minutes * 60,
                self.target.poll_interval_seconds,
            ),
            "stopOnPrem": (
                self.stop_on_prem.timeout_minutes * 60,
                self.stop_on_prem.poll_interval_seconds,
            ),
        }
        polls = {name: -(-total // interval) for name, (total, interval) in loops.items()}
        batches = -(-len(self.producers.parameters) // batch_size)
        one_by_one = self.mode == Mode.UNORDERED and not self.shovels
        if one_by_one:
            # Producers move one Map iteration a batch: 11 events (the task, then the choice
            # whether the batch is written and its restart hook is to be waited for, and the
            # end), and 7 more for each further call a large batch takes; 9 events a poll.
            calls = -(-batch_size // PARAMETERS_PER_CALL)
            polls["unorderedProducers"] = -(-(11 + 7 * (calls - 1)) * batches // 9)
        # A restart hook is waited for after each client step that sent it: producers once
        # (unordered: once per batch) and once when the rollback moves them back; consumers
        # once (unordered: widened, narrowed) and twice in a rollback (moved on, moved back).
        restarts = 0
        if self.producers.restart_hook is not None:
            producer_waits = batches if one_by_one else 1
            restarts += (producer_waits + 1) * self.producers.restart_hook.polls()
        if self.consumers.restart_hook is not None:
            consumer_waits = 2 if self.mode == Mode.UNORDERED else 1
            restarts += (consumer_waits + 2) * self.consumers.restart_hook.polls()
        if restarts:
            polls["restartHooks"] = restarts
        return polls

    @model_validator(mode="after")
    def _cross_field(self) -> MigrationPlan:
        if self.mode == Mode.ORDERED and self.producers.batch_size != 1:
            raise ValueError(
                "producers.batchSize: mode ordered moves every producer in one step (then "
                "restarts them once); batches are for mode unordered; leave batchSize out or 1"
            )
        shared = set(self.producers.parameters) & set(self.consumers.parameters)
        if shared:
            raise ValueError(
                f"producers.parameters and consumers.parameters share {sorted(shared)}"
            )
        metrics = self.on_prem.metrics
        if metrics.stale_after_seconds and metrics.stale_after_seconds < 2 * metrics.period_seconds:
            raise ValueError(
                "onPrem.metrics.staleAfterSeconds must be at least twice periodSeconds (a "
                "datapoint's age counts from the start of its period)"
            )
        if self.drain.require_producers_quiet and self.on_prem.metrics.enqueue_metric is None:
            raise ValueError(
                "drain.requireProducersQuiet needs onPrem.metrics.enqueueMetric (the on-prem "
                "enqueue counter shows a producer still sending to the old broker)"
            )
        if (
            self.mode == Mode.UNORDERED
            and len(self.consumers.parameters) < 2
            and not (self.target.create and self.target.create.engine == Engine.RABBITMQ)
        ):
            raise ValueError(
                "consumers.parameters: mode unordered needs at least 2 consumer parameters, so "
                "that consumers read on both brokers while producers move (one is placed on "
                "on-prem, the next on Amazon MQ, and so on); with one consumer use mode ordered"
            )
        engine = self.target.create.engine if self.target.create else None
        if self.mode == Mode.UNORDERED and engine == Engine.RABBITMQ:
            self._shovel_rules()
        self._topology_rules(engine)
        return self

    def amazon_mq_metrics_limit(self) -> int | None:
        """How many destinations the Amazon MQ side's metrics cover: the quota's count while
        `target.metrics` reads AWS/AmazonMQ from CloudWatch (an adopted broker: ActiveMQ's),
        None when they come from a bridge's namespace or the management API (every queue)."""
        metrics = self.target.metrics
        if metrics.source != MetricsSource.CLOUDWATCH or metrics.namespace != AMAZON_MQ_NAMESPACE:
            return None
        engine = self.target.create.engine if self.target.create else None
        return AMAZON_MQ_MONITORED_DESTINATIONS[engine or Engine.ACTIVEMQ]

    @model_validator(mode="after")
    def _amazon_mq_metrics_cover_the_queues(self) -> MigrationPlan:
        """Amazon MQ's own per-queue metrics stop at the quota's count of destinations: a listed
        queue beyond it never reports, is *missing* (never empty), and a rollback's drain of
        Amazon MQ (or the placement check) cannot finish. Counted here: the listed names the
        drain waits for (onPrem.queues less patterns and onPrem.ignoreQueues); queues found by a
        pattern are known only at run time."""
        limit = self.amazon_mq_metrics_limit()
        if limit is None:
            return self
        engine = self.target.create.engine if self.target.create else None
        listed = self.on_prem.queues
        if len(listed) <= limit:
            return self
        queue_set = QueueSet.of(listed, self.on_prem.ignore_queues)
        count = sum(1 for queue in queue_set.names if not queue_set.ignores(queue))
        if count <= limit:
            return self
        if engine == Engine.RABBITMQ:
            whose = f"Amazon MQ for RabbitMQ's own metrics ({AMAZON_MQ_NAMESPACE}) cover only "
            whose += f"the first {limit} queues of a broker, ordered by number of consumers"
        elif engine == Engine.ACTIVEMQ:
            whose = f"Amazon MQ for ActiveMQ's own metrics ({AMAZON_MQ_NAMESPACE}) cover only "
            whose += f"the first {limit} destinations (queues and topics) of a broker"
        else:
            whose = (
                f"Amazon MQ's own metrics ({AMAZON_MQ_NAMESPACE}) cover only the first {limit} "
                f"destinations of an ActiveMQ broker (500 queues of a RabbitMQ one)"
            )
        fix = AMAZON_MQ_METRICS_FIX
        if engine != Engine.ACTIVEMQ:
            fix += (
                ", or set target.metrics.source to managementApi (read live from "
                + ("its" if engine == Engine.RABBITMQ else "a RabbitMQ broker's")
                + " management API)"
            )
        placement = " (and the placement check)" if self.mode == Mode.UNORDERED else ""
        raise ValueError(
            f"target.metrics: the plan lists {count} queues the drain waits for "
            f"(onPrem.queues, less onPrem.ignoreQueues), but {whose} (Quotas in Amazon MQ, "
            f"{AMAZON_MQ_QUOTAS_URL}): the queues beyond them would never report, so a "
            f"rollback's drain of Amazon MQ{placement} could never finish; {fix}"
        )

    def _shovel_rules(self) -> None:
        """Mode unordered on RabbitMQ: consumers move first, a shovel per queue defined on the
        on-prem broker moves what is left there, producers follow."""
        topology = self.topology
        if topology is None or topology.on_prem_api is None:
            raise ValueError(
                "topology.onPremApi: mode unordered on RabbitMQ defines a shovel per queue on the "
                "on-prem broker through its management API; give it (or use mode ordered)"
            )
        if self.admin_secret_arn is None:
            raise ValueError(
                "topology.amazonMqSecretArn: the shovels log into Amazon MQ as its "
                "administrative user"
            )
        if self.producers.batch_size != 1:
            raise ValueError(
                "producers.batchSize: mode unordered on RabbitMQ moves every producer in one "
                "step once the shovels run; leave batchSize out or 1"
            )
        if any(any(char in q for char in "*?[") for q in self.on_prem.queues):
            raise ValueError(
                "onPrem.queues: mode unordered on RabbitMQ shovels each queue by name; list the "
                "queues (patterns are resolved for readings only)"
            )
        if len(self.topology.vhosts if self.topology else []) > 1:
            raise ValueError(
                "topology.vhosts: mode unordered on RabbitMQ shovels the queues of one vhost "
                "(target.metrics.dimensions.VirtualHost, default /)"
            )

    @property
    def shovels(self) -> bool:
        """Whether this plan's no-interruption procedure is the RabbitMQ one (shovels)."""
        engine = self.target.create.engine if self.target.create else None
        return self.mode == Mode.UNORDERED and engine == Engine.RABBITMQ

    def _topology_rules(self, engine: Engine | None) -> None:
        topology = self.topology
        if engine == Engine.RABBITMQ and topology is None:
            raise ValueError(
                "topology: a new RabbitMQ broker starts empty (no vhosts, exchanges, queues, "
                "bindings or policies), and a publish to an exchange with no binding is dropped: "
                "give topology.onPremApi to copy the on-prem broker's, or topology.copy false if "
                "the applications declare their own"
            )
        if topology is not None and topology.vhosts and engine == Engine.ACTIVEMQ:
            raise ValueError("topology.vhosts: ActiveMQ has no virtual hosts")
        if self.admin_secret_arn is None and self.needs_management_api:
            raise ValueError(
                "topology.amazonMqSecretArn: an adopted broker's management API needs its "
                "administrative user (JSON {username, password} in Secrets Manager)"
            )
        if self.target.metrics.source == MetricsSource.MANAGEMENT_API and engine not in (
            Engine.RABBITMQ,
            None,
        ):
            raise ValueError(
                "target.metrics.source: managementApi reads a RabbitMQ broker's management API; "
                "an ActiveMQ broker publishes its per-queue metrics to AWS/AmazonMQ"
            )

    @property
    def topology_copied(self) -> bool:
        return self.topology is not None and self.topology.copy_enabled

    @property
    def needs_management_api(self) -> bool:
        """Whether a step calls the Amazon MQ broker's management API (RabbitMQ topology copy
        or drain readings from it)."""
        engine = self.target.create.engine if self.target.create else None
        return (self.topology_copied and engine != Engine.ACTIVEMQ) or (
            self.target.metrics.source == MetricsSource.MANAGEMENT_API
        )

    @property
    def admin_secret_arn(self) -> str | None:
        """The Amazon MQ broker's administrative user's secret: the plan's
        `topology.amazonMqSecretArn`, or the created broker's (one) user's."""
        if self.topology is not None and self.topology.amazon_mq_secret_arn:
            return self.topology.amazon_mq_secret_arn
        if self.target.create is not None:
            return self.target.create.users[0].password_secret_arn
        return None

    @property
    def all_parameters(self) -> list[str]:
        return [*self.producers.parameters, *self.consumers.parameters]

    def dump(self) -> dict[str, Any]:
        """The plan as JSON-ready camelCase, defaults filled in."""
        return self.model_dump(mode="json", by_alias=True)


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not re.match(r"^[A-Za-z_][\w-]*$", str(part)) or "[" in str(part):
            continue  # pydantic's union/function markers, not a field
        else:
            path += f".{part}" if path else str(part)
    return path or "(plan)"


PACKED_PREFIX = "mqc1:"
# A validated plan kept in the stack's plan bucket instead of travelling in the state (large
# plans): `mq_cutover.plan_store` writes and reads it.
PLAN_REF_PREFIX = "mqc1ref:"


def pack(plan: MigrationPlan) -> str:
    """The validated plan, gzipped: what the state machine hands every Lambda. A plan listing
    1,000 queues and 1,000 parameters is ~65 KB as JSON and ~7 KB packed, so no state payload
    comes near Step Functions' 256 KB (the target is 64 KB)."""
    raw = json.dumps(plan.dump(), separators=(",", ":")).encode()
    return PACKED_PREFIX + base64.b64encode(gzip.compress(raw, mtime=0)).decode()


def summary(plan: MigrationPlan) -> dict[str, Any]:
    """The plan without its long lists (counts instead): what the state machine's own
    expressions read (mode, gates, timeouts, intervals)."""
    document = plan.dump()
    for group in ("producers", "consumers"):
        document[group]["parameterCount"] = len(document[group].pop("parameters"))
    document["onPrem"]["queueCount"] = len(document["onPrem"].pop("queues"))
    return document


def parse_plan(document: Any) -> MigrationPlan:
    """Validate an execution input (or a packed plan); raise PlanInvalid naming every bad field
    and why."""
    if isinstance(document, str) and document.startswith(PLAN_REF_PREFIX):
        from mq_cutover import plan_store  # S3 only when a plan was stored by reference

        document = plan_store.load_packed(document)
    if isinstance(document, str) and document.startswith(PACKED_PREFIX):
        try:
            document = gzip.decompress(base64.b64decode(document[len(PACKED_PREFIX) :]))
        except (ValueError, OSError, EOFError) as exc:
            raise PlanInvalid([f"(plan): a packed plan that does not unpack: {exc}"]) from exc
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            raise PlanInvalid([f"(plan): not JSON: {exc}"]) from exc
    if not isinstance(document, dict):
        raise PlanInvalid([f"(plan): expected a JSON object, got {type(document).__name__}"])
    try:
        return MigrationPlan.model_validate(document)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{_field_path(tuple(err['loc']))}: {message}")
        raise PlanInvalid(problems) from None


def json_schema() -> dict[str, Any]:
    schema = MigrationPlan.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mq-cutover migration plan"
    return schema


if __name__ == "__main__":  # pragma: no cover - used to regenerate the schema file
    print(json.dumps(json_schema(), indent=2, sort_keys=True))

"""The simulated world around the emulator: what moto fakes or cannot know, made explicit.

- The clients' parameters exist with their initial values (the on-prem URL).
- The broker users' password secrets exist in Secrets Manager.
- Amazon MQ takes a few polls to create a broker (moto makes it RUNNING at once).
- The on-prem broker's queues drain over simulated time, and a simulated metrics bridge
  publishes their depth to CloudWatch (nothing publishes on-prem metrics in moto).
- SSM Run Command and EC2 stops finish at once (moto runs nothing); a tagged EC2 instance
  stands in for the on-prem hosts that Run Command targets by tag.
- The clients' hosts run a restart hook as `restartHosts` says (moto runs nothing and reports
  Success at once), and ListCommandInvocations, which moto 5.2.5 does not implement, is
  answered from moto's own command records.
- What the preflight (Validate Plan) checks exists before the run, as in a prepared account:
  the plan's subnets (one Availability Zone each) and security groups, with the plan's ids
  (moto draws random ids: its id generator is patched while they are created); every host a
  restart hook or the stop names is an SSM managed instance, Online, tagged with the stack's
  ClientHostTagKey / OnPremTagKey; the plan's EC2 instances (ec2-stop) run; the on-prem
  metrics bridge has been publishing for a few periods (every queue with its consumers).
- The brokers' HTTP APIs that Copy Topology calls are simulated (`simulated_brokers`): a plan
  with `topology` finds, at its onPremApi.url, a RabbitMQ management API holding the plan's
  queues (durable, bound to a direct exchange `app`, under a classic-mirroring policy `ha-all`)
  or an ActiveMQ Jolokia listing them; and the Amazon MQ RabbitMQ broker's management API,
  empty, at its console URL (any *.amazonaws.com host). Their users are `mq-admin` (on-prem,
  and Amazon MQ's when topology.amazonMqSecretArn is given) or the created broker's user.
- Two APIs moto 5.2.5 lacks are simulated (`simulated_apis`): SSM DescribeInstanceInformation
  (answered from the world's managed hosts) and Amazon MQ DescribeBrokerEngineTypes /
  DescribeBrokerInstanceOptions (answered from `SIMULATED_OFFERINGS`, a simulated catalogue).

A world file (JSON) sets it up; `default_world(plan)` derives one from a plan. Fields:
  parameters          {name: initial value}; default: every plan parameter = onPrem.url
  queues              [{name, messages, inFlight, drainPerMinute, enqueuePerMinute,
                      enqueueForSeconds}]; default: the plan's queues with 3,000 messages
                      each, draining 1,000 a minute. enqueuePerMinute/enqueueForSeconds: a
                      straggler producer still sending to the old broker after the drain began
  brokerCreationPolls how many broker checks see CREATION_IN_PROGRESS first (default 2)
  visibilityDelaySeconds  how long a published datapoint takes to be readable (default 0)
  strayConsumers      consumers that never pick up a new URL: they stay connected on-prem
                      (default 0)
  amazonMqEnqueuePerMinute  messages a minute each queue receives on Amazon MQ while any producer
                      points there (default 600); consumers on Amazon MQ drain them at the
                      queue's drainPerMinute
  restartHosts        {instance id, or "*" for every host: outcome} of a restart hook (SSM Run
                      Command) on a client host: "Success" (the default), "Failed",
                      "TimedOut", "Cancelled", "Undeliverable" (at once), "never" (still
                      running, whatever the wait), or a number of seconds it runs before
                      succeeding (simulated time, from the first check of the command)
  hosts               {instance id: SSM PingStatus} of a managed host: "Online" (the default),
                      "ConnectionLost", or "absent" (no SSM Agent registered)
  subnetZones         {subnet id: Availability Zone}; default: the plan's subnets each in its
                      own zone (us-east-1a, b, ...)

Where clients are is read from their parameters (what the workflow wrote): a consumer with the
on-prem URL, or a widened URL listing an on-prem member first (randomize=false connects to the
first member), is on-prem; any other URL of this migration puts it on Amazon MQ. The simulated
Amazon MQ broker publishes its own per-queue metrics (`AWS/AmazonMQ`, `Broker` = `<name>-1`, as
Amazon MQ does every minute) with ConsumerCount = consumers placed there, for its first 1,000
queues only (ActiveMQ; RabbitMQ: the first 500 by number of consumers), simulated from AWS's
quota (`mq_cutover.plan.AMAZON_MQ_MONITORED_DESTINATIONS`); a plan whose `target.metrics` names
another namespace (a bridge's) gets every queue's series there. The on-prem bridge publishes
ConsumerCount = consumers placed on-prem.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import moto.ec2.models.instances as moto_instances
import moto.ec2.models.security_groups as moto_security_groups
import moto.ec2.models.subnets as moto_subnets
import moto.mq.urls as moto_mq_urls
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.responses import ActionResult
from moto.mq.models import mq_backends
from moto.mq.responses import MQResponse
from moto.ssm.models import Command, SimpleSystemManagerBackend, ssm_backends
from moto.ssm.responses import SimpleSystemManagerResponse

from mq_cutover.metrics_bridge import (
    DEFAULT_DETAIL_SECONDS,
    Publishing,
    QueueStats,
    SetFigures,
    aggregate,
    metric_data,
    put,
    sample_data,
)
from mq_cutover.plan import (
    AMAZON_MQ_MONITORED_DESTINATIONS,
    AMAZON_MQ_NAMESPACE,
    Engine,
    MigrationPlan,
    QueueMetrics,
    StopMethod,
)
from mq_cutover.queue_set import QueueSet
from mq_cutover_cli.fast_metrics import prune, put_vended
from mq_cutover_cli.harness import ACCOUNT, REGION, Emulator, boto3_client
from mq_cutover_cli.simulated_brokers import (
    SimulatedBrokerApis,
    SimulatedJolokia,
    SimulatedRabbitApi,
)

# The value of every secret the world creates (simulated account): broker users' passwords, and
# the brokers' API users (JSON {"username": "mq-admin", "password": ...}).
OFFLINE_PASSWORD = "offline-password-1234"  # noqa: S105


@dataclass
class SimQueue:
    """One on-prem queue: a backlog its consumers drain, and optionally a straggler producer
    that keeps sending to the old broker for a while after the drain started."""

    name: str
    messages: int
    drain_per_minute: int = 1000
    in_flight: int = 0
    enqueue_per_minute: int = 0
    enqueue_for_seconds: float = 0.0
    enqueued_before: int = 100_000  # the broker's cumulative EnqueueCount when the drain starts

    def _produced(self, elapsed: float) -> float:
        return self.enqueue_per_minute * min(elapsed, self.enqueue_for_seconds) / 60

    def at(self, elapsed_seconds: float) -> tuple[int, int]:
        """(messages, in flight) after `elapsed_seconds` of draining."""
        elapsed = max(0.0, elapsed_seconds)
        backlog = self.messages + self._produced(elapsed) - self.drain_per_minute * elapsed / 60
        left = max(0, int(backlog + 0.999999))
        in_flight = min(self.in_flight, left)
        return left, in_flight

    def enqueue_count(self, elapsed_seconds: float) -> int:
        return self.enqueued_before + int(self._produced(max(0.0, elapsed_seconds)))

    def settled_after(self) -> float:
        """Seconds after the drain started from which `at` and `enqueue_count` no longer
        change: its producer stopped, and its consumers (if any) took the last message."""
        settled = self.enqueue_for_seconds if self.enqueue_per_minute else 0.0
        if self.drain_per_minute > 0:
            settled = max(settled, self.last_consumed_after())
        return settled

    def last_consumed_after(self) -> float:
        """Seconds after the drain started when this queue's last message is consumed
        (inf if never)."""
        produced = self.enqueue_per_minute * self.enqueue_for_seconds / 60
        if self.drain_per_minute <= 0:
            return 0.0 if self.messages == 0 and produced == 0 else float("inf")
        rate_in = self.enqueue_per_minute / 60
        rate_out = self.drain_per_minute / 60
        if rate_out > rate_in and self.messages / (rate_out - rate_in) <= self.enqueue_for_seconds:
            backlog_gone = self.messages / (rate_out - rate_in)
        else:
            backlog_gone = (self.messages + produced) / rate_out
        last_sent = self.enqueue_for_seconds if self.enqueue_per_minute else 0.0
        return max(backlog_gone, last_sent)


class _SetIndex:
    """The on-prem QueueSet's aggregates at any moment without every queue's figures.

    A queue whose producer stopped and whose consumers took its last message (`settled_after`)
    no longer changes: the queues sorted by that time, with running sums of their final
    figures, give the settled queues' share by one bisection; only the queues still changing
    are computed. Consumers depend on where the clients are now (`on_prem` consumers on each
    queue that has consumers) and on the shovels: counted per group, then corrected for the
    few shovelled queues."""

    def __init__(self, queues: list[SimQueue], queue_set: QueueSet) -> None:
        self.queues = queues
        self.queue_set = queue_set
        self.signature = _signature(queues)
        selected = [q for q in queues if queue_set.selects(q.name)]
        watched = [q for q in selected if not queue_set.ignores(q.name)]
        self.ignored = [q for q in selected if queue_set.ignores(q.name)]
        self.by_name = {q.name: q for q in watched}
        # Queues alike (same backlog, rates, producer) have the same figures at every moment:
        # computed once per kind (a benchmark's 10,000 queues are often one kind).
        kinds: dict[tuple[Any, ...], list[SimQueue]] = {}
        for queue in watched:
            kinds.setdefault(_kind(queue), []).append(queue)
        self.kinds = sorted(
            ((alike[0], len(alike)) for alike in kinds.values()),
            key=lambda kind: kind[0].settled_after(),
        )
        # A second's margin: at the very moment it settles a queue's backlog is 0 give or take
        # a rounding error, which `SimQueue.at` rounds up.
        self.settles = [queue.settled_after() + 1.0 for queue, _ in self.kinds]
        # prefix[k]: the final figures of the first k kinds (those settled first).
        self.prefix = [_Totals()]
        for (queue, alike), settles in zip(self.kinds, self.settles, strict=True):
            self.prefix.append(self.prefix[-1].plus(queue, settles, alike))

    def describes(self, queues: list[SimQueue], queue_set: QueueSet) -> bool:
        """Still these queues, as they were (a test may change a queue between runs)."""
        return (
            queues is self.queues
            and queue_set == self.queue_set
            and _signature(queues) == self.signature
        )

    def figures(
        self, elapsed: float, on_prem: int, before_drain: bool, shovels: dict[str, int]
    ) -> SetFigures:
        moment = max(0.0, elapsed)
        settled = bisect.bisect_right(self.settles, moment)
        totals = self.prefix[settled]
        for queue, alike in self.kinds[settled:]:
            totals = totals.plus(queue, moment, alike)
        ignored_messages = ignored_enqueued = 0
        for queue in self.ignored:
            ignored_messages += queue.at(moment)[0]
            ignored_enqueued += queue.enqueue_count(moment)
        # Consumers: `on_prem` on every queue that has consumers (before the drain: all).
        eligible = totals.count if before_drain else totals.draining
        eligible_with_messages = (
            totals.with_messages if before_drain else totals.draining_with_messages
        )
        consumers = on_prem * eligible
        with_consumers = eligible if on_prem else 0
        never_draining = totals.with_messages - (eligible_with_messages if on_prem else 0)
        for name, count in shovels.items():  # a running shovel: one more consumer of its queue
            shovelled = self.by_name.get(name)
            if shovelled is None or count <= 0:
                continue
            if not (shovelled.drain_per_minute or before_drain):
                continue
            consumers += count
            if not on_prem:
                with_consumers += 1
                never_draining -= shovelled.at(moment)[0] > 0
        return SetFigures(
            messages=totals.messages,
            in_flight=totals.in_flight,
            enqueued=totals.enqueued,
            dequeued=totals.dequeued,
            consumers=consumers,
            queues_reported=totals.count,
            queues_with_consumers=with_consumers,
            queues_never_draining=never_draining,
            ignored_messages=ignored_messages,
            ignored_enqueued=ignored_enqueued,
        )


@dataclass(frozen=True)
class _Totals:
    """Sums and counts over some watched queues at their moments (see `_SetIndex`)."""

    count: int = 0
    messages: int = 0
    in_flight: int = 0
    enqueued: int = 0
    dequeued: int = 0
    draining: int = 0  # queues whose consumers drain them (drainPerMinute > 0)
    with_messages: int = 0
    draining_with_messages: int = 0

    def plus(self, queue: SimQueue, elapsed: float, times: int = 1) -> _Totals:
        """These totals and `times` queues like `queue`, `elapsed` seconds into the drain."""
        messages, in_flight = queue.at(elapsed)
        enqueued = queue.enqueue_count(elapsed)
        draining = queue.drain_per_minute > 0
        return _Totals(
            count=self.count + times,
            messages=self.messages + messages * times,
            in_flight=self.in_flight + in_flight * times,
            enqueued=self.enqueued + enqueued * times,
            dequeued=self.dequeued + max(0, enqueued - messages) * times,
            draining=self.draining + draining * times,
            with_messages=self.with_messages + (messages > 0) * times,
            draining_with_messages=self.draining_with_messages
            + (draining and messages > 0) * times,
        )


def _signature(queues: list[SimQueue]) -> list[tuple[Any, ...]]:
    return [(queue.name, *_kind(queue)) for queue in queues]


def _kind(queue: SimQueue) -> tuple[Any, ...]:
    """What a simulated queue's figures depend on (all but its name)."""
    return (
        queue.messages,
        queue.drain_per_minute,
        queue.in_flight,
        queue.enqueue_per_minute,
        queue.enqueue_for_seconds,
        queue.enqueued_before,
    )


@dataclass
class World:
    parameters: dict[str, str]
    queues: list[SimQueue]
    broker_creation_polls: int = 2
    visibility_delay_seconds: float = 0.0
    retain_seconds: float | None = None  # simulated CloudWatch forgets older datapoints
    pruned_at: datetime | None = None
    published_until: datetime | None = None
    drain_started: datetime | None = None
    broker_checks: int = 0
    metrics_published: int = 0  # datums the simulated bridges put (on-prem and Amazon MQ)
    bridge_put_calls: int = 0  # the on-prem bridge's PutMetricData calls
    bridge_detail_samples: int = 0  # its samples that carried the per-queue detail
    detail_published_at: datetime | None = None
    amazon_mq_enqueue_per_minute: int = 600
    stray_consumers: int = 0
    amazon_mq: dict[str, list[float]] = field(default_factory=dict)  # queue -> [messages, enqueued]
    restart_hosts: dict[str, str | float] = field(default_factory=dict)
    restart_seen: dict[str, datetime] = field(default_factory=dict)  # command id -> first check
    host_status: dict[str, str] = field(default_factory=dict)  # instance id -> PingStatus
    subnet_zones: dict[str, str] = field(default_factory=dict)
    managed_hosts: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> tags
    # The brokers' HTTP APIs (topology copy) are simulated (simulated_brokers); the e2e tier
    # turns this off and lets the workflow reach real brokers.
    simulate_broker_apis: bool = True
    # Secrets the world creates, {name: value} (default: the plan's, with offline values).
    secrets: dict[str, str] = field(default_factory=dict)
    broker_apis: dict[str, Any] = field(default_factory=dict, repr=False)  # side -> simulated API
    plan: MigrationPlan | None = field(default=None, repr=False)
    _set_index: _SetIndex | None = field(default=None, repr=False)
    _publishing_for: tuple[MigrationPlan, Publishing] | None = field(default=None, repr=False)
    _ignored_for: tuple[MigrationPlan, dict[str, bool]] | None = field(default=None, repr=False)
    # Parameter Store writes seen (PutParameter, DeleteParameter(s)): the placement read from
    # the parameters is kept until the next write.
    parameter_writes: int = 0
    _placed_at: tuple[int, dict[str, int]] | None = field(default=None, repr=False)

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> World:
        return cls(
            parameters=dict(document.get("parameters", {})),
            queues=[
                SimQueue(
                    name=q["name"],
                    messages=int(q.get("messages", 0)),
                    drain_per_minute=int(q.get("drainPerMinute", 1000)),
                    in_flight=int(q.get("inFlight", 0)),
                    enqueue_per_minute=int(q.get("enqueuePerMinute", 0)),
                    enqueue_for_seconds=float(q.get("enqueueForSeconds", 0)),
                )
                for q in document.get("queues", [])
            ],
            broker_creation_polls=int(document.get("brokerCreationPolls", 2)),
            visibility_delay_seconds=float(document.get("visibilityDelaySeconds", 0)),
            amazon_mq_enqueue_per_minute=int(document.get("amazonMqEnqueuePerMinute", 600)),
            stray_consumers=int(document.get("strayConsumers", 0)),
            restart_hosts=dict(document.get("restartHosts", {})),
            host_status=dict(document.get("hosts", {})),
            subnet_zones=dict(document.get("subnetZones", {})),
        )

    @classmethod
    def from_raw_plan(cls, document: Any) -> World:
        """Best effort for a plan that fails validation: its parameters still exist, so a run
        can show that none of them changed."""
        parameters: dict[str, str] = {}
        if isinstance(document, dict):
            on_prem = document.get("onPrem")
            url = on_prem.get("url") if isinstance(on_prem, dict) else None
            for group in ("producers", "consumers"):
                names = (
                    (document.get(group) or {}).get("parameters")
                    if isinstance(document.get(group), dict)
                    else None
                )
                for name in names if isinstance(names, list) else []:
                    if isinstance(name, str) and name.startswith("/"):
                        parameters[name] = url if isinstance(url, str) else "ssl://on-prem:61617"
        return cls(parameters=parameters, queues=[])

    @classmethod
    def from_file(cls, path: Path) -> World:
        return cls.from_document(json.loads(path.read_text()))

    def fill_defaults(self, plan: MigrationPlan) -> None:
        for name in plan.all_parameters:
            self.parameters.setdefault(name, plan.on_prem.url)
        if not self.queues:
            self.queues = [
                SimQueue(name=q, messages=3000)
                for q in plan.on_prem.queues
                if not any(char in q for char in "*?[")  # a pattern names no queue
            ]

    # --- setup ---------------------------------------------------------------------------
    def install(self, emulator: Emulator, plan: MigrationPlan | None) -> None:
        """Create what the plan expects to find, and hook into the run."""
        self.plan = plan
        ssm = emulator.client("ssm")
        for name, value in self.parameters.items():
            ssm.put_parameter(Name=name, Value=value, Type="String")
        secret_values = dict(self.secrets)
        if plan is not None and plan.target.create is not None:
            for user in plan.target.create.users:
                secret_name = user.password_secret_arn.split(":secret:", 1)[1]
                secret_values.setdefault(secret_name, OFFLINE_PASSWORD)
        if plan is not None and plan.topology is not None:
            for arn in (
                plan.topology.on_prem_api.secret_arn if plan.topology.on_prem_api else None,
                plan.topology.amazon_mq_secret_arn,
            ):
                if arn:
                    secret_values.setdefault(
                        arn.split(":secret:", 1)[1],
                        json.dumps({"username": "mq-admin", "password": OFFLINE_PASSWORD}),
                    )
        secrets = emulator.client("secretsmanager")
        for secret_name, value in secret_values.items():
            secrets.create_secret(Name=secret_name, SecretString=value)
        if plan is not None and plan.topology is not None and self.simulate_broker_apis:
            emulator.cleanups.append(self._broker_apis(plan))
        if plan is not None:
            self._on_prem_hosts(emulator, plan)
            self._network(emulator, plan)
            self._managed_hosts(emulator, plan)
        for patch_ in simulated_apis(self):
            patch_.start()
            emulator.cleanups.append(patch_.stop)
        if plan is not None:
            # The bridge was running before the window: every queue reporting, consumers on.
            self._bridge_publish(self._emulator_now(), before_drain=True)
        emulator.hooks.append(self._on_invoke)
        emulator.ticks.append(self.tick)
        patch = mock.patch.object(
            SimpleSystemManagerResponse,
            "list_command_invocations",
            _list_command_invocations,
            create=True,
        )
        patch.start()
        emulator.cleanups.append(patch.stop)
        for method in ("put_parameter", "delete_parameter", "delete_parameters"):
            counted = mock.patch.object(
                SimpleSystemManagerBackend,
                method,
                self._counting(getattr(SimpleSystemManagerBackend, method)),
            )
            counted.start()
            emulator.cleanups.append(counted.stop)
        # moto 5.2.5 adds every EC2 instance to a command sent to InstanceIds (it filters
        # instances by the command's tag targets, and no filter matches all): a command goes
        # only to the hosts it names, as on AWS.
        targets = mock.patch.object(
            Command, "_get_instance_ids_from_targets", _instance_ids_from_targets
        )
        targets.start()
        emulator.cleanups.append(targets.stop)

    def _broker_apis(self, plan: MigrationPlan) -> Callable[[], None]:
        """**Simulated** brokers' HTTP APIs (simulated_brokers): the on-prem broker's at the
        plan's topology.onPremApi.url, holding a topology made from the plan's queues, and the
        Amazon MQ broker's at any *.amazonaws.com host, empty. Returns the uninstall."""
        topology = plan.topology
        assert topology is not None
        engine = plan.target.create.engine if plan.target.create else Engine.ACTIVEMQ
        names = [q.name for q in self.queues]
        admin = plan.target.create.users[0].username if plan.target.create else "mq-admin"
        if topology.amazon_mq_secret_arn:
            admin = "mq-admin"
        handler = SimulatedBrokerApis()
        on_prem: SimulatedRabbitApi | SimulatedJolokia
        if engine == Engine.RABBITMQ:
            on_prem = SimulatedRabbitApi("mq-admin", OFFLINE_PASSWORD)
            on_prem.put_exchange("/", "app", {"type": "direct"})
            on_prem.put_policy(
                "/",
                "ha-all",
                {"pattern": ".*", "apply-to": "queues", "definition": {"ha-mode": "all"}},
            )
            for name in names:
                on_prem.put_queue("/", name, {"durable": True})
                on_prem.add_binding(
                    "/", {"source": "app", "destination": name, "routing_key": name}
                )
            # Amazon MQ RabbitMQ 3.13+: new brokers' default queue type is quorum.
            amazon_mq: Any = SimulatedRabbitApi(
                admin, OFFLINE_PASSWORD, default_queue_type="quorum"
            )
        else:
            on_prem = SimulatedJolokia("mq-admin", OFFLINE_PASSWORD, queues=names)
            amazon_mq = None
        if isinstance(on_prem, SimulatedRabbitApi) and amazon_mq is not None:
            # The no-interruption procedure's shovels reach the Amazon MQ broker by its host.
            on_prem.shovel_peers[".amazonaws.com"] = amazon_mq
        if topology.on_prem_api is not None:
            handler.add(topology.on_prem_api.url, on_prem)
        self.broker_apis["onPrem"] = on_prem
        if amazon_mq is not None:
            handler.add(".amazonaws.com", amazon_mq)
            self.broker_apis["amazonMq"] = amazon_mq
        return handler.install()

    def _on_prem_hosts(self, emulator: Emulator, plan: MigrationPlan) -> None:
        """Hosts that SSM Run Command targets by tag. On AWS these are hybrid-activated
        managed instances; moto resolves tag targets only to EC2 instances, so one tagged EC2
        instance stands in for each tag target. It carries the stack's tag keys as the
        operator sets them (the stack may run commands only on hosts tagged so)."""
        tags = {k: v[0] for k, v in plan.stop_on_prem.target_tags.items()}
        if plan.stop_on_prem.target_tags:
            tags[emulator.stack_parameter("OnPremTagKey")] = "true"
        for group in (plan.producers, plan.consumers):
            if group.restart_hook and group.restart_hook.target_tags:
                tags.update({k: v[0] for k, v in group.restart_hook.target_tags.items()})
                tags[emulator.stack_parameter("ClientHostTagKey")] = "true"
        if tags:
            self.managed_hosts[_run_instance(emulator, tags)] = tags
        stop = plan.stop_on_prem
        if stop.method == StopMethod.EC2_STOP:
            on_prem = {emulator.stack_parameter("OnPremTagKey"): "true"}
            for instance_id in stop.instance_ids:
                with _ids(instances=instance_id):
                    _run_instance(emulator, on_prem)

    def _managed_hosts(self, emulator: Emulator, plan: MigrationPlan) -> None:
        """Every host a restart hook or an SSM stop names is a managed instance, tagged with
        the stack's key for what the plan does there."""
        named: list[tuple[list[str], str]] = [
            (list(group.restart_hook.instance_ids), "ClientHostTagKey")
            for group in (plan.producers, plan.consumers)
            if group.restart_hook
        ]
        if plan.stop_on_prem.method == StopMethod.SSM_COMMAND:
            named.append((list(plan.stop_on_prem.instance_ids), "OnPremTagKey"))
        for ids, key in named:
            for instance_id in ids:
                tags = self.managed_hosts.setdefault(instance_id, {})
                tags[emulator.stack_parameter(key)] = "true"

    def _network(self, emulator: Emulator, plan: MigrationPlan) -> None:
        """The plan's subnets (each in its own zone unless `subnetZones` says otherwise) and
        security groups, in the default VPC, with the plan's ids."""
        spec = plan.target.create
        if spec is None:
            return
        ec2 = emulator.client("ec2")
        vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
        zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
        for index, subnet_id in enumerate(spec.subnet_ids):
            zone = self.subnet_zones.get(subnet_id, zones[index % len(zones)])
            with _ids(subnet=subnet_id):
                ec2.create_subnet(
                    VpcId=vpc["VpcId"],
                    CidrBlock=f"172.31.{200 + index}.0/24",
                    AvailabilityZone=zone,
                )
        for group_id in spec.security_groups:
            with _ids(security_group=group_id):
                ec2.create_security_group(
                    GroupName=f"broker-{group_id}", Description="broker", VpcId=vpc["VpcId"]
                )

    # --- what happens while the workflow runs -------------------------------------------
    def _on_invoke(self, function: str, event: dict[str, Any]) -> None:
        if function in ("ShovelsFunction", "CheckDrainFunction", "RollbackFunction"):
            self._shovels_move()
        if function == "ValidatePlanFunction":
            self._preflight_sample(self._emulator_now())
        elif function == "CheckBrokerFunction":
            self._broker_creation(event["brokerId"])
        elif function == "CheckDrainFunction":
            self._bridge_publish(self._emulator_now())
        elif function == "CheckRestartFunction":
            self._restart_hooks_run(self._emulator_now())

    def _restart_hooks_run(self, now: datetime) -> None:
        """Simulated client hosts: each restart command's invocations take the outcome
        `restartHosts` gives their host (moto reports Success at once), and the command's
        status follows them as SSM's does."""
        for command in ssm_backends[ACCOUNT][REGION]._commands:
            if not command.comment.startswith("mq-cutover ") or "stop on-prem" in command.comment:
                continue
            seen = self.restart_seen.setdefault(command.command_id, now)
            running = (now - seen).total_seconds()
            for invocation in command.invocations:
                outcome = self.restart_hosts.get(
                    invocation["InstanceId"], self.restart_hosts.get("*", "Success")
                )
                if outcome == "never" or (
                    not isinstance(outcome, str) and running < float(outcome)
                ):
                    status, detail = "InProgress", "In Progress"
                elif outcome == "Undeliverable":
                    status, detail = "Failed", "Undeliverable"
                elif isinstance(outcome, str):
                    status, detail = outcome, outcome
                else:
                    status, detail = "Success", "Success"
                invocation["Status"], invocation["StatusDetails"] = status, detail
            statuses = {invocation["Status"] for invocation in command.invocations}
            command.status = (
                "InProgress"
                if "InProgress" in statuses
                else next((s for s in statuses if s != "Success"), "Success")
            )
            command.status_details = command.status

    def _emulator_now(self) -> datetime:
        from mq_cutover import clock  # the harness has pointed it at the simulated clock

        return clock.utcnow()

    def _broker_creation(self, broker_id: str) -> None:
        """Simulated creation time: moto's broker is RUNNING at once."""
        broker = mq_backends[ACCOUNT][REGION].brokers.get(broker_id)
        if broker is None:
            return
        self.broker_checks += 1
        # Real endpoints carry the broker id and an instance suffix (-1, -2); moto's are all
        # "mockmq", which would hide the active/standby failover:(-1,-2) URL.
        for index, instance in enumerate(broker.instances, start=1):
            host = f"{broker.id}-{index}.mq.{REGION}.amazonaws.com"
            instance["endpoints"] = [
                endpoint.replace("mockmq", host) for endpoint in instance["endpoints"]
            ]
        broker.state = (
            "CREATION_IN_PROGRESS"
            if self.broker_checks <= self.broker_creation_polls
            else "RUNNING"
        )

    def _shovels_move(self) -> None:
        """**Simulated** shovels (RabbitMQ, mode unordered): the on-prem management API's
        counters follow the simulated queues, and what was consumed on-prem while a shovel of
        this migration ran and no consumer was left there was the shovel's: published on Amazon
        MQ, where the consumers are, and consumed there."""
        on_prem, amazon_mq = self.broker_apis.get("onPrem"), self.broker_apis.get("amazonMq")
        if not isinstance(on_prem, SimulatedRabbitApi) or amazon_mq is None or not self.plan:
            return
        on_prem.connect()
        now = self._emulator_now()
        elapsed = (now - self.drain_started).total_seconds() if self.drain_started else 0.0
        placed = self._placement()
        shovels = self._shovel_counts()
        for queue in self.queues:
            if ("/", queue.name) not in on_prem.queues:
                continue
            ready, _ = queue.at(elapsed)
            published = queue.enqueue_count(elapsed)
            fresh = ("/", queue.name) not in on_prem.messages
            counters = on_prem._counters("/", queue.name)
            consumed = max(0, published - ready)
            taken = 0 if fresh else consumed - counters["acked"]
            shovelled = shovels.get(queue.name, 0) and not placed["onPrem"]
            if taken > 0 and shovelled and ("/", queue.name) in amazon_mq.queues:
                amazon_mq.publish("/", queue.name, taken)
                amazon_mq.client_ack("/", queue.name, taken)
            counters.update(
                ready=ready, published=published, acked=consumed, clients=placed["onPrem"]
            )

    def depth(self, now: datetime) -> dict[str, tuple[int, int]]:
        start = self.drain_started or now
        elapsed = (now - start).total_seconds()
        return {q.name: q.at(elapsed) for q in self.queues}

    def tick(self) -> None:
        """A handler slept: the bridge keeps publishing, shovels connect and move, on
        simulated time."""
        self._shovels_move()
        if self.drain_started is not None:
            self._bridge_publish(self._emulator_now())

    def last_consumed_at(self) -> datetime | None:
        """When the last watched message is consumed on simulated time (None: never)."""
        if self.drain_started is None or self.plan is None:
            return None
        ignore = self.plan.on_prem.ignore_queues
        from mq_cutover.drain import is_ignored

        after = max(
            (q.last_consumed_after() for q in self.queues if not is_ignored(q.name, ignore)),
            default=0.0,
        )
        return None if after == float("inf") else self.drain_started + timedelta(seconds=after)

    def _bridge_publish(self, now: datetime, before_drain: bool = False) -> None:
        """The on-prem broker's statistics, simulated, published by the product's bridge code
        (`mq_cutover.metrics_bridge`): one sample per metric period at period boundaries,
        readable `visibility_delay_seconds` after its timestamp. `before_drain`: the bridge
        before the run reached its drain (backlogs as they are, every queue's consumers on)."""
        if self.plan is None or not self.queues:
            return
        metrics = self.plan.on_prem.metrics
        step = metrics.period_seconds
        period = timedelta(seconds=step)
        if self.drain_started is None and not before_drain:
            self.drain_started = now
        visible = now - timedelta(seconds=self.visibility_delay_seconds)
        epoch = int((self.drain_started or now).timestamp())
        history = datetime.fromtimestamp(epoch - epoch % step, tz=UTC) - 3 * period
        if self.published_until is not None:
            # (the quiet stretch between the preflight's samples and the drain is left out:
            # the drain reads a few periods back, as it always has)
            moment = max(self.published_until + period, history)
        else:  # the bridge was running before the drain: a few points of history
            moment = history
        cloudwatch = boto3_client("cloudwatch")
        placed = self._placement()
        amazon_mq = self._amazon_mq_metrics()
        while moment <= visible:
            self._on_prem_sample(cloudwatch, moment, placed, before_drain)
            if amazon_mq is not None:
                self._amazon_mq_sample(cloudwatch, amazon_mq, moment, step, placed)
            self.published_until = moment
            moment += period
        if self.retain_seconds and (
            self.pruned_at is None or (now - self.pruned_at).total_seconds() >= 60
        ):
            # Long simulated drains only (the benchmark): keeps moto's datapoint list short.
            prune(
                cloudwatch_backends[ACCOUNT][REGION], now - timedelta(seconds=self.retain_seconds)
            )
            self.pruned_at = now

    def _on_prem_sample(
        self,
        cloudwatch: Any,
        moment: datetime,
        placed: dict[str, int],
        before_drain: bool,
        detail: bool = False,
    ) -> None:
        """One sample of the on-prem broker, published by the product's bridge code: the
        aggregates of the plan's QueueSet every sample, and every queue's own series with the
        first sample and then once every `onPrem.metrics.detailPeriodSeconds` (on its
        boundaries), or when `detail`. Before the drain began the backlog is as it was (at(0))
        and every queue's consumers are on.

        Samples without the detail never build the per-queue figures: the aggregates come from
        `_SetIndex` (the settled queues' sums kept, only the queues still changing computed),
        which `tests/unit/test_fast_metrics.py` checks equal to the product's `aggregate` of
        the per-queue figures. At 10,000 queues and a 1-second period that is most samples."""
        assert self.plan is not None
        metrics = self.plan.on_prem.metrics
        publishing = self._publishing()
        elapsed = (moment - self.drain_started).total_seconds() if self.drain_started else 0.0
        shovels = self._shovel_counts()
        period = publishing.detail_seconds
        high_resolution = metrics.period_seconds < 60
        detail = (
            detail
            or not high_resolution
            or self.detail_published_at is None
            or int(moment.timestamp() // period)
            > int(self.detail_published_at.timestamp() // period)
        )
        stats = self.on_prem_stats(elapsed, placed, before_drain, shovels) if detail else None
        figures = (
            aggregate(stats, publishing.queue_set)
            if stats is not None
            else self.set_figures(elapsed, placed, before_drain, shovels)
        )
        # The product's bridge code formats and publishes; only the broker is simulated.
        data = sample_data(
            figures,
            metrics,
            moment,
            publishing=publishing,
            high_resolution=high_resolution,
            queues_read=len(self.queues),
            detail=stats,
        )
        self.bridge_put_calls += put(cloudwatch, metrics.namespace, data)
        self.metrics_published += len(data)
        if detail:
            self.bridge_detail_samples += 1
            self.detail_published_at = max(moment, self.detail_published_at or moment)

    def _publishing(self) -> Publishing:
        """What the simulated bridge publishes: the plan's QueueSet and detail period (a bridge
        set up for this plan), with the default per-queue figures (the messages metric)."""
        assert self.plan is not None
        if self._publishing_for is None or self._publishing_for[0] is not self.plan:
            metrics = self.plan.on_prem.metrics
            detail = getattr(metrics, "detail_period_seconds", DEFAULT_DETAIL_SECONDS)
            publishing = Publishing(QueueSet.from_plan(self.plan), float(detail))
            self._publishing_for = (self.plan, publishing)
        return self._publishing_for[1]

    def on_prem_stats(
        self,
        elapsed: float,
        placed: dict[str, int],
        before_drain: bool,
        shovels: dict[str, int] | None = None,
    ) -> list[QueueStats]:
        """Every on-prem queue's figures `elapsed` seconds into the drain, as the broker's API
        would give them to the bridge."""
        shovels = self._shovel_counts() if shovels is None else shovels
        stats = []
        for queue in self.queues:
            messages, in_flight = queue.at(elapsed)
            enqueued = queue.enqueue_count(elapsed)
            stats.append(
                QueueStats(
                    queue=queue.name,
                    messages=messages,
                    in_flight=in_flight,
                    enqueued=enqueued,
                    dequeued=max(0, enqueued - messages),
                    consumers=(placed["onPrem"] + shovels.get(queue.name, 0))
                    if queue.drain_per_minute or before_drain
                    else 0,
                )
            )
        return stats

    def set_figures(
        self,
        elapsed: float,
        placed: dict[str, int],
        before_drain: bool,
        shovels: dict[str, int] | None = None,
    ) -> SetFigures:
        """The aggregates `on_prem_stats` would give, without building every queue's figures."""
        queue_set = self._publishing().queue_set
        index = self._set_index
        if index is None or not index.describes(self.queues, queue_set):
            index = self._set_index = _SetIndex(self.queues, queue_set)
        shovels = self._shovel_counts() if shovels is None else shovels
        return index.figures(elapsed, placed["onPrem"], before_drain, shovels)

    def _shovel_counts(self) -> dict[str, int]:
        """This migration's running (simulated) shovels on each on-prem queue: its consumers
        too. One pass over the shovels, not one per queue."""
        on_prem = self.broker_apis.get("onPrem")
        if not isinstance(on_prem, SimulatedRabbitApi):
            return {}
        counts: dict[str, int] = {}
        for (vhost, name), value in on_prem.shovel_parameters.items():
            queue = value.get("src-queue")
            if vhost == "/" and on_prem.shovel_state.get((vhost, name)) == "running" and queue:
                counts[queue] = counts.get(queue, 0) + 1
        return counts

    def _amazon_mq_api_figures(
        self, queue: str, messages: int, enqueued: int, placed: dict[str, int]
    ) -> None:
        """The simulated Amazon MQ management API (target.metrics.source managementApi) shows
        the simulated broker's figures, as its CloudWatch metrics do."""
        api = self.broker_apis.get("amazonMq")
        if not isinstance(api, SimulatedRabbitApi) or ("/", queue) not in api.queues:
            return
        counters = api._counters("/", queue)
        shovelled = counters["published"] - counters.get("fromProducers", 0)
        counters.update(
            ready=messages,
            published=shovelled + enqueued,
            fromProducers=enqueued,
            clients=placed["amazonMq"],
        )

    def _preflight_sample(self, now: datetime) -> None:
        """Validate Plan reads the bridge now: a later attempt's consumers are back on-prem
        (its rollback moved them) though the last period's sample, taken mid-rollback, does
        not show them yet. One more sample, as the bridge would take it."""
        if self.plan is None or not self.queues:
            return
        self._bridge_publish(now, before_drain=True)
        if self.published_until is not None and now > self.published_until:
            self._on_prem_sample(
                boto3_client("cloudwatch"), now, self._placement(), True, detail=True
            )

    def _placement(self) -> dict[str, int]:
        """Consumers on each broker and producers on Amazon MQ, from their parameters now.

        Read from the simulated Parameter Store itself (moto's backend), not through its API:
        the bridge samples every period, and GetParameters takes ten names a call (1,000 calls
        a sample at 10,000 parameters). Kept until the next write to the Parameter Store; the
        many clients sharing a URL are placed once."""
        if self._placed_at is not None and self._placed_at[0] == self.parameter_writes:
            return dict(self._placed_at[1])
        placed = {"onPrem": self.stray_consumers, "amazonMq": 0, "producersOnAmazonMq": 0}
        if self.plan is None:
            return placed
        from mq_cutover.client_urls import failover_members

        store = ssm_backends[ACCOUNT][REGION]
        on_prem_url = self.plan.on_prem.url
        on_prem = set(failover_members(on_prem_url)) | {on_prem_url}
        seen: dict[str, bool] = {}  # URL -> the client connects on-prem

        def connects_on_prem(value: str) -> bool:
            if value not in seen:
                seen[value] = value in on_prem or failover_members(value)[0] in on_prem
            return seen[value]

        def value_of(name: str) -> str:
            parameter = store.get_parameter(name)
            return (parameter.value if parameter is not None else None) or on_prem_url

        for name in self.plan.consumers.parameters:
            placed["onPrem" if connects_on_prem(value_of(name)) else "amazonMq"] += 1
        placed["producersOnAmazonMq"] = sum(
            1 for name in self.plan.producers.parameters if value_of(name) not in on_prem
        )
        self._placed_at = (self.parameter_writes, dict(placed))
        return placed

    def _counting(self, write: Callable[..., Any]) -> Callable[..., Any]:
        """A Parameter Store write that the placement's cache notices."""

        def counted(backend: Any, *args: Any, **kwargs: Any) -> Any:
            self.parameter_writes += 1
            return write(backend, *args, **kwargs)

        return counted

    def _amazon_mq_metrics(self) -> QueueMetrics | None:
        """Amazon MQ's own metrics for the broker the run created (None before it exists)."""
        if self.plan is None:
            return None
        brokers = list(mq_backends[ACCOUNT][REGION].brokers.values())
        if not brokers:
            return None
        metrics = self.plan.target.metrics
        dimensions = {"Broker": f"{brokers[-1].name}-1", **metrics.dimensions}
        return metrics.model_copy(update={"dimensions": dimensions})

    def _amazon_mq_sample(
        self,
        cloudwatch: Any,
        metrics: QueueMetrics,
        moment: datetime,
        step: int,
        placed: dict[str, int],
    ) -> None:
        """One period on the simulated Amazon MQ broker: producers pointed there add messages,
        consumers placed there take them."""
        assert self.plan is not None
        # Before the world started (its back-filled history) nothing had reached Amazon MQ, and
        # producers never send to a DLQ.
        flowing = self.drain_started is not None and moment >= self.drain_started
        adding = bool(placed["producersOnAmazonMq"]) and flowing
        added = self.amazon_mq_enqueue_per_minute * step / 60
        draining = bool(placed["amazonMq"])
        api = self.broker_apis.get("amazonMq")
        shows_api = isinstance(api, SimulatedRabbitApi)
        # Amazon MQ publishes once a minute; the simulation publishes every period it is read at.
        publishing = int(moment.timestamp()) % metrics.period_seconds == 0
        ignored = self._ignored_on_amazon_mq()
        stats = []
        for queue in self.queues:
            state = self.amazon_mq.setdefault(queue.name, [0.0, 0.0])
            if adding and not ignored[queue.name]:
                state[0] += added
                state[1] += added
            if draining and queue.drain_per_minute:
                state[0] = max(0.0, state[0] - queue.drain_per_minute * step / 60)
            if not (shows_api or publishing):
                continue
            messages = int(state[0] + 0.999999)
            if shows_api:
                self._amazon_mq_api_figures(queue.name, messages, int(state[1]), placed)
            if publishing:
                stats.append(
                    QueueStats(
                        queue=queue.name,
                        messages=messages,
                        in_flight=0,
                        enqueued=int(state[1]),
                        dequeued=int(state[1]) - messages,
                        consumers=placed["amazonMq"] if queue.drain_per_minute else 0,
                    )
                )
        if publishing:
            stats = self._amazon_mq_monitored(stats, metrics)
            data = metric_data(stats, metrics, moment, high_resolution=metrics.period_seconds < 60)
            # AWS publishes a broker's own metrics (AWS/AmazonMQ), not the product: written
            # into the simulated CloudWatch as they would appear, not through PutMetricData. In
            # a bridge's namespace they stand for what a second metrics bridge on the Amazon MQ
            # broker publishes (every queue's per-queue series), written the same way: not
            # counted as PutMetricData calls.
            put_vended(cloudwatch_backends[ACCOUNT][REGION], metrics.namespace, data)
            self.metrics_published += len(data)

    def _amazon_mq_monitored(
        self, stats: list[QueueStats], metrics: QueueMetrics
    ) -> list[QueueStats]:
        """The queues whose series reach CloudWatch. Simulated from AWS's quota ("Quotas in
        Amazon MQ", docs.aws.amazon.com/amazon-mq/latest/developer-guide/amazon-mq-limits.html):
        in `AWS/AmazonMQ`, an ActiveMQ broker's first 1,000 destinations (here: the world's
        queues in their order), a RabbitMQ broker's first 500 queues ordered by number of
        consumers (most first; ties in the world's order). Any other namespace is a bridge's:
        every queue."""
        if metrics.namespace != AMAZON_MQ_NAMESPACE:
            return stats
        engine = self._amazon_mq_engine()
        limit = AMAZON_MQ_MONITORED_DESTINATIONS[engine]
        if len(stats) <= limit:
            return stats
        if engine == Engine.RABBITMQ:
            return sorted(stats, key=lambda queue: -queue.consumers)[:limit]
        return stats[:limit]

    def _amazon_mq_engine(self) -> Engine:
        """The Amazon MQ broker's engine: the plan's, or the adopted (simulated) broker's."""
        assert self.plan is not None
        if self.plan.target.create is not None:
            return self.plan.target.create.engine
        brokers = list(mq_backends[ACCOUNT][REGION].brokers.values())
        engine = brokers[-1].engine_type.upper() if brokers else Engine.ACTIVEMQ.value
        return Engine.RABBITMQ if engine == Engine.RABBITMQ.value else Engine.ACTIVEMQ

    def _ignored_on_amazon_mq(self) -> dict[str, bool]:
        """Which queues the plan ignores (DLQs): producers never send to them. Matched once per
        plan, not once per queue and sample."""
        assert self.plan is not None
        if self._ignored_for is None or self._ignored_for[0] is not self.plan:
            from mq_cutover.drain import is_ignored

            patterns = self.plan.on_prem.ignore_queues
            ignored = {queue.name: is_ignored(queue.name, patterns) for queue in self.queues}
            self._ignored_for = (self.plan, ignored)
        return self._ignored_for[1]


_moto_instance_ids_from_targets = Command._get_instance_ids_from_targets


def _run_instance(emulator: Emulator, tags: dict[str, str]) -> str:
    """A simulated host: one EC2 instance with these tags; its id."""
    instance = emulator.client("ec2").run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )["Instances"][0]
    return str(instance["InstanceId"])


def _instance_ids_from_targets(command: Command) -> list[str]:
    return _moto_instance_ids_from_targets(command) if command.targets else []


def _list_command_invocations(response: SimpleSystemManagerResponse) -> ActionResult:
    """ListCommandInvocations (moto 5.2.5 has none): one invocation per host of a command, from
    moto's command record (as the world's simulated hosts left it). One page."""
    command_id = response._get_param("CommandId")
    commands = response.ssm_backend.list_commands(command_id, None)
    keep = ("CommandId", "InstanceId", "Comment", "DocumentName", "Status", "StatusDetails")
    return ActionResult(
        {
            "CommandInvocations": [
                {
                    **{key: invocation[key] for key in keep},
                    "RequestedDateTime": command.requested_date_time,
                }
                for command in commands
                for invocation in command.invocations
            ]
        }
    )


def default_world(plan: MigrationPlan) -> World:
    world = World(parameters={}, queues=[])
    world.fill_defaults(plan)
    return world


@contextmanager
def _ids(
    *, subnet: str | None = None, security_group: str | None = None, instances: str | None = None
) -> Iterator[None]:
    """moto draws random resource ids; the plan names its own: the generator is patched while
    one resource is created."""
    patches = []
    if subnet:
        patches.append(mock.patch.object(moto_subnets, "random_subnet_id", lambda: subnet))
    if security_group:
        patches.append(
            mock.patch.object(
                moto_security_groups, "random_security_group_id", lambda: security_group
            )
        )
    if instances:
        patches.append(mock.patch.object(moto_instances, "random_instance_id", lambda: instances))
    for patch in patches:
        patch.start()
    try:
        yield
    finally:
        for patch in reversed(patches):
            patch.stop()


# Simulated: what Amazon MQ offers in the emulator's region (DescribeBrokerEngineTypes and
# DescribeBrokerInstanceOptions, which moto 5.2.5 does not implement). Engine -> versions, and
# engine -> host instance type -> deployment modes.
SIMULATED_OFFERINGS: dict[str, dict[str, Any]] = {
    "ACTIVEMQ": {
        "versions": ["5.18", "5.17.6"],
        "instances": {
            "mq.t2.micro": ["SINGLE_INSTANCE"],
            "mq.t3.micro": ["SINGLE_INSTANCE"],
            "mq.m5.large": ["SINGLE_INSTANCE", "ACTIVE_STANDBY_MULTI_AZ"],
            "mq.m5.xlarge": ["SINGLE_INSTANCE", "ACTIVE_STANDBY_MULTI_AZ"],
            "mq.m5.2xlarge": ["SINGLE_INSTANCE", "ACTIVE_STANDBY_MULTI_AZ"],
            "mq.m5.4xlarge": ["SINGLE_INSTANCE", "ACTIVE_STANDBY_MULTI_AZ"],
        },
    },
    "RABBITMQ": {
        "versions": ["3.13", "4.2"],
        "instances": {
            "mq.t3.micro": ["SINGLE_INSTANCE"],
            "mq.m5.large": ["SINGLE_INSTANCE", "CLUSTER_MULTI_AZ"],
            "mq.m5.xlarge": ["SINGLE_INSTANCE", "CLUSTER_MULTI_AZ"],
            "mq.m7g.large": ["SINGLE_INSTANCE", "CLUSTER_MULTI_AZ"],
        },
    },
}
SIMULATED_ZONES = [f"{REGION}{letter}" for letter in "abcdef"]


def _engine_types(response: MQResponse) -> ActionResult:
    """DescribeBrokerEngineTypes, simulated (one page)."""
    wanted = response._get_param("EngineType")
    return ActionResult(
        {
            "BrokerEngineTypes": [
                {"EngineType": engine, "EngineVersions": [{"Name": v} for v in offer["versions"]]}
                for engine, offer in SIMULATED_OFFERINGS.items()
                if not wanted or engine == str(wanted).upper()
            ]
        }
    )


def _instance_options(response: MQResponse) -> ActionResult:
    """DescribeBrokerInstanceOptions, simulated (one page)."""
    engine_wanted = response._get_param("EngineType")
    type_wanted = response._get_param("HostInstanceType")
    options = [
        {
            "EngineType": engine,
            "HostInstanceType": instance_type,
            "StorageType": "EBS",
            "SupportedDeploymentModes": list(modes),
            "SupportedEngineVersions": list(offer["versions"]),
            "AvailabilityZones": [{"Name": zone} for zone in SIMULATED_ZONES],
        }
        for engine, offer in SIMULATED_OFFERINGS.items()
        for instance_type, modes in offer["instances"].items()
        if (not engine_wanted or engine == str(engine_wanted).upper())
        and (not type_wanted or instance_type == type_wanted)
    ]
    return ActionResult({"BrokerInstanceOptions": options})


def managed_instances(world: World) -> list[dict[str, Any]]:
    """The world's SSM managed instances (what DescribeInstanceInformation lists)."""
    listed = []
    for instance_id, tags in world.managed_hosts.items():
        status = world.host_status.get(instance_id, "Online")
        if status == "absent":
            continue
        listed.append(
            {
                "InstanceId": instance_id,
                "PingStatus": status,
                "ResourceType": "ManagedInstance"
                if instance_id.startswith("mi-")
                else "EC2Instance",
                "Tags": dict(tags),
            }
        )
    return listed


def simulated_apis(world: World) -> list[Any]:
    """Patches (not yet started) answering the APIs moto 5.2.5 lacks that the preflight reads:
    SSM DescribeInstanceInformation from `world.managed_hosts` / `world.host_status`, and
    Amazon MQ's engine and instance offerings from SIMULATED_OFFERINGS."""

    def describe_instance_information(response: SimpleSystemManagerResponse) -> ActionResult:
        filters = response._get_param("Filters") or []
        found = []
        for host in managed_instances(world):
            keep = True
            for wanted in filters:
                key, values = str(wanted["Key"]), list(wanted["Values"])
                if key == "InstanceIds":
                    keep &= host["InstanceId"] in values
                elif key == "PingStatus":
                    keep &= host["PingStatus"] in values
                elif key.startswith("tag:"):
                    keep &= host["Tags"].get(key[4:]) in values
                elif key == "tag-key":
                    keep &= any(k in values for k in host["Tags"])
            if keep:
                found.append({k: v for k, v in host.items() if k != "Tags"})
        return ActionResult({"InstanceInformationList": found})

    routes = {
        "{0}/v1/broker-engine-types$": MQResponse.dispatch,
        "{0}/v1/broker-instance-options$": MQResponse.dispatch,
    }
    return [
        mock.patch.object(
            SimpleSystemManagerResponse,
            "describe_instance_information",
            describe_instance_information,
            create=True,
        ),
        mock.patch.dict(moto_mq_urls.url_paths, routes),
        mock.patch.object(MQResponse, "describe_broker_engine_types", _engine_types, create=True),
        mock.patch.object(
            MQResponse, "describe_broker_instance_options", _instance_options, create=True
        ),
    ]

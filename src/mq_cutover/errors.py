"""Typed failures. A handler lets them escape so the state machine's Retry/Catch can route them
by class name (the Lambda error type is the exception's class name)."""

from __future__ import annotations


class MigrationError(Exception):
    """Base class of every failure the workflow routes by name."""


class PlanInvalid(MigrationError):
    """The migration plan failed validation. Raised before any side effect."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class BrokerCreationFailed(MigrationError):
    """Amazon MQ reports the broker in a state it will not leave (CREATION_FAILED, deleting)."""


class BrokerNotFound(MigrationError):
    """The broker to adopt or watch does not exist."""


class BrokerMismatch(MigrationError):
    """A broker with this migration's CreatorRequestId exists but differs from the plan."""


class ParameterConflict(MigrationError):
    """A client parameter was changed by someone else while the migration owned it."""


class DrainCheckFailed(MigrationError):
    """The drain check could not read the on-prem queue metrics."""


class OnPremStopFailed(MigrationError):
    """Stopping the on-prem broker failed (command failed, instances did not stop)."""


class AwsThrottled(MigrationError):
    """An AWS API throttled us or failed transiently; the state machine retries with back-off."""


class MigrationAlreadyRunning(MigrationError):
    """Another execution is running this migration. Raised before any change."""


class MetricsSourceFailed(MigrationError):
    """The metrics bridge could not read the on-prem broker's HTTP API (Jolokia, management)."""


class RestartHookFailed(MigrationError):
    """A client restart hook (SSM Run Command) failed, reached no host, or did not finish in
    time; the message names each host that did not succeed and its status."""


class LeaseLost(MigrationError):
    """This execution no longer holds the migration's lease (a later attempt took it, e.g. while
    this one had failed and was then redriven). Raised before any change."""


class ApproversInvalid(MigrationError):
    """The stack's approver registry cannot prove who votes: an entry is malformed, there are
    fewer approvers than a quorum needs, or a subscription could deliver someone's link to
    someone else. Raised before a link is sent."""


class AbortRequested(MigrationError):
    """A person asked for this migration's rollback (`mq-cutover abort`): raised by the next step
    that checks the lease, before it changes anything, so the run takes its rollback path. The
    message says who (name and IAM principal), when and why."""


class BrokerApiFailed(MigrationError):
    """A broker's HTTP API (RabbitMQ management API, ActiveMQ Jolokia) did not answer, refused
    the credentials, or answered something that is not what it documents. The message names the
    broker (on-prem or Amazon MQ), the call and the HTTP status, never a password."""


class TopologyCopyFailed(MigrationError):
    """The on-prem topology could not be made the Amazon MQ broker's: the broker refused part of
    it, or after the copy the two brokers still differ (each difference is named). Raised before
    any client moves; nothing on-prem is changed."""


class ShovelFailed(MigrationError):
    """The RabbitMQ no-interruption procedure's shovels (defined on the on-prem broker) could
    not be started, or the on-prem broker cannot run them (the rabbitmq_shovel plugin is not
    enabled). Raised before any producer moves; the run rolls back."""

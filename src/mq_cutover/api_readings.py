"""Drain readings from the Amazon MQ broker's RabbitMQ management API, where CloudWatch has
nothing (Amazon MQ for RabbitMQ 4.x publishes no per-queue metrics): `target.metrics.source:
managementApi`.

Each reading is one `GET /api/queues/{vhost}` (paged), through the metrics bridge's own reader
(`metrics_bridge.read_rabbitmq`); its figures fill the drain's per-queue structure, so the rules
are the drain's (`mq_cutover.drain`):
- messages = `messages`, in flight = `messages_unacknowledged`, consumers = `consumers`, the
  enqueue counter = `message_stats.publish`;
- the vhost is `target.metrics.dimensions.VirtualHost` (default `/`);
- a queue the API does not list, or lists without its figures, is missing; a read that fails
  (the API, its URL or its credentials) makes every queue missing and says why. Never zero;
- a live read is fresh: its time is the reading's time. RabbitMQ refreshes queue statistics every
  5 seconds, so a read less than NEW_READING_SECONDS after the last counted one keeps that one's
  time: the drain counts it once, as it counts a re-read CloudWatch datapoint once;
- producers quiet compares each queue's counter with the previous read. Within one Lambda call
  the previous read's counters are kept in memory; a call's first read compares a fingerprint of
  every counter with the one the previous call's summary carries (`enqueueDigest`): equal, every
  counter is unchanged and the read can count; otherwise each queue has one value, and a single
  value proves nothing yet.

The broker's URL (its console URL, DescribeBroker) and the credentials (the administrative
user's secret, GetSecretValue) are read once per Lambda call, at the first read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover import broker_api
from mq_cutover.aws import raise_if_throttled
from mq_cutover.drain import QueueNow, Side, SideFigures, is_ignored
from mq_cutover.errors import BrokerApiFailed, DrainCheckFailed, MetricsSourceFailed
from mq_cutover.metrics_bridge import Fetch, QueueStats, Source, SourceType, read_rabbitmq
from mq_cutover.plan import MigrationPlan

DEFAULT_VHOST = "/"
VHOST_DIMENSION = "VirtualHost"
# RabbitMQ's statistics interval is 5 s: two reads this far apart never see the same snapshot.
NEW_READING_SECONDS = 10
WHERE = "Amazon MQ management API"


def vhost_of(plan: MigrationPlan) -> str:
    """The virtual host whose queues are read: `target.metrics.dimensions.VirtualHost`."""
    return plan.target.metrics.dimensions.get(VHOST_DIMENSION, DEFAULT_VHOST)


def digest(side: str, counters: dict[str, int]) -> str:
    """A short fingerprint of every queue's enqueue counter (equal: no counter moved)."""
    text = json.dumps([side, sorted(counters.items())], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ManagementApiReadings:
    """One Lambda call's readings of a RabbitMQ broker's management API (a drain `LiveSource`).
    `connect` finds the endpoint (URL and credentials); it is called once, at the first read."""

    def __init__(
        self,
        connect: Callable[[], broker_api.Endpoint],
        vhost: str = DEFAULT_VHOST,
        *,
        fetch: Fetch | None = None,
    ) -> None:
        self._connect = connect
        self.vhost = vhost
        self._fetch = fetch
        self._endpoint: broker_api.Endpoint | None = None
        self._connect_error: str | None = None
        self.resume(None)

    def resume(self, previous: dict[str, Any] | None) -> None:
        previous = previous or {}
        self._discovery_error: str | None = None
        self._counters: dict[str, int] = {}  # the last counted read's, this call
        self._digest: str | None = previous.get("enqueueDigest")  # the last counted read's
        last = previous.get("lastReadingAt")
        self._counted_at: datetime | None = datetime.fromisoformat(last) if last else None
        self._carried = self._digest is not None  # no read in this call yet

    def _source(self) -> Source:
        if self._endpoint is None and self._connect_error is None:
            try:
                self._endpoint = self._connect()
            except BrokerApiFailed as exc:
                self._connect_error = str(exc)  # not asked again in this call
        if self._endpoint is None:
            raise BrokerApiFailed(self._connect_error or "no endpoint")
        api = self._endpoint
        return Source(
            SourceType.RABBITMQ,
            api.url,
            vhost=self.vhost,
            username=api.username,
            password=api.password,
        )

    def _answer(self) -> dict[str, QueueStats | None]:
        """Every queue of the vhost: its figures, or None when listed without them."""
        source = self._source()
        unreported: list[str] = []
        try:
            if self._fetch is None:
                stats = read_rabbitmq(source, unreported=unreported)
            else:
                stats = read_rabbitmq(source, self._fetch, unreported=unreported)
        except (KeyError, TypeError, ValueError) as exc:
            raise MetricsSourceFailed(f"answered something unexpected ({exc!r})") from None
        found: dict[str, QueueStats | None] = dict.fromkeys(unreported)
        found.update((queue.queue, queue) for queue in stats)
        return found

    def queue_names(self) -> list[str]:
        try:
            return sorted(self._answer())
        except (BrokerApiFailed, MetricsSourceFailed) as exc:
            # Which queues match the plan's patterns is unknown: every reading of this call
            # reports every queue missing (the next call discovers again).
            self._discovery_error = f"queue discovery: {exc}"
            return []

    def read(self, side: Side, queues: list[str], now: datetime, quiet: bool) -> SideFigures:
        try:
            if self._discovery_error:
                raise MetricsSourceFailed(self._discovery_error)
            answer = self._answer()
        except (BrokerApiFailed, MetricsSourceFailed) as exc:
            unknown = {
                queue: QueueNow(messages=-1, missing=not is_ignored(queue, side.ignore))
                for queue in queues
            }
            return SideFigures(unknown, error=f"{WHERE}: {exc}")
        new = self._counted_at is None or (
            (now - self._counted_at).total_seconds() >= NEW_READING_SECONDS
        )
        stamp = now if new or self._counted_at is None else self._counted_at
        figures: dict[str, QueueNow] = {}
        counters: dict[str, int] = {}
        watched = 0
        for queue in queues:
            stats = answer.get(queue)
            if is_ignored(queue, side.ignore):
                figures[queue] = QueueNow(messages=stats.messages if stats else -1)
                continue
            watched += 1
            if stats is None:  # not listed, or listed without its figures
                figures[queue] = QueueNow(missing=True)
                continue
            figures[queue] = QueueNow(
                messages=stats.messages,
                in_flight=stats.in_flight,
                consumers=stats.consumers,
                stamp=stamp,
            )
            counters[queue] = stats.enqueued
        if new:
            self._counted_at = now
        if not quiet:
            return SideFigures(figures)
        fingerprint = digest(side.name.value, counters) if len(counters) == watched else None
        before = self._counters
        if self._carried and fingerprint is not None and fingerprint == self._digest:
            before = counters  # unchanged since the previous call's last read
        for queue, value in counters.items():
            earlier = before.get(queue)
            figures[queue].enqueues = [float(value)] + ([] if earlier is None else [float(earlier)])
        if new:
            self._counters = {**self._counters, **counters}
            self._digest = fingerprint
            self._carried = False
        return SideFigures(figures, digest=self._digest)


def amazon_mq_readings(
    plan: MigrationPlan,
    secrets: Any,
    mq: Any,
    broker_id: str | None,
    *,
    fetch: Fetch | None = None,
) -> ManagementApiReadings:
    """Readings of the Amazon MQ broker's management API: its console URL (DescribeBroker) and
    its administrative user (`plan.admin_secret_arn`; a bare-password secret is the created
    broker's user's). An AWS call that fails raises DrainCheckFailed (AwsThrottled when
    throttled); a broker with no console URL or a secret without a user and password is a
    failed read (every queue missing, and why)."""

    def connect() -> broker_api.Endpoint:
        if not broker_id:
            raise BrokerApiFailed("the step was given no Amazon MQ broker id (brokerId)")
        secret = plan.admin_secret_arn
        if secret is None:
            raise BrokerApiFailed("the plan names no administrative user's secret")
        username = plan.target.create.users[0].username if plan.target.create else None
        try:
            url = broker_api.amazon_mq_api_url(mq, broker_id)
            return broker_api.endpoint(secrets, url, secret, side="Amazon MQ", username=username)
        except ClientError as exc:
            raise_if_throttled(exc)
            raise DrainCheckFailed(f"{exc.operation_name} failed: {exc}") from exc

    return ManagementApiReadings(connect, vhost_of(plan), fetch=fetch)

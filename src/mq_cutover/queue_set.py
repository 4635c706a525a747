"""The set of on-prem queues one migration watches, and the aggregate series the metrics bridge
publishes for it so the drain can read a handful of metrics per reading instead of several per
queue.

The bridge and the drain agree on the set without talking to each other: both build a
`QueueSet` from the same inputs (the plan's `onPrem.queues` and `onPrem.ignoreQueues`, or the
bridge's `--queues` / `--ignore-queues`), and its `digest` is the value of the `QueueSet`
dimension of every aggregate datum. A drain whose plan selects other queues than the bridge
finds no aggregate under its digest: it never reads another set's figures as its own.

Selection, as the drain has always watched: a queue is *selected* when the plan names it, or
matches one of its glob patterns (`*`, `?`, `[`), or the plan lists no queue at all (every
queue). A selected queue matching an ignore pattern (a DLQ) is *ignored*: counted and
reported, never waited for.

The aggregates, one datum each per sample (`Aggregate`), over the selected, not ignored queues
the bridge found; the ignored ones only in `SetIgnoredMessages` / `SetIgnoredEnqueued`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

AGGREGATE_DIMENSION = "QueueSet"


class Aggregate(StrEnum):
    """Aggregate metric names (namespace and fixed dimensions: the plan's `onPrem.metrics`)."""

    MESSAGES = "SetMessages"  # sum of the queues' messages (ActiveMQ QueueSize, RabbitMQ messages)
    IN_FLIGHT = "SetInFlight"  # sum of in flight / unacknowledged
    ENQUEUED = "SetEnqueued"  # sum of the cumulative enqueue counters
    DEQUEUED = "SetDequeued"  # sum of the cumulative dequeue counters
    EXPIRED = "SetExpired"  # sum of ExpiredCount (ActiveMQ only; RabbitMQ: never published)
    CONSUMERS = "SetConsumers"  # sum of consumers
    QUEUES_REPORTED = "SetQueuesReported"  # how many selected, not ignored queues were read
    QUEUES_WITH_CONSUMERS = "SetQueuesWithConsumers"  # ... with at least one consumer
    QUEUES_NEVER_DRAINING = "SetQueuesNeverDraining"  # ... with messages and no consumer
    IGNORED_MESSAGES = "SetIgnoredMessages"  # messages in the ignored queues (DLQs)
    IGNORED_ENQUEUED = "SetIgnoredEnqueued"  # their enqueue counters (dead-lettered so far)
    SAMPLE_TIME = "SetSampleTime"  # the sample's time, seconds since the epoch (UTC)


class DetailFigures(StrEnum):
    """Which per-queue series the bridge publishes at its slower detail period."""

    MESSAGES = "messages"  # the messages metric only: names and per-queue counts
    ALL = "all"  # messages, in flight, enqueued, dequeued, consumers, expired (per-queue
    # reconciliation and consumer names; six custom metrics per queue)


def is_pattern(entry: str) -> bool:
    return any(char in entry for char in "*?[")


def matches(queue: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(queue, pattern) for pattern in patterns)


@dataclass(frozen=True)
class QueueSet:
    """Which queues are watched (`names`, `patterns`; neither: all) and which are ignored."""

    names: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    @classmethod
    def of(cls, queues: Iterable[str], ignore: Iterable[str]) -> QueueSet:
        listed = list(queues)
        return cls(
            names=tuple(sorted({q for q in listed if not is_pattern(q)})),
            patterns=tuple(sorted({q for q in listed if is_pattern(q)})),
            ignore=tuple(sorted(set(ignore))),
        )

    @classmethod
    def from_plan(cls, plan: Any) -> QueueSet:
        """The set of a `MigrationPlan` (its on-prem queues and ignore patterns)."""
        return cls.of(plan.on_prem.queues, plan.on_prem.ignore_queues)

    def selects(self, queue: str) -> bool:
        if not self.names and not self.patterns:
            return True
        return queue in self.names or matches(queue, self.patterns)

    def ignores(self, queue: str) -> bool:
        return matches(queue, self.ignore)

    @property
    def digest(self) -> str:
        """16 hex digits naming the set: the `QueueSet` dimension's value."""
        canonical = json.dumps(
            {"names": self.names, "patterns": self.patterns, "ignore": self.ignore},
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def dimensions(self, fixed: dict[str, str]) -> list[dict[str, str]]:
        """An aggregate datum's dimensions: the fixed ones (sorted), then `QueueSet`."""
        dims = [{"Name": k, "Value": v} for k, v in sorted(fixed.items())]
        return [*dims, {"Name": AGGREGATE_DIMENSION, "Value": self.digest}]

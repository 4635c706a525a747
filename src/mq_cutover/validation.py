"""Validate a plan against the plan schema and against the account, with read-only calls only.

The checks are the preflight's (`mq_cutover.preflight`, also `mq-cutover preflight`): one
library, so a run fails at Validate Plan, before any change, for every reason the terminal would
have shown. Nothing here changes anything: a plan that fails never creates a broker or touches a
parameter.

The execution input may name the plan instead (`{"planRef": ...}`, `mq_cutover.plan_store`): it
is read first, from the stack's plan bucket or the plan parameter prefix only, and a bad
reference is a PlanInvalid naming planRef, before any check and any change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mq_cutover.errors import PlanInvalid
from mq_cutover.plan import MigrationPlan, parse_plan
from mq_cutover.plan_store import PlanSources, resolve
from mq_cutover.preflight import (
    ATTEMPT_SEPARATOR,
    Check,
    Clients,
    StackSettings,
    approval_problems,
    failures,
    run_checks,
)

__all__ = [
    "ATTEMPT_SEPARATOR",
    "PlanSources",
    "approval_problems",
    "checked_plan",
    "validate_plan",
]


def checked_plan(checks: list[Check], document: Any) -> MigrationPlan:
    """The plan, if every check held; else PlanInvalid naming each failed check's field."""
    problems = failures(checks)
    if problems:
        raise PlanInvalid(problems)
    return parse_plan(document)


def validate_plan(
    document: Any,
    *,
    execution_name: str | None,
    stack: StackSettings,
    clients: Clients,
    now: datetime | None = None,
    definition: dict[str, Any] | None = None,
    sources: PlanSources | None = None,
) -> MigrationPlan:
    """The plan, checked: every preflight check, the running execution left out of "already
    running". `sources`: where a plan named by reference may be read (None: the input must be
    the plan itself)."""
    if sources is not None:
        document, _reference = resolve(document, sources)
    elif isinstance(document, dict) and "planRef" in document:
        raise PlanInvalid(["planRef: this stack reads no plan by reference (no plan bucket)"])
    checks = run_checks(
        document,
        stack,
        clients,
        execution_name=execution_name,
        now=now,
        definition=definition,
    )
    return checked_plan(checks, document)

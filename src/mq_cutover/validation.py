"""Validate a plan against the plan schema and against the account, with read-only calls only.

The checks are the preflight's (`mq_cutover.preflight`, also `mq-cutover preflight`): one
library, so a run fails at Validate Plan, before any change, for every reason the terminal would
have shown. Nothing here changes anything: a plan that fails never creates a broker or touches a
parameter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mq_cutover.errors import PlanInvalid
from mq_cutover.plan import MigrationPlan, parse_plan
from mq_cutover.preflight import (
    ATTEMPT_SEPARATOR,
    Check,
    Clients,
    StackSettings,
    approval_problems,
    failures,
    run_checks,
)

__all__ = ["ATTEMPT_SEPARATOR", "approval_problems", "checked_plan", "validate_plan"]


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
) -> MigrationPlan:
    """The plan, checked: every preflight check, the running execution left out of "already
    running"."""
    checks = run_checks(
        document,
        stack,
        clients,
        execution_name=execution_name,
        now=now,
        definition=definition,
    )
    return checked_plan(checks, document)

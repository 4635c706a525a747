"""`mq-cutover approve|reject MIGRATION_ID`: decide a gate from a terminal. The approver is the
caller's IAM identity (STS GetCallerIdentity), not a typed name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mq_cutover.approvals import decide, pending_for


def approvals_table_name(cloudformation: Any, stack: str) -> str:
    """The stack's approvals table, from its outputs."""
    (described,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    for output in described.get("Outputs", []):
        if output["OutputKey"] == "ApprovalsTableName":
            return str(output["OutputValue"])
    raise LookupError(f"stack {stack} has no ApprovalsTableName output")


def decide_from_terminal(
    table: Any,
    sfn: Any,
    sts: Any,
    *,
    migration_id: str,
    decision: str,
    gate: str | None,
    comment: str,
    now: datetime,
) -> dict[str, Any]:
    pending = pending_for(table, migration_id, gate)
    if not pending:
        where = f" at gate {gate}" if gate else ""
        return {"outcome": "nothing-pending", "detail": f"{migration_id} is not waiting{where}"}
    if len(pending) > 1:
        gates = sorted({str(p["gate"]) for p in pending})
        return {"outcome": "ambiguous", "detail": f"several gates are open: {gates}; use --gate"}
    identity = str(sts.get_caller_identity()["Arn"])
    return decide(
        table,
        sfn,
        approval_id=str(pending[0]["approvalId"]),
        decision=decision,
        decided_by=identity,
        comment=comment,
        source="cli",
        now=now,
    )

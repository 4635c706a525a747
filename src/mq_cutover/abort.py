"""A person's abort (`mq-cutover abort`, the approval API's POST /decisions with decision
"abort"): recorded on the migration's lease item (mq_cutover.lease.record_abort, refused after
the point of no return), then every open gate of the run is failed with AbortRequested, so a run
waiting for a decision rolls back at once. A run anywhere else meets the abort at its next step
or reading (verify_lease, check_abort) and takes the same rollback path a rejected gate takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mq_cutover.approval_records import pending_for
from mq_cutover.approval_resume import ResumeFailed
from mq_cutover.lease import abort_text, record_abort

ERROR = "AbortRequested"
# A rollback's own gate is never closed by an abort: the rollback is what an abort asks for.
ROLLBACK_GATES = frozenset({"rollbackDrainTimeout"})
_NOT_WAITING = ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def request_abort(
    leases: Any,
    approvals: Any,
    sfn: Any,
    *,
    migration_id: str,
    approver: Mapping[str, str],
    principal: str,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    """Record the abort and close the run's open gates. `approver` ({"id", "name"}) and
    `principal` are who the caller proved to be (the verified SigV4 signature), never typed.

    An abort already recorded (a retried request, or a second person) closes any gate still open
    too, so retrying after a failed delivery is safe. ResumeFailed if a gate could not be closed
    (the abort is recorded; the same request again closes it)."""
    result = record_abort(
        leases,
        migration_id=migration_id,
        approver=approver,
        principal=principal,
        reason=reason,
        now=now,
    )
    if result["outcome"] in ("abort-requested", "already-aborted"):
        result["closedGates"] = close_open_gates(
            approvals, sfn, migration_id=migration_id, abort=result["abort"], now=now
        )
    return result


def close_open_gates(
    approvals: Any, sfn: Any, *, migration_id: str, abort: Mapping[str, Any], now: datetime
) -> list[str]:
    """Fail each open gate of the migration (not a rollback's) with AbortRequested, once: the
    gate's record turns ABORTED first (a conditional write, so a concurrent approval and the
    abort cannot both resume the run), then its task fails. Returns the gates closed."""
    closed = []
    cause = abort_text(abort)
    for record in pending_for(approvals, migration_id):
        if record["gate"] in ROLLBACK_GATES:
            continue
        try:
            approvals.update_item(
                Key={"approvalId": record["approvalId"]},
                UpdateExpression="SET #s = :aborted, decidedBy = :by, decidedAt = :at, "
                "#c = :reason, #src = :src",
                ConditionExpression="#s = :pending",
                ExpressionAttributeNames={"#s": "status", "#c": "comment", "#src": "source"},
                ExpressionAttributeValues={
                    ":aborted": "ABORTED",
                    ":pending": "PENDING",
                    ":by": str(abort.get("name")),
                    ":at": _iso(now),
                    ":reason": str(abort.get("reason")),
                    ":src": "abort",
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                continue  # decided meanwhile: the run's next step meets the abort
            raise
        try:
            sfn.send_task_failure(taskToken=record["taskToken"], error=ERROR, cause=cause[:32768])
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in _NOT_WAITING:
                _reopen(approvals, str(record["approvalId"]))
                raise ResumeFailed(str(exc)) from exc
            continue  # the run no longer waits there (timed out, or ended)
        except BotoCoreError as exc:
            _reopen(approvals, str(record["approvalId"]))
            raise ResumeFailed(str(exc)) from exc
        closed.append(str(record["gate"]))
    return closed


def _reopen(approvals: Any, approval_id: str) -> None:
    """The gate's task could not be failed: open it again, so a retried abort closes it."""
    approvals.update_item(
        Key={"approvalId": approval_id},
        UpdateExpression="SET #s = :pending REMOVE decidedBy, decidedAt",
        ConditionExpression="#s = :aborted",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":pending": "PENDING", ":aborted": "ABORTED"},
    )

"""Delivering a decided gate to Step Functions (SendTaskSuccess / SendTaskFailure): the token
is read from the record and used here only; a delivery that fails reopens the gate.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mq_cutover.approval_records import OUTCOMES, public_outcome, reopen


class ResumeFailed(Exception):
    """The decision could not be delivered to Step Functions; the gate is open again."""


def resume(
    table: Any, sfn: Any, record: dict[str, Any], decision: str, now: datetime
) -> dict[str, Any]:
    token = record["taskToken"]
    by = str(record["decidedBy"])
    comment = str(record.get("comment") or "")
    try:
        if decision == "approve":
            sfn.send_task_success(
                taskToken=token,
                output=json.dumps(
                    {"approved": True, "gate": record["gate"], "by": by, "comment": comment}
                ),
            )
        elif decision == "extend":
            sfn.send_task_success(
                taskToken=token,
                output=json.dumps(
                    {
                        "approved": False,
                        "extend": True,
                        "extendMinutes": int(record["extendMinutes"]),
                        "gate": record["gate"],
                        "by": by,
                        "comment": comment,
                    }
                ),
            )
        else:
            why = f": {comment}" if comment else " (no reason given)"
            sfn.send_task_failure(
                taskToken=token,
                error="Rejected",
                cause=f"{record['gate']} rejected by {by}{why}"[:32768],
            )
    except BotoCoreError as exc:  # no answer at all (connection, timeout): not delivered
        reopen(table, record, "PENDING")
        raise ResumeFailed(str(exc)) from exc
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
            # The workflow no longer waits here (timed out, or the run ended): say so for good.
            reopen(table, record, "EXPIRED")
            return {"outcome": "expired", "expiresAt": record.get("expiresAt")}
        # Not delivered (throttled, network): the gate is open again; the person can retry.
        reopen(table, record, "PENDING")
        raise ResumeFailed(str(exc)) from exc
    return public_outcome(record, OUTCOMES[decision], by, now)

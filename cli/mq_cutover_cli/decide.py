"""`mq-cutover approve|reject|extend|pending MIGRATION_ID`: a gate decided from a terminal.

The decision is the server's: the CLI sends a SigV4-signed request to the stack's decision API
(`DecisionApiUrl`), API Gateway verifies the signature (AWS_IAM), and the approval function
takes the voter from the verified caller and counts the vote. The CLI reads no approval record,
no task token and writes nothing itself.
"""

from __future__ import annotations

from typing import Any

from mq_cutover_cli.api import Answer, DecisionApi

DECISIONS = ("approve", "reject", "extend")
DECIDED = ("approved", "rejected", "extended")
# What an outcome the server gives without a detail means for the person at the terminal.
_WHY = {
    "already-voted": "you have already voted at this gate; a vote counts once",
    "already-decided": "the gate was decided before your vote arrived",
    "expired": "the gate timed out before your vote arrived",
    "cannot-extend": "this gate cannot be extended (or the plan allows no more time)",
    "not-found": "the gate's record is gone",
}


class StackOutputMissing(LookupError):
    """The stack has no such output (not deployed from this version's template?)."""


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    """Every output of the stack, by key (CloudFormation DescribeStacks)."""
    (described,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in described.get("Outputs", [])}


def stack_output(outputs: dict[str, str], key: str, stack: str) -> str:
    if key not in outputs:
        raise StackOutputMissing(
            f"stack {stack} has no {key} output: deploy this version of the template"
        )
    return outputs[key]


def pending(api: DecisionApi, migration_id: str) -> Answer:
    """The migration's open gates: GET /decisions/{migrationId}."""
    return api.get(migration_id)


def decide(
    api: DecisionApi, *, migration_id: str, decision: str, gate: str | None, comment: str
) -> Answer:
    """One vote or decision as the caller's IAM identity: POST /decisions/{migrationId}."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
    return api.post(migration_id, {"decision": decision, "gate": gate, "comment": comment})


def shown(value: Any) -> str:
    """Server text (queue names from a broker, names from the registry) as data: control and
    escape characters written out, so nothing can move the cursor or recolour the terminal."""
    text = str(value)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, list):
        return len(value)
    return None


def _principal(result: dict[str, Any]) -> str | None:
    """The IAM principal the server verified for this call (its answer, not the CLI's guess)."""
    if isinstance(result.get("principal"), str):
        return str(result["principal"])
    votes = result.get("votes")
    if isinstance(votes, list):
        for vote in reversed(votes):
            if isinstance(vote, dict) and vote.get("principal"):
                return str(vote["principal"])
    return None


def decision_line(answer: Answer) -> tuple[bool, str]:
    """(decided or vote counted, the line to print)."""
    result = answer.body
    outcome = str(result.get("outcome", ""))
    if outcome in DECIDED:
        who = shown(result.get("decidedBy", "?"))
        principal = _principal(result)
        if principal and principal not in who:
            who = f"{who} ({shown(principal)})"
        gate = shown(result.get("gate", "the gate"))
        return True, f"{gate} of {shown(result.get('migrationId', '?'))} {outcome} by {who}"
    if outcome == "vote-recorded":
        votes, quorum = _count(result.get("votes")), _count(result.get("quorum"))
        tally = f" ({votes} of {quorum})" if votes is not None and quorum is not None else ""
        return True, f"approval recorded{tally}: the gate stays closed"
    detail = shown(result.get("detail") or result.get("message") or _WHY.get(outcome, ""))
    if outcome == "already-decided" and result.get("status") and not result.get("detail"):
        detail = (
            f"the gate was already {shown(result['status']).lower()} by "
            f"{shown(result.get('decidedBy') or '?')} at {shown(result.get('decidedAt') or '?')}"
        )
    return False, f"nothing decided ({shown(outcome or answer.status)}): {detail}".rstrip(": ")


def _time_left(seconds: Any) -> str:
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return ""
    hours, minutes = divmod(max(0, seconds) // 60, 60)
    return f" ({hours} h {minutes} min left)" if hours else f" ({minutes} min left)"


def pending_lines(answer: Answer, migration_id: str) -> list[str]:
    """The open gates with their facts and votes, as a person reads them in a terminal."""
    gates = [g for g in answer.body.get("pending") or [] if isinstance(g, dict)]
    you = answer.body.get("you") or {}
    who = f" (you are {shown(you['name'])})" if isinstance(you, dict) and you.get("name") else ""
    if answer.status == 404 or not gates:
        return [f"{shown(migration_id)}: no gate is open{who}"]
    count = f"{len(gates)} gate{'s' if len(gates) != 1 else ''} open"
    lines = [f"{shown(migration_id)}: {count}{who}"]
    for gate in gates:
        votes = [v for v in gate.get("votes") or [] if isinstance(v, dict)]
        quorum = _count(gate.get("quorum")) or 1
        approvals = _count(gate.get("approvals"))
        if approvals is None:
            approvals = sum(1 for v in votes if v.get("decision") == "approve")
        status = [
            f"expires {shown(gate.get('expiresAt', '?'))}{_time_left(gate.get('secondsLeft'))}",
            f"{approvals} of {quorum} approval{'s' if quorum != 1 else ''}",
            "can be extended" if gate.get("canExtend") else "cannot be extended",
        ]
        if gate.get("youMayVote") is False:
            status.append("you are not one of its approvers")
        lines.append("")
        lines.append(f"{shown(gate.get('gate', '?'))}: {shown(gate.get('title', ''))}".rstrip(": "))
        lines.append("  " + "; ".join(status))
        for vote in votes:
            via = f" via {shown(vote['source'])}" if vote.get("source") else ""
            lines.append(
                f"  vote: {shown(vote.get('name') or vote.get('approver', '?'))} "
                f"{shown(vote.get('decision', '?'))} at {shown(vote.get('at', '?'))}{via}"
            )
        facts = gate.get("facts") or []
        if isinstance(facts, str):
            facts = facts.splitlines()
        for fact in facts:
            lines.append(f"  | {shown(fact)}".rstrip())
    return lines


def abort(api: DecisionApi, *, migration_id: str, reason: str) -> Answer:
    """Ask for the run's rollback as the caller's IAM identity: POST /decisions/{migrationId}
    with decision "abort" (no gate: it is the run, not a gate, that is stopped)."""
    return api.post(migration_id, {"decision": "abort", "reason": reason})


def abort_line(answer: Answer, follow: str) -> tuple[bool, str]:
    """(the abort was recorded, the line to print). `follow`: how to follow the rollback."""
    result = answer.body
    if result.get("outcome") != "abort-requested":
        outcome = shown(result.get("outcome") or answer.status)
        detail = shown(result.get("detail") or result.get("message") or "")
        return False, f"abort refused ({outcome}): {detail}".rstrip(": ")
    recorded = result.get("abort")
    if not isinstance(recorded, dict):
        recorded = {}
    who = shown(recorded.get("name") or "?")
    principal = recorded.get("principal") or result.get("principal")
    if principal:
        who = f"{who} ({shown(principal)})"
    gates = [shown(g) for g in result.get("closedGates") or [] if isinstance(g, str)]
    waiting = f"; it was waiting at {', '.join(gates)}" if gates else ""
    return (
        True,
        f"abort requested by {who}: the migration rolls back{waiting} (follow it with {follow})",
    )

"""Roll Back is retried like every other step (AwsThrottled, Lambda's own errors), and a retry
or a redrive runs with the memo the failed try was given. The hazard: in unordered mode the
first Roll Back call restores the producers (they were on Amazon MQ, consumers widened); if it
then fails, the retry finds producers on-prem and must still know they moved: Amazon MQ is
drained (by the widened consumers) before consumers go back, and the producers' restart, which
the failed try may never have sent, is sent (or found) and awaited."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from mq_cutover_cli.faults import LambdaServiceError
from mq_cutover_cli.harness import Emulator, LambdaContext
from tests.workflow.conftest import entered, final_values, initial_values, run, task_results

pytestmark = pytest.mark.workflow

PRODUCER_HOSTS = ["i-0a1b2c3d4e5f60718", "i-0b1c2d3e4f5a60718"]
RESTART_COMMENT = "mq-cutover {}: rollback producers"


def _with_producers_hook(plan: dict[str, Any]) -> dict[str, Any]:
    plan["producers"]["restartHook"] = {
        "commands": ["systemctl restart telemetry-producers"],
        "instanceIds": PRODUCER_HOSTS,
    }
    return plan


def _throttle_the_producers_restart(fired: list[str]) -> Any:
    """Simulated: the rollback's SendCommand for the producers' restart is throttled once
    (after botocore's own retries), after every producer parameter was restored."""

    def install(emulator: Emulator) -> None:
        client = emulator.handlers["RollbackFunction"].ssm

        def throttle(params: dict[str, Any], **_: Any) -> None:
            if "rollback producers" in params.get("Comment", "") and not fired:
                fired.append("SendCommand")
                raise ClientError(
                    {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                    "SendCommand",
                )

        event = "before-parameter-build.ssm.SendCommand"
        client.meta.events.register_first(event, throttle, unique_id="rollback-retry")
        emulator.cleanups.append(
            lambda: client.meta.events.unregister(event, unique_id="rollback-retry")
        )

    return install


def _lose_the_producers_restore_response(fired: list[str]) -> Any:
    """Simulated: the call that restored the producers (and sent their restart) ran to the end,
    then Lambda lost its response (HTTP 500): the state machine retries it."""

    def install(emulator: Emulator) -> None:
        def lose(name: str, event: dict[str, Any], result: Any) -> None:
            restored = name == "RollbackFunction" and result["action"] == "producers-back"
            if restored and result["restoredCount"] and not fired:
                fired.append("response")
                raise LambdaServiceError("ServiceException", "simulated: response lost")

        emulator.after_hooks.append(lose)

    return install


def _restarts(emulator: Emulator, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The producers' restart commands the rollback sent."""
    comment = RESTART_COMMENT.format(plan["migrationId"])
    commands = emulator.client("ssm").list_commands()["Commands"]
    return [c for c in commands if c["Comment"] == comment]


class SimulatedLambdaTimeout(Exception):
    """A Lambda that ran out of time (on AWS: Sandbox.Timedout): not retried."""


def _roll_back_failures(sim: Any) -> list[str]:
    failed: list[str] = []
    current = None
    for event in sim.history:
        if "stateEnteredEventDetails" in event:
            current = event["stateEnteredEventDetails"]["name"]
        elif event["type"] in ("TaskFailed", "LambdaFunctionFailed") and current == "Roll Back":
            details = event.get("taskFailedEventDetails") or {}
            failed.append(details.get("error", event["type"]))
    return failed


@pytest.mark.parametrize(
    ("fault", "error"),
    [("throttled restart", "AwsThrottled"), ("lost response", "Lambda.ServiceException")],
)
def test_a_roll_back_that_failed_after_restoring_producers_still_drains_amazon_mq(
    unordered_plan: dict[str, Any], fault: str, error: str
) -> None:
    plan = _with_producers_hook(unordered_plan)
    fired: list[str] = []
    install = (
        _throttle_the_producers_restart(fired)
        if fault == "throttled restart"
        else _lose_the_producers_restore_response(fired)
    )
    # Narrow Consumers fails: every producer is on Amazon MQ, consumers are widened, so the
    # first Roll Back call is the producers' restore.
    sent: list[dict[str, Any]] = []
    sim = run(
        plan,
        fail_at=["Narrow Consumers:permanent"],
        before_start=install,
        after_run=lambda emulator, _arn: sent.extend(_restarts(emulator, plan)),
    )
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "SimulatedPermanentFault"
    assert execution["cause"].startswith("Rolled back after Narrow Consumers failed")
    assert fired and _roll_back_failures(sim) == [error]  # the fault, then the retry
    steps = task_results(sim, "Roll Back")
    actions = [(s["action"], s["side"]) for s in steps]
    # The retry restores nothing more, sends (or finds) the producers' restart, and Amazon MQ
    # is drained before consumers come back (without the labels it went to consumers-back).
    assert actions == [
        ("producers-back", None),
        ("drain", "amazonMq"),
        ("consumers-back", None),
        ("done", None),
    ]
    assert steps[0]["restored"] == [] and steps[0]["memo"]["producersMoved"]
    assert steps[0]["memo"]["producersOut"] and steps[0]["memo"]["producersBack"]
    assert list(steps[0]["restartCommandIds"]) == ["producers"]
    restart_checks = task_results(sim, "Check Rollback Restart")
    assert restart_checks[0]["commands"][0]["group"] == "producers"
    assert restart_checks[0]["done"] and restart_checks[0]["hosts"] == len(PRODUCER_HOSTS)
    states = entered(sim)
    first_drain = states.index("Check Rollback Drain")
    assert states.index("Check Rollback Restart") < first_drain
    assert first_drain < len(states) - 1 - states[::-1].index("Roll Back")
    drains = task_results(sim, "Check Rollback Drain")
    assert drains[-1]["done"] and drains[-1]["side"] == "amazonMq"
    assert "left on Amazon MQ: 0" in execution["cause"]
    # One restart of the producers, however the first try ended.
    assert len(sent) == 1 and steps[0]["restartCommandIds"]["producers"] == sent[0]["CommandId"]
    assert final_values(sim) == initial_values(sim)
    assert sim.report["notifications"] == [f"[mq-cutover] {plan['migrationId']}: rolled back"]


def test_simulated_redrive_of_a_roll_back_that_restored_the_producers(
    unordered_plan: dict[str, Any],
) -> None:
    """A redrive resumes Roll Back with the variables it had when it failed: the same payload,
    the same memo, the same execution start. Simulated (moto has no RedriveExecution): the
    first Roll Back call restores the producers and fails for good (a timed-out Lambda is not
    retried: Rollback Failed); then its recorded input is given to the function again, as the
    redriven state would, and each next call gets the memo the one before returned."""
    plan = _with_producers_hook(unordered_plan)

    def time_out(emulator: Emulator) -> None:
        """The function times out after the producers' restore and their restart were done."""
        module = emulator.handlers["RollbackFunction"]
        real = module.roll_back_step

        def step(*args: Any, **kwargs: Any) -> dict[str, Any]:
            result: dict[str, Any] = real(*args, **kwargs)
            if result["action"] == "producers-back" and not redriving:
                raise SimulatedLambdaTimeout("simulated: Task timed out after 330 seconds")
            return result

        module.roll_back_step = step
        emulator.cleanups.append(lambda: setattr(module, "roll_back_step", real))

    redriving: list[bool] = []
    redriven: list[dict[str, Any]] = []

    def redrive(emulator: Emulator, arn: str) -> None:
        [failed] = [p for n, p in emulator.invocations if n == "RollbackFunction"]
        module = emulator.handlers["RollbackFunction"]
        payload = dict(failed)
        redriving.append(True)
        for _ in range(3):
            context = LambdaContext(
                function_name="RollbackFunction", invoked_function_arn="arn", timeout_ms=330_000
            )
            redriven.append(module.lambda_handler(payload, context))
            payload = {**payload, "memo": redriven[-1]["memo"], "cursor": redriven[-1]["cursor"]}
            if redriven[-1]["action"] == "drain":
                payload["memo"] = {
                    **payload["memo"],
                    "drained": [*payload["memo"]["drained"], redriven[-1]["wait"]],
                }
        sent.extend(_restarts(emulator, plan))

    sent: list[dict[str, Any]] = []
    sim = run(
        plan, fail_at=["Narrow Consumers:permanent"], before_start=time_out, after_run=redrive
    )
    execution = sim.report["execution"]
    assert (execution["status"], execution["error"]) == ("FAILED", "RollbackFailed")
    assert entered(sim)[-2:] == ["Notify Rollback Failed", "Rollback Failed"]
    # The redriven calls: the restart the failed try sent is found (not sent again), then
    # Amazon MQ is drained, then consumers go back.
    assert [(r["action"], r["side"]) for r in redriven] == [
        ("producers-back", None),
        ("drain", "amazonMq"),
        ("consumers-back", None),
    ]
    assert redriven[0]["restored"] == [] and len(sent) == 1
    assert redriven[0]["restartCommandIds"] == {"producers": sent[0]["CommandId"]}
    assert redriven[2]["restoredCount"] == len(plan["consumers"]["parameters"])

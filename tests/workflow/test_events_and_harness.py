"""Sample events match what the state machine really sends; the harness's moto patches hold."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import moto
import pytest
from moto.awslambda.models import LambdaFunction
from moto.ssm.models import Command, SimpleSystemManagerBackend, ssm_backends
from moto.ssm.responses import SimpleSystemManagerResponse
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSecondsJSONata
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
    WaitFunction,
)
from moto.stepfunctions.parser.asl.eval import states as moto_states
from moto.stepfunctions.parser.asl.eval import variable_store as moto_variable_store
from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse

from mq_cutover_cli.harness import ACCOUNT, REGION, load_template
from mq_cutover_cli.simulate import Simulation
from tests.conftest import EVENTS, ROOT

pytestmark = pytest.mark.workflow


def test_canary_moto_internals_the_harness_patches() -> None:
    """If this fails after a moto upgrade, re-check every patch in harness.py before anything."""
    assert moto.__version__ == "5.2.5"
    assert list(inspect.signature(LambdaFunction._invoke_lambda).parameters) == ["self", "event"]
    assert hasattr(moto_jsonata, "_eval_jsonata")
    assert "_eval_jsonata(jsonata_expression)" in inspect.getsource(
        moto_jsonata.eval_jsonata_expression
    )
    for module in (moto_states, moto_variable_store):
        assert module.encode_jsonata_variable_declarations is not None
    assert list(inspect.signature(WaitFunction._wait_interval).parameters) == [
        "self",
        "env",
        "wait_seconds",
    ]
    assert retrier_decl.time.__name__ == "time"
    assert "time.sleep(" in inspect.getsource(retrier_decl)
    assert list(inspect.signature(TimeoutSecondsJSONata._eval_seconds).parameters) == [
        "self",
        "env",
    ]
    # Simulated SSM throttling (faults.py) wraps the backend's put_parameter.
    assert callable(SimpleSystemManagerBackend.put_parameter)
    # The world answers ListCommandInvocations from moto's command records: moto still has no
    # handler for it (else drop world._list_command_invocations), and the records hold what
    # the simulated hosts set.
    assert not hasattr(SimpleSystemManagerResponse, "list_command_invocations")
    command = Command(account_id=ACCOUNT, instance_ids=["i-0123456789abcdef0"])
    assert command.status == "Success" and command.invocations[0]["Status"] == "Success"
    assert {"InstanceId", "StatusDetails"} <= set(command.invocations[0])
    assert isinstance(ssm_backends[ACCOUNT][REGION]._commands, list)
    # ... and moto still sends a command given InstanceIds to every EC2 instance as well (else
    # drop world._instance_ids_from_targets).
    source = inspect.getsource(Command._get_instance_ids_from_targets)
    assert "all_reservations(filters=ec2_filters)" in source
    # moto still drops the cause (else the patch can go) and the backend still takes one.
    assert "cause" not in inspect.getsource(StepFunctionResponse.send_task_failure)
    assert "cause" in inspect.signature(StepFunctionsParserBackend.send_task_failure).parameters


def _function_dirs() -> dict[str, str]:
    template = load_template()
    return {
        name: str(res["Properties"]["CodeUri"]).strip("/").split("/")[-1]
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }


@pytest.fixture(scope="module")
def sent_payloads() -> dict[str, list[dict[str, Any]]]:
    """Every payload the real state machine sent each function, over a success and a rollback."""
    sent: dict[str, list[dict[str, Any]]] = {}

    def grab(emulator: Any, _arn: str) -> None:
        for name, payload in emulator.invocations:
            sent.setdefault(name, []).append(payload)

    for plan_file, approve in (
        ("plan-ordered.json", "auto"),
        ("plan-ordered.json", "reject:stopOnPrem"),
        ("plan-unordered.json", "auto"),
        ("plan-rabbitmq.json", "auto"),  # Copy Topology
        ("plan-rabbitmq-unordered.json", "auto"),  # the shovels
    ):
        plan = (EVENTS / plan_file).read_text()
        Simulation(plan_document=plan, approve=approve, after_run=grab).run()
    return sent


def test_every_function_has_a_sample_event_shaped_like_the_real_input(
    sent_payloads: dict[str, list[dict[str, Any]]],
) -> None:
    for name, directory in _function_dirs().items():
        if directory == "approval_api":
            events = load_template()["Resources"][name]["Properties"]["Events"].values()
            routes = {(e["Properties"]["Path"], e["Properties"]["Method"]) for e in events}
            samples = sorted((EVENTS / "functions").glob("approval_api_*.json"))
            shown = set()
            for path in samples:
                event = json.loads(path.read_text())
                shown.add((event["resource"], event["httpMethod"]))
                if event["resource"].startswith("/decisions/"):  # SigV4: the caller is known
                    assert event["requestContext"]["identity"]["userArn"].startswith("arn:")
            assert shown == routes  # one sample per route
            continue
        event = json.loads((EVENTS / "functions" / f"{directory}.json").read_text())
        if directory == "publish_metrics":  # started by its schedule, not the state machine
            schedule = load_template()["Resources"][name]["Properties"]["Events"]
            assert json.loads(schedule["EveryMinute"]["Properties"]["Input"]) == event
            continue
        real = sent_payloads[name]
        # The function's own event, and any variant (check_drain_fence.json, ...) beside it.
        for path in sorted((EVENTS / "functions").glob(f"{directory}*.json")):
            event = json.loads(path.read_text())
            assert any(set(event) == set(payload) for payload in real), (path.name, sorted(event))


def test_every_function_directory_is_deployed() -> None:
    on_disk = {p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists()}
    assert on_disk == set(_function_dirs().values())


def test_sample_events_are_free_of_secrets() -> None:
    for path in Path(EVENTS).rglob("*.json"):
        text = path.read_text().lower()
        assert '"password"' not in text, path

"""Every Lambda Task state's Payload fits the model its handler parses (mq_cutover.contracts):
the fields it sends are fields the model knows, and every field the model requires is sent.
Every field the ASL reads from a result is a field of that function's result model, every
handler parses its event with its model, and the sample events parse."""

from __future__ import annotations

import ast
import json
import re
import typing
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from mq_cutover.contracts import (
    EVENT_MODELS,
    RESULT_MODELS,
    OnPremStopResult,
    RequestApprovalEvent,
    StopOnPremResult,
    TakeLeaseEvent,
    TakeLeaseResult,
)
from mq_cutover_cli.harness import load_template
from tests.conftest import EVENTS, ROOT


def _lambda_tasks(states: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(state name, function resource, state) of every Lambda Task, in branches and maps too."""
    found = []
    for name, state in states.items():
        if state.get("Type") == "Task" and "lambda:invoke" in state.get("Resource", ""):
            function = re.fullmatch(r"\$\{(\w+)Arn\}", state["Arguments"]["FunctionName"])
            assert function, name
            found.append((name, function.group(1), state))
        for branch in state.get("Branches", []):
            found.extend(_lambda_tasks(branch["States"]))
        if "ItemProcessor" in state:
            found.extend(_lambda_tasks(state["ItemProcessor"]["States"]))
    return found


def _lambda_payloads(states: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(name, fn, state["Arguments"]["Payload"]) for name, fn, state in _lambda_tasks(states)]


def _aliases(model: type[BaseModel]) -> tuple[set[str], set[str]]:
    """(every field's name as sent, the required ones)."""
    names, required = set(), set()
    for name, info in model.model_fields.items():
        sent = info.alias or name
        names.add(sent)
        if info.is_required():
            required.add(sent)
    return names, required


ASL = json.loads((ROOT / "statemachine" / "migration.asl.json").read_text())
PAYLOADS = _lambda_payloads(ASL["States"])


def test_every_function_the_state_machine_calls_has_a_model() -> None:
    assert {function for _, function, _ in PAYLOADS} == set(EVENT_MODELS)


@pytest.mark.parametrize(("state", "function", "payload"), PAYLOADS, ids=[p[0] for p in PAYLOADS])
def test_the_payload_fits_the_handlers_model(
    state: str, function: str, payload: dict[str, Any]
) -> None:
    names, required = _aliases(EVENT_MODELS[function])
    sent = set(payload)
    assert sent <= names, f"{state} sends {sorted(sent - names)}, unknown to {function}'s model"
    assert required <= sent, f"{state} does not send {sorted(required - sent)}"


def test_a_wrong_payload_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as refused:
        TakeLeaseEvent.model_validate({"migrationId": "orders-1", "executionARN": "x"})
    text = str(refused.value)
    assert "executionArn" in text and "executionARN" in text  # missing, and unexpected


def test_the_task_token_is_never_shown() -> None:
    event = RequestApprovalEvent.model_validate(
        {"migrationId": "m", "plan": "p", "gate": "cutover", "taskToken": "SECRET-TOKEN"}
    )
    assert "SECRET-TOKEN" not in repr(event) and "SECRET-TOKEN" not in str(event)
    assert event.task_token == "SECRET-TOKEN"


def test_a_refused_event_names_the_field_and_never_echoes_the_token() -> None:
    with pytest.raises(ValidationError) as refused:
        RequestApprovalEvent.model_validate(
            {"migrationId": "m", "plan": "p", "taskToken": "SECRET-TOKEN"}
        )
    assert "gate" in str(refused.value)
    assert "SECRET-TOKEN" not in str(refused.value)


# --- results -------------------------------------------------------------------------------

TASKS = _lambda_tasks(ASL["States"])
WAITS_FOR_TOKEN = ".waitForTaskToken"  # $states.result is the decision sent back, not the Payload


def _model_at(model: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    """Walk `a.b` through nested result models; None where the value is untyped (a dict)."""
    for name in path:
        fields = {info.alias or key: info for key, info in model.model_fields.items()}
        assert name in fields, f"{model.__name__} has no field {name}"
        annotation = fields[name].annotation
        inner = [a for a in typing.get_args(annotation) if isinstance(a, type)] or [annotation]
        nested = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def _reads(text: str, root: str) -> list[list[str]]:
    """Every `root.a.b` path an expression reads (`$states.result.Payload.changed` -> [changed])."""
    return [m.split(".") for m in re.findall(re.escape(root) + r"\.(\w+(?:\.\w+)*)", text)]


RESULT_READS = [
    (name, function, path)
    for name, function, state in TASKS
    if WAITS_FOR_TOKEN not in state["Resource"]
    for path in _reads(
        json.dumps({k: v for k, v in state.items() if k != "Arguments"}), "$states.result.Payload"
    )
]


def test_every_function_the_state_machine_calls_has_a_result_model() -> None:
    assert {function for _, function, _ in TASKS} == set(RESULT_MODELS)


def test_the_state_machine_reads_results() -> None:
    # The test below checks something: the ASL reads fields of these results where they return.
    read = {function for _, function, _ in RESULT_READS}
    assert {"ValidatePlanFunction", "RepointClientsFunction", "RollbackFunction"} <= read


@pytest.mark.parametrize(
    ("state", "function", "path"),
    RESULT_READS,
    ids=[f"{r[0]}:{'.'.join(r[2])}" for r in RESULT_READS],
)
def test_every_result_field_the_state_reads_is_in_the_model(
    state: str, function: str, path: list[str]
) -> None:
    _model_at(RESULT_MODELS[function], path)


def _result_variables() -> dict[str, set[str]]:
    """Variables assigned a whole result (`"broker": "{% $states.result.Payload %}"`) -> the
    functions whose result they hold."""
    holds: dict[str, set[str]] = {}
    for _, function, state in TASKS:
        for variable, expression in state.get("Assign", {}).items():
            if isinstance(expression, str) and re.search(
                r"\$states\.result\.Payload(?![.\w])", expression
            ):
                holds.setdefault(variable, set()).add(function)
    return holds


def _merged_keys(variable: str) -> set[str]:
    """Keys an Assign adds to the variable (`$merge([$drain, {'extendMinutes': ...}])`)."""
    added: set[str] = set()
    for expression in re.findall(r'"' + variable + r'": "(\{% \$merge[^"]*)"', json.dumps(ASL)):
        added |= set(re.findall(r"'(\w+)':", expression))
    return added


RESULT_VARIABLES = _result_variables()


def test_whole_results_are_held_in_variables() -> None:
    assert {"broker", "endpoints", "drain", "stop", "rollback"} <= set(RESULT_VARIABLES)


@pytest.mark.parametrize("variable", sorted(RESULT_VARIABLES))
def test_every_field_read_from_a_result_variable_is_in_the_model(variable: str) -> None:
    """`$broker.brokerId`, `$drain.timedOut`, `$stop.done`: fields of the result the variable
    holds (of one of them, when several functions' results are held in it)."""
    text = json.dumps(ASL)
    reads = _reads(text, "$" + variable)
    extra = _merged_keys(variable)
    for path in reads:
        if path[0] in extra:
            continue
        fits = []
        for function in RESULT_VARIABLES[variable]:
            try:
                _model_at(RESULT_MODELS[function], path)
                fits.append(function)
            except AssertionError:
                pass
        assert fits, f"${variable}.{'.'.join(path)} is no field of {RESULT_VARIABLES[variable]}"


def test_a_result_keeps_exactly_the_keys_the_logic_set() -> None:
    lease = {"migrationId": "m", "executionArn": "arn", "since": None, "tookOverFrom": None}
    assert TakeLeaseResult.model_validate(lease).dump() == lease  # no holderStatus added
    stop = {"method": "ssm-command", "commandId": "c-1"}
    assert StopOnPremResult.model_validate(stop).dump() == stop  # no instanceIds: null
    checked = {**stop, "done": False, "status": "InProgress", "completed": 0, "targets": 1}
    assert OnPremStopResult.model_validate(checked).dump() == checked


def test_a_result_with_an_unknown_key_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        StopOnPremResult.model_validate({"method": "ssm-command", "commandID": "c-1"})
    assert "commandID" in str(refused.value)


# --- handlers ------------------------------------------------------------------------------

NOT_STATE_MACHINE = {"approval_api", "publish_metrics"}  # the API resolver; a schedule
FUNCTIONS = {
    str(resource["Properties"]["CodeUri"]).strip("/").split("/")[-1]: name
    for name, resource in load_template()["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
}
HANDLERS = sorted(set(FUNCTIONS) - NOT_STATE_MACHINE)


def test_every_state_machine_function_has_a_handler() -> None:
    assert {FUNCTIONS[d] for d in HANDLERS} == set(EVENT_MODELS)


@pytest.mark.parametrize("directory", HANDLERS)
def test_the_handler_parses_its_event_with_its_model(directory: str) -> None:
    """`@event_parser(model=...)` with the model EVENT_MODELS names, innermost (the logger's
    correlation id is read from the raw event), and the handler's event typed as that model."""
    model = EVENT_MODELS[FUNCTIONS[directory]].__name__
    tree = ast.parse((ROOT / "functions" / directory / "app.py").read_text())
    (handler,) = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == "lambda_handler"
    ]
    innermost = handler.decorator_list[-1]
    assert isinstance(innermost, ast.Call) and ast.unparse(innermost.func) == "event_parser"
    assert [(k.arg, ast.unparse(k.value)) for k in innermost.keywords] == [("model", model)]
    assert ast.unparse(handler.args.args[0].annotation or ast.Constant(None)) == model


@pytest.mark.parametrize("directory", HANDLERS)
def test_the_handler_returns_its_result_model(directory: str) -> None:
    model = RESULT_MODELS[FUNCTIONS[directory]].__name__
    tree = ast.parse((ROOT / "functions" / directory / "app.py").read_text())
    (handler,) = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == "lambda_handler"
    ]
    returns = [n for n in ast.walk(handler) if isinstance(n, ast.Return)]
    assert returns and all(
        re.fullmatch(
            model + r"(\.model_validate)?\(.*\)\.dump\(\)",
            ast.unparse(r.value or ast.Constant(None)),
            re.S,
        )
        for r in returns
    ), [ast.unparse(r) for r in returns]


@pytest.mark.parametrize("directory", HANDLERS)
def test_the_sample_events_parse(directory: str) -> None:
    samples = sorted((EVENTS / "functions").glob(f"{directory}*.json"))
    assert samples
    for path in samples:
        EVENT_MODELS[FUNCTIONS[directory]].model_validate(json.loads(path.read_text()))

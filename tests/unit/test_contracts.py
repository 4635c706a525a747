"""Every Lambda Task state's Payload fits the model its handler parses (mq_cutover.contracts):
the fields it sends are fields the model knows, and every field the model requires is sent."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from mq_cutover.contracts import EVENT_MODELS, RequestApprovalEvent, TakeLeaseEvent
from tests.conftest import ROOT


def _lambda_payloads(states: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for name, state in states.items():
        if state.get("Type") == "Task" and "lambda:invoke" in state.get("Resource", ""):
            arguments = state["Arguments"]
            function = re.fullmatch(r"\$\{(\w+)Arn\}", arguments["FunctionName"])
            assert function, name
            found.append((name, function.group(1), arguments["Payload"]))
        for branch in state.get("Branches", []):
            found.extend(_lambda_payloads(branch["States"]))
        if "ItemProcessor" in state:
            found.extend(_lambda_payloads(state["ItemProcessor"]["States"]))
    return found


def _aliases(model: type[BaseModel]) -> tuple[set[str], set[str]]:
    """(every field's name as sent, the required ones)."""
    names, required = set(), set()
    for name, info in model.model_fields.items():
        sent = info.alias or name
        names.add(sent)
        if info.is_required():
            required.add(sent)
    return names, required


PAYLOADS = _lambda_payloads(
    json.loads((ROOT / "statemachine" / "migration.asl.json").read_text())["States"]
)


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

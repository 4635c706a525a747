"""The README's "Where each step lives" table is true: every Lambda Task state of the state
machine is in it exactly once, with the handler the template deploys for it, logic modules the
handler really uses, and test files that exist and exercise that step."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mq_cutover_cli.harness import load_template
from tests.conftest import ROOT

ASL_PATH = ROOT / "statemachine" / "migration.asl.json"
BEGIN, END = "<!-- state-map:begin -->", "<!-- state-map:end -->"


def _lambda_states(states: dict[str, Any]) -> dict[str, str]:
    """Task state -> the template's function resource it invokes (any nesting level)."""
    found: dict[str, str] = {}
    for name, state in states.items():
        if state.get("Type") == "Task" and "lambda:invoke" in state.get("Resource", ""):
            function = state["Arguments"]["FunctionName"]
            match = re.fullmatch(r"\$\{(\w+)Arn\}", function)
            assert match, f"{name}: FunctionName {function} is not a substitution"
            found[name] = match.group(1)
        for branch in state.get("Branches", []):
            found.update(_lambda_states(branch["States"]))
        if "ItemProcessor" in state:
            found.update(_lambda_states(state["ItemProcessor"]["States"]))
    return found


def _rows() -> list[tuple[list[str], str, list[str], list[str]]]:
    text = (ROOT / "README.md").read_text()
    assert BEGIN in text and END in text, "the README lost its state map"
    body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = []
    for line in body.strip().splitlines()[2:]:  # header and separator
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 4, line
        states, handler, logic, tests = cells
        rows.append(
            (
                [s.strip() for s in states.split(",")],
                handler.strip("`"),
                [m.strip(" `") for m in logic.split(",")],
                [t.strip(" `") for t in tests.split(",")],
            )
        )
    return rows


def _imports(path: Path) -> set[str]:
    """The mq_cutover modules a file imports (`from mq_cutover import x`, `from mq_cutover.x`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "mq_cutover":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("mq_cutover."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(
                alias.name.split(".")[1]
                for alias in node.names
                if alias.name.startswith("mq_cutover.")
            )
    return found


def _used_by(handler: Path) -> set[str]:
    """Logic modules a handler uses: those it imports and, transitively, those they import."""
    seen: set[str] = set()
    todo = list(_imports(handler))
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        source = ROOT / "src" / "mq_cutover" / f"{module}.py"
        if source.exists():
            todo.extend(_imports(source))
    return seen


@pytest.fixture(scope="module")
def rows() -> list[tuple[list[str], str, list[str], list[str]]]:
    return _rows()


def test_every_lambda_state_is_in_the_map_once(
    rows: list[tuple[list[str], str, list[str], list[str]]],
) -> None:
    states = _lambda_states(json.loads(ASL_PATH.read_text())["States"])
    mapped = [state for row in rows for state in row[0]]
    assert sorted(mapped) == sorted(states), "README state map vs the state machine"


def test_each_row_names_the_handler_the_template_deploys(
    rows: list[tuple[list[str], str, list[str], list[str]]],
) -> None:
    states = _lambda_states(json.loads(ASL_PATH.read_text())["States"])
    resources = load_template()["Resources"]
    for names, handler, _logic, _tests in rows:
        for name in names:
            code_uri = str(resources[states[name]]["Properties"]["CodeUri"]).rstrip("/")
            assert code_uri == handler, f"{name}: the template deploys {code_uri}, not {handler}"


def test_each_row_names_logic_its_handler_uses(
    rows: list[tuple[list[str], str, list[str], list[str]]],
) -> None:
    for names, handler, logic, _tests in rows:
        used = _used_by(ROOT / handler / "app.py")
        for module in logic:
            assert (ROOT / "src" / "mq_cutover" / f"{module}.py").exists(), module
            assert module in used, f"{names[0]}: {handler} does not use mq_cutover.{module}"


def test_each_row_names_tests_that_exercise_it(
    rows: list[tuple[list[str], str, list[str], list[str]]],
) -> None:
    """A unit test imports one of the row's modules; a workflow test names one of its states."""
    for names, _handler, logic, tests in rows:
        for test in tests:
            path = ROOT / test
            assert path.exists(), f"{names[0]}: {test} does not exist"
            if test.startswith("tests/unit/"):
                assert _imports(path) & set(logic), f"{test} imports none of {logic}"
            else:
                text = path.read_text()
                assert any(name in text for name in names), f"{test} names none of {names}"

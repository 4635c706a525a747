"""The emulator's JSONata, checked against the reference JavaScript JSONata.

The offline harness evaluates the state machine's JSONata with jsonata-python (moto's own
evaluator is a stub). AWS documents the JavaScript engine (npm `jsonata` 2.x, pinned in
package.json). The workflow tests record every expression the harness evaluates
(`harness.jsonata_recorder`), with moto's variable declarations in its text, and evaluate the
distinct ones again with the npm package, in one `node` process per batch
(tests/jsonata/evaluate.mjs). Any difference fails the test that exercised the expression.

"No difference" means, for each expression:
- both raise, or neither does (the messages and codes are not compared: on AWS any evaluation
  error is a States.QueryEvaluationError);
- otherwise the two results are the same JSON value, as AWS would pass it on:
  - strings, booleans and null are equal only to themselves (true is not 1);
  - numbers are equal when they are the same IEEE-754 double (JavaScript has no other number):
    1 equals 1.0, 0 equals -0, and 2**60 equals 1152921504606846976;
  - arrays: same length, equal items in the same order;
  - objects: the same keys, in any order, with equal values. A key the reference drops because
    its value is undefined (JSON.stringify) is absent there, so an emulator's `"key": null`
    is a difference;
  - a result that is undefined as a whole equals null: the emulator returns None for both, and
    cannot tell them apart.
Nothing here is imported by the operator's commands: only the tests use it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EVALUATOR = ROOT / "tests" / "jsonata" / "evaluate.mjs"
PACKAGE_LOCK = ROOT / "package-lock.json"
INSTALLED_PACKAGE = ROOT / "node_modules" / "jsonata" / "package.json"
INSTALL_HINT = (
    "run `make setup-node` (npm ci; needs Node.js >= 18 and npm on PATH, "
    "e.g. `apt-get install nodejs npm`)"
)
EVALUATION_TIMEOUT_S = 300


class ReferenceUnavailable(RuntimeError):
    """node, or the pinned npm package, is missing: the check cannot run (and must not pass)."""


@dataclass(frozen=True)
class Outcome:
    """One evaluation: a JSON value (None for null, or for undefined) or an error."""

    value: Any = None
    error: str | None = None
    undefined: bool = False  # the reference said undefined (the emulator cannot tell)

    def describe(self) -> str:
        if self.error is not None:
            return f"error ({self.error})"
        if self.undefined:
            return "undefined"
        return _short(json.dumps(self.value, sort_keys=True, ensure_ascii=False), 600)


@dataclass(frozen=True)
class Difference:
    expression: str
    emulator: Outcome
    reference: Outcome
    where: str  # "error" when only one raised, else the JSON path of the first unequal value

    def describe(self) -> str:
        return (
            f"expression ({len(self.expression)} chars): {_elide(self.expression)}\n"
            f"  differs at {self.where}\n"
            f"  emulator (jsonata-python): {self.emulator.describe()}\n"
            f"  reference (npm jsonata):   {self.reference.describe()}"
        )


def pinned_version() -> str:
    """The jsonata version package-lock.json pins."""
    lock = json.loads(PACKAGE_LOCK.read_text())
    return str(lock["packages"]["node_modules/jsonata"]["version"])


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise ReferenceUnavailable(f"node is not on PATH: {INSTALL_HINT}")
    if not INSTALLED_PACKAGE.exists():
        raise ReferenceUnavailable(
            f"the npm package jsonata is not installed (node_modules/jsonata): {INSTALL_HINT}"
        )
    installed = json.loads(INSTALLED_PACKAGE.read_text()).get("version")
    if installed != pinned_version():
        raise ReferenceUnavailable(
            f"node_modules has jsonata {installed}, package-lock.json pins "
            f"{pinned_version()}: {INSTALL_HINT}"
        )
    return node


def evaluate_reference(expressions: list[str]) -> list[Outcome]:
    """Each expression's outcome with the npm package, all in one node process."""
    if not expressions:
        return []
    completed = subprocess.run(  # noqa: S603 - node on PATH, our script, data on stdin
        [_node(), str(EVALUATOR)],
        input=json.dumps(expressions),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=EVALUATION_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise ReferenceUnavailable(
            f"{EVALUATOR.name} exited {completed.returncode}: "
            f"{_short(completed.stderr.strip(), 800)}; {INSTALL_HINT}"
        )
    answers = json.loads(completed.stdout)
    if len(answers) != len(expressions):
        raise ReferenceUnavailable(
            f"{EVALUATOR.name} answered {len(answers)} of {len(expressions)} expressions"
        )
    outcomes = []
    for answer in answers:
        if "error" in answer:
            outcomes.append(Outcome(error=str(answer["error"])))
        elif answer.get("undefined"):
            outcomes.append(Outcome(undefined=True))
        else:
            outcomes.append(Outcome(value=answer["value"]))
    return outcomes


def emulator_outcome(result: Any, error: Exception | None) -> Outcome:
    """What the emulator computed, as JSON (a copy: moto may go on to change the object)."""
    if error is not None:
        return Outcome(error=f"{type(error).__name__}: {error}")
    return Outcome(value=json.loads(json.dumps(result, default=_not_json)))


def _not_json(value: Any) -> str:
    return f"<not JSON: {type(value).__name__}>"


def first_difference(emulator: Any, reference: Any, path: str = "$") -> str | None:
    """The JSON path of the first place the two values differ, or None when they are equal
    (the rules are in the module docstring)."""
    if isinstance(emulator, bool) or isinstance(reference, bool):
        same = isinstance(emulator, bool) and isinstance(reference, bool)
        return None if same and emulator == reference else path
    if isinstance(emulator, int | float) and isinstance(reference, int | float):
        return None if _same_double(emulator, reference) else path
    if isinstance(emulator, list) and isinstance(reference, list):
        if len(emulator) != len(reference):
            return f"{path} (length {len(emulator)} vs {len(reference)})"
        for index, (left, right) in enumerate(zip(emulator, reference, strict=True)):
            where = first_difference(left, right, f"{path}[{index}]")
            if where is not None:
                return where
        return None
    if isinstance(emulator, dict) and isinstance(reference, dict):
        if emulator.keys() != reference.keys():
            only_emulator = sorted(emulator.keys() - reference.keys())
            only_reference = sorted(reference.keys() - emulator.keys())
            return (
                f"{path} (keys only in the emulator: {only_emulator}, "
                f"only in the reference: {only_reference})"
            )
        for key in sorted(emulator):
            where = first_difference(emulator[key], reference[key], f"{path}.{key}")
            if where is not None:
                return where
        return None
    if type(emulator) is not type(reference):
        return path
    return None if emulator == reference else path


def _same_double(left: int | float, right: int | float) -> bool:
    try:
        return float(left) == float(right)
    except OverflowError:  # an int past the largest double: JavaScript has no such number
        return left == right


def compare(emulator: Outcome, reference: Outcome) -> str | None:
    """Where the two outcomes differ ("error": only one raised), or None."""
    if (emulator.error is None) != (reference.error is None):
        return "error"
    if emulator.error is not None:
        return None
    return first_difference(emulator.value, reference.value)


def check(recorded: dict[str, Outcome]) -> list[Difference]:
    """Evaluate the recorded expressions with the reference; the differences, in order."""
    expressions = list(recorded)
    differences = []
    for expression, reference in zip(expressions, evaluate_reference(expressions), strict=True):
        where = compare(recorded[expression], reference)
        if where is not None:
            differences.append(Difference(expression, recorded[expression], reference, where))
    return differences


class Recorder:
    """`harness.jsonata_recorder`: keeps each distinct expression's first outcome until
    `check` compares them; an expression checked once is not recorded again (in this process).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # moto evaluates on its execution threads
        self._checked: set[bytes] = set()  # digests: the expressions can be large
        self._pending: dict[str, Outcome] = {}
        self.recorded = 0  # evaluations seen
        self.compared = 0  # distinct expressions sent to the reference

    def __call__(self, expression: str, result: Any, error: Exception | None) -> None:
        digest = _digest(expression)
        with self._lock:
            self.recorded += 1
            if digest in self._checked or expression in self._pending:
                return
            self._pending[expression] = emulator_outcome(result, error)

    def check(self) -> list[Difference]:
        """Compare what was recorded since the last check; those are then not recorded again."""
        with self._lock:
            batch, self._pending = self._pending, {}
        differences = check(batch)
        with self._lock:
            self._checked.update(_digest(expression) for expression in batch)
            self.compared += len(batch)
        return differences


def report(differences: list[Difference], saved_to: Path | None = None) -> str:
    lines = [
        f"{len(differences)} JSONata expression(s) evaluated differently by the emulator "
        f"(jsonata-python) and the reference (npm jsonata {pinned_version()}):"
    ]
    lines += [difference.describe() for difference in differences]
    if saved_to is not None:
        lines.append(f"full expressions and both results: {saved_to}")
    return "\n".join(lines)


def save(differences: list[Difference], path: Path) -> None:
    """The full expressions and both outcomes, to reproduce a difference."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            [
                {
                    "expression": d.expression,
                    "where": d.where,
                    "emulator": _as_json(d.emulator),
                    "reference": _as_json(d.reference),
                }
                for d in differences
            ],
            indent=2,
            ensure_ascii=False,
        )
    )


def _as_json(outcome: Outcome) -> dict[str, Any]:
    if outcome.error is not None:
        return {"error": outcome.error}
    if outcome.undefined:
        return {"undefined": True}
    return {"value": outcome.value}


def _digest(expression: str) -> bytes:
    return hashlib.blake2b(expression.encode(), digest_size=16).digest()


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _elide(expression: str, head: int = 160, tail: int = 400) -> str:
    """The start and the end of an expression: moto's declarations of $states and the
    variables come first, the state's own expression last."""
    if len(expression) <= head + tail:
        return expression
    return f"{expression[:head]} … {expression[-tail:]}"

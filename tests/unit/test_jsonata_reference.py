"""The check of the emulator's JSONata against the reference npm jsonata
(cli/mq_cutover_cli/jsonata_reference.py): it catches a real difference between the two engines,
an altered result and a lone error; it does not flag the same value written another way; and it
fails, saying how to install, when node or the package is missing. These run node."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from mq_cutover_cli import harness, jsonata_reference
from mq_cutover_cli.jsonata_reference import Outcome, Recorder, first_difference


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """The harness's evaluator, recording (as the workflow tests have it)."""
    recorder = Recorder()
    monkeypatch.setattr(harness, "jsonata_recorder", recorder)
    return recorder


def evaluate(expression: str) -> Any:
    """What the emulator computes (moto calls this for every JSONata expression)."""
    return harness._jsonata_eval(expression)


def test_a_real_divergence_between_the_engines_is_caught(recorder: Recorder) -> None:
    # jsonata-python formats a number past 15 significant digits with an exponent; the
    # reference (JavaScript) writes every digit. A string the product built this way would
    # differ on AWS.
    assert evaluate("$string(123456789012345678)") == "1.23456789012346e+17"
    assert evaluate("'left: ' & 100000000000000000000") == "left: 1e+20"

    differences = recorder.check()

    assert [(d.where, d.emulator.value, d.reference.value) for d in differences] == [
        ("$", "1.23456789012346e+17", "123456789012345680"),
        ("$", "left: 1e+20", "left: 100000000000000000000"),
    ]
    text = jsonata_reference.report(differences)
    assert "$string(123456789012345678)" in text
    assert '"123456789012345680"' in text
    assert "npm jsonata 2." in text


def test_a_recorded_result_altered_on_purpose_is_caught(recorder: Recorder) -> None:
    expression = '($states := {"input": {"n": 2}}; {"doubled": $states.input.n * 2, "xs": [1, 2]})'
    assert evaluate(expression) == {"doubled": 4, "xs": [1, 2]}
    # What a wrong evaluator would have computed:
    recorder._pending[expression] = Outcome(value={"doubled": 4, "xs": [1, 3]})

    [difference] = recorder.check()

    assert difference.where == "$.xs[1]"
    assert difference.reference.value == {"doubled": 4, "xs": [1, 2]}


def test_an_error_on_one_side_only_is_caught_and_errors_on_both_are_equal(
    recorder: Recorder,
) -> None:
    with pytest.raises(Exception, match="JSONata"):
        evaluate("$sum(['a'])")  # both engines refuse: T0412
    assert evaluate("1 + 1") == 2
    recorder._pending["1 + 1"] = Outcome(error="JException: altered on purpose")

    [difference] = recorder.check()

    assert difference.expression == "1 + 1"
    assert difference.where == "error"
    assert difference.reference == Outcome(value=2)


def test_the_same_value_written_another_way_is_not_a_difference(recorder: Recorder) -> None:
    # Evaluated by both engines, no difference: ints and doubles, -0, undefined as null,
    # objects in another key order, regular expressions, unicode.
    expressions = [
        "1.0 * 3",
        "-0",
        "0.1 + 0.2",
        "$sum([0.1, 0.2, 0.3])",
        "$nothing",
        "[1, 2, 3][$ > 5]",
        '{"b": 1, "a": {"d": [true, null], "c": "x"}}',
        '$match(\'"errorMessage": "bad\\\\n", "errorType"\', '
        '/"errorMessage":\\s*"(.*?)",\\s*"errorType"/)[0].groups[0]',
        "$substring('héllo😀x', 5, 2)",
        "$string(2.5e-7) & ' ' & $string(1/3)",
    ]
    for expression in expressions:
        evaluate(expression)

    assert recorder.check() == []
    assert recorder.compared == len(expressions)


@pytest.mark.parametrize(
    ("emulator", "reference"),
    [
        (1, 1.0),
        (-0.0, 0),
        (2**60, 1152921504606846976),
        ({"a": 1, "b": [1, {"c": None}]}, {"b": [1.0, {"c": None}], "a": 1}),
        (None, None),
    ],
)
def test_equal_representations(emulator: Any, reference: Any) -> None:
    assert first_difference(emulator, reference) is None


@pytest.mark.parametrize(
    ("emulator", "reference", "where"),
    [
        (True, 1, "$"),
        (1, True, "$"),
        ("1", 1, "$"),
        (None, 0, "$"),
        (0.1 + 0.2, 0.3, "$"),
        ([1, 2], [2, 1], "$[0]"),
        ([1], [1, 1], "$ (length 1 vs 2)"),
        ({"a": None}, {}, "$ (keys only in the emulator: ['a'], only in the reference: [])"),
        ({"a": {"b": "x"}}, {"a": {"b": "y"}}, "$.a.b"),
    ],
)
def test_unequal_values(emulator: Any, reference: Any, where: str) -> None:
    assert first_difference(emulator, reference) == where


def test_a_result_undefined_in_the_reference_equals_the_emulators_none() -> None:
    assert jsonata_reference.compare(Outcome(value=None), Outcome(undefined=True)) is None
    assert jsonata_reference.compare(Outcome(value=0), Outcome(undefined=True)) == "$"


def test_expressions_are_deduplicated_and_sent_in_one_node_process(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(*args: Any, **kwargs: Any) -> Any:
        runs.append(args[0])
        return real_run(*args, **kwargs)

    monkeypatch.setattr(jsonata_reference.subprocess, "run", counting_run)
    for _ in range(3):
        evaluate("1 + 1")
        evaluate("'a' & 'b'")

    assert recorder.check() == []
    evaluate("1 + 1")  # checked already: not sent again
    assert recorder.check() == []

    assert len(runs) == 1
    assert recorder.recorded == 7
    assert recorder.compared == 2


def test_without_node_the_check_fails_saying_how_to_install(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonata_reference.shutil, "which", lambda _name: None)
    evaluate("1 + 1")

    with pytest.raises(jsonata_reference.ReferenceUnavailable, match="make setup-node"):
        recorder.check()


def test_without_the_npm_package_the_check_fails_saying_how_to_install(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(jsonata_reference, "INSTALLED_PACKAGE", tmp_path / "package.json")
    evaluate("1 + 1")

    with pytest.raises(jsonata_reference.ReferenceUnavailable, match="make setup-node"):
        recorder.check()


def test_another_installed_version_than_the_lock_pins_fails(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    installed = tmp_path / "package.json"
    installed.write_text('{"name": "jsonata", "version": "1.8.7"}')
    monkeypatch.setattr(jsonata_reference, "INSTALLED_PACKAGE", installed)
    evaluate("1 + 1")

    with pytest.raises(jsonata_reference.ReferenceUnavailable, match=r"jsonata 1\.8\.7"):
        recorder.check()


def test_the_lock_pins_an_exact_2x_version() -> None:
    version = jsonata_reference.pinned_version()
    assert version.startswith("2.")
    package = (jsonata_reference.ROOT / "package.json").read_text()
    assert f'"jsonata": "{version}"' in package

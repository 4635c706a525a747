"""`pip install .` in a clean virtual environment gives the operator's CLI and nothing of the
simulator: moto and jsonata are not importable there, every operator command loads, and
`simulate` says which extra it needs (issue 13, item 3).

This builds and installs the package from PyPI's pinned dependencies (constraints.txt), as an
operator on a host next to the broker would: about a minute with a warm pip cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OPERATOR_MODULES = (
    "mq_cutover_cli.cli",
    "mq_cutover_cli.api",
    "mq_cutover_cli.decide",
    "mq_cutover_cli.preflight_cmd",
    "mq_cutover_cli.operate",
    "mq_cutover_cli.abort_cmd",
    "mq_cutover.metrics_bridge",
)
OPERATOR_COMMANDS = (
    "preflight",
    "start",
    "status",
    "abort",
    "report",
    "approve",
    "reject",
    "extend",
    "pending",
    "approvers",
    "publish-metrics",
)


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("clean-install")
    source = root / "source"  # a copy: building in the repo would race other test workers
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    for package in ("src", "cli"):
        shutil.copytree(
            REPO / package,
            source / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "requirements.txt"),
        )
    venv = root / "venv"
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(root)),  # the pip cache
        "AWS_CONFIG_FILE": str(root / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    made = _run([sys.executable, "-m", "venv", str(venv)], env)
    assert made.returncode == 0, made.stderr
    installed = _run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "-c",
            str(REPO / "constraints.txt"),
            str(source),
        ],
        env,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv, env


def test_the_operator_cli_installs_without_the_simulator(
    clean_venv: tuple[Path, dict[str, str]],
) -> None:
    venv, env = clean_venv
    python = str(venv / "bin" / "python")
    # Not importable at all in this environment: not merely unused.
    for module in ("moto", "jsonata"):
        probe = _run([python, "-c", f"import {module}"], env)
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, module
    # Every operator module loads with only the declared dependencies.
    loaded = _run([python, "-c", "; ".join(f"import {m}" for m in OPERATOR_MODULES)], env)
    assert loaded.returncode == 0, loaded.stderr
    cli = str(venv / "bin" / "mq-cutover")
    for command in OPERATOR_COMMANDS:
        helped = _run([cli, command, "--help"], env)
        assert helped.returncode == 0 and "usage: mq-cutover" in helped.stdout, (
            command,
            helped.stderr,
        )
    schema = _run([cli, "schema"], env)
    assert schema.returncode == 0 and '"migrationId"' in schema.stdout


def test_an_operator_command_runs_its_real_code_there(
    clean_venv: tuple[Path, dict[str, str]],
) -> None:
    """approve gets as far as looking for credentials (none here): the command's own code ran."""
    venv, env = clean_venv
    answer = _run(
        [
            str(venv / "bin" / "mq-cutover"),
            "approve",
            "orders-1",
            "--gate",
            "cutover",
            "--api-url",
            "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/decisions",
        ],
        env,
    )
    assert answer.returncode == 2
    assert "no AWS credentials found" in answer.stderr
    assert "Traceback" not in answer.stderr


def test_simulate_names_the_extra_it_needs(clean_venv: tuple[Path, dict[str, str]]) -> None:
    venv, env = clean_venv
    answer = _run(
        [
            str(venv / "bin" / "mq-cutover"),
            "simulate",
            "--plan",
            str(REPO / "events" / "plan-ordered.json"),
        ],
        env,
    )
    assert answer.returncode == 2
    assert "pip install 'mq-cutover[simulator]'" in answer.stderr
    assert "Traceback" not in answer.stderr

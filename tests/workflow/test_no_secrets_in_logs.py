"""No secret in any log at any level: the real workflow, offline, with every logger at DEBUG
(botocore's request and response dumps included) and Powertools logging every event, both gates
decided through the emailed links. Everything logged is captured by handlers this test attaches
itself (and by the harness and capfd), so the result depends neither on test order nor on which
tiers ran; the secrets are read from the run's own state, then looked for in the capture."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import mq_cutover.observability  # the product's logging, as every handler imports it
from mq_cutover_cli.live import LiveRun, live_run

pytestmark = pytest.mark.workflow

LINK_ID = re.compile(r"/approvals/([A-Za-z0-9_.-]+)")


def decide_gate_through_links(run: LiveRun, gate: str) -> None:
    """What an approver does: opens the emailed links (GET decides nothing), then confirms on
    the page (POST). The one place that knows the harness's gate-driving API."""
    email = run.wait_for_gate(gate)
    for link in (email.approve_link, email.reject_link):
        assert run.api.get(link)["statusCode"] == 200
    assert run.api.get(email.approve_link + "?decision=approve")["statusCode"] == 200
    decided = run.api.post(email.approve_link, {"decision": "approve", "comment": "window ok"})
    assert decided["statusCode"] == 200, decided["body"]


class _EverythingHandler(logging.Handler):
    """Writes each record formatted, and every attribute a handler could read (msg, args,
    extra, exception, stack), so nothing a formatter might show escapes the scan."""

    def __init__(self, stream: io.StringIO, seen: list[tuple[str, int]]) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.seen = seen
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.name, record.levelno))
        self.stream.write(self.format(record) + "\n")
        self.stream.write(repr(vars(record)) + "\n")


@contextmanager
def every_logger_at_debug(stream: io.StringIO, seen: list[tuple[str, int]]) -> Iterator[None]:
    """Root and every logger known at DEBUG, this test's handler on the root and on each
    logger that does not propagate (Powertools' service logger), `logging.disable` lifted;
    all undone afterwards."""
    handler = _EverythingHandler(stream, seen)
    changed: dict[str, tuple[logging.Logger, int, bool]] = {}
    disabled_below = logging.root.manager.disable
    logging.disable(logging.NOTSET)

    def apply() -> None:
        loggers = [logging.getLogger()] + [
            logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
        ]
        for logger in loggers:
            if logger.name not in changed:
                changed[logger.name] = (logger, logger.level, logger.disabled)
            logger.setLevel(logging.DEBUG)
            logger.disabled = False
            if (logger is logging.root or not logger.propagate) and handler not in (
                logger.handlers
            ):
                logger.addHandler(handler)

    try:
        apply()
        yield
        apply()  # loggers created since (by handlers' imports) are caught up too
    finally:
        logging.disable(disabled_below)
        for logger, level, disabled in changed.values():
            logger.setLevel(level)
            logger.disabled = disabled
            if handler in logger.handlers:
                logger.removeHandler(handler)


def run_state_secrets(run: LiveRun) -> dict[str, list[str]]:
    """Every secret the run produced or used, read from its state (not hard-coded)."""
    emulator = run.emulator
    items = emulator.client("dynamodb").scan(TableName=emulator.resources["ApprovalsTable"])
    tokens = [item["taskToken"]["S"] for item in items["Items"]]
    link_ids = sorted(
        {
            link_id
            for mail in emulator.inbox("ApprovalTopic")
            for link_id in LINK_ID.findall(mail["message"])
        }
    )
    tags = [link_id.rsplit(".", 1)[1] for link_id in link_ids]
    sm = emulator.client("secretsmanager")
    values = [
        sm.get_secret_value(SecretId=secret["ARN"])["SecretString"]
        for secret in sm.list_secrets()["SecretList"]
    ]
    passwords = []  # a secret may hold {"username", "password"} (broker.py reads either)
    for value in values:
        try:
            document = json.loads(value)
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict) and "password" in document:
            passwords.append(str(document["password"]))
    return {
        "task tokens": tokens,
        "link ids": link_ids,
        "link tags": tags,
        "Secrets Manager values": values,
        "broker passwords": passwords,
    }


def test_no_secret_reaches_any_log_with_every_logger_at_debug_and_events_logged(
    ordered_plan: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    monkeypatch.setenv("MQ_CUTOVER_DEBUG", "1")  # the harness leaves moto's loggers alone
    assert mq_cutover.observability.logger is not None
    stream, seen = io.StringIO(), list[tuple[str, int]]()
    with live_run(ordered_plan, log_level="DEBUG") as run:
        with every_logger_at_debug(stream, seen):
            for gate in ("cutover", "stopOnPrem"):
                decide_gate_through_links(run, gate)
            assert run.wait_until_done()["status"] == "SUCCEEDED"
        secrets = run_state_secrets(run)
        handler_logs = run.emulator.captured_output.getvalue()
    printed = capfd.readouterr()
    captured = "\n".join([stream.getvalue(), handler_logs, printed.out, printed.err])

    # The capture is the real thing: botocore's DEBUG dumps, and Powertools' event logging
    # (the Step Functions event of Request Approval, the API Gateway event of a link).
    assert (
        len([n for n, level in seen if n.startswith("botocore") and level == logging.DEBUG]) > 500
    )
    assert "Response body" in captured and "Making request for OperationModel" in captured
    events = [
        line["message"]
        for line in map(json.loads, handler_logs.splitlines())
        if isinstance(line.get("message"), dict)
    ]
    assert any(e.get("gate") == "stopOnPrem" and "taskToken" in e for e in events)
    assert any(e.get("resource") == "/approvals/{link}" for e in events)
    assert any(e.get("httpMethod") == "POST" for e in events)

    assert len(secrets["task tokens"]) == 2
    assert len(secrets["link ids"]) >= 2 * 3  # 2 gates, 3 approvers (one link id each)
    assert len(secrets["Secrets Manager values"]) >= 2  # the link key, the broker user's
    for kind, values in secrets.items():
        for value in values:
            assert len(value) >= 12, (kind, value)
            assert value not in captured, f"a {kind[:-1]} is in the logs"
            # Nor any 30-character piece of one (a token cut or wrapped).
            for start in range(0, max(1, len(value) - 29)):
                piece = value[start : start + 30]
                assert piece not in captured, f"part of a {kind[:-1]} is in the logs"

"""Every AWS call a handler makes while the offline harness runs it.

The harness runs each handler inside `invoking(<function logical id>)`; while `recording()` is
open, each boto3 call made on that thread is kept as an `AwsCall` (function, service, operation,
params). The least-privilege test checks each one against that function's IAM policy.

Calls made on the harness's own clients (`harness.boto3_client`: the simulated world, faults,
the test itself) are not the function's and are left out, even when the world acts while a
handler sleeps. Secret values (passwords, task tokens) are redacted from the kept params.

Patched, and why: botocore's `BaseClient._make_api_call(self, operation_name, api_params)` is
the one place every client method, paginator and boto3 resource call passes through, with the
API's own parameter names. It is private botocore (pinned); `tests/workflow/
test_least_privilege.py::test_call_log_canary` fails loudly if it moves.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from botocore.client import BaseClient

REDACTED = "<redacted>"
# Parameter names whose values are secrets or task tokens, at any depth: never kept. A
# parameter's Value (it may be a SecureString) is dropped too, at the top level.
SECRET_PARAMS = frozenset({"Password", "SecretString", "SecretBinary", "taskToken"})
TOP_LEVEL_SECRETS = frozenset({"Value"})

_current = threading.local()


@dataclass(frozen=True)
class AwsCall:
    function: str  # the handler's logical id, e.g. RepointClientsFunction
    service: str  # boto3's service name, e.g. ssm, stepfunctions, cloudwatch
    operation: str  # the API operation, e.g. PutParameter
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.function}: {self.service}.{self.operation}"


def current_function() -> str | None:
    """The handler running on this thread, if any."""
    return getattr(_current, "function", None)


@contextmanager
def invoking(function: str) -> Iterator[None]:
    """Calls made on this thread until the block ends are `function`'s."""
    previous = current_function()
    _current.function = function
    try:
        yield
    finally:
        _current.function = previous


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if key in SECRET_PARAMS else redact(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return copy.deepcopy(value)


def _harness_clients() -> list[Any]:
    from mq_cutover_cli import harness

    return list(harness._CLIENTS.values())


@contextmanager
def recording() -> Iterator[list[AwsCall]]:
    """Keep every call a handler makes until the block ends (the list grows as they come)."""
    calls: list[AwsCall] = []
    lock = threading.Lock()
    original = BaseClient._make_api_call

    def make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        function = current_function()
        if function is not None and not any(client is c for c in _harness_clients()):
            call = AwsCall(
                function=function,
                service=str(client.meta.service_model.service_name),
                operation=operation_name,
                params={
                    key: REDACTED if key in TOP_LEVEL_SECRETS else redact(value)
                    for key, value in api_params.items()
                },
            )
            with lock:
                calls.append(call)
        return original(client, operation_name, api_params)

    with mock.patch.object(BaseClient, "_make_api_call", make_api_call):
        yield calls

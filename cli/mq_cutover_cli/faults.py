"""Simulated faults, injected by the harness at a step of the workflow (never in product code).

`--fail-at STEP[:KIND]`, with STEP a state name of the state machine and KIND:
- `transient`: the step's Lambda runs, does its work, then its response is lost: Lambda answers
  with a service error (HTTP 500). The state machine's Retry runs it again, and the step must
  then change nothing more (idempotency). Once.
- `throttle`: the step's first AWS write call inside the Lambda is throttled
  (`ThrottlingException`, after botocore's own retries): the handler raises `AwsThrottled`,
  which the state machine retries with back-off. Once.
- `permanent`: every run of the step fails (`SimulatedPermanentFault`, as an access-denied or
  a bad request would): the workflow must roll back (or, past the point of no return, ask for
  a person).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from botocore.exceptions import ClientError
from moto.core.exceptions import JsonRESTError

from mq_cutover_cli.harness import Emulator

Matcher = Callable[[dict[str, Any]], bool]


def _step(step: str, one: bool | None = None) -> Matcher:
    def match(event: dict[str, Any]) -> bool:
        if event.get("step") != step:
            return False
        return one is None or ("parameterIndex" in event) == one

    return match


# State name -> (function, which of its invocations belong to that state).
STEPS: dict[str, tuple[str, Matcher | None]] = {
    "Provision Broker": ("ProvisionBrokerFunction", None),
    "Repoint Producers": ("RepointClientsFunction", _step("producers", one=False)),
    "Repoint Producer": ("RepointClientsFunction", _step("producers", one=True)),
    "Widen Consumers": ("RepointClientsFunction", _step("widen-consumers")),
    "Repoint Consumers": ("RepointClientsFunction", _step("consumers")),
    "Narrow Consumers": ("RepointClientsFunction", _step("narrow-consumers")),
    "Check Drain": ("CheckDrainFunction", None),
    "Stop On-Prem": ("StopOnPremFunction", None),
    "Roll Back": ("RollbackFunction", None),
}
KINDS = ("transient", "throttle", "permanent")
WRITES = {
    "ProvisionBrokerFunction": ("mq", "CreateBroker"),
    "RepointClientsFunction": ("ssm", "PutParameter"),
    "RollbackFunction": ("ssm", "PutParameter"),
    "StopOnPremFunction": ("ssm", "SendCommand"),
    "CheckDrainFunction": ("cloudwatch", "GetMetricData"),
}


class SimulatedPermanentFault(Exception):
    """A fault that no retry cures (the harness raises it in place of the step's Lambda)."""


class LambdaServiceError(JsonRESTError):
    code = 500


def parse(spec: str) -> tuple[str, str]:
    step, _, kind = spec.partition(":")
    kind = kind or "permanent"
    if step not in STEPS:
        raise ValueError(f"--fail-at: unknown step {step!r}; one of {sorted(STEPS)}")
    if kind not in KINDS:
        raise ValueError(f"--fail-at: unknown kind {kind!r}; one of {list(KINDS)}")
    return step, kind


@dataclass
class Fault:
    step: str
    kind: str
    fired: int = 0
    calls: list[str] = field(default_factory=list)

    def install(self, emulator: Emulator) -> None:
        function, matcher = STEPS[self.step]

        def applies(name: str, event: dict[str, Any]) -> bool:
            return name == function and (matcher is None or matcher(event))

        if self.kind == "permanent":

            def fail(name: str, event: dict[str, Any]) -> None:
                if applies(name, event):
                    self.fired += 1
                    raise SimulatedPermanentFault(
                        f"simulated permanent fault in {self.step} (e.g. AccessDenied)"
                    )

            emulator.hooks.append(fail)
        elif self.kind == "transient":

            def lose_response(name: str, event: dict[str, Any], result: Any) -> None:
                if applies(name, event) and not self.fired:
                    self.fired += 1
                    raise LambdaServiceError(
                        "ServiceException", f"simulated: {self.step} ran, its response was lost"
                    )

            emulator.after_hooks.append(lose_response)
        else:
            service, operation = WRITES[function]
            client = getattr(emulator.handlers[function], service)

            def throttle(**kwargs: Any) -> None:
                if not self.fired:
                    self.fired += 1
                    raise ClientError(
                        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                        operation,
                    )

            def arm(name: str, event: dict[str, Any]) -> None:
                if applies(name, event) and not self.fired:
                    service_id = client.meta.service_model.service_id.hyphenize()
                    client.meta.events.register_first(
                        f"before-call.{service_id}.{operation}",
                        throttle,
                        unique_id=f"fault-{self.step}",
                    )

            emulator.hooks.append(arm)


class ThrottlingException(JsonRESTError):
    code = 400


def throttle_ssm_puts(emulator: Emulator, every: int) -> list[int]:
    """Simulated SSM throttling: every `every`-th PutParameter is refused by the service
    (HTTP 400 ThrottlingException, nothing written), so botocore's own retry (adaptive mode,
    with its real back-off) has to absorb it. Returns a list that counts the throttles."""
    from moto.ssm.models import SimpleSystemManagerBackend

    original = SimpleSystemManagerBackend.put_parameter
    calls = [0]
    throttled: list[int] = []

    def put_parameter(backend: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] % every == 0:
            throttled.append(calls[0])
            raise ThrottlingException("ThrottlingException", "Rate exceeded")
        return original(backend, *args, **kwargs)

    patch = mock.patch.object(SimpleSystemManagerBackend, "put_parameter", put_parameter)
    patch.start()
    emulator.cleanups.append(patch.stop)
    return throttled

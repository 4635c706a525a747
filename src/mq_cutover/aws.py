"""boto3 plumbing shared by the handlers: client config and throttling classification."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from mq_cutover.errors import AwsThrottled

# botocore retries throttling itself first (adaptive mode backs off across calls); what is still
# throttled after that becomes AwsThrottled, which the state machine retries with a longer back-off.
CLIENT_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 8}, connect_timeout=5)

NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})

_TRANSIENT = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "TooManyUpdates",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalError",
    "InternalFailure",
    "InternalServerErrorException",
    "InternalServerError",
}


def raise_if_throttled(exc: ClientError) -> None:
    code = exc.response.get("Error", {}).get("Code", "")
    if code in _TRANSIENT:
        raise AwsThrottled(f"{exc.operation_name}: {code}") from exc


# No answer at all (DNS, connect or read timeout, connection reset), after botocore's own retries:
# as transient as a throttle. A read timeout may hide a call that did run: only handlers whose
# step may run again (the state machine already retries Lambda service errors) use this.
UNREACHABLE = (BotoConnectionError, HTTPClientError)

P = ParamSpec("P")
R = TypeVar("R")


def raise_if_transient(exc: Exception) -> None:
    """AwsThrottled for a throttled or unreachable AWS API; any other error is left alone."""
    if isinstance(exc, ClientError):
        raise_if_throttled(exc)
    elif isinstance(exc, UNREACHABLE):
        raise AwsThrottled(f"{type(exc).__name__}: {exc}") from exc


def transient_errors_retried(handler: Callable[P, R]) -> Callable[P, R]:
    """A handler whose throttled or unreachable AWS calls fail it as AwsThrottled (the state
    machine retries it with back-off) instead of as ClientError or EndpointConnectionError."""

    @functools.wraps(handler)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return handler(*args, **kwargs)
        except (ClientError, *UNREACHABLE) as exc:
            raise_if_transient(exc)
            raise

    return wrapper


def client(service: str) -> Any:
    return boto3.client(service, config=CLIENT_CONFIG)

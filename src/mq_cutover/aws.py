"""boto3 plumbing shared by the handlers: client config and throttling classification."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

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


def client(service: str) -> Any:
    return boto3.client(service, config=CLIENT_CONFIG)

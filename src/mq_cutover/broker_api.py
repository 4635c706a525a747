"""A broker's HTTP API, as the workflow's steps call it: RabbitMQ's management API (on-prem and
Amazon MQ's, which answers at the broker's console URL) and ActiveMQ's Jolokia.

- Credentials come from Secrets Manager (`{"username", "password"}`, or a bare password string
  with the username given by the plan) and never appear in an error, a log line or a repr.
- Every call goes through `urllib.request.urlopen`, so it follows the process's installed opener
  (proxies; the offline harness installs one that answers for simulated brokers).
- A failure becomes `BrokerApiFailed` naming the broker's side, the method and path, and the
  HTTP status or network error.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from mq_cutover.errors import BrokerApiFailed

TIMEOUT_SECONDS = 20


@dataclass(frozen=True)
class Endpoint:
    """One broker's HTTP API. `side` names it in errors ("on-prem", "Amazon MQ")."""

    url: str  # base URL, no trailing slash: http://host:15672 or http://host:8161/api/jolokia
    username: str
    password: str = field(repr=False)
    side: str = "on-prem"

    def with_url(self, url: str) -> Endpoint:
        return Endpoint(url.rstrip("/"), self.username, self.password, self.side)


def credentials(secrets: Any, secret_arn: str, username: str | None = None) -> tuple[str, str]:
    """(username, password) from a secret: JSON `{"username", "password"}`, or a bare password
    (or `{"password"}`) when the plan names the user. Raises BrokerApiFailed, naming the secret
    (never its value), when it holds neither."""
    value = secrets.get_secret_value(SecretId=secret_arn)["SecretString"]
    try:
        document = json.loads(value)
    except json.JSONDecodeError:
        document = None
    if isinstance(document, dict):
        user = document.get("username") or username
        password = document.get("password")
    else:
        user, password = username, value
    if not isinstance(user, str) or not user or not isinstance(password, str) or not password:
        raise BrokerApiFailed(
            f'secret {secret_arn} must hold JSON {{"username", "password"}}'
            + ("" if username else " (no username in the plan for a bare password)")
        )
    return user, password


def endpoint(
    secrets: Any, url: str, secret_arn: str, *, side: str, username: str | None = None
) -> Endpoint:
    user, password = credentials(secrets, secret_arn, username)
    return Endpoint(url.rstrip("/"), user, password, side)


def quote(segment: str) -> str:
    """A path segment as RabbitMQ's API wants it (the default vhost `/` is `%2F`)."""
    return urllib.parse.quote(segment, safe="")


def call(
    api: Endpoint,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, Any] | None = None,
    expect_json: bool = True,
) -> Any:
    """One request: `path` is appended to the endpoint's URL. Returns the parsed JSON (None for
    an empty body). 404 raises BrokerApiFailed too: callers that expect one use `exists`."""
    url = api.url + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    if not url.startswith(("http://", "https://")):
        raise BrokerApiFailed(f"{api.side} broker API: URL must be http(s), got {api.url!r}")
    token = base64.b64encode(f"{api.username}:{api.password}".encode()).decode()
    headers = {"Accept": "application/json", "Authorization": f"Basic {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    where = f"{api.side} broker API {method} {path}"
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = _error_reason(exc)
        raise BrokerApiFailed(f"{where}: HTTP {exc.code}{detail}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BrokerApiFailed(f"{where}: {reason}") from None
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        if expect_json:
            raise BrokerApiFailed(f"{where}: answered something that is not JSON") from None
        return raw.decode("utf-8", "replace")


def exists(api: Endpoint, path: str) -> bool:
    """Whether GET `path` finds something (200) rather than nothing (404)."""
    try:
        call(api, "GET", path)
    except BrokerApiFailed as exc:
        if ": HTTP 404" in str(exc):
            return False
        raise
    return True


def _error_reason(exc: urllib.error.HTTPError) -> str:
    """RabbitMQ's `{"error", "reason"}`, shortened (it never echoes credentials)."""
    try:
        document = json.loads(exc.read() or b"null")
    except (json.JSONDecodeError, OSError):
        return ""
    if isinstance(document, dict) and document.get("reason"):
        return f" ({str(document['reason'])[:300]})"
    return ""


def amazon_mq_api_url(mq: Any, broker_id: str) -> str:
    """The Amazon MQ broker's management API: its web console URL (RabbitMQ serves the API at
    `/api` there). A cluster's instances share one console URL."""
    instances = mq.describe_broker(BrokerId=broker_id).get("BrokerInstances") or []
    for instance in instances:
        if instance.get("ConsoleURL"):
            return str(instance["ConsoleURL"]).rstrip("/")
    raise BrokerApiFailed(f"Amazon MQ broker {broker_id} reports no console URL yet")

"""The stack's decision API (`/decisions/{migrationId}`), called as the caller's IAM identity.

API Gateway authorises these routes with AWS_IAM: every request is signed with SigV4 (service
`execute-api`) with the session's credentials, session token included, and the server takes the
voter from the verified signature. Nothing the CLI says about itself names the voter, and the CLI
needs no right but `execute-api:Invoke` on these routes.

Requests go out through a transport, `transport(method, url, headers, body) -> (status, headers,
body)`: urllib here, the offline harness's simulated API Gateway in tests (the same signing code
either way).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

Transport = Callable[[str, str, dict[str, str], bytes | None], tuple[int, dict[str, str], bytes]]

SERVICE = "execute-api"
TIMEOUT_SECONDS = 30.0
_EXECUTE_API_HOST = re.compile(r"[a-z0-9]+\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com")
_UNKNOWN_OUTCOME = (
    "a decision may or may not have been recorded: run `mq-cutover pending` to see whether the "
    "gate is still open (sending the same decision again is safe: a vote counts once)"
)


class DecisionApiError(Exception):
    """The decision API could not give an answer to act on. The message says what to do."""


class ApiUnreachable(DecisionApiError):
    """No answer: the network, DNS, TLS or a timeout."""


class NotAuthorised(DecisionApiError):
    """403: API Gateway refused the signature or the caller's rights, or the server does not know
    the caller as an approver. `identity` is who the request was signed as."""

    def __init__(self, message: str, identity: str) -> None:
        super().__init__(message)
        self.identity = identity


class ServerUnavailable(DecisionApiError):
    """5xx or throttled."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class UnexpectedAnswer(DecisionApiError):
    """An answer that is not the API's JSON (a proxy's page, the wrong URL)."""


@dataclass(frozen=True)
class Answer:
    """A JSON answer the API gave on purpose: 2xx, or 400/404/409/410 saying why not."""

    status: int
    body: dict[str, Any]


def urllib_transport(
    method: str, url: str, headers: dict[str, str], body: bytes | None
) -> tuple[int, dict[str, str], bytes]:
    """Send one request; an HTTP error status is an answer, not an exception."""
    scheme = urlsplit(url).scheme
    if scheme != "https" and not _is_loopback(url):
        raise ApiUnreachable(f"refusing to send a signed request over {scheme or 'no scheme'}")
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return int(response.status), dict(response.headers.items()), bytes(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), dict(error.headers.items()), bytes(error.read())
    except TimeoutError as exc:
        raise ApiUnreachable(
            f"no answer from {_host(url)} within {TIMEOUT_SECONDS:.0f} s; {_UNKNOWN_OUTCOME}"
        ) from exc
    except urllib.error.URLError as exc:
        raise ApiUnreachable(f"cannot reach {_host(url)}: {exc.reason}") from exc
    except OSError as exc:
        raise ApiUnreachable(f"cannot reach {_host(url)}: {exc}") from exc


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def region_of(url: str) -> str | None:
    """The region in an `https://<id>.execute-api.<region>.amazonaws.com/...` URL."""
    match = _EXECUTE_API_HOST.fullmatch(urlsplit(url).hostname or "")
    return match["region"] if match else None


def sign(
    method: str,
    url: str,
    body: bytes | None,
    *,
    credentials: Any,
    region: str,
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """The headers of a SigV4-signed request (X-Amz-Date, Authorization and, for temporary
    credentials, X-Amz-Security-Token). `credentials`: botocore credentials, refreshed here."""
    frozen = _frozen(credentials)
    request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers or {}))
    SigV4Auth(frozen, SERVICE, region).add_auth(request)
    return {str(k): str(v) for k, v in request.headers.items()}


@dataclass
class DecisionApi:
    """`base_url` is the stack's DecisionApiUrl (`https://…/<stage>/decisions`)."""

    base_url: str
    credentials: Any
    region: str
    transport: Transport = urllib_transport
    # Who the requests are signed as, for a 403's message (e.g. STS GetCallerIdentity's ARN).
    whoami: Callable[[], str] | None = None
    _identity: str | None = field(default=None, init=False, repr=False)

    def url(self, migration_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/{quote(migration_id, safe='')}"

    def get(self, migration_id: str) -> Answer:
        return self.request("GET", self.url(migration_id), None)

    def post(self, migration_id: str, payload: dict[str, Any]) -> Answer:
        return self.request("POST", self.url(migration_id), payload)

    def request(self, method: str, url: str, payload: dict[str, Any] | None) -> Answer:
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        signed = sign(
            method, url, body, credentials=self.credentials, region=self.region, headers=headers
        )
        status, _headers, raw = self.transport(method, url, signed, body)
        return self._answer(method, status, raw)

    def identity(self) -> str:
        """The ARN the requests are signed as, else the access key id (not a secret)."""
        if self._identity is None:
            key = _access_key(self.credentials)
            name = None
            if self.whoami is not None:
                try:
                    name = self.whoami()
                except Exception:  # only names the caller in an error message
                    name = None
            self._identity = f"{name} (access key {key})" if name else f"access key {key}"
        return self._identity

    def _answer(self, method: str, status: int, raw: bytes) -> Answer:
        document = _json(raw)
        said = _said(document)
        if status == 403:
            hint = ""
            if said == "Missing Authentication Token":
                hint = (
                    " (API Gateway says this for a path it does not have: is the URL the "
                    "stack's DecisionApiUrl?)"
                )
            raise NotAuthorised(
                f"not authorised as {self.identity()}: {said or 'forbidden'}{hint}",
                self.identity(),
            )
        if status == 429:
            raise ServerUnavailable(
                f"throttled by API Gateway ({said or 'too many requests'}): nothing was decided; "
                "try again in a minute",
                status,
            )
        if status >= 500:
            if status == 503 or method == "GET":
                what = "nothing was decided; try again"
            else:
                # 502/504: API Gateway lost the function's answer; it may have decided.
                what = _UNKNOWN_OUTCOME
            detail = f": {said}" if said else ""
            raise ServerUnavailable(f"the decision API failed ({status}{detail}); {what}", status)
        if document is None or not isinstance(document, dict):
            raise UnexpectedAnswer(
                f"the decision API answered {status} with something that is not its JSON: "
                f"{_excerpt(raw)!r}"
            )
        if status >= 300 and status not in (400, 404, 409, 410):
            raise UnexpectedAnswer(f"the decision API answered {status}: {said or document}")
        return Answer(status, document)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _said(document: Any) -> str:
    """What an error answer says: the server's `detail`, or API Gateway's `message`."""
    if isinstance(document, dict):
        for key in ("detail", "message", "Message", "outcome"):
            if isinstance(document.get(key), str):
                return str(document[key])
    return ""


def _excerpt(raw: bytes, limit: int = 120) -> str:
    text = raw.decode("utf-8", errors="replace")
    text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.split())[:limit]


def _access_key(credentials: Any) -> str:
    return str(getattr(_frozen(credentials), "access_key", "?"))


def _frozen(credentials: Any) -> Any:
    """A consistent key, secret and token (refreshable credentials may rotate between reads)."""
    if hasattr(credentials, "get_frozen_credentials"):
        return credentials.get_frozen_credentials()
    return credentials

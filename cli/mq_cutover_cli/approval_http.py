"""The approval API offline: the real `functions/approval_api` handler behind API Gateway-shaped
events, called in-process (`ApprovalApiClient`) or served over HTTP on localhost (`serve`), so
a real browser can open the emailed link and the real CLI can call the decision routes.

The decision routes (`/decisions/{migrationId}`) are behind a SIMULATION of API Gateway's
AWS_IAM authorisation (`ApprovalApiClient.signed`, `verify_sigv4`), a test tool and never part
of what is deployed. Like API Gateway it takes the access key id from the SigV4 `Authorization`
header, looks up that key's secret (here: in moto's state, IAM users' access keys and STS
assumed-role credentials, private moto 5.2.5 internals that
`tests/workflow/test_simulated_iam_authorizer.py` watches), recomputes the signature over the
same canonical request and date, and refuses with 403 `{"message": ...}` before the function is
called when the key is unknown, the signature differs or the date is more than 15 minutes off.
Otherwise the function gets `requestContext.identity` = {userArn, accountId, accessKey, caller,
user, sourceIp, userAgent} as API Gateway fills it. Not simulated: the evaluation of the caller's
IAM policy for `execute-api:Invoke` (moto has no policy engine for API Gateway).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import posixpath
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from mq_cutover_cli.harness import ACCOUNT, REGION, Emulator, LambdaContext

RESOURCE = "/approvals/{link}"
DECISIONS_RESOURCE = "/decisions/{migrationId}"
SERVICE = "execute-api"
MAX_CLOCK_SKEW = timedelta(minutes=15)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_UNKNOWN_CREDENTIALS = "The security token included in the request is invalid."
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)


def api_event(
    method: str, path: str, query: dict[str, str] | None = None, body: str | None = None
) -> dict[str, Any]:
    """A REST API (proxy integration) event for `path` (e.g. /approvals/<link>)."""
    link = path.rstrip("/").rsplit("/", 1)[-1]
    return {
        "resource": RESOURCE,
        "path": path,
        "httpMethod": method,
        "headers": {"content-type": "application/x-www-form-urlencoded"} if body else {},
        "multiValueHeaders": {},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"link": link},
        "stageVariables": None,
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "stage": "dev",
            "path": f"/dev{path}",
            "httpMethod": method,
            "resourcePath": RESOURCE,
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _split(url: str) -> tuple[str, dict[str, str]]:
    """/approvals/<link> and the query of a full link (whatever host and stage it has)."""
    parts = urlsplit(url)
    path = parts.path[parts.path.index("/approvals/") :]
    return path, dict(parse_qsl(parts.query))


# --- the simulated AWS_IAM authoriser --------------------------------------------------------
class MotoInternalsChanged(RuntimeError):
    """moto no longer keeps access keys where this simulation reads them."""


class Refused(Exception):
    """API Gateway's 403 before the integration is called."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


@dataclass(frozen=True)
class KnownKey:
    """An access key moto issued, with what API Gateway would put in `requestContext.identity`."""

    access_key: str
    secret: str
    session_token: str | None  # temporary (STS) credentials only
    user_arn: str
    account_id: str
    caller: str  # IAM user id, or ROLEID:SESSION for an assumed role
    active: bool
    expires: datetime | None


def known_key(access_key_id: str) -> KnownKey | None:
    """The secret and identity of an access key moto issued (IAM CreateAccessKey or STS
    AssumeRole), or None. Reads private moto 5.2.5 state."""
    try:
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        for account_id, partitions in list(iam_backends.items()):
            for partition, iam in list(partitions.items()):
                key = iam.access_keys.get(access_key_id)
                if key is None:
                    continue
                active = key.status == "Active"
                if key.user_name:
                    user = iam.get_user(key.user_name)
                    return KnownKey(
                        access_key_id,
                        key.secret_access_key,
                        None,
                        user.arn,
                        account_id,
                        user.id,
                        active,
                        None,
                    )
                for assumed in sts_backends[account_id][partition].assumed_roles:
                    if assumed.access_key_id == access_key_id:
                        expires = assumed.expiration
                        return KnownKey(
                            access_key_id,
                            assumed.secret_access_key,
                            assumed.session_token,
                            assumed.arn,
                            assumed.account_id,
                            assumed.user_id,
                            active,
                            expires if expires.tzinfo else expires.replace(tzinfo=UTC),
                        )
                return None
    except (AttributeError, KeyError, TypeError, ImportError) as exc:
        raise MotoInternalsChanged(
            f"the simulated IAM authoriser cannot read moto's access keys any more: {exc!r}"
        ) from exc
    return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _canonical_uri(raw_path: str) -> str:
    """SigV4 for services other than S3: the normalised path as received, URI-encoded again."""
    path = posixpath.normpath(raw_path or "/")
    if raw_path.endswith("/") and path != "/":
        path += "/"
    return quote(path, safe="/~")


def _canonical_query(raw_query: str) -> str:
    pairs = [pair.partition("=") for pair in raw_query.split("&") if raw_query]
    return "&".join(f"{k}={v}" for k, _, v in sorted(pairs))


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return f"{host}:{parts.port}" if parts.port and parts.port != default else host


def verify_sigv4(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    now: datetime,
    region: str = REGION,
) -> KnownKey:
    """The caller of a SigV4-signed request, as API Gateway's AWS_IAM authorisation verifies it
    (raises `Refused`)."""
    lower: dict[str, str] = {}
    for name, value in headers.items():
        lower[name.lower()] = value
    authorization = lower.get("authorization")
    if not authorization:
        raise Refused("Missing Authentication Token", "MissingAuthenticationTokenException")
    match = _AUTHORIZATION.fullmatch(authorization.strip())
    if not match:
        raise Refused(
            f"Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            f"parameters. Authorization={authorization.split(' ', 1)[0]}",
            "IncompleteSignatureException",
        )
    try:
        stamp = datetime.strptime(lower.get("x-amz-date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise Refused(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            "IncompleteSignatureException",
        ) from None
    if abs(now - stamp) > MAX_CLOCK_SKEW:
        raise Refused(
            f"Signature expired: {lower['x-amz-date']} is now earlier than "
            f"{(now - MAX_CLOCK_SKEW).strftime('%Y%m%dT%H%M%SZ')} "
            f"({now.strftime('%Y%m%dT%H%M%SZ')} - 15 min.)",
            "InvalidSignatureException",
        )
    scope = f"{match['date']}/{match['region']}/{match['service']}/aws4_request"
    if match["date"] != lower["x-amz-date"][:8] or (match["region"], match["service"]) != (
        region,
        SERVICE,
    ):
        raise Refused(
            f"Credential should be scoped to a valid region and service ({region}/{SERVICE}), "
            f"and to the date of X-Amz-Date; got {scope}",
            "InvalidSignatureException",
        )
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed or signed != sorted(signed):
        raise Refused(
            "SignedHeaders must be sorted and include host and x-amz-date",
            "IncompleteSignatureException",
        )
    key = known_key(match["key"])
    if key is None or not key.active or (key.expires is not None and key.expires <= now):
        raise Refused(_UNKNOWN_CREDENTIALS, "UnrecognizedClientException")
    if key.session_token is not None and lower.get("x-amz-security-token") != key.session_token:
        raise Refused(_UNKNOWN_CREDENTIALS, "UnrecognizedClientException")
    values = dict(lower)
    values.setdefault("host", _host_of(url))
    missing = [name for name in signed if name not in values]
    if missing:
        raise Refused(
            f"signed header {missing[0]} is not in the request", "InvalidSignatureException"
        )
    parts = urlsplit(url)
    canonical = "\n".join(
        [
            method.upper(),
            _canonical_uri(parts.path),
            _canonical_query(parts.query),
            "".join(f"{name}:{' '.join(values[name].split())}\n" for name in signed),
            ";".join(signed),
            _sha256(body),
        ]
    )
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", lower["x-amz-date"], scope, _sha256(canonical.encode())]
    )
    signing_key = f"AWS4{key.secret}".encode()
    for part in (match["date"], match["region"], match["service"], "aws4_request"):
        signing_key = _hmac(signing_key, part)
    expected = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        raise Refused(_MISMATCH, "InvalidSignatureException")
    return key


def decision_event(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    caller: KnownKey,
    *,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The REST API proxy event API Gateway sends for `/decisions/{migrationId}` once the
    signature is verified (headers passed through as received, as API Gateway does)."""
    parts = urlsplit(url)
    at = parts.path.index("/decisions/")
    path = parts.path[at:]
    stage = parts.path[:at].strip("/").rsplit("/", 1)[-1] or "dev"
    received = dict(headers)
    if not any(name.lower() == "host" for name in received):
        received["Host"] = _host_of(url)
    query = dict(parse_qsl(parts.query)) or None
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    user_agent = next((v for k, v in received.items() if k.lower() == "user-agent"), None)
    return {
        "resource": DECISIONS_RESOURCE,
        "path": path,
        "httpMethod": method,
        "headers": received,
        "multiValueHeaders": {k: [v] for k, v in received.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"migrationId": unquote(path[len("/decisions/") :])},
        "stageVariables": None,
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "accountId": ACCOUNT,
            "apiId": "offline",
            "stage": stage,
            "path": f"/{stage}{path}",
            "httpMethod": method,
            "resourcePath": DECISIONS_RESOURCE,
            "identity": {
                "userArn": caller.user_arn,
                "accountId": caller.account_id,
                "accessKey": caller.access_key,
                "caller": caller.caller,
                "user": caller.caller,
                "sourceIp": source_ip,
                "userAgent": user_agent,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
            },
        },
        "body": text or None,
        "isBase64Encoded": encoded,
    }


def _is_decision_route(method: str, url: str) -> bool:
    path = urlsplit(url).path
    at = path.find("/decisions/")
    return (
        method in ("GET", "POST")
        and at >= 0
        and re.fullmatch(r"[^/]+", path[at + 11 :]) is not None
    )


def _json_answer(
    status: int, document: dict[str, Any], error_type: str
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": error_type}
    return status, headers, json.dumps(document).encode()


@dataclass
class ApprovalApiClient:
    """Calls the approval API handler in-process, as API Gateway would."""

    emulator: Emulator
    # API Gateway compares X-Amz-Date with its own (real) clock, as botocore signs with it.
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def _invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        from mq_cutover_cli.call_log import invoking

        handler = self.emulator.handlers["ApprovalApiFunction"]
        context = LambdaContext(
            function_name="ApprovalApiFunction",
            invoked_function_arn=self.emulator.function_arns["ApprovalApiFunction"],
        )
        with invoking("ApprovalApiFunction"):  # its AWS calls are the function's
            return dict(handler.lambda_handler(event, context))

    def call(self, method: str, url: str, form: dict[str, str] | None = None) -> dict[str, Any]:
        path, query = _split(url)
        event = api_event(method, path, query, urlencode(form) if form else None)
        return self._invoke(event)

    def get(self, url: str) -> dict[str, Any]:
        return self.call("GET", url)

    def post(self, url: str, form: dict[str, str]) -> dict[str, Any]:
        return self.call("POST", url, form)

    def signed(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        """A transport for `mq_cutover_cli.api`: a SigV4-signed request to the decision routes,
        through the simulated AWS_IAM authoriser, to the real handler."""
        if not _is_decision_route(method, url):
            return _json_answer(
                403,
                {"message": "Missing Authentication Token"},
                "MissingAuthenticationTokenException",
            )
        payload = body or b""
        try:
            caller = verify_sigv4(method, url, headers, payload, now=self.now())
        except Refused as refused:
            return _json_answer(403, {"message": refused.message}, refused.error_type)
        response = self._invoke(decision_event(method, url, headers, payload, caller))
        raw = str(response.get("body") or "")
        answer = base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode()
        out = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        return int(response["statusCode"]), out, answer


@contextmanager
def serve(emulator: Emulator, port: int = 0) -> Iterator[str]:
    """Serve the approval API on 127.0.0.1; yields its base URL (…/dev/approvals). The decision
    routes are at …/dev/decisions/<migrationId>, behind the simulated AWS_IAM authoriser."""
    client = ApprovalApiClient(emulator)

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if "/decisions/" in self.path:
                host = self.headers.get("Host") or "127.0.0.1"
                url = f"http://{host}{self.path}"
                self._reply(*client.signed(method, url, dict(self.headers.items()), raw))
                return
            if "/approvals/" not in self.path:
                self.send_error(404)
                return
            body = raw.decode() if raw else None
            form = dict(parse_qsl(body)) if body else None
            response = client.call(method, self.path, form)
            payload = str(response.get("body") or "").encode()
            headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
            self._reply(int(response["statusCode"]), headers, payload)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the tests read the pages, not the access log

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/dev/approvals"
    finally:
        server.shutdown()
        server.server_close()

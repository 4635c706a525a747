"""The approval API offline: the real `functions/approval_api` handler behind API Gateway-shaped
events, called in-process (`ApprovalApiClient`) or served over HTTP on localhost (`serve`), so
a real browser can open the emailed link."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from mq_cutover_cli.harness import Emulator, LambdaContext

RESOURCE = "/approvals/{link}"


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


@dataclass
class ApprovalApiClient:
    """Calls the approval API handler in-process, as API Gateway would."""

    emulator: Emulator

    def call(self, method: str, url: str, form: dict[str, str] | None = None) -> dict[str, Any]:
        path, query = _split(url)
        handler = self.emulator.handlers["ApprovalApiFunction"]
        context = LambdaContext(
            function_name="ApprovalApiFunction",
            invoked_function_arn=self.emulator.function_arns["ApprovalApiFunction"],
        )
        event = api_event(method, path, query, urlencode(form) if form else None)
        return dict(handler.lambda_handler(event, context))

    def get(self, url: str) -> dict[str, Any]:
        return self.call("GET", url)

    def post(self, url: str, form: dict[str, str]) -> dict[str, Any]:
        return self.call("POST", url, form)


@contextmanager
def serve(emulator: Emulator, port: int = 0) -> Iterator[str]:
    """Serve the approval API on 127.0.0.1; yields its base URL (…/dev/approvals)."""
    client = ApprovalApiClient(emulator)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else None
            form = dict(parse_qsl(body)) if body else None
            if "/approvals/" not in self.path:
                self.send_error(404)
                return
            response = client.call(method, self.path, form)
            payload = str(response.get("body") or "").encode()
            self.send_response(int(response["statusCode"]))
            for key, value in (response.get("headers") or {}).items():
                self.send_header(key, str(value))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

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

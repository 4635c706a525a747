"""The approval API.

/approvals/<link> (public, the emailed links): GET shows what is to be approved and decides
nothing (mail scanners open every link); only the POST from that page decides, as the approver
the signed link was issued to.
/decisions/<migrationId> (API Gateway AWS_IAM authorisation, the `mq-cutover` CLI): GET lists the
open gates, POST decides one, as the registered approver whose IAM principal signed the request,
or (decision "abort") asks for the run's rollback (mq_cutover.abort).
"""

import html
from base64 import b64decode
from binascii import Error as Base64Error
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from mq_cutover import aws, clock
from mq_cutover.abort import request_abort
from mq_cutover.approval_api import (
    ABORT,
    HEADERS,
    STATUS,
    BadRequest,
    checked_migration_id,
    decision_request,
    form_fields,
    pending_summary,
)
from mq_cutover.approval_key import approval_key
from mq_cutover.approval_links import LinkExpired, LinkInvalid, verify
from mq_cutover.approval_pages import confirmation_page, page, result_page
from mq_cutover.approval_records import DECISIONS, load, pending_for
from mq_cutover.approval_resume import ResumeFailed
from mq_cutover.approval_votes import decide
from mq_cutover.approvers import (
    Approver,
    approver_for_principal,
    load_registry,
    principal_of,
    verified_approvers,
)
from mq_cutover.errors import ApproversInvalid
from mq_cutover.observability import logger, tracer
from mq_cutover.settings import Settings

settings = Settings.from_environment()
table = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.approvals_table)
# The migrations' leases: where an abort is recorded (mq_cutover.lease).
leases = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.migrations_table)
# One attempt per SendTask* call: a retry after a lost response would meet "InvalidToken"
# for a decision that was in fact delivered.
sfn = boto3.client("stepfunctions", config=aws.CLIENT_CONFIG.merge(aws.NO_RETRIES))
app = APIGatewayRestResolver()


def _html(body: str, status: int = 200) -> Response[str]:
    return Response(
        status_code=status, content_type=content_types.TEXT_HTML, body=body, headers=HEADERS
    )


def _json(body: dict[str, Any], status: int = 200) -> Response[dict[str, Any]]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=HEADERS
    )


def _refusal(text: str, status: int) -> Response[str]:
    """A refusal page; `text` may repeat what the request sent, so it is escaped."""
    body = f"<p id='result'>{html.escape(text)} Nothing was changed.</p>"
    return _html(page("Nothing was changed", body), status)


Checked = tuple[dict[str, Any] | None, dict[str, str], dict[str, Approver]]


def _checked(link: str) -> Checked | Response[str]:
    """The gate record, the approver of a genuine link and the registry, or the page that
    refuses it."""
    try:
        approval_id, approver_id = verify(
            approval_key(settings.approval_key_secret_arn), link, clock.utcnow()
        )
    except LinkInvalid:
        return _html(result_page({"outcome": "invalid-link"}), 403)
    except LinkExpired as expired:
        return _html(confirmation_page(load(table, str(expired)), clock.utcnow()), 410)
    registry = load_registry(settings.approver_registry_path, fresh=True)
    record = load(table, approval_id)
    approver = registry.get(approver_id)
    if approver is None or (record and approver_id not in verified_approvers(record, registry)):
        text = f"Approver {approver_id!r} is no longer registered (or was registered again since "
        return _refusal(text + "this gate opened): this link no longer votes.", 403)
    return record, approver.public(), registry


@app.get("/approvals/<link>")
def show(link: str) -> Response[str]:
    checked = _checked(link)
    if isinstance(checked, Response):
        return checked
    record, approver, _ = checked
    preselect = app.current_event.get_query_string_value("decision", "") or ""
    body = confirmation_page(
        record, clock.utcnow(), approver, preselect if preselect in DECISIONS else ""
    )
    return _html(body, 200 if record else 404)


@app.post("/approvals/<link>")
def decide_gate(link: str) -> Response[str]:
    checked = _checked(link)
    if isinstance(checked, Response):
        return checked
    record, approver, registry = checked
    try:
        form = form_fields(_raw_body(), app.current_event.headers)
    except BadRequest as bad:
        return _refusal(str(bad), 400)
    if record is None:
        return _html(result_page({"outcome": "not-found"}), 404)
    result = decide(
        table,
        sfn,
        approval_id=str(record["approvalId"]),
        decision=form["decision"],
        approver=approver,
        comment=form["comment"],
        source="email-link",
        now=clock.utcnow(),
        registry=registry,
    )
    logger.info(
        "approval decision",
        extra={"approvalId": record["approvalId"], "approver": approver["id"], "result": result},
    )
    return _html(result_page(result), STATUS.get(result["outcome"], 400))


def _caller() -> tuple[str, dict[str, str] | None, dict[str, Approver]]:
    """The signed caller's principal, the registered approver it is (if any), the registry."""
    user_arn = app.current_event.request_context.identity.user_arn or ""
    registry = load_registry(settings.approver_registry_path, fresh=True)
    approver = approver_for_principal(registry, user_arn)
    return principal_of(user_arn), approver.public() if approver else None, registry


def _not_an_approver(principal: str) -> Response[dict[str, Any]]:
    return _json(
        {
            "outcome": "not-an-approver",
            "detail": f"{principal or 'this caller'} is not a registered approver of this stack",
        },
        403,
    )


@app.get("/decisions/<migration_id>")
def list_pending(migration_id: str) -> Response[dict[str, Any]]:
    principal, approver, registry = _caller()
    if approver is None:
        return _not_an_approver(principal)
    pending = pending_for(table, checked_migration_id(migration_id))
    return _json(pending_summary(migration_id, pending, approver, registry, clock.utcnow()))


@app.post("/decisions/<migration_id>")
def decide_from_terminal(migration_id: str) -> Response[dict[str, Any]]:
    principal, approver, registry = _caller()
    if approver is None:
        return _not_an_approver(principal)
    request = decision_request(_raw_body(), app.current_event.headers)
    if request["decision"] == ABORT:
        return _abort(checked_migration_id(migration_id), approver, principal, request["reason"])
    pending = pending_for(table, checked_migration_id(migration_id), request["gate"])
    if not pending:
        where = f" at gate {request['gate']}" if request["gate"] else ""
        detail = f"{migration_id} is not waiting for a decision{where}"
        return _json({"outcome": "nothing-pending", "detail": detail}, 404)
    if len(pending) > 1:
        gates = sorted({str(p["gate"]) for p in pending})
        detail = f"several gates are open ({', '.join(gates)}): say which with gate"
        return _json({"outcome": "ambiguous", "detail": detail}, 409)
    result = decide(
        table,
        sfn,
        approval_id=str(pending[0]["approvalId"]),
        decision=request["decision"],
        approver=approver,
        comment=request["comment"],
        source="cli",
        principal=principal,
        registry=registry,
        now=clock.utcnow(),
    )
    logger.info(
        "approval decision",
        extra={
            "approvalId": pending[0]["approvalId"],
            "approver": approver["id"],
            "result": result,
        },
    )
    # The verified principal, so the terminal shows who the server counted.
    return _json({**result, "principal": principal}, STATUS.get(result["outcome"], 400))


def _abort(
    migration_id: str, approver: dict[str, str], principal: str, reason: str
) -> Response[dict[str, Any]]:
    """A registered approver asks for the run's rollback; refused after the point of no
    return, while it already rolls back, or when no run holds the migration."""
    try:
        result = request_abort(
            leases,
            table,
            sfn,
            migration_id=migration_id,
            approver=approver,
            principal=principal,
            reason=reason,
            now=clock.utcnow(),
        )
    except ResumeFailed:
        logger.warning("abort recorded, a gate not closed", extra={"migrationId": migration_id})
        detail = (
            "the abort is recorded, but a gate the run waits at could not be closed: send the "
            "same abort again"
        )
        return _json({"outcome": "unavailable", "detail": detail}, 503)
    logger.info(
        "abort",
        extra={
            "migrationId": migration_id,
            "approver": approver["id"],
            "outcome": result["outcome"],
            "closedGates": result.get("closedGates"),
        },
    )
    return _json({**result, "principal": principal}, STATUS.get(result["outcome"], 400))


def _raw_body() -> bytes:
    """The request body as sent (API Gateway may base64-encode it)."""
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return b64decode(body, validate=True)
        except (Base64Error, ValueError):
            raise BadRequest("the request body is not valid base64") from None
    return body.encode("utf-8", errors="surrogateescape")


@app.exception_handler(BadRequest)
def bad_request(error: BadRequest) -> Response[Any]:
    if app.current_event.path.startswith("/decisions/"):
        return _json({"outcome": "bad-request", "detail": str(error)}, 400)
    return _refusal(str(error), 400)


@app.exception_handler(ApproversInvalid)
def registry_invalid(error: ApproversInvalid) -> Response[Any]:
    """A malformed registry entry (an admin's mistake): nobody can be verified, nothing decided."""
    logger.error("approver registry invalid", extra={"problem": str(error)})
    text = "The approver registry is invalid, so no vote can be verified. Nothing was decided."
    if app.current_event.path.startswith("/decisions/"):
        return _json({"outcome": "unavailable", "detail": text}, 503)  # the why is logged
    return _html(page("Try again later", f"<p id='result'>{html.escape(text)}</p>"), 503)


@app.exception_handler([ClientError, BotoCoreError, GetParameterError, ResumeFailed])
def unavailable(error: Exception) -> Response[Any]:
    """A DynamoDB, SSM, Secrets Manager or Step Functions error: nothing was decided."""
    logger.warning("approval service unavailable", extra={"error": type(error).__name__})
    text = "The approval service could not complete this request. Nothing was decided: try again."
    if app.current_event.path.startswith("/decisions/"):
        return _json({"outcome": "unavailable", "detail": text}, 503)
    return _html(page("Try again", f"<p id='result'>{text}</p>"), 503)


@app.not_found
def not_found(_: Exception) -> Response[str]:
    return _refusal("There is no such page.", 404)


# Not @aws.transient_errors_retried: an HTTP API, not a state-machine task. An unreachable or
# throttled AWS API is answered 503 "nothing was decided: try again" (unavailable, below).
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

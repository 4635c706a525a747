"""The approval page. GET shows what is to be approved and decides nothing (mail scanners open
every link); only the POST from that page decides. Links are signed and expire."""

from typing import Any
from urllib.parse import parse_qs

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.approval_key import approval_key
from mq_cutover.approval_links import LinkExpired, LinkInvalid, verify
from mq_cutover.approval_pages import confirmation_page, page, result_page
from mq_cutover.approvals import DECISIONS, ResumeFailed, decide, load
from mq_cutover.observability import logger, tracer
from mq_cutover.settings import Settings

settings = Settings.from_environment()
table = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.approvals_table)
# One attempt per SendTask* call: a retry after a lost response would meet "InvalidToken"
# for a decision that was in fact delivered.
sfn = boto3.client("stepfunctions", config=aws.CLIENT_CONFIG.merge(aws.NO_RETRIES))
app = APIGatewayRestResolver()

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
_STATUS = {
    "approved": 200,
    "rejected": 200,
    "extended": 200,
    "vote-recorded": 200,
    "already-decided": 409,
    "already-voted": 409,
    "expired": 410,
    "not-found": 404,
    "invalid-link": 403,
    "cannot-extend": 409,
}


def _html(body: str, status: int = 200) -> Response[str]:
    return Response(
        status_code=status, content_type=content_types.TEXT_HTML, body=body, headers=_HEADERS
    )


def _checked(link: str) -> str | Response[str]:
    """The approval id of a genuine link, or the page that refuses it."""
    try:
        return verify(approval_key(settings.approval_key_secret_arn), link, clock.utcnow())
    except LinkInvalid:
        return _html(result_page({"outcome": "invalid-link"}), 403)
    except LinkExpired as expired:
        record = load(table, str(expired))
        return _html(confirmation_page(record, clock.utcnow()), 410)


@app.get("/approvals/<link>")
def show(link: str) -> Response[str]:
    approval_id = _checked(link)
    if isinstance(approval_id, Response):
        return approval_id
    record = load(table, approval_id)
    preselect = app.current_event.get_query_string_value("decision", "") or ""
    return _html(confirmation_page(record, clock.utcnow(), preselect), 200 if record else 404)


@app.post("/approvals/<link>")
def decide_gate(link: str) -> Response[str]:
    approval_id = _checked(link)
    if isinstance(approval_id, Response):
        return approval_id
    form = {k: v[0] for k, v in parse_qs(app.current_event.decoded_body or "").items()}
    decision = form.get("decision", "")
    name = form.get("name", "").strip()[:100]
    if decision not in DECISIONS or not name:
        body = "<p>Give your name and press one of the buttons. Nothing was changed.</p>"
        return _html(body, 400)
    try:
        result = decide(
            table,
            sfn,
            approval_id=approval_id,
            decision=decision,
            decided_by=name,
            comment=form.get("comment", "").strip()[:500],
            source="email-link",
            now=clock.utcnow(),
        )
    except ResumeFailed:
        logger.exception("decision not delivered", extra={"approvalId": approval_id})
        body = (
            "<p id='result'>The workflow could not be reached. Nothing was decided: try again.</p>"
        )
        return _html(page("Try again", body), 503)
    logger.info("approval decision", extra={"approvalId": approval_id, "decision": result})
    return _html(result_page(result), _STATUS.get(result["outcome"], 400))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

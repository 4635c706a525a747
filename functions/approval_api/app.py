"""The approval page: GET shows what is to be approved (and decides nothing); POST decides."""

from typing import Any
from urllib.parse import parse_qs

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from mq_cutover import aws, clock
from mq_cutover.approvals import confirmation_page, decide, load, result_page
from mq_cutover.observability import logger, tracer
from mq_cutover.settings import Settings

settings = Settings.from_environment()
table = boto3.resource("dynamodb", config=aws.CLIENT_CONFIG).Table(settings.approvals_table)
sfn = aws.client("stepfunctions")
app = APIGatewayRestResolver()

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _html(body: str, status: int = 200) -> Response[str]:
    return Response(
        status_code=status, content_type=content_types.TEXT_HTML, body=body, headers=_HEADERS
    )


@app.get("/approvals/<approval_id>")
def show(approval_id: str) -> Response[str]:
    record = load(table, approval_id)
    return _html(confirmation_page(record, clock.utcnow()), 200 if record else 404)


@app.post("/approvals/<approval_id>")
def decide_gate(approval_id: str) -> Response[str]:
    form = {k: v[0] for k, v in parse_qs(app.current_event.decoded_body or "").items()}
    decision = form.get("decision", "")
    name = form.get("name", "").strip()[:100]
    if decision not in ("approve", "reject") or not name:
        return _html(
            "<p>Give your name and choose Approve or Reject. Nothing was changed.</p>", 400
        )
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
    logger.info("approval decision", extra={"approvalId": approval_id, **result})
    status = 200 if result["outcome"] in ("approved", "rejected") else 409
    return _html(result_page(result), 404 if result["outcome"] == "not-found" else status)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

"""Attacks on the gates, as an insider would try them, on the real state machine: each must fail
and change nothing. A gate means the people it names agreed: identity comes from the approver's
own signed link (or their IAM principal, see test_simulated_iam_authorizer.py), never from typed
text; the stack, not the plan, decides which gates exist and who approves."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError

from mq_cutover_cli.approval_http import api_event
from mq_cutover_cli.harness import Emulator, LambdaContext
from mq_cutover_cli.live import LiveRun, live_run
from tests.workflow.conftest import NOT_STARTED, entered, run

pytestmark = pytest.mark.workflow

APPROVE = {"decision": "approve", "comment": "go"}
HOST = "i-0123456789abcdef0"


def waiting_at_cutover(run: LiveRun) -> bool:
    return run.status()["status"] == "RUNNING" and run.entered()[-1] == "Approve Cutover"


def raw_post(run: LiveRun, link: str, body: bytes, content_type: str) -> dict[str, Any]:
    """A POST with exactly these bytes (a browser never sends them; an attacker can)."""
    path = "/approvals/" + link.rsplit("/", 1)[-1]
    event = api_event("POST", path, None, None)
    event["headers"] = {"content-type": content_type}
    event["body"] = body.decode("latin-1")
    event["isBase64Encoded"] = False
    if not body.isascii():
        import base64

        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    handler = run.emulator.handlers["ApprovalApiFunction"]
    context = LambdaContext(
        function_name="ApprovalApiFunction",
        invoked_function_arn=run.emulator.function_arns["ApprovalApiFunction"],
    )
    return dict(handler.lambda_handler(event, context))


def votes(run: LiveRun, gate: str = "cutover") -> list[str]:
    table = run.emulator.resources["ApprovalsTable"]
    items = run.emulator.client("dynamodb").scan(TableName=table)["Items"]
    (record,) = [i for i in items if i["gate"]["S"] == gate]
    return [v["M"]["approver"]["S"] for v in record["votes"]["L"]]


def test_one_link_cannot_pass_a_quorum_of_two_by_typing_names(ordered_plan: dict[str, Any]) -> None:
    ordered_plan["approvals"] = {"quorum": {"cutover": 2}}
    with live_run(ordered_plan) as run:
        ana = run.wait_for_gate("cutover", approver="ana")
        # Each inbox holds only its owner's links.
        for who in ("ana", "bea", "cy"):
            run.wait_for_gate("cutover", approver=who)
            assert {e.approver for e in run.approval_emails(who)} == {who}
        # The old trick: the same link, ten names. A name is no longer a form field at all.
        for name in ("Ana Ops", "Bea Lead", "Cy Oncall", "Mallory"):
            typed = run.api.post(ana.approve_link, {**APPROVE, "name": name})
            assert (
                typed["statusCode"] == 400
                and "unknown form field &#x27;name&#x27;" in typed["body"]
            )
        assert votes(run) == []
        assert "recorded (1 of 2)" in run.api.post(ana.approve_link, APPROVE)["body"]
        for _ in range(3):  # the same link again, any number of times
            assert run.api.post(ana.approve_link, APPROVE)["statusCode"] == 409
        # Ana's link re-signed in Bea's name is a forgery.
        base, link = ana.approve_link.rsplit("/", 1)
        ident, _, expires, tag = link.split(".")
        assert run.api.post(f"{base}/{ident}.bea.{expires}.{tag}", APPROVE)["statusCode"] == 403
        assert votes(run) == ["ana"] and waiting_at_cutover(run)
        assert "Repoint Producers" not in run.entered()
        assert run.parameter_values() == run.initial


def test_a_plan_without_a_required_gate_never_reaches_a_side_effect(
    ordered_plan: dict[str, Any],
) -> None:
    """`approvals.gates: []` plus restart hooks and a stop command used to send three root shell
    commands with no email at all."""
    ordered_plan["approvals"] = {"gates": []}
    ordered_plan["producers"]["restartHook"] = {"commands": ["id"], "instanceIds": [HOST]}
    ordered_plan["consumers"]["restartHook"] = {"commands": ["id"], "instanceIds": [HOST]}
    ordered_plan["stopOnPrem"] = {
        "method": "ssm-command",
        "commands": ["id"],
        "instanceIds": [HOST],
    }
    commands: list[Any] = []

    def count_commands(emulator: Emulator) -> None:
        emulator.after_hooks.append(
            lambda *_: commands.extend(emulator.client("ssm").list_commands()["Commands"])
        )

    sim = run(ordered_plan, approve="none", before_start=count_commands)
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "PlanInvalid"
    assert "approvals.gates: the stack requires the gate 'cutover'" in execution["cause"]
    assert "approvals.gates: the stack requires the gate 'stopOnPrem'" in execution["cause"]
    assert entered(sim) == NOT_STARTED
    assert commands == [] and sim.report["brokersCreated"] == []
    assert sim.report["approvalEmails"] == []
    assert all(len(p["history"]) == 1 for p in sim.report["parameters"].values())


def test_the_stack_decides_which_gates_are_required(ordered_plan: dict[str, Any]) -> None:
    """RequiredGates=cutover: a plan may drop stopOnPrem (its email lists that the stop is then
    unlocked by nobody else), but not cutover."""
    ordered_plan["approvals"] = {"gates": ["stopOnPrem"]}
    sim = run(ordered_plan, stack_parameters={"RequiredGates": "cutover"})
    cause = sim.report["execution"]["cause"]
    assert "approvals.gates: the stack requires the gate 'cutover'" in cause
    assert "stopOnPrem'" not in cause
    ordered_plan["approvals"] = {"gates": ["cutover"]}
    sim = run(ordered_plan, stack_parameters={"RequiredGates": "cutover"})
    assert sim.report["execution"]["status"] == "SUCCEEDED"
    assert [a["gate"] for a in sim.report["approvals"]] == ["cutover"]


def test_a_quorum_larger_than_the_approvers_is_refused_before_any_change(
    ordered_plan: dict[str, Any],
) -> None:
    ordered_plan["approvals"] = {"quorum": {"stopOnPrem": 4}}
    sim = run(ordered_plan)
    cause = sim.report["execution"]["cause"]
    assert sim.report["execution"]["error"] == "PlanInvalid"
    assert "approvals.quorum.stopOnPrem: needs 4 different approvers; the stack has 3" in cause
    assert sim.report["brokersCreated"] == [] and sim.report["approvalEmails"] == []


def test_no_registered_approver_means_no_migration(ordered_plan: dict[str, Any]) -> None:
    sim = run(ordered_plan, approve="none", approvers=())
    assert sim.report["execution"]["error"] == "PlanInvalid"
    assert "the stack has no approver who can vote" in sim.report["execution"]["cause"]


def subscribe_stray(emulator: Emulator, filter_on: str | None) -> str:
    """Someone with sns:Subscribe adds their own endpoint to the approval topic."""
    sqs = emulator.client("sqs")
    url = sqs.create_queue(QueueName="stray-inbox")["QueueUrl"]
    attributes = {"FilterPolicy": json.dumps({"approver": [filter_on]})} if filter_on else {}
    emulator.client("sns").subscribe(
        TopicArn=emulator.resources["ApprovalTopic"],
        Protocol="sqs",
        Endpoint=emulator.queue_arn(url),
        Attributes=attributes,
    )
    return str(url)


@pytest.mark.parametrize("filter_on", [None, "ana"])
def test_a_stray_subscription_is_found_before_the_window(
    ordered_plan: dict[str, Any], filter_on: str | None
) -> None:
    stray: list[str] = []
    sim = run(ordered_plan, before_start=lambda e: stray.append(subscribe_stray(e, filter_on)))
    execution = sim.report["execution"]
    assert execution["error"] == "PlanInvalid"
    assert "approvals: sqs subscription" in execution["cause"]
    assert sim.report["approvalEmails"] == [] and sim.report["brokersCreated"] == []


def test_a_stray_subscription_added_during_the_run_gets_no_link(
    ordered_plan: dict[str, Any],
) -> None:
    """Added after Validate Plan: the gate refuses to send any link, and the run rolls back."""
    stray: list[str] = []

    def at_the_gate(emulator: Emulator) -> None:
        def hook(function: str, event: dict[str, Any]) -> None:
            if function == "RequestApprovalFunction" and not stray:
                stray.append(subscribe_stray(emulator, None))

        emulator.hooks.append(hook)

    sim = run(ordered_plan, before_start=at_the_gate, approve="auto")
    execution = sim.report["execution"]
    assert execution["status"] == "FAILED", execution
    assert "the approval topic is not safe" in execution["cause"]
    assert sim.report["approvalEmails"] == [] and sim.report["approvals"] == []
    assert "Repoint Producers" not in entered(sim)
    assert all(len(p["history"]) == 1 for p in sim.report["parameters"].values())


def test_a_removed_approvers_links_stop_working_at_once(ordered_plan: dict[str, Any]) -> None:
    from mq_cutover.approvers import remove_approver

    with live_run(ordered_plan) as run:
        email = run.wait_for_gate("cutover", approver="cy")
        emulator = run.emulator
        removed = remove_approver(
            emulator.client("ssm"),
            emulator.client("sns"),
            path=emulator.registry_path,
            topic_arn=emulator.resources["ApprovalTopic"],
            approver_id="cy",
        )
        assert removed == 1
        for response in (
            run.api.get(email.approve_link),
            run.api.post(email.approve_link, APPROVE),
        ):
            assert response["statusCode"] == 403
            assert "no longer registered" in response["body"]
        assert votes(run) == [] and waiting_at_cutover(run)


def test_malformed_input_is_refused_with_a_reason_and_changes_nothing(
    ordered_plan: dict[str, Any],
) -> None:
    with live_run(ordered_plan) as run:
        link = run.wait_for_gate("cutover").approve_link
        form = "application/x-www-form-urlencoded"
        cases = {
            b"decision=approve&comment=\xff\xfe": "not UTF-8",
            b"decision=approve&comment=%FF%FE": "malformed",
            b"decision=approve&decision=reject": "more than once",
            b"decision=approve&comment=" + b"x" * 600: "longer than 500",
            b"decision=approve&comment=" + quote("a\nApprove: x").encode(): "control characters",
            b"decision=approve&comment=" + b"x" * 5_000_000: "larger than 4096 bytes",
            b"decision=maybe": "decision must be one of",
        }
        for body, reason in cases.items():
            response = raw_post(run, link, body, form)
            assert response["statusCode"] == 400, (body[:40], response["body"][:300])
            assert reason in response["body"] and "Nothing was changed" in response["body"]
        json_body = raw_post(run, link, b'{"decision": "approve"}', "application/json")
        assert json_body["statusCode"] == 400
        assert votes(run) == [] and waiting_at_cutover(run)


def test_a_storage_error_decides_nothing_and_says_try_again(ordered_plan: dict[str, Any]) -> None:
    with live_run(ordered_plan) as run:
        link = run.wait_for_gate("cutover").approve_link
        table = run.emulator.handlers["ApprovalApiFunction"].table
        original = table.update_item

        def throttled(**_: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                "UpdateItem",
            )

        table.update_item = throttled
        try:
            response = run.api.post(link, APPROVE)
        finally:
            table.update_item = original
        assert response["statusCode"] == 503
        assert "Nothing was decided: try again" in response["body"]
        assert votes(run) == [] and waiting_at_cutover(run)
        assert run.api.post(link, APPROVE)["statusCode"] == 200  # and trying again works


def test_every_answer_carries_the_security_headers(ordered_plan: dict[str, Any]) -> None:
    with live_run(ordered_plan) as run:
        link = run.wait_for_gate("cutover").approve_link
        base = link.rsplit("/", 1)[0]
        answers = [
            run.api.get(link),
            run.api.get(f"{base}/forged.ana.1999999999.AAAAAAAAAAAAAAAAAAAAAA"),
            raw_post(run, link, b"decision=maybe", "application/x-www-form-urlencoded"),
            run.api.post(link, APPROVE),
        ]
        for answer in answers:
            headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
            for key, values in (answer.get("multiValueHeaders") or {}).items():
                headers[key.lower()] = ",".join(values)
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["strict-transport-security"].startswith("max-age=")
            assert "default-src 'none'" in headers["content-security-policy"]
            assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
        assert [a["statusCode"] for a in answers] == [200, 403, 400, 200]


def test_an_approvers_iam_policy_reaches_the_decision_api_and_nothing_else() -> None:
    """The CLI's old rights (DynamoDB, SendTaskSuccess) let one user read a token, resume a
    quorum-2 gate with one vote and write fake votes. The approver policy the stack hands out
    now allows the signed /decisions routes only; the approval function alone reads tokens,
    writes votes and resumes an execution."""
    from tests import iam_policies as iam

    stack = iam._default_stack()
    api, table = stack.ref("ApprovalApi"), stack.get_att("ApprovalsTable", "Arn")
    registry = f"arn:aws:ssm:{iam.REGION}:{iam.ACCOUNT}:parameter/mq-cutover-approvers/x/ana"
    execute = f"arn:aws:execute-api:{iam.REGION}:{iam.ACCOUNT}:{api}/dev"
    approver = iam.managed_policy_statements("ApproverPolicy", stack)
    for method in ("GET", "POST"):
        assert iam.is_allowed(approver, "execute-api:Invoke", f"{execute}/{method}/decisions/m-1")
    forbidden = [
        ("execute-api:Invoke", f"{execute}/POST/approvals/anything"),
        ("dynamodb:GetItem", table),
        ("dynamodb:Query", f"{table}/index/ByMigration"),
        ("dynamodb:Scan", table),
        ("dynamodb:UpdateItem", table),
        ("dynamodb:PutItem", table),
        ("states:SendTaskSuccess", "*"),
        ("states:SendTaskFailure", "*"),
        ("secretsmanager:GetSecretValue", stack.ref("ApprovalLinkKey")),
        ("ssm:PutParameter", registry),
        ("sns:Subscribe", stack.ref("ApprovalTopic")),
    ]
    for action, resource in forbidden:
        assert not iam.is_allowed(approver, action, resource), (action, resource)
    # The admin decides who approves, but cannot vote or read a token either.
    admin = iam.managed_policy_statements("ApproverAdminPolicy", stack)
    assert iam.is_allowed(admin, "ssm:PutParameter", registry.replace("/x/", f"/{iam.STACK_NAME}/"))
    for action, resource in forbidden[1:9]:
        assert not iam.is_allowed(admin, action, resource), (action, resource)
    # Among the functions, only the approval API reads a gate's record or resumes a run.
    for action, resource in [
        ("dynamodb:GetItem", table),
        ("dynamodb:UpdateItem", table),
        ("states:SendTaskSuccess", "*"),
    ]:
        allowed = {
            f
            for f in stack.functions()
            if iam.is_allowed(stack.function_statements(f), action, resource)
        }
        assert allowed == {"ApprovalApiFunction"}, (action, allowed)


def test_a_broken_registry_entry_verifies_nobody(ordered_plan: dict[str, Any]) -> None:
    with live_run(ordered_plan) as run:
        link = run.wait_for_gate("cutover").approve_link
        run.emulator.client("ssm").put_parameter(
            Name=f"{run.emulator.registry_path}/mallory", Value="{not json", Type="String"
        )
        response = run.api.post(link, APPROVE)
        assert response["statusCode"] == 503
        assert "no vote can be verified. Nothing was decided." in response["body"]
        assert votes(run) == [] and waiting_at_cutover(run)


def test_the_deployed_api_signs_the_decision_routes_and_only_those() -> None:
    """What the offline authorizer simulates must be what API Gateway is told to do: AWS_IAM
    (SigV4) on /decisions, invoking the function with its own permission (a caller's
    credentials must never be able to invoke the function, and forge the request context,
    directly); the emailed links stay public."""
    from tests import iam_policies as iam

    body = iam.transformed_template()["Resources"]["ApprovalApi"]["Properties"]["Body"]
    schemes = body["components"]["securitySchemes"]
    assert schemes["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    routes = {
        (path, method): op for path, ops in body["paths"].items() for method, op in ops.items()
    }
    assert set(routes) == {
        ("/approvals/{link}", "get"),
        ("/approvals/{link}", "post"),
        ("/decisions/{migrationId}", "get"),
        ("/decisions/{migrationId}", "post"),
    }
    for (path, _), op in routes.items():
        signed = path.startswith("/decisions/")
        assert (op.get("security") == [{"AWS_IAM": []}]) is signed, path
        assert "credentials" not in op["x-amazon-apigateway-integration"], path


def test_the_stack_sets_the_fewest_approvers_a_plan_can_ask_for(
    ordered_plan: dict[str, Any],
) -> None:
    """MinimumQuorum=2: a plan with no quorum (1) still needs two people at every gate; a stack
    whose minimum exceeds the approvers who can vote refuses the run before any change."""
    with live_run(ordered_plan, stack_parameters={"MinimumQuorum": "2"}) as live:
        ana = live.wait_for_gate("cutover")
        assert "This gate needs 2 different approvers" in ana.message
        assert "recorded (1 of 2)" in live.api.post(ana.approve_link, APPROVE)["body"]
        assert waiting_at_cutover(live)
    sim = run(ordered_plan, stack_parameters={"MinimumQuorum": "4"})
    assert sim.report["execution"]["error"] == "PlanInvalid"
    assert (
        "the stack requires 4 different approvers at every gate"
        in (sim.report["execution"]["cause"])
    )
    assert sim.report["brokersCreated"] == [] and sim.report["approvalEmails"] == []

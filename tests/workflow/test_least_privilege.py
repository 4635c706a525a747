"""Least privilege, checked: every AWS call each Lambda makes while the offline harness runs
the procedures is allowed by that function's policy in the transformed template, and the
template scopes what it grants (see tests/iam_policies.py for the evaluator and the mapping from
calls to IAM requests, cli/mq_cutover_cli/call_log.py for the recorder)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from moto import mock_aws

from mq_cutover.broker import MIGRATION_TAG
from mq_cutover_cli import call_log
from mq_cutover_cli.call_log import AwsCall
from mq_cutover_cli.harness import Emulator, boto3_client
from mq_cutover_cli.live import live_run
from mq_cutover_cli.simulate import Simulation
from mq_cutover_cli.world import World
from tests import iam_policies as iam
from tests.conftest import load_event

pytestmark = pytest.mark.workflow

# The unordered plan stops its on-prem broker on a hybrid managed instance (mi-...), which moto
# cannot hold: its tags are given here, as the operator sets them (OnPremTagKey=true).
HYBRID_HOSTS = {"mi-0a1b2c3d4e5f60718": {"mq-cutover:on-prem": "true"}}
KEY_A = f"arn:aws:kms:{iam.REGION}:{iam.ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
KEY_B = f"arn:aws:kms:{iam.REGION}:{iam.ACCOUNT}:key/66666666-7777-8888-9999-000000000000"
STATE_MACHINE = "MigrationStateMachine"


@dataclass
class RecordedRun:
    calls: list[AwsCall]
    stack: iam.Stack | None = None
    requests: list[tuple[AwsCall, list[iam.Request]]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)

    def violations(self, statements_of: Any = None) -> list[str]:
        assert self.stack is not None
        return iam.violations(self.requests, statements_of or self.stack.function_statements)

    def functions(self) -> set[str]:
        return {call.function for call in self.calls}


def stack_of(emulator: Emulator) -> iam.Stack:
    """The policies with the emulator's stack parameters and its generated names (a secret's
    ARN carries a random suffix)."""
    template = iam.transformed_template()
    declared = template.get("Parameters", {})
    parameters = {k: v for k, v in emulator.stack_parameters.items() if k in declared}
    secrets = {
        name: value
        for name, value in emulator.resources.items()
        if template["Resources"].get(name, {}).get("Type") == "AWS::SecretsManager::Secret"
    }
    return iam.Stack(parameters=parameters, refs=secrets)


def finish(run: RecordedRun, emulator: Emulator, host_tags: Any = None) -> None:
    """Map the calls while moto still holds the state they depend on (tags, keys, brokers)."""
    authorizations = iam.Authorizations(
        emulator.client, HYBRID_HOSTS if host_tags is None else host_tags
    )
    run.requests = [(call, authorizations.requests(call)) for call in list(run.calls)]
    run.stack = stack_of(emulator)


def simulate(plan: Any, host_tags: Any = None, **kwargs: Any) -> RecordedRun:
    with call_log.recording() as calls:
        run = RecordedRun(calls)

        def after_run(emulator: Emulator, arn: str) -> None:
            run.status = emulator.status(arn)
            finish(run, emulator, host_tags)

        Simulation(plan_document=plan, after_run=after_run, **kwargs).run()
    assert run.stack is not None, "the simulation never finished"
    return run


def assert_least_privilege(run: RecordedRun) -> None:
    found = run.violations()
    assert not found, "calls the functions' policies do not allow:\n" + "\n".join(found)


@pytest.fixture(scope="module")
def ordered_run() -> RecordedRun:
    from tests.conftest import load_event

    return simulate(load_event("plan-ordered.json"))


# --------------------------------------------------------------------------- the recorder
def test_call_log_canary() -> None:
    """The recorder patches botocore's private BaseClient._make_api_call: if botocore moves
    it, this fails first, and loudly."""
    assert hasattr(BaseClient, "_make_api_call"), "botocore moved BaseClient._make_api_call"
    assert list(inspect.signature(BaseClient._make_api_call).parameters) == [
        "self",
        "operation_name",
        "api_params",
    ], "botocore changed BaseClient._make_api_call's signature"
    with mock_aws():
        handler_ssm = boto3.client("ssm", region_name=iam.REGION)
        with call_log.recording() as calls:
            handler_ssm.describe_parameters()  # no function running: not recorded
            with call_log.invoking("RepointClientsFunction"):
                handler_ssm.put_parameter(Name="/mq-cutover/a", Value="tcp://x", Type="String")
                for _page in handler_ssm.get_paginator("describe_parameters").paginate():
                    pass
                boto3_client("ssm").describe_parameters()  # the harness's own client: the world
        assert [(c.function, c.service, c.operation) for c in calls] == [
            ("RepointClientsFunction", "ssm", "PutParameter"),
            ("RepointClientsFunction", "ssm", "DescribeParameters"),
        ]
        assert calls[0].params["Name"] == "/mq-cutover/a"
        assert calls[0].params["Value"] == call_log.REDACTED
        assert call_log.current_function() is None


def test_secrets_never_reach_the_log() -> None:
    params = {"Users": [{"Username": "app", "Password": "pw"}], "taskToken": "t", "Name": "n"}
    assert call_log.redact(params) == {
        "Users": [{"Username": "app", "Password": call_log.REDACTED}],
        "taskToken": call_log.REDACTED,
        "Name": "n",
    }


# ------------------------------------------------------------------- the procedures, checked
def test_ordered_procedure_makes_only_allowed_calls(ordered_run: RecordedRun) -> None:
    assert ordered_run.status["status"] == "SUCCEEDED"
    # The recorder saw every function the procedure runs (so an empty list proves nothing
    # only if it saw nothing).
    assert {
        "ValidatePlanFunction",
        "TakeLeaseFunction",
        "ProvisionBrokerFunction",
        "CheckBrokerFunction",
        "ResolveEndpointsFunction",
        "RepointClientsFunction",
        "CheckDrainFunction",
        "RequestApprovalFunction",
        "ApprovalApiFunction",
        "StopOnPremFunction",
        "CheckOnPremStopFunction",
    } <= ordered_run.functions()
    assert_least_privilege(ordered_run)


def test_unordered_procedure_makes_only_allowed_calls(unordered_plan: dict[str, Any]) -> None:
    run = simulate(unordered_plan)
    assert run.status["status"] == "SUCCEEDED"
    assert {"RepointClientsFunction", "CheckRestartFunction", "StopOnPremFunction"} <= (
        run.functions()
    )
    assert_least_privilege(run)


def test_copying_the_topology_makes_only_allowed_calls(ordered_plan: dict[str, Any]) -> None:
    """RabbitMQ: both management APIs (secrets, the broker's console URL); ActiveMQ: the
    configuration revision written, associated and applied by a reboot."""
    rabbit = simulate(load_event("plan-rabbitmq.json"))
    assert rabbit.status["status"] == "SUCCEEDED"
    assert "CopyTopologyFunction" in rabbit.functions()
    assert_least_privilege(rabbit)
    ordered_plan["topology"] = {
        "onPremApi": {
            "url": "http://onprem-mq.example.internal:8161/api/jolokia",
            "secretArn": f"arn:aws:secretsmanager:{iam.REGION}:{iam.ACCOUNT}:secret:"
            "mq-cutover/jolokia",
        }
    }
    activemq = simulate(ordered_plan)
    assert activemq.status["status"] == "SUCCEEDED"
    operations = {c.operation for c in activemq.calls if c.function == "CopyTopologyFunction"}
    assert {"UpdateConfiguration", "UpdateBroker", "RebootBroker"} <= operations
    assert_least_privilege(activemq)


def test_the_shovel_procedure_and_its_rollback_make_only_allowed_calls() -> None:
    """RabbitMQ, mode unordered: the shovels' secrets and broker, and the rollback's removal."""
    plan = load_event("plan-rabbitmq-unordered.json")
    forward = simulate(plan)
    assert forward.status["status"] == "SUCCEEDED"
    assert "ShovelsFunction" in forward.functions()
    assert_least_privilege(forward)
    rejected = simulate(plan, approve="reject:stopOnPrem")
    assert rejected.status["error"] == "Rejected"
    removal = [c for c in rejected.calls if c.function == "RollbackFunction"]
    assert any(c.operation == "GetSecretValue" for c in removal)  # the on-prem API's user
    assert_least_privilege(rejected)


@pytest.mark.parametrize("gate", ["cutover", "stopOnPrem"])
def test_a_rejection_and_its_rollback_make_only_allowed_calls(
    ordered_plan: dict[str, Any], gate: str
) -> None:
    world = World.from_document({"amazonMqEnqueuePerMinute": 3000})
    run = simulate(ordered_plan, approve=f"reject:{gate}", world=world)
    assert run.status["status"] == "FAILED" and run.status["error"] == "Rejected"
    assert "RollbackFunction" in run.functions()
    assert_least_privilege(run)


def test_a_refused_second_run_makes_only_allowed_calls(ordered_plan: dict[str, Any]) -> None:
    """Take Migration Lease asks Step Functions whether the holder still runs."""
    with call_log.recording() as calls:
        run = RecordedRun(calls)
        with live_run(ordered_plan) as first:
            first.wait_for_gate("cutover")
            emulator = first.emulator
            second = emulator.start(json.dumps(ordered_plan), name="orders-2026-12-01--2")
            status = first.wait_until(
                "the second run to end",
                lambda: s if (s := emulator.status(second))["status"] != "RUNNING" else None,
            )
            assert status["error"] == "MigrationAlreadyRunning"
            finish(run, emulator)
    described = [c for c in calls if c.operation == "DescribeExecution"]
    assert described and {c.function for c in described} == {"TakeLeaseFunction"}
    assert_least_privilege(run)


def test_a_plan_by_reference_makes_only_allowed_calls(ordered_plan: dict[str, Any]) -> None:
    """Validate Plan reads the operator's plan (plans/*) and stores the packed plan
    (validated/*); every other function reads the stored plan (validated/*) only."""
    from tests.workflow.test_plan_reference import large

    run = simulate(large(ordered_plan), plan_reference="s3")
    assert run.status["status"] == "SUCCEEDED"
    s3_calls = {
        (c.function, c.operation, str(c.params["Key"]).split("/")[0])
        for c in run.calls
        if c.service == "s3"
    }
    assert ("ValidatePlanFunction", "GetObject", "plans") in s3_calls
    assert ("ValidatePlanFunction", "PutObject", "validated") in s3_calls
    readers = {
        f for f, operation, prefix in s3_calls if (operation, prefix) == ("GetObject", "validated")
    }
    # Each Lambda container reads the stored plan once: the functions the run went through.
    assert {"ProvisionBrokerFunction", "RepointClientsFunction", "CheckDrainFunction"} <= readers
    assert {"RequestApprovalFunction", "StopOnPremFunction"} <= readers
    assert_least_privilege(run)
    by_parameter = simulate(load_event("plan-ordered.json"), plan_reference="ssm")
    assert by_parameter.status["status"] == "SUCCEEDED"
    assert any(
        c.function == "ValidatePlanFunction"
        and c.operation == "GetParameter"
        and str(c.params["Name"]).startswith("/mq-cutover-plans/")
        for c in by_parameter.calls
    )
    assert_least_privilege(by_parameter)


def test_plans_are_read_and_stored_where_each_function_may_only() -> None:
    stack = iam.Stack()
    bucket = stack.ref("PlanBucket")
    plans = iam.object_arn(bucket, "plans/orders/0a1b.json")
    stored = iam.object_arn(bucket, "validated/orders/0a1b.mqc1")
    validate = iam.function_statements("ValidatePlanFunction")
    assert iam.is_allowed(validate, "s3:GetObject", plans)
    assert iam.is_allowed(validate, "s3:GetObjectVersion", plans)
    assert iam.is_allowed(validate, "s3:PutObject", stored)
    assert not iam.is_allowed(validate, "s3:PutObject", plans)
    assert not iam.is_allowed(validate, "s3:GetObject", iam.object_arn("other-bucket", "plans/x"))
    assert not iam.is_allowed(validate, "s3:GetObject", iam.object_arn(bucket, "elsewhere/x"))
    assert iam.is_allowed(validate, "ssm:GetParameter", iam.parameter_arn("/mq-cutover-plans/o"))
    assert not iam.is_allowed(validate, "ssm:GetParameter", iam.parameter_arn("/team/plans/o"))
    receivers = {
        "ProvisionBrokerFunction",
        "CheckBrokerFunction",
        "ResolveEndpointsFunction",
        "CopyTopologyFunction",
        "RepointClientsFunction",
        "CheckRestartFunction",
        "CheckDrainFunction",
        "RequestApprovalFunction",
        "StopOnPremFunction",
        "ShovelsFunction",
        "RollbackFunction",
    }
    for function in stack.functions():
        statements = stack.function_statements(function)
        reads_stored = iam.is_allowed(statements, "s3:GetObject", stored)
        assert reads_stored == (function in receivers), function
        if function == "ValidatePlanFunction":
            continue
        for action, resource in (
            ("s3:GetObject", plans),
            ("s3:PutObject", stored),
            ("s3:PutObject", plans),
            ("s3:DeleteObject", stored),
            ("s3:GetObject", iam.object_arn("other-bucket", "validated/x")),
        ):
            assert not iam.is_allowed(statements, action, resource), (function, action, resource)
    # The functions that receive the plan ($packedPlan in the ASL) are exactly those.
    definition = (iam.ROOT / "statemachine" / "migration.asl.json").read_text()
    substitutions = stack.resources["MigrationStateMachine"]["Properties"]
    assert receivers == _functions_given_the_packed_plan(json.loads(definition))
    assert substitutions  # the state machine resource exists in the transformed template


def _functions_given_the_packed_plan(definition: dict[str, Any]) -> set[str]:
    found: set[str] = set()

    def walk(states: dict[str, Any]) -> None:
        for state in states.values():
            arguments = state.get("Arguments") or {}
            if "$packedPlan" in json.dumps(arguments):
                found.add(str(arguments["FunctionName"]).strip("${}").removesuffix("Arn"))
            if "ItemProcessor" in state:
                walk(state["ItemProcessor"]["States"])
            for branch in state.get("Branches", []):
                walk(branch["States"])

    walk(definition["States"])
    return found


def test_the_plan_bucket_is_private_encrypted_and_tls_only() -> None:
    stack = iam.Stack()
    bucket = stack.resources["PlanBucket"]
    assert bucket["DeletionPolicy"] == "Retain" and bucket["UpdateReplacePolicy"] == "Retain"
    properties = stack.resolve(bucket["Properties"])
    assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
    assert properties["OwnershipControls"] == {
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]
    }
    (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {r["Id"]: r for r in properties["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireOldPlans"]["ExpirationInDays"] == "400"  # PlanRetentionDays
    assert rules["ExpireOldPlans"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    policy = stack.document_statements(
        stack.resources["PlanBucketPolicy"]["Properties"]["PolicyDocument"]
    )
    (tls,) = policy
    assert tls["Effect"] == "Deny" and tls["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }
    assert set(tls["Resource"]) == {
        f"arn:aws:s3:::{stack.ref('PlanBucket')}",
        f"arn:aws:s3:::{stack.ref('PlanBucket')}/*",
    }
    outputs = iam.transformed_template()["Outputs"]
    assert outputs["PlanBucketName"]["Value"] == {"Ref": "PlanBucket"}


# ------------------------------------------------------------------ the check can fail
def test_a_policy_too_narrow_is_caught(ordered_run: RecordedRun) -> None:
    assert ordered_run.stack is not None

    def without_parameter_writes(function: str) -> list[dict[str, Any]]:
        statements = ordered_run.stack.function_statements(function)  # type: ignore[union-attr]
        if function != "RepointClientsFunction":
            return statements
        return [s for s in statements if s.get("Sid") != "RewriteClientUrlParameters"]

    found = ordered_run.violations(without_parameter_writes)
    assert any(
        line.startswith("RepointClientsFunction: ssm.PutParameter needs ssm:PutParameter on ")
        for line in found
    ), found
    assert all(line.startswith("RepointClientsFunction: ssm.") for line in found), found


def test_an_untagged_on_prem_host_is_a_violation(unordered_plan: dict[str, Any]) -> None:
    """The stop command may reach only hosts tagged as on-prem: the same run, with the
    hybrid host untagged, is refused by the policy."""
    run = simulate(unordered_plan, host_tags={"mi-0a1b2c3d4e5f60718": {}})
    assert run.violations() == [
        "StopOnPremFunction: ssm.SendCommand needs ssm:SendCommand on "
        f"arn:aws:ssm:{iam.REGION}:{iam.ACCOUNT}:managed-instance/mi-0a1b2c3d4e5f60718"
    ]


def test_an_unmapped_call_fails_by_name() -> None:
    call = AwsCall("RollbackFunction", "ssm", "DeleteDocument", {"Name": "x"})
    with pytest.raises(iam.UnmappedCall, match=r"RollbackFunction called ssm\.DeleteDocument"):
        iam.Authorizations(boto3_client).requests(call)


def test_the_mapping_covers_every_call_the_product_makes() -> None:
    """Each boto3 operation named in src/ and functions/ (method calls and paginators) is
    in the mapping."""
    import re

    names = set()
    for path in [*iam.ROOT.glob("src/mq_cutover/*.py"), *iam.ROOT.glob("functions/*/app.py")]:
        text = path.read_text()
        names |= set(re.findall(r"get_paginator\(\"([a-z_]+)\"\)", text))
        names |= set(
            re.findall(
                r"\b(?:ssm|mq|sns|sfn|secrets|ec2|cloudwatch|table|leases|sts|s3)\.([a-z_]+)\(",
                text,
            )
        )
    names -= {"get_paginator", "token_urlsafe", "token_hex", "compare_digest"}
    mapped = {re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower() for _, op in iam.CALLS}
    assert names and not names - mapped, f"not mapped: {sorted(names - mapped)}"


# --------------------------------------------------------------------- KMS, when given
@pytest.fixture
def kms_world() -> Iterator[Any]:
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=iam.REGION)


def test_securestring_parameters_need_the_given_key_through_parameter_store(
    kms_world: Any,
) -> None:
    key = kms_world("kms").create_key()["KeyMetadata"]["Arn"]
    kms_world("ssm").put_parameter(
        Name="/mq-cutover/orders/url", Value="tcp://x", Type="SecureString", KeyId=key
    )
    calls = [
        AwsCall(
            "RepointClientsFunction",
            "ssm",
            "GetParameter",
            {"Name": "/mq-cutover/orders/url", "WithDecryption": True},
        ),
        AwsCall(
            "RollbackFunction",
            "ssm",
            "PutParameter",
            {
                "Name": "/mq-cutover/orders/url",
                "Type": "SecureString",
                "KeyId": key,
                "Overwrite": True,
            },
        ),
    ]
    authorizations = iam.Authorizations(kms_world)
    requests = [(call, authorizations.requests(call)) for call in calls]
    assert [r.action for _, rs in requests for r in rs] == [
        "ssm:GetParameter",
        "kms:Decrypt",
        "ssm:PutParameter",
        "kms:Encrypt",
    ]
    default = iam.Stack()
    assert iam.violations(requests, default.function_statements) == [
        f"RepointClientsFunction: ssm.GetParameter needs {requests[0][1][1]}",
        f"RollbackFunction: ssm.PutParameter needs {requests[1][1][1]}",
    ]
    given = iam.Stack(parameters={"ParameterKmsKeyArns": f"{KEY_B},{key}"})
    assert iam.violations(requests, given.function_statements) == []
    other_key = iam.Stack(parameters={"ParameterKmsKeyArns": KEY_B})
    assert len(iam.violations(requests, other_key.function_statements)) == 2


def test_broker_user_secrets_need_the_given_key_through_secrets_manager(kms_world: Any) -> None:
    key = kms_world("kms").create_key()["KeyMetadata"]["Arn"]
    kms_world("secretsmanager").create_secret(
        Name="mq-cutover/orders-app", SecretString="pw", KmsKeyId=key
    )
    call = AwsCall(
        "ProvisionBrokerFunction",
        "secretsmanager",
        "GetSecretValue",
        {"SecretId": iam.arn("secretsmanager", "secret:mq-cutover/orders-app")},
    )
    requests = [(call, iam.Authorizations(kms_world).requests(call))]
    assert [r.action for r in requests[0][1]] == ["secretsmanager:GetSecretValue", "kms:Decrypt"]
    assert len(iam.violations(requests, iam.Stack().function_statements)) == 1
    given = iam.Stack(parameters={"BrokerSecretKmsKeyArns": key})
    assert iam.violations(requests, given.function_statements) == []


def test_no_kms_grant_unless_keys_are_given() -> None:
    stack = iam.Stack()
    for function in stack.functions():
        granted = [
            s
            for s in stack.function_statements(function)
            if any(str(a).lower().startswith("kms:") for a in iam._as_list(s.get("Action", [])))
        ]
        assert not granted, f"{function} is granted KMS with no key given: {granted}"
    # The statements exist only behind the conditions (Fn::If on the given lists).
    template = iam.transformed_template()
    conditions = template["Conditions"]
    assert {"HasParameterKmsKeys", "HasBrokerSecretKmsKeys"} <= set(conditions)
    for function, guards in [
        ("RepointClientsFunction", ["HasParameterKmsKeys"]),
        # Parameters restored, and the on-prem API's secret (shovels removed).
        ("RollbackFunction", ["HasParameterKmsKeys", "HasBrokerSecretKmsKeys"]),
        ("ProvisionBrokerFunction", ["HasBrokerSecretKmsKeys"]),
        ("CopyTopologyFunction", ["HasBrokerSecretKmsKeys"]),
        ("ShovelsFunction", ["HasBrokerSecretKmsKeys"]),
        ("CheckDrainFunction", ["HasBrokerSecretKmsKeys"]),
    ]:
        policies = template["Resources"][f"{function}Role"]["Properties"]["Policies"]
        guarded = [p["Fn::If"][0] for p in policies if "Fn::If" in p]
        assert guarded == guards, function


# ----------------------------------------------------------------- what the template scopes
def test_network_interface_permissions_only_for_amazon_mq() -> None:
    statements = iam.function_statements("ProvisionBrokerFunction")
    eni = iam.arn("ec2", "network-interface/eni-0123456789abcdef0")
    for action in (
        "ec2:CreateNetworkInterfacePermission",
        "ec2:DeleteNetworkInterfacePermission",
        "ec2:DescribeNetworkInterfacePermissions",
    ):
        resource = "*" if action.startswith("ec2:Describe") else eni
        assert iam.is_allowed(
            statements, action, resource, {"ec2:AuthorizedService": "mq.amazonaws.com"}
        ), action
        assert not iam.is_allowed(
            statements, action, resource, {"ec2:AuthorizedService": "lambda.amazonaws.com"}
        ), action
        assert not iam.is_allowed(statements, action, resource, {}), action
    # The ENIs themselves: in this account and region, not elsewhere nor on other resources.
    assert iam.is_allowed(statements, "ec2:CreateNetworkInterface", eni)
    assert not iam.is_allowed(
        statements, "ec2:CreateNetworkInterface", eni.replace(iam.ACCOUNT, "210987654321")
    )
    assert not iam.is_allowed(
        statements, "ec2:DeleteNetworkInterface", iam.arn("ec2", "instance/i-0123456789abcdef0")
    )


def test_describe_execution_only_on_this_state_machine() -> None:
    statements = iam.function_statements("TakeLeaseFunction")
    ours = iam.arn("states", f"execution:{STATE_MACHINE}:orders-2026-12-01")
    assert iam.is_allowed(statements, "states:DescribeExecution", ours)
    for other in (
        iam.arn("states", "execution:OtherStackMachine:orders-2026-12-01"),
        iam.arn("states", f"execution:{STATE_MACHINE}-other:orders"),
        iam.arn("states", f"execution:{STATE_MACHINE}:x", region="eu-west-1"),
    ):
        assert not iam.is_allowed(statements, "states:DescribeExecution", other), other
    # No other function may describe executions.
    for function in iam._default_stack().functions():
        if function != "TakeLeaseFunction":
            assert not iam.is_allowed(
                iam.function_statements(function), "states:DescribeExecution", ours
            ), function


def test_create_broker_only_with_the_migration_tag() -> None:
    statements = iam.function_statements("ProvisionBrokerFunction")
    tagged = {
        f"aws:RequestTag/{MIGRATION_TAG}": "orders-2026-12-01",
        "aws:TagKeys": [MIGRATION_TAG],
    }
    assert iam.is_allowed(statements, "mq:CreateBroker", "*", tagged)
    assert not iam.is_allowed(statements, "mq:CreateBroker", "*", {})
    assert not iam.is_allowed(
        statements,
        "mq:CreateBroker",
        "*",
        {"aws:RequestTag/team": "orders", "aws:TagKeys": ["team"]},
    )
    broker = iam.arn("mq", "broker:orders-amazonmq:b-1234")
    assert iam.is_allowed(statements, "mq:CreateTags", broker, tagged)
    assert not iam.is_allowed(statements, "mq:CreateTags", broker, {"aws:RequestTag/team": "x"})


def test_the_evaluator_follows_iam() -> None:
    """Deny wins, NotAction/NotResource, wildcards, and an absent key satisfies no condition
    (the checker cannot pass a statement it cannot evaluate)."""
    allow_all_ssm = {"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}
    deny_put = {"Effect": "Deny", "Action": "ssm:Put*", "Resource": "arn:aws:ssm:*:*:parameter/x*"}
    assert iam.is_allowed([allow_all_ssm], "ssm:GetParameter", "arn:aws:ssm:r:1:parameter/y")
    assert not iam.is_allowed(
        [allow_all_ssm, deny_put], "ssm:PutParameter", "arn:aws:ssm:r:1:parameter/x1"
    )
    assert not iam.is_allowed([allow_all_ssm], "SNS:Publish", "*")
    not_action = {"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::secret*"}
    assert iam.is_allowed([not_action], "sns:Publish", "arn:aws:sns:r:1:t")
    assert not iam.is_allowed([not_action], "iam:PassRole", "*")
    assert not iam.is_allowed([not_action], "s3:GetObject", "arn:aws:s3:::secret-bucket")
    conditioned = {
        "Effect": "Allow",
        "Action": "sns:Publish",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:ResourceTag/unknown": "x"}},
    }
    assert not iam.is_allowed([conditioned], "sns:Publish", "*", {})
    assert iam.is_allowed([conditioned], "sns:Publish", "*", {"aws:resourcetag/unknown": "x"})
    # ARN wildcards do not cross the ARN's first five colons.
    assert not iam.arn_like("arn:aws:ssm:*:1:parameter/*", "arn:aws:ssm:r:x:1:parameter/p")
    with pytest.raises(iam.PolicyError, match="NumericLessThan"):
        iam.is_allowed(
            [{**conditioned, "Condition": {"NumericLessThan": {"k": "1"}}}], "sns:Publish", "*"
        )


def test_a_decision_through_the_cli_route_makes_only_allowed_calls(
    ordered_plan: dict[str, Any],
) -> None:
    """`mq-cutover reject`: a SigV4-signed GET and POST on /decisions, as the registered
    approver's IAM user, through the simulated API Gateway authoriser to the real handler."""
    from botocore.credentials import Credentials

    from mq_cutover_cli.api import sign
    from mq_cutover_cli.approval_http import ApprovalApiClient

    url = f"https://abc123.execute-api.{iam.REGION}.amazonaws.com/dev/decisions/"
    url += ordered_plan["migrationId"]
    with call_log.recording() as calls:
        run = RecordedRun(calls)
        with live_run(ordered_plan) as live:
            live.wait_for_gate("cutover")
            emulator = live.emulator
            emulator.client("iam").create_user(UserName="ana")
            key = emulator.client("iam").create_access_key(UserName="ana")["AccessKey"]
            credentials = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
            reject = {"decision": "reject", "gate": "cutover", "comment": "not tonight"}
            for method, payload in (("GET", b""), ("POST", json.dumps(reject).encode())):
                headers = sign(
                    method,
                    url,
                    payload,
                    credentials=credentials,
                    region=iam.REGION,
                    headers={"Content-Type": "application/json"} if payload else {},
                )
                status, _, answer = ApprovalApiClient(emulator).signed(
                    method, url, headers, payload
                )
                assert status == 200, answer
            assert live.wait_until_done()["error"] == "Rejected"
            finish(run, emulator)
    assert {c.operation for c in calls if c.function == "ApprovalApiFunction"} >= {"Query"}
    assert_least_privilege(run)

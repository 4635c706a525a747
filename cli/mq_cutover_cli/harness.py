"""The offline harness: moto runs the real ASL file, the real handlers run in-process.

It is a test and demo tool, never part of what is deployed. Everything it patches is a private
moto 5.2.5 internal (pinned); `tests/workflow/test_harness_canary.py` fails loudly if one moves.

Patched, and why:
1. `LambdaFunction._invoke_lambda`: call `functions/<dir>/app.py` in-process instead of Docker.
   An exception becomes an AWS-shaped error payload, so Retry/Catch match by class name.
2. `jsonata._eval_jsonata`: moto's JSONata evaluator is a stub; jsonata-python evaluates.
3. `jsonata.encode_jsonata_variable_declarations`: moto quotes string variables without
   escaping them; strings are JSON-encoded instead (what AWS does).
4. `StepFunctionResponse.send_task_failure`: moto drops the `cause`; it is passed on, so a
   rejection's "rejected by X: why" reaches the Catch as on AWS.
5. `WaitFunction._wait_interval` and the retrier's `time`: Wait states and Retry back-off advance
   a simulated clock instead of sleeping. `mq_cutover.clock.utcnow` reads that clock, so
   handlers, metric timestamps and approval deadlines all live on simulated time, and
   `mq_cutover.clock.sleep` (a handler waiting between drain readings) advances it.
6. `TimeoutSecondsJSONata._eval_seconds`: a gate's TimeoutSeconds (a JSONata expression) is
   multiplied by `approval_timeout_scale`, so a test can watch a 1-minute gate time out in
   about a second (moto waits for a task token in real time). Literal timeouts are untouched.

With `real_time=True` (the end-to-end tier, real brokers) patch 5 is left out: waits, retries
and handlers run on the wall clock.

Everything else is moto as it is. What moto fakes (brokers RUNNING at once, SSM commands doing
nothing, metrics nobody publishes) is simulated by `world.py`, never inside the product code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import re
import secrets
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import boto3
import jsonata
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSecondsJSONata
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
    WaitFunction,
)
from moto.stepfunctions.parser.asl.eval import states as moto_states
from moto.stepfunctions.parser.asl.eval import variable_store as moto_variable_store
from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.responses import StepFunctionResponse

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
DEFAULT_APPROVAL_API_URL = "https://approvals.offline.invalid/dev/approvals"
STACK_NAME = "mq-cutover-offline"
# The simulated stack's registered approvers (mq-cutover approvers add). Their email is
# simulated: each gets an SQS "inbox" subscribed with the same filter policy an email
# subscription would have, so only their own links reach them.
DEFAULT_APPROVERS = (
    ("ana", "Ana Ops", f"arn:aws:iam::{ACCOUNT}:user/ana"),
    ("bea", "Bea Lead", f"arn:aws:iam::{ACCOUNT}:role/bea-approver"),
    ("cy", "Cy Oncall", None),
)


_CLIENTS: dict[str, Any] = {}


def bucket_name(logical_id: str) -> str:
    """The simulated stack's name for a bucket of the template (on AWS CloudFormation
    generates one from the stack's name and the logical id, lower case)."""
    return f"{STACK_NAME}-{logical_id.lower()}"


def boto3_client(service: str) -> Any:
    """A boto3 client on the emulator (inside `Emulator.running()`); cached, since building
    one parses the service model again."""
    if service not in _CLIENTS:
        _CLIENTS[service] = boto3.client(service, region_name=REGION)
    return _CLIENTS[service]


class SimClock:
    """Simulated UTC time: starts at the real time, moves only when the workflow waits."""

    def __init__(self, real_seconds_per_wait: float = 0.0) -> None:
        self._now = datetime.now(UTC).replace(microsecond=0)
        self._lock = threading.Lock()
        self.real_seconds_per_wait = real_seconds_per_wait
        self._moves: list[tuple[float, datetime]] = [(0.0, self._now)]  # (real time, sim time)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._moves.append((time.time(), self._now))

    def at(self, real: datetime) -> datetime:
        """The simulated time it was at a real moment (e.g. a history event's timestamp)."""
        with self._lock:
            moves = list(self._moves)
        stamp = real.timestamp()
        return next((sim for when, sim in reversed(moves) if when <= stamp), moves[0][1])


@dataclass
class LambdaContext:
    """What a handler gets as `context` (Powertools reads these fields). The remaining time
    counts down in real time from the function's Timeout in template.yaml."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/offline"
    log_stream_name: str = "offline"
    timeout_ms: int = 60_000
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms - int((time.monotonic() - self.started) * 1000)


Hook = Callable[[str, dict[str, Any]], None]
AfterHook = Callable[[str, dict[str, Any], Any], None]


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """template.yaml through cfn-lint's loader, which knows CloudFormation's short tags."""
    from cfnlint.decode.cfn_yaml import loads

    return dict(loads(path.read_text(), str(path)))


def _send_task_failure(response: StepFunctionResponse) -> Any:
    from moto.core.responses import EmptyResult

    response.stepfunction_backend.send_task_failure(
        response._get_param("taskToken"),
        error=response._get_param("error"),
        # With execute_state_machine on, the backend is moto's ASL parser backend, which
        # takes a cause; the base backend moto types it as does not.
        cause=response._get_param("cause"),  # type: ignore[call-arg]
    )
    return EmptyResult()


# The workflow tests' check against the reference JavaScript JSONata
# (mq_cutover_cli.jsonata_reference, set by tests/workflow/conftest.py): when set, it is called
# with each expression as evaluated (moto's variable declarations included) and its result, or
# the error it raised. None (the default) records nothing.
JsonataRecorder = Callable[[str, Any, Exception | None], None]
jsonata_recorder: JsonataRecorder | None = None


def _jsonata_eval(expression: str) -> Any:
    recorder = jsonata_recorder
    try:
        result = jsonata.Jsonata(expression).evaluate(None)
    except Exception as exc:  # any evaluator error is a States.QueryEvaluationError on AWS
        if recorder is not None:
            recorder(expression, None, exc)
        raise moto_jsonata.JSONataException("JSONataError", str(exc)) from exc
    if recorder is not None:
        recorder(expression, result, None)
    return result


def _encode_declarations(bindings: dict[str, Any]) -> str:
    return "".join(
        f"{name}:={to_json_str(value, separators=(',', ':'))};" for name, value in bindings.items()
    )


class Emulator:
    """moto with the stack's resources created from template.yaml, and the real ASL."""

    def __init__(
        self,
        clock: SimClock | None = None,
        log_level: str = "INFO",
        approval_api_url: str = DEFAULT_APPROVAL_API_URL,
        approval_timeout_scale: float = 1.0,
        lambda_timeout_ms: int | None = None,
        real_time: bool = False,
        stack_parameters: dict[str, str] | None = None,
        approvers: tuple[tuple[str, str, str | None], ...] = DEFAULT_APPROVERS,
        plan_reference: str | None = None,
    ) -> None:
        self.clock = clock or SimClock()
        # "s3" or "ssm": `start` puts the plan in the stack's plan bucket (or under the plan
        # parameter prefix) and starts the run with {"planRef": ...}, as an operator would.
        self.plan_reference = plan_reference
        # Real time (the end-to-end tier, with real brokers): Wait states, retries and handlers
        # wait for real and read the real clock; patch 5 is left out.
        self.real_time = real_time
        self.log_level = log_level
        self.approval_api_url = approval_api_url
        self.approval_timeout_scale = approval_timeout_scale
        self.lambda_timeout_ms = lambda_timeout_ms  # overrides the template's (simulation)
        self.stack_parameters = dict(stack_parameters or {})
        self.approvers = approvers
        self.registry_path = ""
        self.function_timeouts: dict[str, int] = {}
        self.hooks: list[Hook] = []  # called before a function runs (the world, faults)
        self.after_hooks: list[AfterHook] = []  # called with its result (faults)
        self.ticks: list[Callable[[], None]] = []  # called when a handler sleeps (the world)
        self.cleanups: list[Callable[[], Any]] = []  # run when the emulator stops
        self.handlers: dict[str, ModuleType] = {}
        self.plan_caches: dict[str, dict[str, str]] = {}  # each function's stored plans read
        self.function_arns: dict[str, str] = {}
        self.resources: dict[str, str] = {}
        self.inbox_urls: dict[str, str] = {}
        self.mail: dict[str, list[dict[str, str]]] = {}
        self.invocations: list[tuple[str, dict[str, Any]]] = []
        self.captured_output = io.StringIO()
        self.state_machine_arn = ""
        self.template = load_template()

    # --- boto3 clients on the emulator ---------------------------------------------------
    def client(self, service: str) -> Any:
        return boto3_client(service)

    # --- patches ---------------------------------------------------------------------------
    def _invoke(self, function: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        name = function.function_name
        payload = json.loads(event) if isinstance(event, str | bytes) else event
        self.invocations.append((name, payload))
        module = self.handlers[name]
        timeout = self.lambda_timeout_ms or self.function_timeouts.get(name, 60_000)
        context = LambdaContext(
            function_name=name, invoked_function_arn=function.function_arn, timeout_ms=timeout
        )
        # Each function is its own Lambda container: it reads a stored plan once, for itself
        # (one process here shares mq_cutover.plan_store; its cache is swapped per function).
        from mq_cutover import plan_store

        plan_store._cache = self.plan_caches.setdefault(name, {})
        try:
            for hook in list(self.hooks):
                hook(name, payload)
            from mq_cutover_cli.call_log import invoking

            with invoking(name):  # its AWS calls are the function's (least-privilege test)
                result = module.lambda_handler(payload, context)
        except Exception as exc:
            error = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "requestId": context.aws_request_id,
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            return json.dumps(error), True, ""
        finally:
            # Metrics are disabled offline, but Powertools still buffers them (and prints the
            # buffer at 100 values): drop them with each invocation, as a fresh Lambda would.
            from mq_cutover.observability import metrics

            metrics.clear_metrics()
        for after in list(self.after_hooks):
            after(name, payload, result)
        return json.dumps(result), False, ""

    def _sleep(self, seconds: float) -> None:
        """A handler waiting inside one call (the drain's readings): simulated time passes,
        and the world moves with it (its metrics bridge publishes)."""
        self.clock.advance(seconds)
        for tick in list(self.ticks):
            tick()

    def _wait(self, _function: Any, env: Any, wait_seconds: int) -> None:
        self.clock.advance(wait_seconds)
        if self.clock.real_seconds_per_wait > 0:
            env.program_state_event.wait(self.clock.real_seconds_per_wait)

    @contextmanager
    def _patched(self) -> Iterator[None]:
        emulator = self

        def invoke(function: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            return emulator._invoke(function, event)

        def wait(function: Any, env: Any, wait_seconds: int) -> None:
            emulator._wait(function, env, wait_seconds)

        original_timeout = TimeoutSecondsJSONata._eval_seconds

        def scaled_timeout(component: TimeoutSecondsJSONata, env: Any) -> float:
            return float(original_timeout(component, env)) * emulator.approval_timeout_scale

        class _RetryTime:
            """The retrier's `time` module: back-off advances the simulated clock."""

            @staticmethod
            def sleep(seconds: float) -> None:
                emulator.clock.advance(seconds)

            time = staticmethod(time.time)

        patches: list[Any] = [
            mock.patch.object(LambdaFunction, "_invoke_lambda", invoke),
            mock.patch.object(moto_jsonata, "_eval_jsonata", _jsonata_eval),
            mock.patch.object(
                moto_states, "encode_jsonata_variable_declarations", _encode_declarations
            ),
            mock.patch.object(
                moto_variable_store, "encode_jsonata_variable_declarations", _encode_declarations
            ),
            mock.patch.object(StepFunctionResponse, "send_task_failure", _send_task_failure),
            mock.patch.object(TimeoutSecondsJSONata, "_eval_seconds", scaled_timeout),
        ]
        if not self.real_time:
            patches += [
                mock.patch.object(WaitFunction, "_wait_interval", wait),
                mock.patch.object(retrier_decl, "time", _RetryTime),
                mock.patch("mq_cutover.clock.utcnow", self.clock.now),
                mock.patch("mq_cutover.clock.sleep", self._sleep),
            ]
        for patch in patches:
            patch.start()
        try:
            yield
        finally:
            for patch in reversed(patches):
                patch.stop()

    # --- stack resources from template.yaml ------------------------------------------------
    def _resources_of(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            name: dict(res)
            for name, res in self.template["Resources"].items()
            if res["Type"] == kind
        }

    def _create_stack(self) -> None:
        iam = self.client("iam")
        role = iam.create_role(
            RoleName="offline-role",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        sns = self.client("sns")
        for name in self._resources_of("AWS::SNS::Topic"):
            self.resources[name] = sns.create_topic(Name=name)["TopicArn"]
            if name != "ApprovalTopic":  # approvers get their own inboxes, below
                self.inbox_urls[name] = self._inbox(name, self.resources[name])
        for name, res in self._resources_of("AWS::DynamoDB::Table").items():
            props = res["Properties"]
            table: dict[str, Any] = {
                "TableName": name,
                "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"],
                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            }
            if "GlobalSecondaryIndexes" in props:
                table["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            self.client("dynamodb").create_table(**table)
            self.resources[name] = name
        for name in self._resources_of("AWS::SecretsManager::Secret"):
            # The stack generates these (GenerateSecretString); so does the emulator.
            self.resources[name] = self.client("secretsmanager").create_secret(
                Name=f"offline/{name}", SecretString=secrets.token_urlsafe(48)
            )["ARN"]
        s3 = self.client("s3")
        for name in self._resources_of("AWS::S3::Bucket"):
            # The plan bucket: versioned as in the template (a planRef may name a versionId).
            bucket = bucket_name(name)
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            self.resources[name] = bucket
        self.resources["ApprovalApi"] = self.approval_api_url

        environment = self._function_environment()
        os.environ.update(environment)
        self._register_approvers(environment["APPROVER_REGISTRY_PATH"])
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "# the harness runs functions/<dir>/app.py in-process\n")
        lam = self.client("lambda")
        for name, res in self._resources_of("AWS::Serverless::Function").items():
            code_dir = ROOT / str(res["Properties"]["CodeUri"])
            arn = lam.create_function(
                FunctionName=name,
                Runtime="python3.11",
                Role=role,
                Handler=str(res["Properties"]["Handler"]),
                Code={"ZipFile": code.getvalue()},
            )["FunctionArn"]
            self.function_arns[name] = arn
            seconds = res["Properties"].get("Timeout") or self.template.get("Globals", {}).get(
                "Function", {}
            ).get("Timeout", 3)
            self.function_timeouts[name] = int(seconds) * 1000
            self.resources[name] = arn
            self.handlers[name] = self._load_handler(name, code_dir / "app.py")
        self._capture_logs()

        machine = self._resources_of("AWS::Serverless::StateMachine")
        ((machine_name, machine_res),) = machine.items()
        props = machine_res["Properties"]
        definition = (ROOT / str(props["DefinitionUri"])).read_text()
        values = {key: self._resolve(ref) for key, ref in props["DefinitionSubstitutions"].items()}

        def substitute(match: re.Match[str]) -> str:
            return values.get(match.group(1), match.group(0))

        definition = PLACEHOLDER.sub(substitute, definition)
        left = PLACEHOLDER.findall(definition)
        if left:
            raise RuntimeError(f"ASL placeholders without a value: {sorted(set(left))}")
        self.state_machine_arn = self.client("stepfunctions").create_state_machine(
            name=machine_name, definition=definition, roleArn=role, type="STANDARD"
        )["stateMachineArn"]
        self.resources[machine_name] = self.state_machine_arn
        self._describe_stack(environment["APPROVER_REGISTRY_PATH"])

    # The stack parameters and outputs the operator's CLI reads (DescribeStacks).
    STACK_PARAMETERS = (
        "EnvironmentName",
        "ParameterPathPrefix",
        "RequiredGates",
        "MinimumQuorum",
        "BrokerUserSecretsPrefix",
        "OnPremTagKey",
        "ClientHostTagKey",
    )

    def _describe_stack(self, registry_path: str) -> None:
        """A CloudFormation stack named STACK_NAME whose parameters and outputs are the
        emulator's, so the CLI finds the stack as it would on AWS (moto cannot deploy the SAM
        template itself: the stack holds only its parameters and outputs)."""
        import warnings

        outputs = {
            "StateMachineArn": self.state_machine_arn,
            "ApprovalApiUrl": self.approval_api_url,
            "DecisionApiUrl": self.approval_api_url.rsplit("/approvals", 1)[0] + "/decisions",
            "ApprovalTopicArn": self.resources["ApprovalTopic"],
            "ApproverRegistryPath": registry_path,
            "NotificationTopicArn": self.resources.get("NotificationTopic", ""),
            "ApprovalsTableName": self.resources.get("ApprovalsTable", ""),
            "PlanBucketName": self.resources.get("PlanBucket", ""),
        }
        body = {
            # String parameters: DescribeStacks gives a CommaDelimitedList as "a,b" on AWS.
            "Parameters": {name: {"Type": "String"} for name in self.STACK_PARAMETERS},
            "Resources": {"Stack": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items() if value},
        }
        with warnings.catch_warnings():  # moto notes that it creates no WaitConditionHandle
            warnings.simplefilter("ignore")
            self.client("cloudformation").create_stack(
                StackName=STACK_NAME,
                TemplateBody=json.dumps(body),
                Parameters=[
                    {"ParameterKey": name, "ParameterValue": self._parameter_default(name)}
                    for name in self.STACK_PARAMETERS
                ],
            )

    def _inbox(self, name: str, topic_arn: str, approver: str | None = None) -> str:
        """Simulated mailbox: an SQS queue subscribed where the email subscription would be."""
        sqs = self.client("sqs")
        queue = f"{name}-inbox" + (f"-{approver}" if approver else "")
        queue_url = str(sqs.create_queue(QueueName=queue)["QueueUrl"])
        if approver is None:
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            self.client("sns").subscribe(
                TopicArn=topic_arn,
                Protocol="sqs",
                Endpoint=queue_arn,
                Attributes={"RawMessageDelivery": "false"},
            )
        return queue_url

    def queue_arn(self, queue_url: str) -> str:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]
        return str(attributes["QueueArn"])

    def _register_approvers(self, registry_path: str) -> None:
        """The admin's `mq-cutover approvers add` for each simulated approver (the product's
        own code), with an SQS inbox standing in for their email address."""
        from aws_lambda_powertools.utilities import parameters

        from mq_cutover.approvers import Approver, add_approver

        parameters.clear_caches()  # type: ignore[no-untyped-call]  # same path in every emulator
        self.registry_path = registry_path
        topic = self.resources["ApprovalTopic"]
        for approver_id, name, principal in self.approvers:
            url = self._inbox("ApprovalTopic", topic, approver_id)
            self.inbox_urls[f"ApprovalTopic/{approver_id}"] = url
            add_approver(
                self.client("ssm"),
                self.client("sns"),
                path=registry_path,
                topic_arn=topic,
                approver=Approver(approver_id, name, "sqs", self.queue_arn(url), principal),
            )

    def _sub(self, template: str) -> str:
        """Fn::Sub with the emulator's pseudo parameters, resources and stack parameters."""
        pseudo = {
            "AWS::StackName": STACK_NAME,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in pseudo:
                return pseudo[name]
            if name.endswith(".Arn"):
                return self.resources[name[:-4]]
            return self.resources.get(name, self._parameter_default(name))

        return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", value, template)

    def _resolve(self, ref: Any) -> str:
        """!GetAtt X.Arn / !Ref X of a resource the emulator created."""
        if isinstance(ref, dict) and "Fn::GetAtt" in ref:
            target = ref["Fn::GetAtt"]
            name = target[0] if isinstance(target, list) else str(target).split(".")[0]
            return self.resources[name]
        if isinstance(ref, dict) and "Ref" in ref:
            return self.resources[ref["Ref"]]
        return str(ref)

    def _function_environment(self) -> dict[str, str]:
        """Globals and every function's Environment, with the emulator's values."""
        env: dict[str, str] = {}
        globals_env = self.template.get("Globals", {}).get("Function", {}).get("Environment", {})
        blocks = [globals_env.get("Variables", {})]
        for res in self._resources_of("AWS::Serverless::Function").values():
            blocks.append(res["Properties"].get("Environment", {}).get("Variables", {}))
        for block in blocks:
            for key, value in block.items():
                if isinstance(value, str):
                    env[key] = value
                elif isinstance(value, dict) and "Ref" in value:
                    ref = value["Ref"]
                    env[key] = self.resources.get(ref, self._parameter_default(ref))
                elif isinstance(value, dict) and "Fn::Sub" in value:
                    sub = value["Fn::Sub"]
                    env[key] = (
                        self.approval_api_url
                        if key == "APPROVAL_API_URL"
                        else self._sub(sub if isinstance(sub, str) else sub[0])
                    )
                elif isinstance(value, dict) and "Fn::Join" in value:
                    separator, parts = value["Fn::Join"]
                    if isinstance(parts, dict) and "Ref" in parts:  # a list parameter
                        env[key] = self._parameter_default(parts["Ref"])
                    else:
                        env[key] = separator.join(self._resolve(p) for p in parts)
                else:
                    env[key] = self._resolve(value)
        env.update(
            {
                "LOG_LEVEL": self.log_level,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_DEV": "false",
                "AWS_DEFAULT_REGION": REGION,
            }
        )
        return env

    def _capture_logs(self) -> None:
        """Handler logs (Powertools JSON lines) go to `captured_output`, not the terminal. They
        are written at the deployed level (INFO) so that logging itself is exercised."""
        # The Powertools logger outlives one emulator (its module is imported once): set its
        # level and stream for this one. It is found through the object, not by the service
        # name: imported before the stack's POWERTOOLS_SERVICE_NAME was set (by another test),
        # it is named `service_undefined`, and a lookup by name found no handler to capture.
        from mq_cutover.observability import logger

        logger.setLevel(self.log_level)
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(self.captured_output)

    def stack_parameter(self, name: str) -> str:
        """A stack parameter's value in the emulated stack (an override, else the default)."""
        return self._parameter_default(name)

    def _parameter_default(self, name: str) -> str:
        """A stack parameter: the emulator's override, else the template's default."""
        if name in self.stack_parameters:
            return self.stack_parameters[name]
        return str(self.template.get("Parameters", {}).get(name, {}).get("Default", ""))

    @staticmethod
    def _load_handler(name: str, path: Path) -> ModuleType:
        # Every handler module is called `app` on Lambda; give each its own name here.
        spec = importlib.util.spec_from_file_location(f"offline_{name}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    # --- lifecycle ---------------------------------------------------------------------------
    @contextmanager
    def running(self) -> Iterator[Emulator]:
        fake_env = {
            "AWS_ACCESS_KEY_ID": "offline",
            "AWS_SECRET_ACCESS_KEY": "offline",
            "AWS_SESSION_TOKEN": "offline",
            "AWS_DEFAULT_REGION": REGION,
            "MOTO_ACCOUNT_ID": ACCOUNT,
        }
        saved = dict(os.environ)
        os.environ.update(fake_env)
        # moto logs every ASL evaluation error with its whole parse tree; the history says it.
        if not os.environ.get("MQ_CUTOVER_DEBUG"):
            logging.getLogger("moto").setLevel(logging.CRITICAL)
        try:
            with (
                mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
                self._patched(),
            ):
                self._create_stack()
                try:
                    yield self
                finally:
                    for cleanup in reversed(self.cleanups):
                        cleanup()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    # --- executions ----------------------------------------------------------------------
    def start(self, plan: dict[str, Any] | str, name: str | None = None) -> str:
        document = plan if isinstance(plan, str) else json.dumps(plan)
        if name is None:
            name = json.loads(document).get("migrationId") or f"run-{uuid.uuid4().hex[:8]}"
        if self.plan_reference:
            document = json.dumps(self.put_plan(document, name, self.plan_reference))
        return str(
            self.client("stepfunctions").start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=document
            )["executionArn"]
        )

    def put_plan(self, document: str, name: str, kind: str = "s3") -> dict[str, str]:
        """Keep a plan where a reference may name it, as the operator would (`mq-cutover
        start` uploads to the bucket; an SSM parameter is put by hand); the execution input
        that names it."""
        import hashlib

        if kind == "ssm":
            parameter = f"{self._parameter_default('PlanParameterPrefix')}{name}"
            tier = "Advanced" if len(document.encode()) > 4096 else "Standard"
            self.client("ssm").put_parameter(
                Name=parameter, Value=document, Type="String", Tier=tier, Overwrite=True
            )
            return {"planRef": f"ssm:{parameter}"}
        if kind != "s3":
            raise ValueError(f"plan_reference: {kind!r} is not s3 or ssm")
        bucket = self.resources["PlanBucket"]
        key = f"plans/{name}/{hashlib.sha256(document.encode()).hexdigest()}.json"
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=document.encode())
        return {"planRef": f"s3://{bucket}/{key}"}

    def status(self, execution_arn: str) -> dict[str, Any]:
        return dict(self.client("stepfunctions").describe_execution(executionArn=execution_arn))

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        events: list[dict[str, Any]] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
            if token:
                kwargs["nextToken"] = token
            page = sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                return events

    def states_entered(self, execution_arn: str) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history(execution_arn)
            if "stateEnteredEventDetails" in e
        ]

    def inbox(self, topic: str, to: str | None = None) -> list[dict[str, str]]:
        """Every message published to a topic so far ({"subject", "message", "to"}), oldest
        first. ApprovalTopic: each approver's own inbox (`to`), or all of them."""
        sqs = self.client("sqs")
        received = self.mail.setdefault(topic, [])
        for key, url in self.inbox_urls.items():
            if key != topic and not key.startswith(f"{topic}/"):
                continue
            while True:
                batch = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                ).get("Messages", [])
                if not batch:
                    break
                for message in batch:
                    body = json.loads(message["Body"])
                    received.append(
                        {
                            "subject": body.get("Subject", ""),
                            "message": body["Message"],
                            "to": key.partition("/")[2],
                        }
                    )
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [m for m in received if to is None or m["to"] == to]

    def fail_open_tokens(self) -> None:
        """Teardown: moto cannot stop a run blocked on a task token; fail every open one."""
        table = self.resources.get("ApprovalsTable")
        if not table:
            return
        ddb = self.client("dynamodb")
        sfn = self.client("stepfunctions")
        for item in ddb.scan(TableName=table).get("Items", []):
            if item["status"]["S"] == "PENDING":
                with contextlib.suppress(sfn.exceptions.ClientError):  # already closed
                    sfn.send_task_failure(
                        taskToken=item["taskToken"]["S"], error="Teardown", cause="harness teardown"
                    )

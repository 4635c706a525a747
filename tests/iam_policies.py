"""The stack's IAM policies as AWS would read them, and an evaluator of IAM's allow/deny logic.

Test tooling, never deployed. template.yaml goes through the SAM transform (samtranslator, run in
the SAM CLI virtualenv `.venv-sam`: the test venv does not import it), then its intrinsics are
resolved with the offline emulator's names (account 123456789012, us-east-1; tables and topics
named by logical id, as `cli/mq_cutover_cli/harness.py` creates them) and the stack parameters
the offline harness uses (the template's defaults, unless a test gives others).

    is_allowed(statements, action, resource_arn, context) -> bool
    function_statements(logical_id)       inline + managed policies of that function's role
    managed_policy_statements(logical_id) one AWS::IAM::ManagedPolicy of the template

An unknown condition key (absent from `context`) does not satisfy a condition, except under
`...IfExists`, `Null`, a negated operator and `ForAllValues:` (as in IAM).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover_cli.harness import ACCOUNT, REGION, STACK_NAME, bucket_name

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
PARTITION = "aws"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK_NAME}/offline"
REST_API_ID = "offlineapi"

# Run by .venv-sam/bin/python: local CodeUri/DefinitionUri become S3 URIs (what `sam validate`
# does too), so the transform needs no build.
_TRANSFORM = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicies:
    def load(self):
        return {}

template = yaml_parse(open(sys.argv[1]).read())
for name, resource in template.get("Resources", {}).items():
    props = resource.get("Properties") or {}
    for key in ("CodeUri", "ContentUri", "DefinitionUri"):
        if isinstance(props.get(key), str):
            props[key] = "s3://offline-artifacts/" + name
region, account, partition = sys.argv[2:5]
pseudo = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": partition}
json.dump(transform(template, pseudo, NoManagedPolicies()), sys.stdout)
"""

# The AWS managed policies SAM attaches to function roles (Tracing: Active adds X-Ray).
# Any other AWS managed policy is refused: its document would have to be added here first.
AWS_MANAGED: dict[str, list[dict[str, Any]]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    # SAM attaches it to a function with a VpcConfig, even one behind !If (BrokerApiSubnetIds
    # empty): ENIs for the Lambda service to place the function in the VPC, no call of ours.
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole": [
        {
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "ec2:CreateNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSubnets",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": "*",
        }
    ],
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
}


class PolicyError(Exception):
    """The template's policies cannot be read (an intrinsic or operator this module lacks)."""


@functools.cache
def transformed_template() -> dict[str, Any]:
    """template.yaml after the SAM transform (once per test session)."""
    if not SAM_PYTHON.exists():
        raise PolicyError(f"{SAM_PYTHON} is missing: run `make setup-sam`")
    env = {**os.environ, "AWS_DEFAULT_REGION": REGION, "SAM_CLI_TELEMETRY": "0"}
    done = subprocess.run(
        [str(SAM_PYTHON), "-c", _TRANSFORM, str(TEMPLATE), REGION, ACCOUNT, PARTITION],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise PolicyError(f"SAM transform failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout))


# --------------------------------------------------------------------- intrinsics
_NO_VALUE = object()
_SUB_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


class Stack:
    """The transformed template with its intrinsics resolved: `parameters` override the
    template's defaults; `refs` override what `Ref` of a resource gives (e.g. a secret's ARN,
    which carries a random suffix in the emulator)."""

    def __init__(
        self,
        parameters: Mapping[str, Any] | None = None,
        refs: Mapping[str, str] | None = None,
        template: dict[str, Any] | None = None,
        stack_id: str = STACK_ID,
    ) -> None:
        self.template = template if template is not None else transformed_template()
        self.resources: dict[str, Any] = self.template["Resources"]
        declared = self.template.get("Parameters", {})
        unknown = set(parameters or {}) - set(declared)
        if unknown:
            raise PolicyError(f"no such stack parameter(s): {sorted(unknown)}")
        self.parameters: dict[str, Any] = {}
        for name, spec in declared.items():
            value = (parameters or {}).get(name, spec.get("Default", ""))
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",")
            elif spec.get("Type") == "CommaDelimitedList":
                value = list(value) or [""]
            self.parameters[name] = value if isinstance(value, list) else str(value)
        self.parameters.update(
            {
                "AWS::AccountId": ACCOUNT,
                "AWS::Region": REGION,
                "AWS::Partition": PARTITION,
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::StackName": STACK_NAME,
                "AWS::StackId": stack_id,
                "AWS::NoValue": _NO_VALUE,
            }
        )
        self.refs = dict(refs or {})
        self._conditions: dict[str, bool] = {}

    # --- physical names, as the offline harness creates them --------------------------------
    def ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        kind = self._type(name)
        region_account = f"{REGION}:{ACCOUNT}"
        return {
            "AWS::SNS::Topic": f"arn:{PARTITION}:sns:{region_account}:{name}",
            "AWS::SecretsManager::Secret": (
                f"arn:{PARTITION}:secretsmanager:{region_account}:secret:offline/{name}-AbCdEf"
            ),
            "AWS::StepFunctions::StateMachine": (
                f"arn:{PARTITION}:states:{region_account}:stateMachine:{name}"
            ),
            "AWS::IAM::ManagedPolicy": f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{name}",
            "AWS::ApiGateway::RestApi": REST_API_ID,
            "AWS::S3::Bucket": bucket_name(name),
        }.get(kind, name)

    def get_att(self, name: str, attribute: str) -> Any:
        kind = self._type(name)
        region_account = f"{REGION}:{ACCOUNT}"
        known: dict[tuple[str, str], str] = {
            (
                "AWS::DynamoDB::Table",
                "Arn",
            ): f"arn:{PARTITION}:dynamodb:{region_account}:table/{name}",
            ("AWS::SNS::Topic", "TopicName"): name,
            ("AWS::SNS::Topic", "TopicArn"): str(self.ref(name)),
            ("AWS::Lambda::Function", "Arn"): (
                f"arn:{PARTITION}:lambda:{region_account}:function:{name}"
            ),
            ("AWS::StepFunctions::StateMachine", "Name"): name,
            ("AWS::StepFunctions::StateMachine", "Arn"): str(self.ref(name)),
            ("AWS::IAM::Role", "Arn"): f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}",
            ("AWS::Logs::LogGroup", "Arn"): (
                f"arn:{PARTITION}:logs:{region_account}:log-group:{name}:*"
            ),
            ("AWS::ApiGateway::RestApi", "RootResourceId"): "offlineroot",
            ("AWS::S3::Bucket", "Arn"): f"arn:{PARTITION}:s3:::{self.ref(name)}",
        }
        if (kind, attribute) not in known:
            raise PolicyError(f"Fn::GetAtt {name}.{attribute} ({kind}) is not modelled")
        return known[(kind, attribute)]

    def _type(self, name: str) -> str:
        if name not in self.resources:
            raise PolicyError(f"Ref/GetAtt of {name!r}: no such parameter or resource")
        return str(self.resources[name]["Type"])

    # --- conditions and intrinsics ---------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            expression = self.template.get("Conditions", {}).get(name)
            if expression is None:
                raise PolicyError(f"no such condition: {name}")
            self._conditions[name] = bool(self.resolve(expression))
        return self._conditions[name]

    def exists(self, logical_id: str) -> bool:
        """The resource is created with these parameters (its Condition, if any, holds)."""
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(str(condition))

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic evaluated; AWS::NoValue drops the key or list item."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Condition":
                return self.condition(str(arg))
            if key.startswith("Fn::"):
                return self._intrinsic(key, arg)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def _intrinsic(self, name: str, arg: Any) -> Any:
        if name == "Fn::If":
            condition, then, otherwise = arg
            return self.resolve(then if self.condition(str(condition)) else otherwise)
        if name == "Fn::GetAtt":
            target, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.get_att(str(target), str(attribute))
        if name == "Fn::Sub":
            return self._sub(arg)
        if name == "Fn::Join":
            separator, items = arg
            return str(separator).join(str(item) for item in self.resolve(items))
        if name == "Fn::Split":
            separator, text = arg
            return str(self.resolve(text)).split(str(separator))
        if name == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if name == "Fn::Equals":
            left, right = (self.resolve(side) for side in arg)
            return left == right
        if name == "Fn::Not":
            return not self.resolve(arg[0])
        if name == "Fn::And":
            return all(self.resolve(item) for item in arg)
        if name == "Fn::Or":
            return any(self.resolve(item) for item in arg)
        raise PolicyError(f"{name} is not modelled")

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        values = {key: self.resolve(item) for key, item in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                return str(values[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                target, attribute = name.split(".", 1)
                return str(self.get_att(target, attribute))
            value = self.ref(name)
            if isinstance(value, list):
                raise PolicyError(f"Fn::Sub of list parameter {name}")
            return str(value)

        return _SUB_PLACEHOLDER.sub(replace, str(text))

    # --- policies ----------------------------------------------------------------------------
    def document_statements(self, document: Any) -> list[dict[str, Any]]:
        resolved = self.resolve(document)
        if isinstance(resolved, str):  # a JSON document built with !Sub
            resolved = json.loads(resolved)
        statements = resolved.get("Statement", [])
        return [dict(s) for s in (statements if isinstance(statements, list) else [statements])]

    def managed_policy_statements(self, logical_id: str) -> list[dict[str, Any]]:
        resource = self.resources.get(logical_id)
        if not resource or resource["Type"] != "AWS::IAM::ManagedPolicy":
            raise PolicyError(f"{logical_id} is not an AWS::IAM::ManagedPolicy of the template")
        return self.document_statements(resource["Properties"]["PolicyDocument"])

    def role_of(self, function_id: str) -> str:
        function = self.resources.get(function_id)
        if not function or function["Type"] != "AWS::Lambda::Function":
            raise PolicyError(f"{function_id} is not a function of the stack")
        role = function["Properties"]["Role"]
        if not (isinstance(role, dict) and "Fn::GetAtt" in role):
            raise PolicyError(f"{function_id}'s role is not one of the stack: {role}")
        return str(role["Fn::GetAtt"][0])

    def role_statements(self, role_id: str) -> list[dict[str, Any]]:
        role = self.resources[role_id]["Properties"]
        statements: list[dict[str, Any]] = []
        for policy in self.resolve(role.get("Policies", [])):
            statements += self.document_statements(policy["PolicyDocument"])
        for entry in role.get("ManagedPolicyArns", []):
            if isinstance(entry, dict) and set(entry) == {"Ref"} and entry["Ref"] in self.resources:
                statements += self.managed_policy_statements(str(entry["Ref"]))
                continue
            arn = self.resolve(entry)
            if arn is _NO_VALUE:
                continue
            if arn not in AWS_MANAGED:
                raise PolicyError(f"{role_id}: managed policy {arn} is not modelled")
            statements += AWS_MANAGED[str(arn)]
        # Policies that attach themselves to the role (AWS::IAM::Policy / ManagedPolicy Roles).
        for name, resource in self.resources.items():
            if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                continue
            roles = resource["Properties"].get("Roles", [])
            if {"Ref": role_id} in roles and self.exists(name):
                statements += self.document_statements(resource["Properties"]["PolicyDocument"])
        return statements

    def function_statements(self, function_id: str) -> list[dict[str, Any]]:
        return self.role_statements(self.role_of(function_id))

    def functions(self) -> list[str]:
        return sorted(
            name
            for name, res in self.resources.items()
            if res["Type"] == "AWS::Lambda::Function" and self.exists(name)
        )


@functools.cache
def _default_stack() -> Stack:
    return Stack()


def function_statements(logical_id: str, stack: Stack | None = None) -> list[dict[str, Any]]:
    """Every statement that applies to the function's role: its inline policies, the
    template's managed policies it lists, AWS managed ones it lists, and policies that name
    its role."""
    return (stack or _default_stack()).function_statements(logical_id)


def managed_policy_statements(logical_id: str, stack: Stack | None = None) -> list[dict[str, Any]]:
    return (stack or _default_stack()).managed_policy_statements(logical_id)


# --------------------------------------------------------------------------- evaluation
Context = Mapping[str, str | bool | Iterable[str]]


@functools.cache
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return bool(_glob(pattern, ignore_case).match(value))


def arn_like(pattern: str, arn: str) -> bool:
    """IAM's ARN matching: component by component (a wildcard does not cross the first five
    colons), the resource part matched whole."""
    if pattern == "*":
        return True
    wanted, actual = pattern.split(":", 5), arn.split(":", 5)
    if len(wanted) != 6 or len(actual) != 6:
        return _like(pattern, arn)
    return all(_like(w, a) for w, a in zip(wanted, actual, strict=True))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _action_matches(patterns: Any, action: str) -> bool:
    return any(_like(str(p), action, ignore_case=True) for p in _as_list(patterns))


def _resource_matches(patterns: Any, resource: str) -> bool:
    return any(arn_like(str(p), resource) for p in _as_list(patterns))


def _context_value(context: Context, key: str) -> list[str] | None:
    for name, value in context.items():
        if name.lower() == key.lower():
            if isinstance(value, bool):
                return [str(value).lower()]
            if isinstance(value, str):
                return [value]
            return [str(v) for v in value]
    return None


_MATCHERS = {
    "StringEquals": lambda want, have: want == have,
    "StringEqualsIgnoreCase": lambda want, have: want.lower() == have.lower(),
    "StringLike": lambda want, have: _like(want, have),
    "ArnEquals": arn_like,
    "ArnLike": arn_like,
    "Bool": lambda want, have: want.lower() == have.lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _condition_holds(operator: str, key: str, wanted: Any, context: Context) -> bool:
    wanted_values = [str(w).lower() if isinstance(w, bool) else str(w) for w in _as_list(wanted)]
    have = _context_value(context, key)
    if operator == "Null":
        return (have is None) == (wanted_values[0].lower() == "true")
    set_operator = ""
    if ":" in operator:
        set_operator, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    negated = operator in _NEGATED
    base = _NEGATED.get(operator, operator)
    if base not in _MATCHERS:
        raise PolicyError(f"condition operator {operator} is not modelled")
    match = _MATCHERS[base]

    def one(value: str) -> bool:
        hit = any(match(w, value) for w in wanted_values)
        return not hit if negated else hit

    if set_operator == "ForAllValues":
        return have is None or all(one(v) for v in have)
    if set_operator == "ForAnyValue":
        return have is not None and any(one(v) for v in have)
    if set_operator:
        raise PolicyError(f"set operator {set_operator} is not modelled")
    if have is None:
        return if_exists or negated
    return any(one(v) for v in have)


def _conditions_hold(conditions: Mapping[str, Any], context: Context) -> bool:
    return all(
        _condition_holds(operator, key, wanted, context)
        for operator, block in conditions.items()
        for key, wanted in block.items()
    )


def statement_applies(
    statement: Mapping[str, Any], action: str, resource: str, context: Context
) -> bool:
    if "Action" in statement and not _action_matches(statement["Action"], action):
        return False
    if "NotAction" in statement and _action_matches(statement["NotAction"], action):
        return False
    if "Resource" in statement and not _resource_matches(statement["Resource"], resource):
        return False
    if "NotResource" in statement and _resource_matches(statement["NotResource"], resource):
        return False
    return _conditions_hold(statement.get("Condition", {}), context)


def is_allowed(
    statements: Iterable[Mapping[str, Any]],
    action: str,
    resource_arn: str,
    context: Context | None = None,
) -> bool:
    """IAM identity-policy evaluation: an explicit Deny wins, then any Allow, else denied."""
    allowed = False
    for statement in statements:
        if not statement_applies(statement, action, resource_arn, context or {}):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


# ------------------------------------------------------------- calls -> IAM requests
class UnmappedCall(PolicyError):
    """A recorded AWS call this module cannot translate into IAM requests."""


@dataclass(frozen=True)
class Request:
    """One authorization IAM makes for a call: this action, on this resource, in this
    context (the call may need several: SendCommand is checked on its document and on every
    instance; CreateBroker also needs what Amazon MQ does with the caller's permissions)."""

    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = f" with {dict(self.context)}" if self.context else ""
        return f"{self.action} on {self.resource}{where}"


def arn(service: str, resource: str, *, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


def parameter_arn(name: str) -> str:
    name = name.split(":", 1)[0]  # a selector (name:label or name:version) names the parameter
    return arn("ssm", f"parameter{name}" if name.startswith("/") else f"parameter/{name}")


AWS_MANAGED_KEY_ALIASES = {"alias/aws/ssm", "alias/aws/secretsmanager"}
MQ_SERVICE = "mq.amazonaws.com"
# What Amazon MQ does with the caller's permissions while creating a broker (Amazon MQ
# Developer Guide, "IAM permissions required to create an Amazon MQ broker").
MQ_DESCRIBES = (
    "ec2:DescribeInternetGateways",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
)


class Authorizations:
    """Turns recorded calls into IAM requests, reading what they depend on (tags, a
    parameter's type and key, a broker's ARN) from the emulator's state through `client`.
    `host_tags`: tags of hosts moto cannot hold (hybrid managed instances, mi-...)."""

    def __init__(
        self,
        client: Callable[[str], Any],
        host_tags: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.client = client
        self.host_tags = dict(host_tags or {})

    def requests(self, call: Any) -> list[Request]:
        """`call`: a `mq_cutover_cli.call_log.AwsCall`."""
        rule = CALLS.get((call.service, call.operation))
        if rule is None:
            raise UnmappedCall(
                f"{call.function} called {call.service}.{call.operation}, which has no IAM "
                "mapping: add it to CALLS in tests/iam_policies.py (action, resource, context)"
            )
        return rule(self, dict(call.params))

    # --- state the requests depend on --------------------------------------------------------
    def kms_key_arn(self, key_id: str) -> str | None:
        """The customer managed key's ARN, or None for an AWS managed key (its key policy
        already lets the account use it through the service)."""
        if not key_id or key_id in AWS_MANAGED_KEY_ALIASES:
            return None
        metadata = self.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]
        if metadata.get("KeyManager") == "AWS":
            return None
        return str(metadata["Arn"])

    def parameter(self, name: str) -> dict[str, Any]:
        found = self.client("ssm").describe_parameters(
            ParameterFilters=[{"Key": "Name", "Values": [name.split(":", 1)[0]]}]
        )["Parameters"]
        return dict(found[0]) if found else {}

    def decrypt_parameter(self, name: str) -> list[Request]:
        described = self.parameter(name)
        if described.get("Type") != "SecureString":
            return []
        key = self.kms_key_arn(str(described.get("KeyId", "")))
        if key is None:
            return []
        context = {
            "kms:ViaService": f"ssm.{REGION}.amazonaws.com",
            "kms:EncryptionContext:PARAMETER_ARN": parameter_arn(name),
        }
        return [Request("kms:Decrypt", key, context)]

    def tags_of_instance(self, instance_id: str) -> dict[str, str]:
        if instance_id in self.host_tags:
            return dict(self.host_tags[instance_id])
        if instance_id.startswith("mi-"):
            return {}
        reservations = self.client("ec2").describe_instances(InstanceIds=[instance_id])
        (instance,) = [i for r in reservations["Reservations"] for i in r["Instances"]]
        return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}

    def instance_request(self, action: str, instance_id: str) -> Request:
        # A hybrid managed instance is an SSM resource; an EC2 instance is EC2's, whoever acts.
        resource = (
            arn("ssm", f"managed-instance/{instance_id}")
            if instance_id.startswith("mi-")
            else arn("ec2", f"instance/{instance_id}")
        )
        context = {f"aws:ResourceTag/{k}": v for k, v in self.tags_of_instance(instance_id).items()}
        return Request(action, resource, context)

    def targeted_instances(self, targets: list[dict[str, Any]]) -> list[str]:
        filters = []
        ids: list[str] = []
        for target in targets:
            if target["Key"] == "InstanceIds":
                ids += target["Values"]
            elif target["Key"].startswith("tag:"):
                filters.append({"Name": target["Key"], "Values": target["Values"]})
            else:
                raise UnmappedCall(f"SendCommand target {target['Key']} is not modelled")
        if filters:
            reservations = self.client("ec2").describe_instances(Filters=filters)["Reservations"]
            ids += [i["InstanceId"] for r in reservations for i in r["Instances"]]
            ids += [i for i, tags in self.host_tags.items() if _tags_match(tags, filters)]
        return ids

    def broker_arn(self, broker_id: str) -> str:
        return str(self.client("mq").describe_broker(BrokerId=broker_id)["BrokerArn"])

    def broker_arn_by_name(self, name: str) -> str:
        for summary in self.client("mq").list_brokers()["BrokerSummaries"]:
            if summary["BrokerName"] == name:
                return str(summary["BrokerArn"])
        return arn("mq", f"broker:{name}:b-not-created")

    def secret(self, secret_id: str) -> dict[str, Any]:
        return dict(self.client("secretsmanager").describe_secret(SecretId=secret_id))


def _tags_match(tags: Mapping[str, str], filters: list[dict[str, Any]]) -> bool:
    return all(tags.get(f["Name"].removeprefix("tag:")) in f["Values"] for f in filters)


def _table(action: str) -> Callable[[Authorizations, dict[str, Any]], list[Request]]:
    def rule(_auth: Authorizations, params: dict[str, Any]) -> list[Request]:
        resource = arn("dynamodb", f"table/{params['TableName']}")
        if params.get("IndexName"):
            resource += f"/index/{params['IndexName']}"
        return [Request(action, resource)]

    return rule


def _anywhere(action: str) -> Callable[[Authorizations, dict[str, Any]], list[Request]]:
    """Actions that support no resource-level permissions."""
    return lambda _auth, _params: [Request(action, "*")]


def _on(action: str, param: str) -> Callable[[Authorizations, dict[str, Any]], list[Request]]:
    """The resource is the ARN the call names."""
    return lambda _auth, params: [Request(action, str(params[param]))]


def _parameter(action: str, decrypt: bool = False) -> Callable[..., list[Request]]:
    def rule(auth: Authorizations, params: dict[str, Any]) -> list[Request]:
        names = params.get("Names") or [params["Name"]]
        requests = [Request(action, parameter_arn(str(n))) for n in names]
        if decrypt and params.get("WithDecryption"):
            for name in names:
                requests += auth.decrypt_parameter(str(name))
        return requests

    return rule


def _put_parameter(auth: Authorizations, params: dict[str, Any]) -> list[Request]:
    requests = [Request("ssm:PutParameter", parameter_arn(params["Name"]))]
    if params.get("Type") == "SecureString":
        key = auth.kms_key_arn(str(params.get("KeyId", "")))
        if key is not None:
            action = "kms:GenerateDataKey" if params.get("Tier") == "Advanced" else "kms:Encrypt"
            context = {
                "kms:ViaService": f"ssm.{REGION}.amazonaws.com",
                "kms:EncryptionContext:PARAMETER_ARN": parameter_arn(params["Name"]),
            }
            requests.append(Request(action, key, context))
    return requests


def _parameters_by_path(_auth: Authorizations, params: dict[str, Any]) -> list[Request]:
    if params.get("WithDecryption"):
        raise UnmappedCall("GetParametersByPath WithDecryption: the keys it needs are not modelled")
    return [Request("ssm:GetParametersByPath", parameter_arn(str(params["Path"]).rstrip("/")))]


def _send_command(auth: Authorizations, params: dict[str, Any]) -> list[Request]:
    document = str(params["DocumentName"])
    owner = "" if document.startswith("AWS-") else ACCOUNT  # AWS-owned documents
    requests = [Request("ssm:SendCommand", arn("ssm", f"document/{document}", account=owner))]
    instances = list(params.get("InstanceIds", []))
    instances += auth.targeted_instances(list(params.get("Targets", [])))
    return requests + [auth.instance_request("ssm:SendCommand", i) for i in instances]


def _stop_instances(auth: Authorizations, params: dict[str, Any]) -> list[Request]:
    return [auth.instance_request("ec2:StopInstances", i) for i in params["InstanceIds"]]


def _create_broker(auth: Authorizations, params: dict[str, Any]) -> list[Request]:
    if (params.get("EncryptionOptions") or {}).get("KmsKeyId"):
        raise UnmappedCall("CreateBroker with a customer KMS key: its key grants are not modelled")
    tags = {str(k): str(v) for k, v in (params.get("Tags") or {}).items()}
    tagging = {
        **{f"aws:RequestTag/{k}": v for k, v in tags.items()},
        "aws:TagKeys": sorted(tags),
    }
    broker = auth.broker_arn_by_name(str(params["BrokerName"]))
    eni = arn("ec2", "network-interface/eni-amazon-mq")
    on_behalf = {"ec2:AuthorizedService": MQ_SERVICE}
    requests = [
        Request("mq:CreateBroker", "*", tagging),
        Request("mq:CreateTags", broker, tagging),  # tags given at creation
        Request("ec2:CreateNetworkInterface", eni),
        *[
            Request("ec2:CreateNetworkInterface", arn("ec2", f"subnet/{s}"))
            for s in params.get("SubnetIds", [])
        ],
        *[
            Request("ec2:CreateNetworkInterface", arn("ec2", f"security-group/{g}"))
            for g in params.get("SecurityGroups", [])
        ],
        Request("ec2:CreateNetworkInterfacePermission", eni, on_behalf),
        Request("ec2:DescribeNetworkInterfacePermissions", "*", on_behalf),
        *[Request(action, "*") for action in MQ_DESCRIBES],
        Request(
            "iam:CreateServiceLinkedRole",
            f"arn:{PARTITION}:iam::{ACCOUNT}:role/aws-service-role/{MQ_SERVICE}/"
            "AWSServiceRoleForAmazonMQ",
            {"iam:AWSServiceName": MQ_SERVICE},
        ),
    ]
    return requests


def _describe_broker(auth: Authorizations, params: dict[str, Any]) -> list[Request]:
    return [Request("mq:DescribeBroker", auth.broker_arn(str(params["BrokerId"])))]


def _tagged_broker(action: str) -> Rule:
    """A call on a broker whose tags condition the grant (aws:ResourceTag/...)."""

    def rule(auth: Authorizations, params: dict[str, Any]) -> list[Request]:
        broker = auth.client("mq").describe_broker(BrokerId=str(params["BrokerId"]))
        context = {f"aws:ResourceTag/{k}": v for k, v in (broker.get("Tags") or {}).items()}
        return [Request(action, str(broker["BrokerArn"]), context)]

    return rule


def _configuration(action: str, key: str) -> Rule:
    def rule(_auth: Authorizations, params: dict[str, Any]) -> list[Request]:
        return [Request(action, arn("mq", f"configuration:{params[key]}"))]

    return rule


def _secret_value(auth: Authorizations, params: dict[str, Any]) -> list[Request]:
    secret = auth.secret(str(params["SecretId"]))
    requests = [Request("secretsmanager:GetSecretValue", str(secret["ARN"]))]
    key = auth.kms_key_arn(str(secret.get("KmsKeyId", "")))
    if key is not None:
        context = {
            "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
            "kms:EncryptionContext:SecretARN": str(secret["ARN"]),
        }
        requests.append(Request("kms:Decrypt", key, context))
    return requests


def _on_secret(action: str) -> Rule:
    def rule(auth: Authorizations, params: dict[str, Any]) -> list[Request]:
        return [Request(action, str(auth.secret(str(params["SecretId"]))["ARN"]))]

    return rule


def _describe_stacks(auth: Authorizations, params: dict[str, Any]) -> list[Request]:
    """DescribeStacks is authorized on the stack's ARN (its id), whether named or given."""
    name = str(params.get("StackName") or "")
    if not name:
        return [Request("cloudformation:DescribeStacks", "*")]  # every stack: not scoped
    if name.startswith("arn:"):
        return [Request("cloudformation:DescribeStacks", name)]
    try:
        (stack,) = auth.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except ClientError:
        return [Request("cloudformation:DescribeStacks", arn("cloudformation", f"stack/{name}/-"))]
    return [Request("cloudformation:DescribeStacks", str(stack["StackId"]))]


def _create_schedule(_auth: Authorizations, params: dict[str, Any]) -> list[Request]:
    """The schedule (in its group), and the role it is given: passed to Scheduler."""
    group = str(params.get("GroupName") or "default")
    requests = [
        Request("scheduler:CreateSchedule", arn("scheduler", f"schedule/{group}/{params['Name']}"))
    ]
    role = (params.get("Target") or {}).get("RoleArn")
    if role:
        requests.append(
            Request("iam:PassRole", str(role), {"iam:PassedToService": "scheduler.amazonaws.com"})
        )
    return requests


def object_arn(bucket: str, key: str) -> str:
    return f"arn:{PARTITION}:s3:::{bucket}/{key}"


def _get_object(_auth: Authorizations, params: dict[str, Any]) -> list[Request]:
    """GetObject of a given version is s3:GetObjectVersion (S3's authorization reference)."""
    action = "s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject"
    return [Request(action, object_arn(str(params["Bucket"]), str(params["Key"])))]


def _put_object(_auth: Authorizations, params: dict[str, Any]) -> list[Request]:
    if params.get("SSEKMSKeyId") or params.get("ServerSideEncryption") == "aws:kms":
        raise UnmappedCall("PutObject with a KMS key: its key grants are not modelled")
    return [Request("s3:PutObject", object_arn(str(params["Bucket"]), str(params["Key"])))]


def _put_metric_data(_auth: Authorizations, params: dict[str, Any]) -> list[Request]:
    return [Request("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": params["Namespace"]})]


Rule = Callable[[Authorizations, dict[str, Any]], list[Request]]

# (boto3 service, API operation) -> the IAM requests it makes. Every call the product's
# handlers make (src/, functions/) and the operator's commands make (cli/: preflight, start,
# status, report) is here; a call missing from it fails the test by name.
CALLS: dict[tuple[str, str], Rule] = {
    ("dynamodb", "GetItem"): _table("dynamodb:GetItem"),
    ("dynamodb", "PutItem"): _table("dynamodb:PutItem"),
    ("dynamodb", "UpdateItem"): _table("dynamodb:UpdateItem"),
    ("dynamodb", "DeleteItem"): _table("dynamodb:DeleteItem"),
    ("dynamodb", "Query"): _table("dynamodb:Query"),
    ("dynamodb", "Scan"): _table("dynamodb:Scan"),
    ("stepfunctions", "DescribeExecution"): _on("states:DescribeExecution", "executionArn"),
    ("stepfunctions", "ListExecutions"): _on("states:ListExecutions", "stateMachineArn"),
    ("stepfunctions", "DescribeStateMachine"): _on(
        "states:DescribeStateMachine", "stateMachineArn"
    ),
    ("stepfunctions", "StartExecution"): _on("states:StartExecution", "stateMachineArn"),
    ("stepfunctions", "GetExecutionHistory"): _on("states:GetExecutionHistory", "executionArn"),
    ("cloudformation", "DescribeStacks"): _describe_stacks,
    ("scheduler", "CreateSchedule"): _create_schedule,
    # Task-token callbacks support no resource-level permissions.
    ("stepfunctions", "SendTaskSuccess"): _anywhere("states:SendTaskSuccess"),
    ("stepfunctions", "SendTaskFailure"): _anywhere("states:SendTaskFailure"),
    ("stepfunctions", "SendTaskHeartbeat"): _anywhere("states:SendTaskHeartbeat"),
    ("sns", "Publish"): _on("sns:Publish", "TopicArn"),
    ("sns", "ListSubscriptionsByTopic"): _on("sns:ListSubscriptionsByTopic", "TopicArn"),
    ("sns", "GetSubscriptionAttributes"): _on("sns:GetSubscriptionAttributes", "SubscriptionArn"),
    ("sns", "Subscribe"): _on("sns:Subscribe", "TopicArn"),
    ("sns", "Unsubscribe"): _on("sns:Unsubscribe", "SubscriptionArn"),
    ("ssm", "GetParameter"): _parameter("ssm:GetParameter", decrypt=True),
    ("ssm", "GetParameters"): _parameter("ssm:GetParameters", decrypt=True),
    ("ssm", "GetParameterHistory"): _parameter("ssm:GetParameterHistory", decrypt=True),
    ("ssm", "GetParametersByPath"): _parameters_by_path,
    ("ssm", "PutParameter"): _put_parameter,
    ("ssm", "LabelParameterVersion"): _parameter("ssm:LabelParameterVersion"),
    ("ssm", "DeleteParameter"): _parameter("ssm:DeleteParameter"),
    ("ssm", "DescribeParameters"): _anywhere("ssm:DescribeParameters"),
    ("ssm", "SendCommand"): _send_command,
    ("ssm", "ListCommands"): _anywhere("ssm:ListCommands"),
    ("ssm", "ListCommandInvocations"): _anywhere("ssm:ListCommandInvocations"),
    ("mq", "CreateBroker"): _create_broker,
    ("mq", "DescribeBroker"): _describe_broker,
    ("mq", "UpdateBroker"): _tagged_broker("mq:UpdateBroker"),
    ("mq", "RebootBroker"): _tagged_broker("mq:RebootBroker"),
    ("mq", "DescribeConfiguration"): _configuration("mq:DescribeConfiguration", "ConfigurationId"),
    ("mq", "DescribeConfigurationRevision"): _configuration(
        "mq:DescribeConfigurationRevision", "ConfigurationId"
    ),
    ("mq", "UpdateConfiguration"): _configuration("mq:UpdateConfiguration", "ConfigurationId"),
    ("mq", "ListBrokers"): _anywhere("mq:ListBrokers"),
    ("mq", "DescribeBrokerEngineTypes"): _anywhere("mq:DescribeBrokerEngineTypes"),
    ("mq", "DescribeBrokerInstanceOptions"): _anywhere("mq:DescribeBrokerInstanceOptions"),
    ("ssm", "DescribeInstanceInformation"): _anywhere("ssm:DescribeInstanceInformation"),
    ("ec2", "DescribeSubnets"): _anywhere("ec2:DescribeSubnets"),
    ("ec2", "DescribeSecurityGroups"): _anywhere("ec2:DescribeSecurityGroups"),
    ("secretsmanager", "DescribeSecret"): _on_secret("secretsmanager:DescribeSecret"),
    ("secretsmanager", "GetSecretValue"): _secret_value,
    ("ec2", "StopInstances"): _stop_instances,
    ("ec2", "DescribeInstances"): _anywhere("ec2:DescribeInstances"),
    ("cloudwatch", "GetMetricData"): _anywhere("cloudwatch:GetMetricData"),
    ("cloudwatch", "ListMetrics"): _anywhere("cloudwatch:ListMetrics"),
    ("cloudwatch", "PutMetricData"): _put_metric_data,
    ("s3", "GetObject"): _get_object,
    ("s3", "PutObject"): _put_object,
    # Needs no permission: IAM never denies it.
    ("sts", "GetCallerIdentity"): lambda _auth, _params: [],
}


def violations(
    calls: Iterable[tuple[Any, list[Request]]],
    statements_of: Callable[[str], list[dict[str, Any]]],
) -> list[str]:
    """Every request a function's policy does not allow, once each, as readable lines."""
    found: dict[str, None] = {}
    for call, requests in calls:
        statements = statements_of(call.function)
        for request in requests:
            if not is_allowed(statements, request.action, request.resource, request.context):
                found[f"{call.function}: {call.service}.{call.operation} needs {request}"] = None
    return list(found)

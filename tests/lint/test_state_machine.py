"""The ASL, linted on its own (cfn-lint does not look inside a SAM state machine's DefinitionUri),
plus the rules this project holds every state to."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cfnlint.api import lint_all

from mq_cutover_cli.harness import PLACEHOLDER, load_template
from tests.conftest import ROOT

ASL_PATH = ROOT / "statemachine" / "migration.asl.json"
LAMBDA_RETRIED = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
AWS_THROTTLED_RETRY = {
    "ErrorEquals": ["AwsThrottled"],
    "IntervalSeconds": 5,
    "MaxAttempts": 8,
    "BackoffRate": 2,
    "MaxDelaySeconds": 120,
    "JitterStrategy": "FULL",
}
JSONPATH_ONLY = {
    "Parameters",
    "ResultPath",
    "ResultSelector",
    "InputPath",
    "OutputPath",
    "ItemsPath",
}


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return dict(json.loads(ASL_PATH.read_text()))


def _all_states(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = dict(states)
    for state in states.values():
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            found.update(_all_states(processor["States"]))
        for branch in state.get("Branches", []):
            found.update(_all_states(branch["States"]))
    return found


def _targets(state: dict[str, Any]) -> list[str]:
    targets = [state["Next"]] if "Next" in state else []
    targets += [c["Next"] for c in state.get("Choices", [])]
    targets += [state["Default"]] if "Default" in state else []
    targets += [c["Next"] for c in state.get("Catch", [])]
    return targets


def test_cfn_lint_finds_nothing_in_the_definition() -> None:
    text = ASL_PATH.read_text()

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key.endswith("FunctionArn"):
            return f"arn:aws:lambda:us-east-1:123456789012:function:{key}"
        return f"arn:aws:sns:us-east-1:123456789012:{key}"

    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Migration": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": "arn:aws:iam::123456789012:role/migration",
                    "Definition": json.loads(PLACEHOLDER.sub(fill, text)),
                },
            }
        },
    }
    problems = [
        str(m)
        for m in lint_all(json.dumps(template))
        if m.rule.id[0] in "EW"
        # cfn-lint's schema predates JSONata: a JSONata TimeoutSeconds is valid on AWS (CDK's
        # Timeout.jsonata() emits exactly this). Every other finding fails the test.
        and not (m.rule.id == "E3601" and "{%" in m.message and "'number'" in m.message)
    ]
    assert problems == []


def test_every_transition_exists_and_every_state_is_reachable(asl: dict[str, Any]) -> None:
    def check(scope: dict[str, Any]) -> None:
        states = scope["States"]
        reachable, todo = set(), [scope["StartAt"]]
        while todo:
            name = todo.pop()
            if name in reachable:
                continue
            assert name in states, f"transition to unknown state {name}"
            reachable.add(name)
            todo.extend(_targets(states[name]))
        assert set(states) == reachable, f"unreachable: {set(states) - reachable}"
        for state in states.values():
            if "ItemProcessor" in state:
                check(state["ItemProcessor"])

    check(asl)


def test_every_lambda_task_retries_lambda_errors_and_has_a_timeout(asl: dict[str, Any]) -> None:
    for name, state in _all_states(asl["States"]).items():
        if state["Type"] != "Task" or "lambda:invoke" not in state["Resource"]:
            continue
        retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
        assert retried >= LAMBDA_RETRIED, name
        assert "TimeoutSeconds" in state, name


def test_every_lambda_task_retries_aws_throttled_with_back_off(asl: dict[str, Any]) -> None:
    """Throttled or unreachable AWS APIs fail a handler as AwsThrottled: every Lambda task,
    approval gates (.waitForTaskToken) included, retries it the same way rather than rolling
    back. A gate may: its retry supersedes the failed attempt's record and links."""
    lambda_tasks = {
        name: state
        for name, state in _all_states(asl["States"]).items()
        if state["Type"] == "Task" and "lambda:invoke" in state["Resource"]
    }
    gates = {n for n, s in lambda_tasks.items() if s["Resource"].endswith(".waitForTaskToken")}
    assert len(gates) >= 7, sorted(gates)  # the gates are in the set checked
    for name, state in lambda_tasks.items():
        throttled = [r for r in state.get("Retry", []) if "AwsThrottled" in r["ErrorEquals"]]
        assert len(throttled) == 1, f"{name} does not retry AwsThrottled"
        assert throttled[0] == AWS_THROTTLED_RETRY, name
        retried = [e for r in state["Retry"] for e in r["ErrorEquals"]]
        assert "States.ALL" not in retried, name  # a permanent failure is not retried


def test_every_step_that_changes_something_is_caught(asl: dict[str, Any]) -> None:
    for name, state in asl["States"].items():
        if state["Type"] in ("Task", "Map"):
            assert state.get("Catch"), (
                f"{name} has no Catch: a failure would end the run unreported"
            )


def test_jsonata_only(asl: dict[str, Any]) -> None:
    assert asl["QueryLanguage"] == "JSONata"
    for name, state in _all_states(asl["States"]).items():
        assert not (JSONPATH_ONLY & set(state)), name


def test_placeholders_match_the_template_substitutions() -> None:
    template = load_template()
    (machine,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::StateMachine"
    ]
    substitutions = set(machine["Properties"]["DefinitionSubstitutions"])
    assert set(PLACEHOLDER.findall(ASL_PATH.read_text())) == substitutions
    assert machine["Properties"]["DefinitionUri"] == "statemachine/migration.asl.json"


def test_no_hard_coded_physical_names() -> None:
    template = load_template()
    named = {
        "AWS::Serverless::Function": "FunctionName",
        "AWS::DynamoDB::Table": "TableName",
        "AWS::SNS::Topic": "TopicName",
        "AWS::Serverless::StateMachine": "Name",
        "AWS::CloudWatch::Dashboard": "DashboardName",
    }
    for logical, resource in template["Resources"].items():
        key = named.get(resource["Type"])
        if key:
            assert key not in resource.get("Properties", {}), logical


def test_dashboard_shows_step_messages_left_and_both_brokers() -> None:
    template = load_template()
    body = template["Resources"]["MigrationDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    values = {
        "EnvironmentName": "dev",
        "OnPremMetricsNamespace": "MqCutover/OnPrem",
        "AWS::Region": "us-east-1",
        "AWS::URLSuffix": "amazonaws.com",
        "MigrationStateMachine": "arn:aws:states:us-east-1:123456789012:stateMachine:m",
        "MigrationStateMachineLogGroup": "/aws/vendedlogs/states/stack-migration",
    }
    rendered = re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], body)
    widgets = json.loads(rendered)["widgets"]
    titles = {w["properties"].get("title"): w for w in widgets}
    step = titles["Current step of each run (newest state entered)"]
    assert step["type"] == "log" and "/aws/vendedlogs/states/" in step["properties"]["query"]
    left = json.dumps(titles["Messages left on-prem"])
    assert "MessagesLeftOnPrem" in left
    assert "MqCutover/OnPrem" in json.dumps(titles["On-prem queue depth (bridge, 10 s)"])
    assert "AWS/AmazonMQ" in json.dumps(titles["Amazon MQ queue depth"])
    # The log widget needs every state event, and no execution data may reach the logs.
    logging = next(
        r["Properties"]["Logging"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::StateMachine"
    )
    assert logging["Level"] == "ALL" and logging["IncludeExecutionData"] is False

"""Stopping the on-prem broker and following the stop to its end."""

from __future__ import annotations

from typing import Any

import pytest

from mq_cutover.errors import OnPremStopFailed
from mq_cutover.onprem import check_on_prem_stop, stop_on_prem
from mq_cutover.plan import parse_plan


def test_ssm_command_by_tag_runs_and_completes(aws: Any, ordered_plan: dict[str, Any]) -> None:
    ec2, ssm = aws("ec2"), aws("ssm")
    ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "mq-cutover:on-prem", "Value": "true"}]}
        ],
    )
    started = stop_on_prem(parse_plan(ordered_plan), ssm, ec2)
    command = ssm.list_commands(CommandId=started["commandId"])["Commands"][0]
    assert command["Parameters"]["commands"] == ["systemctl stop activemq"]
    assert command["Targets"] == [{"Key": "tag:mq-cutover:on-prem", "Values": ["true"]}]
    status = check_on_prem_stop(ssm, ec2, started)
    assert status["done"] and status["targets"] == 1


def test_ssm_command_that_reaches_no_instance_fails(aws: Any, ordered_plan: dict[str, Any]) -> None:
    ec2, ssm = aws("ec2"), aws("ssm")
    started = stop_on_prem(parse_plan(ordered_plan), ssm, ec2)
    with pytest.raises(OnPremStopFailed, match="reached no instance"):
        check_on_prem_stop(ssm, ec2, started)


def test_ec2_stop(aws: Any, ordered_plan: dict[str, Any]) -> None:
    ec2, ssm = aws("ec2"), aws("ssm")
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]
    ordered_plan["stopOnPrem"] = {"method": "ec2-stop", "instanceIds": [instance["InstanceId"]]}
    started = stop_on_prem(parse_plan(ordered_plan), ssm, ec2)
    assert started == {"method": "ec2-stop", "instanceIds": [instance["InstanceId"]]}
    status = check_on_prem_stop(ssm, ec2, started)
    assert status["done"] and status["instances"] == {instance["InstanceId"]: "stopped"}


def test_terminated_instance_is_a_failure(aws: Any, ordered_plan: dict[str, Any]) -> None:
    ec2, ssm = aws("ec2"), aws("ssm")
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    with pytest.raises(OnPremStopFailed, match="terminated, not stopped"):
        check_on_prem_stop(
            ssm, ec2, {"method": "ec2-stop", "instanceIds": [instance["InstanceId"]]}
        )


def test_manual_stop_starts_nothing(aws: Any, ordered_plan: dict[str, Any]) -> None:
    ordered_plan["stopOnPrem"] = {"method": "manual"}
    assert stop_on_prem(parse_plan(ordered_plan), aws("ssm"), aws("ec2")) == {"method": "manual"}
    assert aws("ssm").list_commands()["Commands"] == []

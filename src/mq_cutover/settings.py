"""Stack settings a handler reads from its environment once, validated, then passes to logic."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field


class Settings(BaseModel):
    parameter_path_prefix: str = Field(default="/mq-cutover/", pattern=r"^/([A-Za-z0-9_.\-/]*/)?$")
    approvals_table: str = ""
    approval_topic_arn: str = ""
    approval_api_url: str = ""
    approval_key_secret_arn: str = ""
    migrations_table: str = ""
    approver_registry_path: str = Field(default="", pattern=r"^(/[A-Za-z0-9_.\-]+)*$")
    required_gates: tuple[str, ...] = ()
    minimum_quorum: int = Field(default=1, ge=1, le=10)
    # Plans by reference (mq_cutover.plan_store): the stack's plan bucket and the SSM path a
    # plan may be read from. Empty bucket: no reference is accepted, every plan stays inline.
    plan_bucket: str = Field(default="", pattern=r"^([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])?$")
    plan_parameter_prefix: str = Field(
        default="/mq-cutover-plans/", pattern=r"^(/[A-Za-z0-9_.\-]+)+/$"
    )

    @classmethod
    def from_environment(cls) -> Settings:
        return cls(
            parameter_path_prefix=os.environ.get("PARAMETER_PATH_PREFIX", "/mq-cutover/"),
            approvals_table=os.environ.get("APPROVALS_TABLE", ""),
            approval_topic_arn=os.environ.get("APPROVAL_TOPIC_ARN", ""),
            approval_api_url=os.environ.get("APPROVAL_API_URL", ""),
            approval_key_secret_arn=os.environ.get("APPROVAL_KEY_SECRET_ARN", ""),
            migrations_table=os.environ.get("MIGRATIONS_TABLE", ""),
            approver_registry_path=os.environ.get("APPROVER_REGISTRY_PATH", ""),
            minimum_quorum=int(os.environ.get("MINIMUM_QUORUM") or 1),
            plan_bucket=os.environ.get("PLAN_BUCKET", ""),
            plan_parameter_prefix=os.environ.get("PLAN_PARAMETER_PREFIX", "/mq-cutover-plans/"),
            required_gates=tuple(
                g.strip() for g in os.environ.get("REQUIRED_GATES", "").split(",") if g.strip()
            ),
        )

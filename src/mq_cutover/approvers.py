"""Who may approve: a registry the stack owns, not the plan.

Each approver is one SSM String parameter under the stack's registry path (`<path>/<id>`),
holding their name, where their approval emails go (an SNS protocol and endpoint) and,
optionally, the IAM principal they use from a terminal. Each is subscribed to the approval topic
with a filter policy on their own id, and every gate publishes one message per approver with
that approver's own signed link: a vote is the approver the link was issued to (or whose IAM
principal signed the request), never a typed name. A quorum of N needs N distinct approvers.

Whoever can write under the registry path and subscribe to the topic decides who approves
(the stack's ApproverAdminPolicy); starting a migration does not.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, replace
from typing import Any

from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import ClientError

from mq_cutover.errors import ApproversInvalid

APPROVER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
PROTOCOLS = ("email", "email-json", "sqs", "https")
MAX_NAME = 80
_ROLE_SESSION = re.compile(
    r"arn:(?P<p>aws[a-z-]*):sts::(?P<acct>\d{12}):assumed-role/(?P<role>[^/]+)/.+"
)
_IAM = re.compile(
    r"arn:(?P<p>aws[a-z-]*):iam::(?P<acct>\d{12}):(?P<kind>role|user|root)(?P<rest>/.*)?"
)
# IAM Identity Center: the permission set's role is shared by everyone given it, but the session
# name is the person's user name, set by Identity Center (nobody can assume these roles
# directly), so there the SESSION is the person.
_SSO_SESSION = re.compile(
    r"arn:(?P<p>aws[a-z-]*):sts::(?P<acct>\d{12}):assumed-role/(?P<role>AWSReservedSSO_[^/]+)"
    r"/(?P<session>[^/]+)"
)
_ENROLMENT = re.compile(r"[0-9a-f]{0,32}")


@dataclass(frozen=True)
class Approver:
    id: str
    name: str
    protocol: str
    endpoint: str
    iam_principal: str | None = None
    # Random per registration: re-adding an id (a new person, or new endpoints) is a new
    # enrolment, and the links and votes of the old one no longer count.
    enrolment: str = ""

    def to_json(self) -> str:
        document: dict[str, str] = {
            "name": self.name,
            "protocol": self.protocol,
            "endpoint": self.endpoint,
        }
        if self.iam_principal:
            document["iamPrincipal"] = self.iam_principal
        if self.enrolment:
            document["enrolment"] = self.enrolment
        return json.dumps(document, sort_keys=True)

    def public(self) -> dict[str, str]:
        """What a page or a terminal is told about an approver (no endpoint)."""
        return {"id": self.id, "name": self.name}

    def snapshot(self) -> dict[str, str]:
        """What a gate's record keeps: who its links were issued to, and which enrolment."""
        return {**self.public(), "enrolment": self.enrolment}


def parse_approver(approver_id: str, value: str) -> Approver:
    """One registry entry, checked field by field."""
    if not APPROVER_ID.fullmatch(approver_id):
        raise ApproversInvalid(
            f"approver id {approver_id!r}: use 1-32 lower-case letters, digits or '-'"
        )
    try:
        document = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ApproversInvalid(f"approver {approver_id}: the entry is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ApproversInvalid(f"approver {approver_id}: the entry must be a JSON object")
    name = document.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ApproversInvalid(f"approver {approver_id}: name must be 1-{MAX_NAME} characters")
    if not name.isprintable():
        raise ApproversInvalid(f"approver {approver_id}: name has control characters")
    protocol = document.get("protocol", "email")
    if protocol not in PROTOCOLS:
        raise ApproversInvalid(
            f"approver {approver_id}: protocol must be one of {', '.join(PROTOCOLS)}"
        )
    endpoint = document.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > 512:
        raise ApproversInvalid(f"approver {approver_id}: endpoint is required")
    if protocol.startswith("email") and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", endpoint):
        raise ApproversInvalid(f"approver {approver_id}: endpoint {endpoint!r} is not an email")
    principal = document.get("iamPrincipal")
    if principal is not None:
        if not isinstance(principal, str) or not (
            _IAM.fullmatch(principal) or _SSO_SESSION.fullmatch(principal)
        ):
            raise ApproversInvalid(
                f"approver {approver_id}: iamPrincipal must be an IAM user or role ARN "
                "(arn:aws:iam::ACCOUNT:user/NAME or :role/NAME), or an IAM Identity Center "
                "session (arn:aws:sts::ACCOUNT:assumed-role/AWSReservedSSO_.../USER)"
            )
        if "/AWSReservedSSO_" in principal and _IAM.fullmatch(principal):
            raise ApproversInvalid(
                f"approver {approver_id}: {principal} is an IAM Identity Center role, shared by "
                "everyone given its permission set: register the person's session "
                "(arn:aws:sts::ACCOUNT:assumed-role/AWSReservedSSO_.../USER) instead"
            )
    enrolment = document.get("enrolment", "")
    if not isinstance(enrolment, str) or not _ENROLMENT.fullmatch(enrolment):
        raise ApproversInvalid(f"approver {approver_id}: enrolment must be hexadecimal")
    name = " ".join(name.split())
    return Approver(approver_id, name, protocol, endpoint, principal, enrolment)


def _one_person_each(registry: dict[str, Approver]) -> None:
    """Two entries with one IAM principal or one endpoint would let one person vote twice."""
    seen: dict[Any, str] = {}
    for approver in registry.values():
        keys: list[tuple[str, Any]] = [
            ("endpoint", (approver.protocol, approver.endpoint.casefold()))
        ]
        if approver.iam_principal:
            keys.append(("IAM principal", _comparable(approver.iam_principal)))
        for what, key in keys:
            other = seen.setdefault(key, approver.id)
            if other != approver.id:
                raise ApproversInvalid(
                    f"approvers {other} and {approver.id} share one {what}: one person would "
                    "count twice (give each person their own)"
                )


def load_registry(path: str, ssm: Any = None, *, fresh: bool = False) -> dict[str, Approver]:
    """Every registered approver, by id. Lambdas read through Powertools (cached one minute;
    `fresh` for a vote, so a removed approver's links stop working at once); the CLI passes its
    own client."""
    prefix = path.rstrip("/")
    if ssm is None:
        raw = parameters.get_parameters(prefix, max_age=60, recursive=False, force_fetch=fresh)
        values = {str(k): str(v) for k, v in raw.items()}
    else:
        values = {}
        pages = ssm.get_paginator("get_parameters_by_path")
        for page in pages.paginate(Path=prefix, Recursive=False):
            for parameter in page.get("Parameters", []):
                values[parameter["Name"].rsplit("/", 1)[-1]] = parameter["Value"]
    registry = {
        name.rsplit("/", 1)[-1]: parse_approver(name.rsplit("/", 1)[-1], value)
        for name, value in sorted(values.items())
    }
    _one_person_each(registry)
    return registry


def filter_policy(approver_id: str) -> str:
    return json.dumps({"approver": [approver_id]})


def _subscriptions(sns: Any, topic_arn: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        found.extend(page.get("Subscriptions", []))
    return found


def _filtered_approver(attributes: dict[str, str]) -> list[str] | None:
    """The approver ids a subscription's filter policy lets through (None: no such filter)."""
    if attributes.get("FilterPolicyScope", "MessageAttributes") != "MessageAttributes":
        return None
    try:
        policy = json.loads(attributes.get("FilterPolicy") or "null")
    except json.JSONDecodeError:
        return None
    if not isinstance(policy, dict) or set(policy) != {"approver"}:
        return None
    ids = policy["approver"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return None
    return ids


def check_subscriptions(sns: Any, topic_arn: str, registry: dict[str, Approver]) -> list[str]:
    """Why the approval topic could deliver someone's link to someone else (empty: it cannot)."""
    return subscription_report(sns, topic_arn, registry)[0]


def subscription_report(
    sns: Any, topic_arn: str, registry: dict[str, Approver]
) -> tuple[list[str], set[str]]:
    """(problems, ids of approvers reached by a confirmed subscription).

    Every confirmed subscription must filter on exactly one registered approver and deliver to
    that approver's registered protocol and endpoint: an unfiltered subscription would receive
    every approver's link, and one person holding two links could pass a quorum of two."""
    problems: list[str] = []
    reached: set[str] = set()
    for subscription in _subscriptions(sns, topic_arn):
        arn = subscription["SubscriptionArn"]
        if not arn.startswith("arn:"):
            continue  # pending confirmation: delivers nothing
        where = f"{subscription['Protocol']} subscription {arn.rsplit(':', 1)[-1]}"
        attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
        if attributes.get("PendingConfirmation") == "true":
            continue
        ids = _filtered_approver(attributes)
        if ids is None or len(ids) != 1:
            problems.append(f"{where} does not filter on exactly one approver id")
            continue
        approver = registry.get(ids[0])
        if approver is None:
            problems.append(f"{where} filters on {ids[0]!r}, who is not a registered approver")
            continue
        same = (subscription["Protocol"], subscription["Endpoint"].casefold()) == (
            approver.protocol,
            approver.endpoint.casefold(),
        )
        if not same:
            problems.append(
                f"{where} receives {approver.id}'s links but is not {approver.id}'s registered "
                f"{approver.protocol} endpoint"
            )
            continue
        reached.add(approver.id)
    return problems, reached


def subscription_status(sns: Any, topic_arn: str, registry: dict[str, Approver]) -> dict[str, str]:
    """Each approver's subscription as SNS reports it: "confirmed", "pending confirmation" (an
    email subscription the person has not confirmed yet) or "none" (for `approvers list`)."""
    status = dict.fromkeys(registry, "none")
    endpoints = {(a.protocol, a.endpoint.casefold()): a.id for a in registry.values()}
    for subscription in _subscriptions(sns, topic_arn):
        arn = str(subscription["SubscriptionArn"])
        if not arn.startswith("arn:"):  # SNS lists an unconfirmed one without an ARN
            owner = endpoints.get((subscription["Protocol"], subscription["Endpoint"].casefold()))
            if owner and status[owner] == "none":
                status[owner] = "pending confirmation"
            continue
        attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
        pending = attributes.get("PendingConfirmation") == "true"
        for approver_id in _filtered_approver(attributes) or []:
            if approver_id in status and status[approver_id] != "confirmed":
                status[approver_id] = "pending confirmation" if pending else "confirmed"
    return status


def able_to_vote(registry: dict[str, Approver], reached: set[str]) -> dict[str, Approver]:
    """Approvers who can vote at all: their links reach them, or they have an IAM principal."""
    return {i: a for i, a in registry.items() if i in reached or a.iam_principal}


def add_approver(ssm: Any, sns: Any, *, path: str, topic_arn: str, approver: Approver) -> str:
    """Register an approver and subscribe their endpoint, filtered on their id. Returns the
    subscription ARN ("pending confirmation" until they confirm an email subscription)."""
    approver = replace(approver, enrolment=secrets.token_hex(8))
    parse_approver(approver.id, approver.to_json())  # the same checks as when it is read
    others = {i: a for i, a in load_registry(path, ssm).items() if i != approver.id}
    _one_person_each({**others, approver.id: approver})
    ssm.put_parameter(
        Name=f"{path.rstrip('/')}/{approver.id}",
        Value=approver.to_json(),
        Type="String",
        Overwrite=True,
        Description=f"mq-cutover approver {approver.id}",
    )
    return str(
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol=approver.protocol,
            Endpoint=approver.endpoint,
            Attributes={
                "FilterPolicy": filter_policy(approver.id),
                "FilterPolicyScope": "MessageAttributes",
                **({"RawMessageDelivery": "false"} if approver.protocol == "sqs" else {}),
            },
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
    )


def remove_approver(ssm: Any, sns: Any, *, path: str, topic_arn: str, approver_id: str) -> int:
    """Unsubscribe every subscription that receives this approver's links and delete the entry.
    Their links already sent stop working at once (each vote checks the registry)."""
    removed = 0
    for subscription in _subscriptions(sns, topic_arn):
        arn = subscription["SubscriptionArn"]
        if not arn.startswith("arn:"):
            continue
        attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
        if approver_id in (_filtered_approver(attributes) or []):
            sns.unsubscribe(SubscriptionArn=arn)
            removed += 1
    try:
        ssm.delete_parameter(Name=f"{path.rstrip('/')}/{approver_id}")
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ParameterNotFound":
            raise
    return removed


def verified_approvers(record: dict[str, Any], registry: dict[str, Approver]) -> set[str]:
    """Who may vote at this gate now: its links were issued to them (the registry when the gate
    opened) and they are still registered under the same enrolment (not removed, not replaced
    by someone re-added under their id)."""
    return {
        str(a["id"])
        for a in record.get("approvers") or []
        if a.get("id") in registry
        and registry[str(a["id"])].enrolment == str(a.get("enrolment") or "")
    }


def approving_votes(
    record: dict[str, Any], verified: set[str] | None = None
) -> list[dict[str, Any]]:
    """The approving votes (a rejection whose delivery failed stays in the list, but never
    counts towards a quorum), of `verified` approvers only when given: the vote of someone
    removed since no longer counts."""
    return [
        v
        for v in record.get("votes") or []
        if v.get("decision", "approve") == "approve"
        and (verified is None or v.get("approver") in verified)
    ]


def principal_of(user_arn: str) -> str:
    """The person behind a caller ARN: an IAM user, or the ROLE of an assumed-role session (the
    session name is chosen by whoever assumes the role, so it is not a person) - except an IAM
    Identity Center session, whose name Identity Center sets to the person's user name."""
    if _SSO_SESSION.fullmatch(user_arn or ""):
        return user_arn
    session = _ROLE_SESSION.fullmatch(user_arn or "")
    if session:
        return f"arn:{session['p']}:iam::{session['acct']}:role/{session['role']}"
    return user_arn


def _comparable(arn: str) -> tuple[str, str, str] | None:
    """(account, kind, name) of an IAM ARN, ignoring the path (assumed-role ARNs drop it)."""
    sso = _SSO_SESSION.fullmatch(arn or "")
    if sso:
        return sso["acct"], "sso-session", f"{sso['role']}/{sso['session'].casefold()}"
    match = _IAM.fullmatch(principal_of(arn))
    if not match:
        return None
    name = (match["rest"] or "").rsplit("/", 1)[-1]
    return match["acct"], match["kind"], name


def approver_for_principal(registry: dict[str, Approver], user_arn: str) -> Approver | None:
    """The registered approver whose IAM principal made this call, if any."""
    caller = _comparable(user_arn)
    if caller is None:
        return None
    for approver in registry.values():
        if approver.iam_principal and _comparable(approver.iam_principal) == caller:
            return approver
    return None

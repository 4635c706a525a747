"""Plans by reference: the execution input may name the plan instead of carrying it, and a
validated plan too large to travel in the state is kept in the stack's plan bucket.

Two kinds of reference:
- The operator's: the execution input `{"planRef": "s3://<PlanBucket>/<key>"}` (optionally
  `"versionId"`), `{"planRef": "<key>"}` (a key in the stack's plan bucket) or
  `{"planRef": "ssm:<parameter name>"}`. Validate Plan reads it (`resolve`) before anything
  else, only from the stack's bucket under `plans/` or under the plan parameter prefix.
- The stored plan's: `mqc1ref:s3://<bucket>/<key>#<sha256>`, the packed plan
  (`mq_cutover.plan.pack`) at a content-addressed key, whose SHA-256 must match (a replaced
  object is refused, never used). Validate Plan writes it (`pass_on`) when the packed plan is
  larger than INLINE_LIMIT; every handler reads it through `plan.parse_plan` (`load_packed`),
  each Lambda container once.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from mq_cutover import aws
from mq_cutover.errors import AwsThrottled, PlanInvalid
from mq_cutover.plan import PLAN_REF_PREFIX

# A packed plan up to this size travels in the state itself ($packedPlan); a larger one is
# stored and referenced. 8 KB keeps each state's input (which also carries the broker, the
# drain summary, ...) far below the 64 KB payload target whatever the plan's size: a plan
# listing 1,000 queues and 1,000 parameters packs to ~7 KB and stays inline.
INLINE_LIMIT = 8_192
# The largest plan document read by reference (a plan listing 10,000 queues and 10,000
# parameters is ~650 KB): refused beyond, before it is read into the Lambda's memory.
MAX_PLAN_BYTES = 16 * 1024 * 1024
# Where the operator's plans go in the stack's bucket, and where Validate Plan stores them.
OPERATOR_PREFIX = "plans/"
VALIDATED_PREFIX = "validated/"
SSM_SCHEME = "ssm:"
S3_SCHEME = "s3://"
REFERENCE_KEYS = ("planRef", "versionId")
# S3 says "slow down" in its own words (and botocore has already backed off by then).
_S3_TRANSIENT = {"SlowDown", "RequestTimeout", "503", "500"}
_SHA256_KEY = re.compile(r"(?:^|/)([0-9a-f]{64})\.json$")

_cache: dict[str, str] = {}
_s3: Any = None


def s3_client() -> Any:
    """This Lambda container's S3 client (made on first use), for every plan read and write."""
    global _s3
    if _s3 is None:
        _s3 = aws.client("s3")
    return _s3


def _raise_if_transient(exc: ClientError) -> None:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code in _S3_TRANSIENT:
        raise AwsThrottled(f"{exc.operation_name}: {code}") from exc
    aws.raise_if_throttled(exc)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Error"))


# --------------------------------------------------------------------- the operator's reference
@dataclass(frozen=True)
class PlanReference:
    """Where the operator keeps the plan: an S3 object or an SSM parameter."""

    kind: str  # "s3" | "ssm"
    bucket: str = ""
    key: str = ""
    version_id: str | None = None
    name: str = ""

    def __str__(self) -> str:
        if self.kind == "ssm":
            return f"{SSM_SCHEME}{self.name}"
        version = f" (version {self.version_id})" if self.version_id else ""
        return f"{S3_SCHEME}{self.bucket}/{self.key}{version}"

    def document(self) -> dict[str, str]:
        """The execution input that names this plan."""
        if self.kind == "ssm":
            return {"planRef": str(self)}
        found = {"planRef": f"{S3_SCHEME}{self.bucket}/{self.key}"}
        if self.version_id:
            found["versionId"] = self.version_id
        return found


def is_reference(document: Any) -> bool:
    """The execution input names the plan instead of being it."""
    return isinstance(document, dict) and "planRef" in document


def parse_reference_document(document: dict[str, Any], *, bucket: str = "") -> PlanReference:
    """`{"planRef": ..., "versionId": ...}` -> where the plan is. `bucket`: the stack's plan
    bucket, for a reference that gives a key alone. Raises PlanInvalid naming planRef."""
    extra = sorted(set(document) - set(REFERENCE_KEYS))
    if extra:
        raise PlanInvalid(
            [
                f"planRef: an input that names the plan carries only planRef (and versionId), "
                f"not {', '.join(extra)}: put them in the plan it names"
            ]
        )
    value = document.get("planRef")
    version = document.get("versionId")
    if not isinstance(value, str) or not value.strip():
        raise PlanInvalid(["planRef: must be s3://<bucket>/<key>, a key, or ssm:<parameter name>"])
    if version is not None and (not isinstance(version, str) or not version):
        raise PlanInvalid(["versionId: must be an S3 object version id (a string)"])
    value = value.strip()
    if value.startswith(SSM_SCHEME):
        name = value[len(SSM_SCHEME) :]
        if version is not None:
            raise PlanInvalid(["versionId: only for an S3 planRef (ssm: reads the latest)"])
        if not re.fullmatch(r"/?[A-Za-z0-9_.\-/]{1,2047}", name) or "//" in name:
            raise PlanInvalid([f"planRef: {value[:200]!r} is not an SSM parameter name"])
        return PlanReference("ssm", name=name)
    if value.startswith(S3_SCHEME):
        found_bucket, _, key = value[len(S3_SCHEME) :].partition("/")
        if not found_bucket or not key:
            raise PlanInvalid([f"planRef: {value[:200]!r} names no object (s3://<bucket>/<key>)"])
        return PlanReference("s3", bucket=found_bucket, key=key, version_id=version)
    if "://" in value or value.startswith("arn:"):
        raise PlanInvalid(
            [f"planRef: {value[:200]!r}: only s3://<bucket>/<key>, a key or ssm:<name>"]
        )
    if not bucket:
        raise PlanInvalid([f"planRef: {value[:200]!r} is a key, but the stack has no plan bucket"])
    return PlanReference("s3", bucket=bucket, key=value.lstrip("/"), version_id=version)


@dataclass(frozen=True)
class PlanSources:
    """Where Validate Plan may read a plan from and store one: the stack's bucket (plans/
    to read, validated/ to store) and the plan parameter prefix. `client_parameter_prefix`: the
    client URL parameters' path, which a plan is never read from (the run itself writes there)."""

    bucket: str
    parameter_prefix: str
    client_parameter_prefix: str
    s3: Any
    ssm: Any


def check_allowed(reference: PlanReference, sources: PlanSources) -> None:
    """Only the stack's own bucket (under plans/) and the plan parameter prefix."""
    if reference.kind == "s3":
        if not sources.bucket:
            raise PlanInvalid([f"planRef: {reference}: this stack has no plan bucket"])
        if reference.bucket != sources.bucket:
            raise PlanInvalid(
                [
                    f"planRef: {reference}: not the stack's plan bucket ({sources.bucket}): "
                    f"upload the plan to s3://{sources.bucket}/{OPERATOR_PREFIX}..."
                ]
            )
        if not reference.key.startswith(OPERATOR_PREFIX) or ".." in reference.key.split("/"):
            raise PlanInvalid(
                [
                    f"planRef: {reference}: plans are read from {OPERATOR_PREFIX}... of the "
                    "stack's bucket only"
                ]
            )
        return
    name = reference.name if reference.name.startswith("/") else "/" + reference.name
    prefix = sources.parameter_prefix
    if not prefix or not name.startswith(prefix):
        raise PlanInvalid(
            [f"planRef: {reference}: outside the plan parameter prefix {prefix or '(none)'}"]
        )
    if sources.client_parameter_prefix and name.startswith(sources.client_parameter_prefix):
        raise PlanInvalid(
            [
                f"planRef: {reference}: under the client URL parameters' path "
                f"{sources.client_parameter_prefix}, which the run itself writes"
            ]
        )


def read_reference(reference: PlanReference, *, s3: Any, ssm: Any) -> bytes:
    """The plan document a reference names, as stored. PlanInvalid names planRef and why;
    throttling is AwsThrottled (the state machine retries)."""
    if reference.kind == "ssm":
        try:
            answer = ssm.get_parameter(Name=reference.name, WithDecryption=True)
        except ClientError as exc:
            aws.raise_if_throttled(exc)
            code = _error_code(exc)
            why = {
                "ParameterNotFound": "no such parameter",
                "AccessDeniedException": "access denied",
            }.get(code, code)
            raise PlanInvalid([f"planRef: {reference}: {why}"]) from exc
        return str(answer["Parameter"]["Value"]).encode()
    kwargs: dict[str, Any] = {"Bucket": reference.bucket, "Key": reference.key}
    if reference.version_id:
        kwargs["VersionId"] = reference.version_id
    try:
        answer = s3.get_object(**kwargs)
    except ClientError as exc:
        _raise_if_transient(exc)
        code = _error_code(exc)
        why = {
            "NoSuchKey": "no such key",
            "NoSuchVersion": "no such version",
            "NoSuchBucket": "no such bucket",
            "InvalidArgument": "not a version id of this object",
            "AccessDenied": "access denied (no such key, or not readable by Validate Plan)",
            "403": "access denied (no such key, or not readable by Validate Plan)",
            "404": "no such key",
        }.get(code, code)
        raise PlanInvalid([f"planRef: {reference}: {why}"]) from exc
    size = int(answer.get("ContentLength") or 0)
    if size > MAX_PLAN_BYTES:
        answer["Body"].close()
        raise PlanInvalid(
            [f"planRef: {reference}: {size:,} bytes, more than a plan ({MAX_PLAN_BYTES:,} max)"]
        )
    try:
        body: bytes = answer["Body"].read()
    except (HTTPClientError, BotoConnectionError) as exc:
        raise AwsThrottled(f"GetObject: reading {reference}: {exc}") from exc
    named = _SHA256_KEY.search(reference.key)
    if named and hashlib.sha256(body).hexdigest() != named.group(1):
        raise PlanInvalid(
            [f"planRef: {reference}: its content does not match the SHA-256 its key names"]
        )
    return body


def load_document(reference: PlanReference, *, s3: Any, ssm: Any) -> dict[str, Any]:
    """The plan (a JSON object) a reference names."""
    raw = read_reference(reference, s3=s3, ssm=ssm)
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanInvalid([f"planRef: {reference}: not JSON: {exc}"]) from exc
    if not isinstance(document, dict):
        raise PlanInvalid(
            [f"planRef: {reference}: not a plan (a JSON {type(document).__name__}, not an object)"]
        )
    if is_reference(document):
        raise PlanInvalid([f"planRef: {reference}: names another reference, not a plan"])
    return document


def resolve(document: Any, sources: PlanSources) -> tuple[Any, PlanReference | None]:
    """The plan the execution input is or names, and the reference it came through (None:
    the input was the plan). Checked before it is read: only the stack's bucket and prefix."""
    if not is_reference(document):
        return document, None
    reference = parse_reference_document(document, bucket=sources.bucket)
    check_allowed(reference, sources)
    return load_document(reference, s3=sources.s3, ssm=sources.ssm), reference


# --------------------------------------------------------------------------- the stored plan
def plan_key(migration_id: str, text: bytes) -> str:
    """Where the CLI uploads a plan: content-addressed under plans/<migrationId>/."""
    return f"{OPERATOR_PREFIX}{migration_id}/{hashlib.sha256(text).hexdigest()}.json"


def stored_key(migration_id: str, digest: str) -> str:
    return f"{VALIDATED_PREFIX}{migration_id}/{digest}.mqc1"


def store(packed: str, *, bucket: str, migration_id: str, s3: Any) -> str:
    """Keep a packed plan in the stack's bucket; its reference. The same plan gives the same
    key (a retried Validate Plan rewrites the same content)."""
    body = packed.encode()
    digest = hashlib.sha256(body).hexdigest()
    key = stored_key(migration_id, digest)
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/plain")
    except ClientError as exc:
        _raise_if_transient(exc)
        raise PlanInvalid(
            [f"(plan): the validated plan could not be stored at s3://{bucket}/{key}: {exc}"]
        ) from exc
    reference = f"{PLAN_REF_PREFIX}{S3_SCHEME}{bucket}/{key}#{digest}"
    _cache[reference] = packed
    return reference


def pass_on(packed: str, *, bucket: str, migration_id: str, s3: Any) -> str:
    """What the state carries as $packedPlan: the packed plan itself up to INLINE_LIMIT, else
    a reference to it, stored."""
    if len(packed.encode()) <= INLINE_LIMIT:
        return packed
    if not bucket:
        raise PlanInvalid(
            [
                f"(plan): packed, {len(packed):,} bytes, more than the state carries "
                f"({INLINE_LIMIT:,}), and the stack has no plan bucket (PLAN_BUCKET)"
            ]
        )
    return store(packed, bucket=bucket, migration_id=migration_id, s3=s3)


def parse_reference(reference: str) -> tuple[str, str, str]:
    """`mqc1ref:s3://bucket/key#sha256` -> (bucket, key, sha256)."""
    location, _, digest = reference.removeprefix(PLAN_REF_PREFIX).partition("#")
    bucket, _, key = location.removeprefix(S3_SCHEME).partition("/")
    if not location.startswith(S3_SCHEME) or not bucket or not key or len(digest) != 64:
        raise PlanInvalid([f"(plan): not a stored plan reference: {reference[:200]!r}"])
    return bucket, key, digest


def load_packed(reference: str, s3: Any = None) -> str:
    """The packed plan a reference names, checked against its SHA-256. Throttling is
    AwsThrottled (retried by the state machine); a missing object says so."""
    if reference in _cache:
        return _cache[reference]
    bucket, key, digest = parse_reference(reference)
    try:
        body = (s3 or s3_client()).get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        _raise_if_transient(exc)
        if _error_code(exc) in ("NoSuchKey", "404"):
            raise PlanInvalid(
                [
                    f"(plan): the validated plan s3://{bucket}/{key} is gone (deleted, or "
                    "expired by the plan bucket's lifecycle rule)"
                ]
            ) from exc
        raise PlanInvalid([f"(plan): s3://{bucket}/{key} could not be read: {exc}"]) from exc
    except (HTTPClientError, BotoConnectionError) as exc:
        raise AwsThrottled(f"GetObject: reading s3://{bucket}/{key}: {exc}") from exc
    if hashlib.sha256(body).hexdigest() != digest:
        raise PlanInvalid([f"(plan): s3://{bucket}/{key} changed since it was validated"])
    packed: str = body.decode()
    _cache[reference] = packed
    return packed

"""A validated plan kept in the stack's plan bucket, for plans too large to travel in the state.

A stored plan is referenced as `mqc1ref:s3://<bucket>/<key>#<sha256>`: the packed plan
(`mq_cutover.plan.pack`) at that object, whose SHA-256 must match (a replaced object is refused,
never used). Each Lambda container fetches a reference once.
"""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import ClientError

from mq_cutover import aws
from mq_cutover.errors import PlanInvalid
from mq_cutover.plan import PLAN_REF_PREFIX

_cache: dict[str, str] = {}
_s3: Any = None


def _client() -> Any:
    global _s3
    if _s3 is None:
        _s3 = aws.client("s3")
    return _s3


def parse_reference(reference: str) -> tuple[str, str, str]:
    """`mqc1ref:s3://bucket/key#sha256` -> (bucket, key, sha256)."""
    location, _, digest = reference.removeprefix(PLAN_REF_PREFIX).partition("#")
    bucket, _, key = location.removeprefix("s3://").partition("/")
    if not location.startswith("s3://") or not bucket or not key or len(digest) != 64:
        raise PlanInvalid([f"(plan): not a stored plan reference: {reference[:200]!r}"])
    return bucket, key, digest


def load_packed(reference: str) -> str:
    """The packed plan a reference names, checked against its SHA-256."""
    if reference in _cache:
        return _cache[reference]
    bucket, key, digest = parse_reference(reference)
    try:
        body = _client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        aws.raise_if_throttled(exc)
        raise PlanInvalid([f"(plan): s3://{bucket}/{key} could not be read: {exc}"]) from exc
    if hashlib.sha256(body).hexdigest() != digest:
        raise PlanInvalid([f"(plan): s3://{bucket}/{key} changed since it was validated"])
    packed: str = body.decode()
    _cache[reference] = packed
    return packed

"""Plans by reference (mq_cutover.plan_store): the operator's reference read only from the
stack's bucket and plan parameter prefix, a packed plan too large for the state stored at a
content-addressed key and read back checked by SHA-256, throttling retried, a missing object
named."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from mq_cutover import plan_store
from mq_cutover.errors import AwsThrottled, PlanInvalid
from mq_cutover.plan import PACKED_PREFIX, PLAN_REF_PREFIX, pack, parse_plan
from mq_cutover.plan_store import PlanReference, PlanSources

BUCKET = "mq-cutover-dev-planbucket-1a2b3c"
PREFIX = "/mq-cutover-plans/"


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    plan_store._cache.clear()
    yield
    plan_store._cache.clear()


@pytest.fixture
def bucket(aws: Any) -> Any:
    s3 = aws("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return s3


def sources(aws: Any) -> PlanSources:
    return PlanSources(BUCKET, PREFIX, "/mq-cutover/", aws("s3"), aws("ssm"))


def large_plan(plan: dict[str, Any], queues: int = 800) -> dict[str, Any]:
    """Queue names that do not compress (distinct hashes): the packed plan passes 8 KB."""
    names = [f"orders.{hashlib.sha256(str(i).encode()).hexdigest()[:20]}" for i in range(queues)]
    plan["onPrem"]["queues"] = names
    return plan


class FakeS3:
    """An S3 client that answers from a dict, or raises the error it is given; counts calls."""

    def __init__(self, objects: dict[str, bytes] | None = None, error: str | None = None):
        self.objects = dict(objects or {})
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get_object(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("GetObject", params))
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "x"}}, "GetObject")
        if params["Key"] not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "x"}}, "GetObject")
        body = self.objects[params["Key"]]
        return {"Body": io.BytesIO(body), "ContentLength": len(body)}

    def put_object(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("PutObject", params))
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "x"}}, "PutObject")
        self.objects[params["Key"]] = params["Body"]
        return {}


# ------------------------------------------------------------------------ the stored plan
def test_a_large_plan_is_stored_and_read_back_whole(
    bucket: Any, ordered_plan: dict[str, Any]
) -> None:
    plan = parse_plan(large_plan(ordered_plan))
    packed = pack(plan)
    assert len(packed) > plan_store.INLINE_LIMIT
    reference = plan_store.pass_on(packed, bucket=BUCKET, migration_id=plan.migration_id, s3=bucket)
    digest = hashlib.sha256(packed.encode()).hexdigest()
    key = f"validated/{plan.migration_id}/{digest}.mqc1"
    assert reference == f"{PLAN_REF_PREFIX}s3://{BUCKET}/{key}#{digest}"
    assert len(reference) < 300  # whatever the plan's size
    assert bucket.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode() == packed
    plan_store._cache.clear()  # another Lambda container: read from S3
    assert plan_store.load_packed(reference, bucket) == packed
    assert parse_plan(reference) == plan  # what every handler does with $packedPlan
    # The same plan again (a retried Validate Plan): the same key and reference.
    again = plan_store.pass_on(packed, bucket=BUCKET, migration_id=plan.migration_id, s3=bucket)
    assert again == reference


def test_a_small_plan_stays_inline_and_touches_no_bucket(ordered_plan: dict[str, Any]) -> None:
    packed = pack(parse_plan(ordered_plan))
    s3 = FakeS3()
    assert plan_store.pass_on(packed, bucket=BUCKET, migration_id="m", s3=s3) == packed
    assert packed.startswith(PACKED_PREFIX) and s3.calls == []
    # The limit is the packed size, inclusive.
    exactly = PACKED_PREFIX + "x" * (plan_store.INLINE_LIMIT - len(PACKED_PREFIX))
    assert plan_store.pass_on(exactly, bucket=BUCKET, migration_id="m", s3=s3) == exactly
    over = exactly + "x"
    assert plan_store.pass_on(over, bucket=BUCKET, migration_id="m", s3=s3).startswith(
        PLAN_REF_PREFIX
    )
    with pytest.raises(PlanInvalid, match="no plan bucket"):
        plan_store.pass_on(over, bucket="", migration_id="m", s3=s3)


def test_a_replaced_object_is_refused(bucket: Any, ordered_plan: dict[str, Any]) -> None:
    packed = pack(parse_plan(large_plan(ordered_plan)))
    reference = plan_store.store(packed, bucket=BUCKET, migration_id="m", s3=bucket)
    _bucket, key, _digest = plan_store.parse_reference(reference)
    bucket.put_object(Bucket=BUCKET, Key=key, Body=packed.replace("mqc1:", "mqc1:A").encode())
    plan_store._cache.clear()
    with pytest.raises(PlanInvalid, match="changed since it was validated"):
        plan_store.load_packed(reference, bucket)


def test_each_container_reads_a_reference_once() -> None:
    packed = "mqc1:abc"
    digest = hashlib.sha256(packed.encode()).hexdigest()
    s3 = FakeS3({"validated/m/x.mqc1": packed.encode()})
    reference = f"{PLAN_REF_PREFIX}s3://{BUCKET}/validated/m/x.mqc1#{digest}"
    assert plan_store.load_packed(reference, s3) == packed
    assert plan_store.load_packed(reference, s3) == packed
    assert len(s3.calls) == 1


@pytest.mark.parametrize("code", ["SlowDown", "ThrottlingException", "503", "InternalError"])
def test_a_throttled_read_or_write_is_retried_by_the_state_machine(code: str) -> None:
    reference = f"{PLAN_REF_PREFIX}s3://{BUCKET}/validated/m/x.mqc1#{'0' * 64}"
    with pytest.raises(AwsThrottled, match=code):
        plan_store.load_packed(reference, FakeS3(error=code))
    with pytest.raises(AwsThrottled, match=code):
        plan_store.store("mqc1:x", bucket=BUCKET, migration_id="m", s3=FakeS3(error=code))
    refused = PlanReference("s3", bucket=BUCKET, key="plans/p.json")
    with pytest.raises(AwsThrottled):
        plan_store.read_reference(refused, s3=FakeS3(error=code), ssm=None)


def test_a_read_cut_short_is_retried() -> None:
    class Cut(FakeS3):
        def get_object(self, **params: Any) -> dict[str, Any]:
            class Body:
                def read(self) -> bytes:
                    raise ReadTimeoutError(endpoint_url="https://s3")

            return {"Body": Body()}

    reference = f"{PLAN_REF_PREFIX}s3://{BUCKET}/validated/m/x.mqc1#{'0' * 64}"
    with pytest.raises(AwsThrottled, match="reading s3://"):
        plan_store.load_packed(reference, Cut())


def test_a_missing_stored_plan_says_it_is_gone() -> None:
    reference = f"{PLAN_REF_PREFIX}s3://{BUCKET}/validated/m/x.mqc1#{'0' * 64}"
    with pytest.raises(PlanInvalid, match=r"validated plan s3://.*/validated/m/x.mqc1 is gone"):
        plan_store.load_packed(reference, FakeS3())
    with pytest.raises(PlanInvalid, match="could not be read"):
        plan_store.load_packed(reference, FakeS3(error="AccessDenied"))
    with pytest.raises(PlanInvalid, match="not a stored plan reference"):
        plan_store.load_packed(f"{PLAN_REF_PREFIX}s3://{BUCKET}/k#short", FakeS3())


# ------------------------------------------------------------------ the operator's reference
def test_a_plan_named_in_the_stacks_bucket_is_read(
    bucket: Any, aws: Any, ordered_plan: dict[str, Any]
) -> None:
    text = json.dumps(ordered_plan).encode()
    key = plan_store.plan_key("orders-2026-12-01", text)
    assert key == f"plans/orders-2026-12-01/{hashlib.sha256(text).hexdigest()}.json"
    first = bucket.put_object(Bucket=BUCKET, Key=key, Body=text)["VersionId"]
    for document in (
        {"planRef": f"s3://{BUCKET}/{key}"},
        {"planRef": key},  # a key alone: the stack's bucket (CutoverPlanRef)
        {"planRef": f"s3://{BUCKET}/{key}", "versionId": first},
    ):
        found, reference = plan_store.resolve(document, sources(aws))
        assert found == ordered_plan
        assert reference is not None and reference.bucket == BUCKET and reference.key == key
    # The plan itself passes through untouched.
    assert plan_store.resolve(ordered_plan, sources(aws)) == (ordered_plan, None)
    # A version id names that version, not the newest.
    bucket.put_object(Bucket=BUCKET, Key="plans/p.json", Body=text)
    older = bucket.put_object(Bucket=BUCKET, Key="plans/p.json", Body=b"{}")["VersionId"]
    bucket.put_object(Bucket=BUCKET, Key="plans/p.json", Body=text)
    found, _ = plan_store.resolve(
        {"planRef": f"s3://{BUCKET}/plans/p.json", "versionId": older}, sources(aws)
    )
    assert found == {}


def test_a_plan_parameter_is_read_from_the_prefix_only(
    aws: Any, ordered_plan: dict[str, Any]
) -> None:
    ssm = aws("ssm")
    ssm.put_parameter(Name=f"{PREFIX}orders", Value=json.dumps(ordered_plan), Type="String")
    ssm.put_parameter(Name="/elsewhere/orders", Value=json.dumps(ordered_plan), Type="String")
    ssm.put_parameter(Name="/mq-cutover/orders", Value=json.dumps(ordered_plan), Type="String")
    found, reference = plan_store.resolve({"planRef": f"ssm:{PREFIX}orders"}, sources(aws))
    assert found == ordered_plan and str(reference) == f"ssm:{PREFIX}orders"
    secure = f"{PREFIX}secure"
    ssm.put_parameter(Name=secure, Value=json.dumps(ordered_plan), Type="SecureString")
    assert plan_store.resolve({"planRef": f"ssm:{secure}"}, sources(aws))[0] == ordered_plan
    refusals = {
        "ssm:/elsewhere/orders": "outside the plan parameter prefix /mq-cutover-plans/",
        f"ssm:{PREFIX}ghost": "no such parameter",
        "ssm:not a name": "is not an SSM parameter name",
    }
    for ref, why in refusals.items():
        with pytest.raises(PlanInvalid, match=r"^planRef: ") as raised:
            plan_store.resolve({"planRef": ref}, sources(aws))
        assert why in str(raised.value), ref
    # A prefix that overlaps the client URL parameters' path: never read from where the run writes.
    overlapping = PlanSources(BUCKET, "/mq-cutover/", "/mq-cutover/", aws("s3"), ssm)
    with pytest.raises(PlanInvalid, match="under the client URL parameters' path"):
        plan_store.resolve({"planRef": "ssm:/mq-cutover/orders"}, overlapping)


def test_a_bad_reference_names_plan_ref_and_why(bucket: Any, aws: Any) -> None:
    bucket.put_object(Bucket=BUCKET, Key="plans/not-json.json", Body=b"mode: ordered")
    bucket.put_object(Bucket=BUCKET, Key="plans/list.json", Body=b"[1, 2]")
    bucket.put_object(Bucket=BUCKET, Key="plans/ref.json", Body=b'{"planRef": "plans/x"}')
    bucket.put_object(Bucket=BUCKET, Key="validated/m/x.mqc1", Body=b"mqc1:x")
    bucket.put_object(Bucket=BUCKET, Key=f"plans/m/{'0' * 64}.json", Body=b"{}")
    refusals: dict[str, tuple[dict[str, Any], str]] = {
        "foreign bucket": (
            {"planRef": "s3://someone-elses-bucket/plans/p.json"},
            "not the stack's plan bucket (" + BUCKET + ")",
        ),
        "missing key": ({"planRef": f"s3://{BUCKET}/plans/ghost.json"}, "no such key"),
        "outside plans/": (
            {"planRef": f"s3://{BUCKET}/validated/m/x.mqc1"},
            "plans are read from plans/... of the stack's bucket only",
        ),
        "climbing out": ({"planRef": "plans/../validated/m/x.mqc1"}, "plans/..."),
        "not JSON": ({"planRef": "plans/not-json.json"}, "not JSON"),
        "not an object": ({"planRef": "plans/list.json"}, "not a plan (a JSON list"),
        "a reference to a reference": ({"planRef": "plans/ref.json"}, "names another reference"),
        "content not its key's sha": (
            {"planRef": f"plans/m/{'0' * 64}.json"},
            "does not match the SHA-256 its key names",
        ),
        "no such version": (
            {"planRef": f"s3://{BUCKET}/plans/list.json", "versionId": "nope"},
            "planRef: s3://",
        ),
        "another scheme": ({"planRef": "https://example.com/plan.json"}, "only s3://"),
        "empty": ({"planRef": ""}, "must be s3://<bucket>/<key>"),
        "no key": ({"planRef": f"s3://{BUCKET}"}, "names no object"),
        "more than a reference": (
            {"planRef": "plans/p.json", "mode": "ordered"},
            "carries only planRef (and versionId), not mode",
        ),
    }
    for case, (document, why) in refusals.items():
        with pytest.raises(PlanInvalid) as raised:
            plan_store.resolve(document, sources(aws))
        assert str(raised.value).startswith(("planRef: ", "versionId: ")), case
        assert why in str(raised.value), (case, str(raised.value))


def test_a_plan_larger_than_any_plan_is_not_read() -> None:
    class Huge(FakeS3):
        def get_object(self, **params: Any) -> dict[str, Any]:
            self.calls.append(("GetObject", params))
            return {"Body": io.BytesIO(b""), "ContentLength": plan_store.MAX_PLAN_BYTES + 1}

    refused = PlanReference("s3", bucket=BUCKET, key="plans/huge.json")
    with pytest.raises(PlanInvalid, match="more than a plan"):
        plan_store.read_reference(refused, s3=Huge(), ssm=None)


def test_the_reference_document_names_the_plan_back() -> None:
    s3 = PlanReference("s3", bucket=BUCKET, key="plans/p.json", version_id="v1")
    assert s3.document() == {"planRef": f"s3://{BUCKET}/plans/p.json", "versionId": "v1"}
    assert plan_store.parse_reference_document(s3.document()) == s3
    ssm = PlanReference("ssm", name=f"{PREFIX}orders")
    assert plan_store.parse_reference_document(ssm.document()) == ssm
    with pytest.raises(PlanInvalid, match="versionId: only for an S3 planRef"):
        plan_store.parse_reference_document({"planRef": "ssm:/a", "versionId": "v"})
    with pytest.raises(PlanInvalid, match="a key, but the stack has no plan bucket"):
        plan_store.parse_reference_document({"planRef": "plans/p.json"})

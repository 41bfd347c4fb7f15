"""Bad input: a thousand malformed SBT events and a thousand malformed Stripe webhook bodies, each a
clear rejection (a reason naming the field, or a 400), none raising, nothing written anywhere."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from devtools.local_run import sqs_event
from devtools.template import event_routes, routes_for
from tests.support.harness import Stack, sample
from tests.support.reliability import WEBHOOK_SECRET, copied, for_tenant

pytestmark = pytest.mark.reliability

FUZZED = 1000
CHANGES = 200
SEED = 20261124
VALID_SAMPLES = (
    "00_onboarding_request.json",
    "01_provision_success.json",
    "21_provision_failure.json",
    "03_provision_success_flat_missing_email.json",
    "04_tenant_updated.json",
    "05_tenant_updated_tier_change.json",
    "06_tenant_deleted.json",
    "07_deleted_before_create_offboarding.json",
    "11_tenant_user_created.json",
    "12_tenant_user_deleted.json",
    "13_ingest_usage.json",
)
LIFECYCLE_FUNCTIONS = {"ProvisionSuccessFunction", "TenantUpdatedFunction", "TenantDeletedFunction"}
FIELD_REASON = re.compile(r"^[A-Za-z_][\w.\[\]-]*: \S")
NOT_A_STRING: tuple[Any, ...] = (None, 0, 12.5, [], {}, ["x"], {"id": "x"})
NOT_A_TIME: tuple[Any, ...] = ("yesterday", "", "2026-13-45T99:00:00Z", None, [], {"at": 1})
NOT_AN_OBJECT: tuple[Any, ...] = (None, "garbage", 42, [1, 2], ["tenantId"], True)

Mutation = Callable[[random.Random, dict[str, Any]], dict[str, Any] | None]


def _garbage(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "float", "none", "list", "dict"] if depth < 2 else ["str", "int", "none"]
    kind = rng.choice(kinds)
    if kind == "str":
        return "".join(rng.choice("abcXYZ019 _-\u00e9\u4e2d\n\"'{}") for _ in range(rng.randint(0, 12)))
    if kind == "int":
        return rng.randint(-(2**40), 2**40)
    if kind == "float":
        return rng.choice([rng.uniform(-1e9, 1e9), 1e308, -0.0])
    if kind == "none":
        return None
    if kind == "list":
        return [_garbage(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {f"k{rng.randint(0, 99)}": _garbage(rng, depth + 1) for _ in range(rng.randint(0, 3))}


# Ids go into keys and Stripe's Idempotency-Key header: outside the id pattern, they are refused.
NOT_AN_ID: tuple[Any, ...] = (*NOT_A_STRING, "", "   ", "t" * 129, "租户-1", "t\r\nx", "t x", "#t", "t/1")


# Customer details Stripe would refuse: they are rejected at the door, naming the field (never the value).
BAD_EMAILS = (
    "billing@@acme.test",
    "billing@acme",
    "billing acme@acme.test",
    "billing@acme..test",
    "x" * 65 + "@acme.test",
    "b" * 505 + "@acme.test",
)
BAD_COUNTRIES = ("ZZ", "USA", "United States", "U5", "")
TENANT_FIELDS_EVENTS = ("sbt_aws_onboardingRequest", "sbt_aws_provisionSuccess", "sbt_aws_tenantUpdated")


def nested(depth: int) -> Any:
    """A list `depth` levels deep, built without recursion."""
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _identity(event: dict[str, Any]) -> str:
    """The field that names the tenant: SBT's provisioning events name only the registration."""
    return "tenantId" if "tenantId" in event["detail"] else "tenantRegistrationId"


def _drop_tenant(rng: random.Random, event: dict[str, Any]) -> dict[str, Any]:
    event["detail"].pop("tenantId", None)
    event["detail"].pop("tenantRegistrationId", None)
    return event


def _tenant_wrong(rng: random.Random, event: dict[str, Any]) -> dict[str, Any]:
    event["detail"][_identity(event)] = rng.choice(NOT_AN_ID)
    return event


def _no_detail(rng: random.Random, event: dict[str, Any]) -> dict[str, Any]:
    del event["detail"]
    return event


def _garbage_detail(rng: random.Random, event: dict[str, Any]) -> dict[str, Any]:
    """A detail that is an object, but none of ours: random keys, no tenantId."""
    event["detail"] = {f"field{n}": _garbage(rng) for n in range(rng.randint(0, 6))}
    return event


def _envelope_broken(rng: random.Random, event: dict[str, Any]) -> dict[str, Any]:
    field = rng.choice(["id", "time", "source", "account", "region"])
    if rng.random() < 0.5:
        del event[field]
    else:
        event[field] = rng.choice(NOT_A_TIME if field == "time" else NOT_A_STRING)
    return event


def _type_specific(rng: random.Random, event: dict[str, Any]) -> dict[str, Any] | None:
    """Breaks what this kind of event needs: the tier of a provisioning, the fields of an update, the
    user of a user event, the records of a usage report."""
    detail = event["detail"]
    kind = event["detail-type"]
    if kind in ("sbt_aws_provisionFailure", "sbt_aws_onboardingRequest") or (
        kind == "sbt_aws_provisionSuccess" and "tenantId" not in detail
    ):
        if kind == "sbt_aws_onboardingRequest" and rng.random() < 0.5:
            detail["tier"] = rng.choice(["platinum", "BASIC", *NOT_A_STRING[1:]])
        else:
            detail["tenantRegistrationId"] = rng.choice(NOT_AN_ID[1:])
        return event
    if kind == "sbt_aws_provisionSuccess":
        job = detail.get("jobOutput", {})
        # (No tier at all is not bad input: SBT's tier usually comes with the onboarding request.)
        choice = rng.choice(["unknown tier", "tier type"])
        for layer in [detail, job.get("tenantData") or {}, job.get("tenantRegistrationData") or {}]:
            layer.pop("tier", None)
        if choice == "unknown tier":
            detail["tier"] = rng.choice(["platinum", "BASIC", "basic "[:-1] + "x"])
        elif choice == "tier type":
            detail["tier"] = rng.choice(NOT_A_STRING[1:])
        return event
    if kind == "sbt_aws_tenantUpdated":
        choice = rng.choice(
            [
                "nothing to update",
                "updatedAt",
                "future updatedAt",
                "email type",
                "address type",
                "unknown tier",
            ]
        )
        if choice == "nothing to update":
            event["detail"] = {"tenantId": detail["tenantId"], "updatedAt": detail.get("updatedAt")}
            event["detail"] = {k: v for k, v in event["detail"].items() if v is not None}
        elif choice == "updatedAt":
            detail["updatedAt"] = rng.choice(NOT_A_TIME[:3])
        elif choice == "future updatedAt":  # it would win every later update of its fields, for good
            detail["updatedAt"] = rng.choice(["9999-12-31T23:59:59Z", "2100-01-01T00:00:00Z"])
        elif choice == "email type":
            detail["email"] = rng.choice(NOT_A_STRING[1:])
        elif choice == "address type":
            detail["address"] = rng.choice(["1 Main St", 5, ["line1"]])
        else:
            detail["tier"] = "enterprise-" + str(rng.randint(0, 999))
        return event
    if kind in ("sbt_aws_tenantUserCreated", "sbt_aws_tenantUserDeleted"):
        if rng.random() < 0.5:
            detail.pop("userId", None)
            detail.pop("userName", None)
        else:
            detail["userId"] = rng.choice(NOT_A_STRING[1:])
        return event
    if kind == "sbt_aws_ingestUsage":
        choice = rng.choice(
            ["empty", "not a list", "no name", "value", "unknown name", "timestamp", "window"]
        )
        record = detail["usage"][0]
        if choice == "empty":
            detail["usage"] = []
        elif choice == "not a list":
            detail["usage"] = rng.choice(["api_calls", 5, {"name": "api_calls"}])
        elif choice == "no name":
            detail["usage"] = [{k: v for k, v in record.items() if k != "name"}]
        elif choice == "value":
            detail["usage"] = [{**record, "value": rng.choice(["abc", -1, None, [], "NaN", "-0.5"])}]
        elif choice == "unknown name":
            detail["usage"] = [{**record, "name": "disk_bytes"}]
        elif choice == "timestamp":
            detail["usage"] = [{**record, "timestamp": rng.choice(NOT_A_TIME[:3])}]
        else:  # outside Stripe's window: 40 days back or an hour ahead of now
            offset = rng.choice([-40 * 86400, 3600])
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))
            detail["usage"] = [{**record, "timestamp": stamp}]
        return event
    return None


def _detail_stripe_refuses(rng: random.Random, event: dict[str, Any]) -> dict[str, Any] | None:
    """An email, country or name Stripe would refuse, in whichever layer of the detail carries it."""
    if event["detail-type"] not in TENANT_FIELDS_EVENTS:
        return None
    detail = event["detail"]
    job = detail.get("jobOutput") or {}
    layer = rng.choice(
        [detail, *(job[key] for key in ("tenantData", "tenantRegistrationData") if key in job)]
    )
    choice = rng.choice(["email", "country", "name"])
    if choice == "email":
        layer["email"] = rng.choice(BAD_EMAILS)
    elif choice == "country":
        layer["address"] = {"line1": "1 Main St", "country": rng.choice(BAD_COUNTRIES)}
    else:
        layer["tenantName"] = "n" * rng.randint(257, 600)
    return event


def _nested_too_deep(rng: random.Random, event: dict[str, Any]) -> dict[str, Any]:
    """Nested far deeper than any event: it raised RecursionError where it was read."""
    depth = rng.choice([100, 10_000, 100_000])
    if event["detail-type"] in ("sbt_aws_tenantUpdated", "sbt_aws_provisionSuccess") and rng.random() < 0.5:
        # As a provisioning job exports an address: JSON text, read by the model.
        event["detail"]["address"] = '{"city": "x", "more": ' + "[" * depth + "]" * depth + "}"
    else:
        event["detail"][rng.choice(["extra", "tenantConfig", "usage"])] = nested(depth)
    return event


EVENT_MUTATIONS: tuple[Mutation, ...] = (
    _drop_tenant,
    _tenant_wrong,
    _no_detail,
    _garbage_detail,
    _envelope_broken,
    _type_specific,
    _type_specific,
    _detail_stripe_refuses,
    _nested_too_deep,
)


def fuzzed_events(rng: random.Random, count: int) -> list[tuple[str, dict[str, Any], str]]:
    """(function id, event, mutation name); each event broken in one way that makes it unusable."""
    routes = event_routes()
    made: list[tuple[str, dict[str, Any], str]] = []
    while len(made) < count:
        original = sample(rng.choice(VALID_SAMPLES))
        mutation = rng.choice(EVENT_MUTATIONS)
        event = mutation(rng, copied(original))
        if event is None:
            continue
        for route in routes_for(original, routes):
            made.append((route.function_id, event, mutation.__name__))
    return made[:count]


def assert_clear_rejection(answer: dict[str, Any]) -> None:
    if answer.get("result") == "rejected":
        assert FIELD_REASON.match(str(answer.get("reason"))), answer
        return
    # A usage report whose every record was refused: each refusal names the record's field.
    assert answer.get("operation") == "ingest_usage", answer
    assert answer.get("accepted") == 0, answer
    assert answer.get("new") == 0, answer
    assert answer["rejected"], answer
    assert all(FIELD_REASON.match(r["reason"]) for r in answer["rejected"]), answer


def assert_nothing_written(stack: Stack) -> None:
    assert stack.emulator.writes() == 0
    assert stack.table_items("AccountsTable") == []
    assert stack.table_items("RegistrationsTable") == []
    assert stack.table_items("UsageTable") == []
    assert stack.table_items("IdempotencyTable") == []


def test_a_thousand_fuzzed_sbt_events_are_each_a_clear_rejection_with_nothing_written(stack: Stack) -> None:
    rng = random.Random(SEED)
    cases = fuzzed_events(rng, FUZZED)
    raised: list[tuple[str, str, str]] = []
    kinds: Counter[str] = Counter()

    for function_id, event, mutation in cases:
        kinds[mutation] += 1
        try:
            answer = stack.invoke(function_id, event)
        except Exception as error:
            raised.append((function_id, mutation, f"{type(error).__name__}: {error}"))
            continue
        assert_clear_rejection(answer)

    print(
        f"\nbad input: {len(cases)} fuzzed SBT events ({dict(kinds)}) -> {len(raised)} raised, "
        f"{stack.emulator.writes()} Stripe writes, {len(stack.table_items('AccountsTable'))} accounts, "
        f"{len(stack.table_items('UsageTable'))} usage items"
    )
    assert raised == []
    assert_nothing_written(stack)


@pytest.mark.parametrize("function_id", sorted(LIFECYCLE_FUNCTIONS))
def test_a_detail_that_is_not_an_object_is_rejected_by_the_lifecycle_functions(
    stack: Stack, function_id: str
) -> None:
    name = {
        "ProvisionSuccessFunction": "01_provision_success.json",
        "TenantUpdatedFunction": "04_tenant_updated.json",
        "TenantDeletedFunction": "06_tenant_deleted.json",
    }[function_id]
    for detail in NOT_AN_OBJECT:
        event = sample(name)
        event["detail"] = detail

        answer = stack.invoke(function_id, event)

        assert answer["result"] == "rejected"
        assert answer["reason"].startswith("detail: ")
    assert_nothing_written(stack)


def test_an_offboarding_whose_time_has_no_time_zone_is_rejected_like_the_other_events(stack: Stack) -> None:
    stack.deliver(for_tenant("00_onboarding_request.json", "naive-time-tenant"))
    [opened] = stack.deliver(for_tenant("01_provision_success.json", "naive-time-tenant"))
    writes = stack.emulator.writes()
    event = for_tenant("06_tenant_deleted.json", "naive-time-tenant")
    event["time"] = "2026-11-23T12:00:00"

    [answer] = stack.deliver(event)

    assert answer["result"] == "rejected"
    assert answer["reason"].startswith("time: ")
    assert stack.emulator.writes() == writes
    account = stack.account("naive-time-tenant")
    assert account is not None
    assert (opened["result"], account["status"]) == ("applied", "open")


def test_a_detail_that_is_not_an_object_is_rejected_by_the_user_and_usage_functions(stack: Stack) -> None:
    for function_id, name in (
        ("TenantUsersFunction", "11_tenant_user_created.json"),
        ("UsageIngestFunction", "13_ingest_usage.json"),
    ):
        for detail in NOT_AN_OBJECT:
            event = sample(name)
            event["detail"] = detail

            answer = stack.invoke(function_id, event)

            assert answer["result"] == "rejected"
            assert answer["reason"].startswith("detail: ")
    assert_nothing_written(stack)


def test_queued_bodies_that_are_not_json_or_nested_too_deep_leave_the_queue_rejected(stack: Stack) -> None:
    good = json.dumps(sample("04_tenant_updated.json"))
    bodies = [
        "not json",
        good[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}",  # json.loads: RecursionError
        good[:-1] + ', "extra": ' + "[" * 100 + "]" * 100 + "}",  # read, then refused before pydantic
    ]
    messages = [
        {"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": body, "MD5OfBody": "0" * 32}
        for n, body in enumerate(bodies)
    ]
    batch = sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:tenant-updated", "us-east-1")

    answer = stack.invoke("TenantUpdatedFunction", batch)

    assert answer == {"batchItemFailures": []}, "a failed item would be received again, then dead-lettered"
    assert_nothing_written(stack)


# -- the billing API's changes ---------------------------------------------------------------------------


def _patch_body(rng: random.Random) -> tuple[str, str]:
    """A PATCH body that is not a usable change, and the name of what is wrong with it."""
    choice = rng.choice(
        ["email", "country", "name", "too deep", "not json", "unknown field", "empty", "types", "tier"]
    )
    body: Any
    if choice == "email":
        body = {"email": rng.choice(BAD_EMAILS)}
    elif choice == "country":
        body = {"address": {"city": "Springfield", "country": rng.choice(BAD_COUNTRIES)}}
    elif choice == "name":
        body = {"tenantName": "n" * rng.randint(257, 600)}
    elif choice == "too deep":
        depth = rng.choice([100, 10_000, 100_000])
        return '{"tier": "premium", "note": ' + "[" * depth + "]" * depth + "}", choice
    elif choice == "not json":
        return rng.choice(['{"tier": ', "tier=premium", "", "[", '{"tier": "premium"}}']), choice
    elif choice == "unknown field":
        body = {"tier": "premium", rng.choice(["seats", "tenant_name", "price"]): 3}
    elif choice == "empty":
        body = rng.choice([{}, [], "premium", 5, None])
    elif choice == "types":
        body = {
            rng.choice(["tier", "email", "tenantName", "address"]): rng.choice([0, 12.5, [], ["x"], True])
        }
    else:
        body = {"tier": rng.choice(["platinum", "BASIC", ""])}
    return json.dumps(body), choice


def test_two_hundred_malformed_billing_changes_are_each_a_400_with_nothing_written(stack: Stack) -> None:
    rng = random.Random(SEED + 3)
    kinds: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    raised: list[tuple[str, str]] = []

    for _ in range(CHANGES):
        request = sample("api_billing_change.json")
        request["body"], what = _patch_body(rng)
        kinds[what] += 1
        try:
            answer = stack.invoke("BillingApiFunction", request)
        except Exception as error:
            raised.append((what, f"{type(error).__name__}: {error}"))
            continue
        statuses[int(answer["statusCode"])] += 1
        error = json.loads(answer["body"])["error"]
        assert answer["statusCode"] == 400, (what, answer)
        assert error["code"] == "invalid_request", (what, error)
        assert "@" not in error["message"], "a refused email is never echoed"

    print(
        f"\nbad input: {CHANGES} malformed PATCH bodies ({dict(kinds)}) -> statuses {dict(statuses)}, "
        f"{len(raised)} raised, {stack.emulator.writes()} Stripe writes, "
        f"{len(stack.table_items('AccountsTable'))} accounts"
    )
    assert raised == []
    assert_nothing_written(stack)


# -- Stripe's webhook --------------------------------------------------------------------------------


def _sign(payload: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    timestamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _body_mutation(rng: random.Random, document: dict[str, Any]) -> tuple[bytes, str]:
    """A body that is not a usable Stripe event, and the name of what is wrong with it."""
    choice = rng.choice(
        [
            "not json",
            "not an object",
            "not an event",
            "drop",
            "wrong type",
            "object",
            "object id",
            "bytes",
            "too deep",
        ]
    )
    if choice == "too deep":  # json.loads raised RecursionError: a 502, and Stripe retried for days
        depth = rng.choice([100, 10_000, 100_000])
        inner = "[" * depth + "]" * depth
        return (
            f'{{"id": "{document["id"]}", "object": "event", "type": "invoice.paid", "data": {inner}}}'.encode(),
            choice,
        )
    if choice == "not json":
        text = json.dumps(document)
        return text[: rng.randint(0, len(text) - 1)].encode(), choice
    if choice == "bytes":
        return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 64))), choice
    if choice == "not an object":
        return json.dumps(rng.choice([[], [document], "event", 7, None])).encode(), choice
    if choice == "not an event":
        document["object"] = rng.choice(["charge", "customer", "list"])
    elif choice == "drop":
        del document[rng.choice(["id", "type", "created", "data"])]
    elif choice == "wrong type":
        field = rng.choice(["id", "type", "created", "data"])
        document[field] = rng.choice(
            {
                "id": [None, 123, "", ["evt"], {"id": "evt"}],
                "type": [None, 5, "", []],
                "created": [None, 0, -5, "yesterday", 1.5, []],
                "data": [None, "x", [], 5],
            }[field]
        )
    elif choice == "object":
        document["data"]["object"] = rng.choice([None, "in_1", [], 5])
    else:  # a handled event whose object has no usable id
        document["type"] = rng.choice(["invoice.paid", "customer.subscription.updated", "customer.updated"])
        if rng.random() < 0.5:
            del document["data"]["object"]["id"]
        else:
            document["data"]["object"]["id"] = rng.choice([None, 5, [], {}])
    return json.dumps(document).encode(), choice


def _signature_mutation(rng: random.Random, payload: bytes) -> tuple[str | None, str]:
    choice = rng.choice(
        ["missing", "garbage", "other secret", "stale", "future", "no v1", "unicode t", "non-ascii v1"]
    )
    if choice == "missing":
        return None, choice
    if choice == "garbage":
        return "".join(rng.choice("tv1=,abc0123 \u00b2\u00e9") for _ in range(rng.randint(0, 40))), choice
    if choice == "unicode t":  # digits to str.isdigit(), not all of them to int()
        digits = "".join(
            rng.choice("\u00b2\u00b3\u00b9\u2075\u0661\u0969\uff11") for _ in range(rng.randint(1, 10))
        )
        return f"t={digits},{_sign(payload).split(',', 1)[1]}", choice
    if choice == "non-ascii v1":
        good = _sign(payload)
        broken = "".join(rng.choice("0123456789abcdef\u00e9\u00df\u0660\u4e2d") for _ in range(64))
        return rng.choice([good.split(",v1=")[0] + ",v1=" + broken, f"{good},v1={broken}"]), choice
    if choice == "other secret":
        return _sign(payload, secret="whsec_someone_else_0000000000"), choice
    if choice in ("stale", "future"):
        return _sign(payload, at=int(time.time()) + (-3600 if choice == "stale" else 3600)), choice
    return f"t={int(time.time())}", choice


def fuzzed_webhook(rng: random.Random) -> tuple[dict[str, Any], str]:
    """An API Gateway proxy request to the webhook, as events/webhook_*.json, with a bad body (signed
    correctly, so that parsing is reached) or a good body with a bad signature."""
    template = sample(rng.choice(["webhook_invoice_paid.json", "webhook_malformed_body.json"]))
    document = json.loads(sample("webhook_invoice_paid.json")["body"])
    document["id"] = f"evt_fuzz_{rng.getrandbits(48):012x}"
    if rng.random() < 0.75:
        payload, what = _body_mutation(rng, document)
        signature: str | None = _sign(payload)
    else:
        payload = json.dumps(document).encode()
        signature, what = _signature_mutation(rng, payload)
    headers = {k: v for k, v in template["headers"].items() if k != "Stripe-Signature"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    template["headers"] = headers
    template["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    try:
        template["body"], template["isBase64Encoded"] = payload.decode(), False
    except UnicodeDecodeError:
        template["body"], template["isBase64Encoded"] = base64.b64encode(payload).decode(), True
    return template, what


def test_a_thousand_fuzzed_webhook_bodies_are_each_a_400_with_nothing_written(stack: Stack) -> None:
    rng = random.Random(SEED + 1)
    statuses: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    raised: list[tuple[str, str]] = []

    for _ in range(FUZZED):
        request, what = fuzzed_webhook(rng)
        kinds[what] += 1
        try:
            response = stack.invoke("StripeWebhookFunction", request)
        except Exception as error:
            raised.append((what, f"{type(error).__name__}: {error}"))
            continue
        statuses[int(response["statusCode"])] += 1
        body = json.loads(response["body"])
        assert response["statusCode"] == 400, (what, response)
        assert body["error"] in ("invalid_signature", "invalid_event"), body

    print(
        f"\nbad input: {FUZZED} fuzzed webhook deliveries ({dict(kinds)}) -> statuses {dict(statuses)}, "
        f"{len(raised)} raised, {stack.emulator.writes()} Stripe writes, "
        f"{len(stack.table_items('AccountsTable'))} accounts"
    )
    assert raised == []
    assert_nothing_written(stack)


# -- Stripe objects that are not the tenant's own --------------------------------------------------------

FOREIGN = 500
STATUSES = ("active", "trialing", "past_due", "unpaid", "paused", "canceled", "incomplete_expired")


def _opened_with_stripes_report(stack: Stack) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A tenant onboarded, provisioned, and every event of its opening delivered: its id, and its
    subscription and latest invoice as Stripe's events carried them."""
    onboarding = sample("00_onboarding_request.json")
    tenant = onboarding["detail"]["tenantId"]
    stack.deliver(onboarding)
    stack.deliver(sample("01_provision_success.json"))
    recorded = stack.emulator.admin("GET", "events")["data"]
    for event in recorded:
        payload = json.dumps(event).encode()
        response = stack.invoke("StripeWebhookFunction", _webhook_request(payload, _sign(payload)))
        assert response["statusCode"] == 200, response
    [created] = [e for e in recorded if e["type"] == "customer.subscription.created"]
    [finalized] = [e for e in recorded if e["type"] == "invoice.finalized"]
    return tenant, created["data"]["object"], finalized["data"]["object"]


def _webhook_request(payload: bytes, signature: str) -> dict[str, Any]:
    request = sample("webhook_invoice_paid.json")
    headers = {**request["headers"], "Stripe-Signature": signature}
    request.update(body=payload.decode(), isBase64Encoded=False, headers=headers)
    request["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    return request


def foreign_event(
    rng: random.Random, tenant: str, subscription: dict[str, Any], invoice: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """A Stripe event (signed by the caller) about an object that is not the tenant's own (but names it), or
    about its own object from the other mode or a connected account."""
    n = rng.getrandbits(40)
    other_customer = f"cus_other{n:010x}"
    kind = rng.choice(
        [
            "add-on subscription",
            "copied subscription",
            "other customer's invoice",
            "add-on's invoice",
            "other customer",
            "live mode",
            "connected account",
        ]
    )
    event: dict[str, Any] = {
        "id": f"evt_foreign_{n:010x}",
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": int(time.time()) + rng.randint(0, 600),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
    }
    if kind in ("add-on subscription", "copied subscription", "live mode", "connected account"):
        obj = copied(subscription)
        obj["status"] = rng.choice(STATUSES)
        obj["cancellation_details"] = {
            "reason": rng.choice([None, "payment_failed", "cancellation_requested"])
        }
        if kind == "add-on subscription":
            obj["id"] = f"sub_addon{n:010x}"
        elif kind == "copied subscription":
            obj["id"], obj["customer"] = f"sub_copy{n:010x}", other_customer
        elif kind == "live mode":
            event["livemode"] = True
        else:
            event["account"] = f"acct_{n:016x}"
        types = [
            "customer.subscription.created",
            "customer.subscription.updated",
            "customer.subscription.deleted",
        ]
    elif kind in ("other customer's invoice", "add-on's invoice"):
        obj = copied(invoice)
        obj["id"] = f"in_foreign{n:010x}"
        obj["status"] = rng.choice(["open", "paid", "uncollectible"])
        obj["created"] = int(time.time()) + rng.randint(0, 600)
        if kind == "other customer's invoice":
            obj["customer"] = other_customer
        else:
            obj["parent"]["subscription_details"]["subscription"] = f"sub_addon{n:010x}"
        types = [
            "invoice.paid",
            "invoice.payment_failed",
            "invoice.finalized",
            "invoice.marked_uncollectible",
        ]
    else:
        obj = {
            "id": other_customer,
            "object": "customer",
            "email": f"someone{n}@elsewhere.test",
            "name": "Someone Else",
            "metadata": {"tenantId": tenant},
        }
        types = ["customer.updated", "customer.deleted"]
    event["type"] = rng.choice(types)
    event["data"] = {"object": obj}
    return event, kind


def test_five_hundred_foreign_stripe_objects_are_each_acknowledged_and_change_nothing(stack: Stack) -> None:
    rng = random.Random(SEED + 2)
    tenant, subscription, invoice = _opened_with_stripes_report(stack)
    stack.published()
    account_before = stack.table_items("AccountsTable")
    gate_before = stack.request(sample("api_billing_status.json"))["body"]
    writes_before = stack.emulator.writes()
    kinds: Counter[str] = Counter()
    results: Counter[str] = Counter()
    raised: list[tuple[str, str]] = []

    for _ in range(FOREIGN):
        event, kind = foreign_event(rng, tenant, subscription, invoice)
        kinds[kind] += 1
        payload = json.dumps(event).encode()
        try:
            response = stack.invoke("StripeWebhookFunction", _webhook_request(payload, _sign(payload)))
        except Exception as error:
            raised.append((kind, f"{type(error).__name__}: {error}"))
            continue
        assert response["statusCode"] == 200, (kind, response)
        body = json.loads(response["body"])
        results[f"{body['result']} ({body.get('reason', '').split(':')[0]})"] += 1
        assert body["result"] == "ignored", (kind, body)

    published = stack.published()
    changed = int(stack.table_items("AccountsTable") != account_before)
    gate_after = stack.request(sample("api_billing_status.json"))["body"]
    writes = stack.emulator.writes() - writes_before
    print(
        f"\nforeign objects: {FOREIGN} signed deliveries ({dict(kinds)}) -> {dict(results)}, "
        f"{len(raised)} raised; effects: {changed} account changes, {len(published)} events published, "
        f"{int(gate_after != gate_before)} gate changes, {writes} Stripe writes"
    )
    assert raised == []
    assert (changed, published, gate_after, writes) == (0, [], gate_before, 0)

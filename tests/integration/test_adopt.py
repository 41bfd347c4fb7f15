"""scripts/adopt end to end, in process: SBT's tenants (an export, or its API signed with SigV4 on a
loopback server), Stripe in the emulator, the accounts on moto; the plan, its application through the
lifecycle, an interruption part-way and the run that resumes it."""

from __future__ import annotations

import io
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sbt_billing.entrypoints.adopt_cli import main

from tests.support.harness import Stack, stack_on

# Adopting 1,000 tenants twice, the second run resumed after an interruption (issue 13's figure):
# about a minute and a half here. SBT_ADOPT_TENANTS sets another number.
TENANTS = int(os.environ.get("SBT_ADOPT_TENANTS", "1000"))


@pytest.fixture
def stack(moto_endpoint: str, emulator_url: str) -> Iterator[Stack]:
    with stack_on(moto_endpoint, emulator_url) as stack:
        yield stack


def export(path: Path, count: int, tier: str | None = "basic", **fields: Any) -> Path:
    records = [
        {
            "tenantId": f"tenant-{n:05d}",
            "tenantName": f"Tenant {n}",
            "email": f"ops+{n}@tenant.test",
            "tenantRegistrationId": f"reg-{n:05d}",
            **({"tier": tier} if tier else {}),
            **fields,
        }
        for n in range(count)
    ]
    path.write_text(json.dumps({"data": records}))
    return path


def adopt(*argv: str | Path, **options: Any) -> tuple[int, str]:
    out = io.StringIO()
    code = main([str(arg) for arg in argv], out=out, err=io.StringIO(), stdin=io.StringIO(), **options)
    return code, out.getvalue()


def counted(printed: str, title: str) -> dict[str, int]:
    """The rows of the two-column table printed under `title` ("Plan:", "Summary:")."""
    lines = printed.split(title + "\n", 1)[1].splitlines()[2:]
    found = {}
    for line in lines:
        name, _, count = line.rpartition("  ")
        if not line.strip() or not count.strip().isdigit():
            break
        found[name.strip()] = int(count)
    return found


def customers(stack: Stack) -> list[dict[str, Any]]:
    client = stack.emulator.client()
    found = []
    for customer in client.v1.customers.list(params={"limit": 100}).auto_paging_iter():
        found.append(customer.to_dict(recursive=True))
    return found


def live_subscriptions(stack: Stack) -> list[dict[str, Any]]:
    client = stack.emulator.client()
    return [
        s.to_dict(recursive=True)
        for s in client.v1.subscriptions.list(params={"limit": 100}).auto_paging_iter()
    ]


def price_id(stack: Stack, lookup_key: str) -> str:
    return str(stack.emulator.client().v1.prices.list(params={"lookup_keys": [lookup_key]}).data[0].id)


# --- Adopting many, stopped part-way, resumed ---------------------------------------------------------------


def test_adopting_tenants_twice_the_second_resuming_an_interruption_gives_one_customer_each(
    stack: Stack, tmp_path: Path
) -> None:
    # Given SBT's tenants, none billed yet
    tenants = export(tmp_path / "tenants.json", TENANTS)
    state = tmp_path / "state.jsonl"
    half = TENANTS // 2

    def outage(done: int) -> None:
        if done == half:  # Stripe fails the next subscription create, after that tenant's customer was made
            stack.emulator.fault(route="POST /v1/subscriptions", status=503, count=3)

    # When a first run is interrupted half-way (Stripe unavailable mid-tenant)
    first, printed = adopt("--tenants", tenants, "--state", state, "--rate", "100", after_each=outage)

    # Then it stops, having done half, and says how to resume
    assert first == 75
    assert "Run the same command again to resume" in printed
    assert len(state.read_text().splitlines()) == half
    assert len(customers(stack)) == half + 1  # the interrupted tenant's customer exists already

    # When the same command runs again
    second, printed = adopt("--tenants", tenants, "--state", state, "--rate", "100")

    # Then it resumes: the interrupted opening is finished, the others opened; one customer and one
    # subscription per tenant, none twice
    assert second == 0, printed
    assert "resume" in printed
    made = customers(stack)
    assert len(made) == TENANTS
    named = Counter(customer["metadata"]["tenantId"] for customer in made)
    assert set(named.values()) == {1}
    assert len(named) == TENANTS
    subscriptions = live_subscriptions(stack)
    assert len(subscriptions) == TENANTS
    assert len({s["customer"] for s in subscriptions}) == TENANTS
    accounts = stack.table_items("AccountsTable")
    assert len(accounts) == TENANTS
    assert {item["status"]["S"] for item in accounts} == {"open"}

    # And a third run, even without its state file, finds every tenant billed and writes nothing
    writes = stack.emulator.writes()
    third, printed = adopt("--tenants", tenants, "--state", tmp_path / "fresh.jsonl", "--rate", "100")
    assert third == 0
    assert stack.emulator.writes() == writes
    assert counted(printed, "Plan:") == {"skip": TENANTS}


# --- The plan ------------------------------------------------------------------------------------------------


def test_a_dry_run_prints_the_plan_and_changes_nothing(stack: Stack, tmp_path: Path) -> None:
    tenants = export(tmp_path / "tenants.json", 3)

    code, printed = adopt("--tenants", tenants, "--state", tmp_path / "state.jsonl", "--dry-run")

    assert code == 0
    assert counted(printed, "Plan:") == {"open": 3}
    assert "--dry-run: nothing changed." in printed
    assert stack.emulator.writes() == 0
    assert stack.table_items("AccountsTable") == []
    assert "ops+" not in printed  # no email is printed


def test_a_customer_naming_the_tenant_is_linked_with_its_subscription_and_moved_to_the_tenants_tier(
    stack: Stack, tmp_path: Path
) -> None:
    # Given a tenant (premium in SBT) whose customer exists in Stripe, on the basic price
    client = stack.emulator.client()
    customer = client.v1.customers.create(params={"metadata": {"tenantId": "tenant-00000"}})
    existing = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price_id(stack, "sbt_basic_monthly")}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        }
    )
    tenants = export(tmp_path / "tenants.json", 1, tier="premium")

    # When it is adopted
    code, printed = adopt("--tenants", tenants, "--state", tmp_path / "state.jsonl")

    # Then its account records that customer and subscription, now on the tenant's tier; nothing new
    assert code == 0, printed
    assert counted(printed, "Summary:")["linked"] == 1
    account = stack.account("tenant-00000")
    assert account is not None
    assert (account["customer_id"], account["subscription_id"]) == (customer.id, existing.id)
    assert account["applied_tier"] == "premium"
    assert len(customers(stack)) == 1
    [subscription] = live_subscriptions(stack)
    assert subscription["items"]["data"][0]["price"]["lookup_key"] == "sbt_premium_monthly"


def test_a_customer_found_by_email_alone_is_linked_only_once_confirmed(stack: Stack, tmp_path: Path) -> None:
    # Given a customer with the tenant's email and no tenantId
    customer = stack.emulator.client().v1.customers.create(params={"email": "ops+0@tenant.test"})
    tenants = export(tmp_path / "tenants.json", 1)
    state = tmp_path / "state.jsonl"

    # When it is adopted without confirmation (and no terminal to ask at)
    code, printed = adopt("--tenants", tenants, "--state", state)

    # Then nothing is done for it
    assert code == 0
    assert counted(printed, "Summary:")["not confirmed (email)"] == 1
    assert stack.account("tenant-00000") is None

    # When it is adopted with the links confirmed
    code, printed = adopt("--tenants", tenants, "--state", state, "--confirm-email-links")

    # Then the customer becomes the tenant's (its metadata names it) and gets its subscription
    assert code == 0, printed
    account = stack.account("tenant-00000")
    assert account is not None
    assert account["customer_id"] == customer.id
    assert stack.emulator.client().v1.customers.retrieve(customer.id).metadata["tenantId"] == "tenant-00000"
    assert len(customers(stack)) == 1
    assert len(live_subscriptions(stack)) == 1


def test_a_customer_with_a_subscription_outside_the_catalogue_is_left_to_a_person(
    stack: Stack, tmp_path: Path
) -> None:
    client = stack.emulator.client()
    customer = client.v1.customers.create(params={"metadata": {"tenantId": "tenant-00000"}})
    legacy = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 4900,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Legacy"},
        }
    )
    client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": legacy.id}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        }
    )
    tenants = export(tmp_path / "tenants.json", 1)

    code, printed = adopt("--tenants", tenants, "--state", tmp_path / "state.jsonl")

    assert code == 0
    assert "live subscriptions outside the catalogue" in printed
    assert stack.account("tenant-00000") is None
    assert len(live_subscriptions(stack)) == 1


def test_tenants_sbt_deleted_or_without_a_tier_are_skipped_with_the_reason(
    stack: Stack, tmp_path: Path
) -> None:
    tenants = tmp_path / "tenants.csv"
    tenants.write_text(
        "tenantId,tenantName,email,tier,sbtaws_active\n"
        "gone,Gone,ops@gone.test,basic,false\n"
        "tierless,Tierless,ops@tierless.test,,true\n"
        "fine,Fine,ops@fine.test,basic,true\n"
        "not a valid id,X,ops@x.test,basic,true\n"
    )

    code, printed = adopt("--tenants", tenants, "--state", tmp_path / "state.jsonl")

    assert code == 0, printed
    assert "offboarded in SBT" in printed
    assert "no tier" in printed
    assert "1 records without a valid tenantId left out" in printed
    assert [item["tenantId"]["S"] for item in stack.table_items("AccountsTable")] == ["fine"]


# --- SBT's tenant management API -------------------------------------------------------------------------------

KEY = Credentials("AKIDSBTADOPTTEST", "secret-for-the-test", None)


class SbtApi(BaseHTTPRequestHandler):
    """SBT's GET /tenants, paged (limit, start_key -> next_start_key), answering only SigV4-signed
    requests whose signature it can compute again."""

    tenants: ClassVar[list[dict[str, Any]]] = []
    region = "us-east-1"
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        url = f"http://{self.headers['Host']}{self.path}"
        if not self._signed(url):
            self._answer(403, {"message": "Forbidden"})
            return
        query = parse_qs(urlsplit(self.path).query)
        limit = int(query.get("limit", ["10"])[0])
        ids = [t["tenantId"] for t in self.tenants]
        start = ids.index(query["start_key"][0]) + 1 if "start_key" in query else 0
        page = self.tenants[start : start + limit]
        body: dict[str, Any] = {"data": page}
        if start + limit < len(self.tenants):
            body["next_start_key"] = page[-1]["tenantId"]
        self.requests.append(self.path)
        self._answer(200, body)

    def _signed(self, url: str) -> bool:
        authorization = self.headers.get("Authorization", "")
        if (
            not authorization.startswith("AWS4-HMAC-SHA256 ")
            or "/execute-api/aws4_request" not in authorization
        ):
            return False
        request = AWSRequest(
            method="GET",
            url=url,
            headers={"Accept": self.headers["Accept"], "X-Amz-Date": self.headers["X-Amz-Date"]},
        )
        request.context["timestamp"] = self.headers["X-Amz-Date"]
        auth = SigV4Auth(KEY, "execute-api", self.region)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        return authorization.endswith(f"Signature={expected}")

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def sbt_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    SbtApi.tenants = [
        {"tenantId": f"api-tenant-{n:03d}", "tenantName": f"T{n}", "email": f"t{n}@api.test", "tier": "basic"}
        for n in range(250)
    ]
    SbtApi.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SbtApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEY.secret_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/prod"
    finally:
        server.shutdown()


def test_sbts_tenants_are_listed_page_by_page_from_its_api_signed_with_sigv4(
    stack: Stack, sbt_api: str, tmp_path: Path
) -> None:
    code, printed = adopt(
        "--sbt-api", sbt_api, "--region", "us-east-1", "--state", tmp_path / "s.jsonl", "--dry-run"
    )

    assert code == 0, printed
    assert "SBT: 250 tenants" in printed
    assert counted(printed, "Plan:") == {"open": 250}
    assert len(SbtApi.requests) == 3  # 100 a page


def test_an_unsigned_or_refused_listing_stops_before_anything_is_done(
    stack: Stack, sbt_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-key-the-api-knows")

    code, _ = adopt("--sbt-api", sbt_api, "--region", "us-east-1", "--state", tmp_path / "s.jsonl")

    assert code == 2
    assert stack.emulator.writes() == 0

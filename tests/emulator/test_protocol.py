"""Protocol behaviour through the real stripe SDK: auth, errors, params, idempotency, paging."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest
import stripe

from stripe_emulator import StripeEmulator

from .conftest import DAY, Admin, make_client


def test_unknown_id_raises_invalid_request_error_with_404(no_retry_client: stripe.StripeClient) -> None:
    # Given no customer cus_missing
    # When it is retrieved
    with pytest.raises(stripe.InvalidRequestError) as info:
        no_retry_client.v1.customers.retrieve("cus_missing")
    # Then the SDK raises InvalidRequestError carrying Stripe's 404 resource_missing
    assert info.value.http_status == 404
    assert info.value.code == "resource_missing"
    assert info.value.param == "id"


def test_misspelled_param_is_rejected_as_unknown(no_retry_client: stripe.StripeClient) -> None:
    # When a customer is created with a misspelled param
    with pytest.raises(stripe.InvalidRequestError) as info:
        no_retry_client.v1.customers.create(params={"emial": "a@example.com"})  # type: ignore[typeddict-unknown-key]
    # Then it is a 400 parameter_unknown naming the param, and nothing was created
    assert info.value.http_status == 400
    assert info.value.code == "parameter_unknown"
    assert info.value.param == "emial"
    assert no_retry_client.v1.customers.list().data == []


def test_unknown_nested_param_is_rejected(no_retry_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        no_retry_client.v1.customers.create(params={"address": {"line_1": "1 Main St"}})  # type: ignore[typeddict-unknown-key]
    assert info.value.code == "parameter_unknown"
    assert info.value.param == "address[line_1]"


def test_invalid_key_raises_authentication_error_without_echoing_key(emulator: StripeEmulator) -> None:
    # Given a client with a live-mode key
    client = make_client(emulator.url, api_key="sk_live_supersecretvalue1234")
    # When it calls the API
    with pytest.raises(stripe.AuthenticationError) as info:
        client.v1.customers.list()
    # Then it is a 401 whose message does not contain the full key
    assert info.value.http_status == 401
    assert "sk_live_supersecretvalue1234" not in str(info.value.json_body)
    assert info.value.json_body is not None
    assert info.value.json_body["error"]["type"] == "invalid_request_error"


def test_restricted_test_key_is_accepted(emulator: StripeEmulator) -> None:
    client = make_client(emulator.url, api_key="rk_test_restricted")
    assert client.v1.customers.list().data == []


def test_empty_required_string_is_parameter_invalid_empty(no_retry_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        no_retry_client.v1.products.create(params={"name": ""})
    assert info.value.code == "parameter_invalid_empty"
    assert info.value.param == "name"


def test_every_response_has_a_request_id(no_retry_client: stripe.StripeClient) -> None:
    customer = no_retry_client.v1.customers.create()
    assert customer.last_response is not None
    assert customer.last_response.request_id is not None
    assert customer.last_response.request_id.startswith("req_")


def test_metadata_empty_value_removes_the_key(no_retry_client: stripe.StripeClient) -> None:
    # Given a customer with two metadata keys
    cus = no_retry_client.v1.customers.create(params={"metadata": {"tenantId": "t1", "plan": "basic"}})
    # When one key is set to ""
    updated = no_retry_client.v1.customers.update(cus.id, params={"metadata": {"plan": ""}})
    # Then only that key is removed
    assert updated.metadata.to_dict() == {"tenantId": "t1"}


def test_list_is_newest_first_and_pages_with_cursors(no_retry_client: stripe.StripeClient) -> None:
    ids = [no_retry_client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(5)]
    first = no_retry_client.v1.customers.list(params={"limit": 2})
    assert [c.id for c in first.data] == [ids[4], ids[3]]
    assert first.has_more is True
    second = no_retry_client.v1.customers.list(params={"limit": 2, "starting_after": ids[3]})
    assert [c.id for c in second.data] == [ids[2], ids[1]]
    back = no_retry_client.v1.customers.list(params={"limit": 2, "ending_before": ids[1]})
    assert [c.id for c in back.data] == [ids[3], ids[2]]
    everything = list(no_retry_client.v1.customers.list(params={"limit": 2}).auto_paging_iter())
    assert [c.id for c in everything] == list(reversed(ids))


def test_deleted_customer_retrieves_as_stub_and_leaves_lists(no_retry_client: stripe.StripeClient) -> None:
    cus = no_retry_client.v1.customers.create(params={"email": "gone@example.com"})
    deleted = no_retry_client.v1.customers.delete(cus.id)
    assert deleted.deleted is True
    again = no_retry_client.v1.customers.retrieve(cus.id)
    assert again.to_dict().get("deleted") is True
    assert no_retry_client.v1.customers.list(params={"email": "gone@example.com"}).data == []


def test_customer_search_by_metadata(no_retry_client: stripe.StripeClient) -> None:
    # Given customers for two tenants
    wanted = no_retry_client.v1.customers.create(params={"metadata": {"tenantId": "t-42"}})
    no_retry_client.v1.customers.create(params={"metadata": {"tenantId": "t-43"}})
    # When searching by metadata
    result = no_retry_client.v1.customers.search(params={"query": "metadata['tenantId']:'t-42'"})
    # Then only the matching customer is found
    assert [c.id for c in result.data] == [wanted.id]
    assert result.object == "search_result"


def test_customer_search_by_email_pages(no_retry_client: stripe.StripeClient) -> None:
    for _ in range(3):
        no_retry_client.v1.customers.create(params={"email": "same@example.com"})
    page = no_retry_client.v1.customers.search(params={"query": "email:'same@example.com'", "limit": 2})
    assert len(page.data) == 2
    assert page.has_more is True
    assert page.next_page is not None
    rest = no_retry_client.v1.customers.search(
        params={"query": "email:'same@example.com'", "limit": 2, "page": page.next_page}
    )
    assert len(rest.data) == 1


def test_invalid_search_query_is_400(no_retry_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        no_retry_client.v1.customers.search(params={"query": "tenant = 1"})
    assert info.value.http_status == 400


# idempotency ----------------------------------------------------------------------------------------
def test_idempotent_replay_returns_first_response_without_second_object(
    no_retry_client: stripe.StripeClient, admin: Admin
) -> None:
    # Given a customer created with an idempotency key
    first = no_retry_client.v1.customers.create(
        params={"email": "a@example.com"}, options={"idempotency_key": "k1"}
    )
    # When the same request is sent again with the same key
    second = no_retry_client.v1.customers.create(
        params={"email": "a@example.com"}, options={"idempotency_key": "k1"}
    )
    # Then the first response is replayed, marked as such, and there is one customer
    assert second.id == first.id
    assert second.last_response is not None
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(no_retry_client.v1.customers.list().data) == 1
    assert admin.counts(detail=True)["executed"]["POST /v1/customers"] == 1


def test_same_key_different_params_raises_idempotency_error(no_retry_client: stripe.StripeClient) -> None:
    no_retry_client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k2"})
    with pytest.raises(stripe.IdempotencyError) as info:
        no_retry_client.v1.customers.create(
            params={"email": "b@example.com"}, options={"idempotency_key": "k2"}
        )
    assert info.value.http_status == 400


def test_same_key_different_endpoint_raises_idempotency_error(no_retry_client: stripe.StripeClient) -> None:
    no_retry_client.v1.customers.create(options={"idempotency_key": "k3"})
    with pytest.raises(stripe.IdempotencyError):
        no_retry_client.v1.products.create(params={"name": "x"}, options={"idempotency_key": "k3"})


def test_failed_validation_is_not_saved_under_the_key(no_retry_client: stripe.StripeClient) -> None:
    # Given a request with a key that fails validation
    with pytest.raises(stripe.InvalidRequestError):
        no_retry_client.v1.products.create(params={"name": ""}, options={"idempotency_key": "k4"})
    # When the key is reused with corrected params
    product = no_retry_client.v1.products.create(params={"name": "ok"}, options={"idempotency_key": "k4"})
    # Then it executes (no idempotency error, no replayed 400)
    assert product.name == "ok"


def test_concurrent_requests_with_same_key_create_one_object(emulator: StripeEmulator, admin: Admin) -> None:
    # Given the endpoint is slow, so the first request is still in flight when the others arrive
    admin.fault(route="POST /v1/customers", stage="endpoint", delay_ms=300)
    client = make_client(emulator.url, retries=10)
    results: list[str] = []

    def create() -> None:
        results.append(client.v1.customers.create(params={"name": "x"}, options={"idempotency_key": "k5"}).id)

    # When four threads send the same request with the same key
    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then all get the same customer, only one exists, and the others saw 409 before the replay
    assert len(set(results)) == 1
    assert len(results) == 4
    assert len(client.v1.customers.list().data) == 1
    statuses = [r["status"] for r in admin.requests() if r["route"] == "POST /v1/customers"]
    assert 409 in statuses


def test_concurrent_same_key_without_retries_raises_409(emulator: StripeEmulator, admin: Admin) -> None:
    admin.fault(route="POST /v1/customers", stage="endpoint", delay_ms=300)
    client = make_client(emulator.url, retries=0)
    slow = threading.Thread(target=lambda: client.v1.customers.create(options={"idempotency_key": "k6"}))
    slow.start()
    try:
        _wait_until_in_flight(admin, "k6")
        with pytest.raises(stripe.APIError) as info:
            client.v1.customers.create(options={"idempotency_key": "k6"})
        assert info.value.http_status == 409
    finally:
        slow.join()


def _wait_until_in_flight(admin: Admin, key: str) -> None:
    import time

    for _ in range(100):
        if any(
            e["idempotency_key"] == key and e["in_flight"]
            for e in admin.call("GET", "/_emulator/idempotency")["data"]
        ):
            return
        time.sleep(0.005)
    raise AssertionError("request never went in flight")


def test_idempotency_key_expires_after_24_hours_of_emulator_time(
    no_retry_client: stripe.StripeClient, admin: Admin
) -> None:
    # Given a customer created with a key
    first = no_retry_client.v1.customers.create(options={"idempotency_key": "k7"})
    # When the clock moves 24 hours on and the key is reused
    admin.advance(DAY)
    second = no_retry_client.v1.customers.create(options={"idempotency_key": "k7"})
    # Then the request runs afresh
    assert second.id != first.id
    assert len(no_retry_client.v1.customers.list().data) == 2


def test_key_still_replays_just_before_expiry(no_retry_client: stripe.StripeClient, admin: Admin) -> None:
    first = no_retry_client.v1.customers.create(options={"idempotency_key": "k8"})
    admin.advance(DAY - 60)
    assert no_retry_client.v1.customers.create(options={"idempotency_key": "k8"}).id == first.id


def test_get_ignores_idempotency_key(emulator: StripeEmulator, admin: Admin) -> None:
    def list_customers() -> tuple[int, str | None]:
        req = urllib.request.Request(
            emulator.url + "/v1/customers",
            headers={"Authorization": "Bearer sk_test_x", "Idempotency-Key": "k9"},
        )
        with urllib.request.urlopen(req) as resp:
            return len(json.loads(resp.read())["data"]), resp.headers.get("Idempotent-Replayed")

    # Given a list fetched with a key, then a new customer
    assert list_customers() == (0, None)
    make_client(emulator.url).v1.customers.create()
    # When the same GET is sent again with the same key
    # Then it runs afresh (not a replay of the first answer) and the key was not saved
    assert list_customers() == (1, None)
    saved = admin.call("GET", "/_emulator/idempotency")["data"]
    assert "k9" not in [e["idempotency_key"] for e in saved]

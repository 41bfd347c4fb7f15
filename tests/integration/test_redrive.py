"""scripts/redrive on moto: each dead-letter queue's messages go back to their own source, and a message
that does not belong there is refused (a tenant-deletion event redriven to the provisioning queue
would never offboard anyone; one redriven to the deletion queue would)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber

from devtools.moto_server import AwsClients, LocalResources, create_resources
from devtools.redrive import (
    Deployment,
    FunctionDestination,
    QueueDestination,
    function_alias,
    payload_for,
    redrive,
)
from devtools.template import DeadLetterSource, dead_letter_sources
from tests.support.harness import sample

SOURCES = {source.queue_id: source for source in dead_letter_sources()}
FUNCTION_NAMES = {  # what CloudFormation names them: <stack>-<logical id>-<suffix>
    "TenantUsersFunction": "sbt-billing-TenantUsersFunction-AbC123",
    "UsageIngestFunction": "sbt-billing-UsageIngestFunction-DeF456",
    "UsageFlushFunction": "sbt-billing-UsageFlushFunction-GhI789",
    "ReconcileFunction": "sbt-billing-ReconcileFunction-JkL012",
}


@pytest.fixture
def resources(moto_endpoint: str) -> LocalResources:
    return create_resources(moto_endpoint, stripe_api_key="sk_test_redrive_00000000")


def deployment(resources: LocalResources) -> Deployment:
    return Deployment({**resources.queues, **FUNCTION_NAMES}, resources.parameter_overrides())


def bodies(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
        "Messages", []
    )
    return [json.loads(message["Body"]) for message in messages]


def failure_record(function_name: str, event: dict[str, Any]) -> dict[str, Any]:
    """What Lambda puts on a function's on-failure SQS destination after its last retry."""
    return {
        "version": "1.0",
        "timestamp": "2026-11-24T10:00:00.000Z",
        "requestContext": {
            "requestId": "0b1c2d3e-0000-4000-8000-000000000001",
            "functionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "Stripe unavailable", "errorType": "TransientBillingError"},
    }


def test_a_record_dead_lettered_by_its_queue_goes_back_to_that_queue(resources: LocalResources) -> None:
    sqs = AwsClients(resources.endpoint).sqs()
    queue, dead = resources.queues["TenantDeletedQueue"], resources.queues["TenantDeletedDeadLetterQueue"]
    offboarding = sample("06_tenant_deleted.json")
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(offboarding))
    for _ in range(5):  # the template's maxReceiveCount: SQS then moves it to the queue's dead letters
        assert sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0).get("Messages")
    assert sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0).get("Messages") is None
    source = SOURCES["TenantDeletedDeadLetterQueue"]

    report = redrive(source, sqs, dead, QueueDestination(sqs, queue), deployment(resources))

    assert (report.moved, report.refused) == (1, [])
    assert bodies(sqs, queue) == [offboarding]
    assert bodies(sqs, dead) == []


def test_a_payment_method_the_webhook_handed_over_goes_back_to_the_update_queue(
    resources: LocalResources,
) -> None:
    from sbt_billing.adapters.lifecycle_inbox import PAYMENT_METHOD_GIVEN, SOURCE

    sqs = AwsClients(resources.endpoint).sqs()
    dead = resources.queues["TenantUpdatedDeadLetterQueue"]
    [record] = sample("24_payment_method_given_queue_record.json")["Records"]
    given = json.loads(record["body"])
    sqs.send_message(QueueUrl=dead, MessageBody=json.dumps(given))
    queue = resources.queues["TenantUpdatedQueue"]

    report = redrive(
        SOURCES["TenantUpdatedDeadLetterQueue"],
        sqs,
        dead,
        QueueDestination(sqs, queue),
        deployment(resources),
    )

    assert (given["source"], given["detail-type"]) == (SOURCE, PAYMENT_METHOD_GIVEN)
    assert (report.moved, report.refused) == (1, [])
    assert bodies(sqs, queue) == [given]


def test_an_event_that_belongs_to_another_queue_is_refused_and_stays(resources: LocalResources) -> None:
    sqs = AwsClients(resources.endpoint).sqs()
    dead = resources.queues["ProvisionSuccessDeadLetterQueue"]
    provision, offboarding = sample("01_provision_success.json"), sample("06_tenant_deleted.json")
    for event in (provision, offboarding, "not json"):
        sqs.send_message(QueueUrl=dead, MessageBody=event if isinstance(event, str) else json.dumps(event))
    source = SOURCES["ProvisionSuccessDeadLetterQueue"]

    report = redrive(
        source,
        sqs,
        dead,
        QueueDestination(sqs, resources.queues["ProvisionSuccessQueue"]),
        deployment(resources),
    )

    assert report.moved == 1
    assert sorted(why for _, why in report.refused) == [
        "a 'sbt_aws_offboardingRequest' event from 'sbt.control.plane', which ProvisionSuccessQueue never gets",
        "not JSON",
    ]
    assert bodies(sqs, resources.queues["ProvisionSuccessQueue"]) == [provision]
    assert bodies(sqs, resources.queues["TenantDeletedQueue"]) == []  # nobody is offboarded
    assert (
        len(sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]) == 2
    )


def test_a_dry_run_checks_and_counts_and_moves_nothing(resources: LocalResources) -> None:
    sqs = AwsClients(resources.endpoint).sqs()
    dead = resources.queues["TenantUpdatedRuleDeadLetterQueue"]
    update = sample("04_tenant_updated.json")
    sqs.send_message(QueueUrl=dead, MessageBody=json.dumps(update))
    source = SOURCES["TenantUpdatedRuleDeadLetterQueue"]
    assert (source.kind, source.target) == ("rule", "TenantUpdatedQueue")

    report = redrive(
        source,
        sqs,
        dead,
        QueueDestination(sqs, resources.queues["TenantUpdatedQueue"]),
        deployment(resources),
        dry_run=True,
    )

    assert (report.moved, report.refused, report.dry_run) == (1, [], True)
    assert bodies(sqs, resources.queues["TenantUpdatedQueue"]) == []
    assert bodies(sqs, dead) == [update]


def test_a_failure_record_is_invoked_again_on_its_own_function_only(resources: LocalResources) -> None:
    sqs = AwsClients(resources.endpoint).sqs()
    dead = resources.queues["TenantUsersFailureDeadLetterQueue"]
    created = sample("11_tenant_user_created.json")
    sqs.send_message(
        QueueUrl=dead, MessageBody=json.dumps(failure_record(FUNCTION_NAMES["TenantUsersFunction"], created))
    )
    foreign = failure_record(FUNCTION_NAMES["UsageIngestFunction"], sample("13_ingest_usage.json"))
    sqs.send_message(QueueUrl=dead, MessageBody=json.dumps(foreign))
    sent: list[str] = []

    class Recorded:
        def send(self, payload: str) -> None:
            sent.append(payload)

    report = redrive(
        SOURCES["TenantUsersFailureDeadLetterQueue"], sqs, dead, Recorded(), deployment(resources)
    )

    assert [json.loads(payload) for payload in sent] == [created]  # the event, not Lambda's record
    assert [why for _, why in report.refused] == [
        f"a failure record of {FUNCTION_NAMES['UsageIngestFunction']}, not of {FUNCTION_NAMES['TenantUsersFunction']}"
    ]


def test_a_rule_dead_letter_of_a_function_must_be_an_event_its_rule_matches(
    resources: LocalResources,
) -> None:
    source = SOURCES["UsageIngestRuleDeadLetterQueue"]
    assert (source.kind, source.target_kind, source.target) == ("rule", "function", "UsageIngestFunction")
    usage = json.dumps(sample("13_ingest_usage.json"))
    assert payload_for(source, usage, deployment(resources)) == (usage, None)
    user = json.dumps(sample("11_tenant_user_created.json"))
    payload, problem = payload_for(source, user, deployment(resources))
    assert payload is None
    assert problem is not None
    assert "never gets" in problem


def test_a_function_is_invoked_asynchronously_as_its_rule_would() -> None:
    import boto3

    client = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    payload = json.dumps(sample("13_ingest_usage.json"))
    with Stubber(client) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 202},
            {
                "FunctionName": FUNCTION_NAMES["UsageIngestFunction"],
                "InvocationType": "Event",
                "Payload": payload,
                "Qualifier": "live",  # the alias the rule invokes
            },
        )
        FunctionDestination(client, FUNCTION_NAMES["UsageIngestFunction"], function_alias()).send(payload)
        stub.assert_no_pending_responses()


def test_every_dead_letter_queue_has_a_way_back(resources: LocalResources) -> None:
    for source in dead_letter_sources():
        assert isinstance(source, DeadLetterSource)
        assert source.queue_id in resources.queues, source
        if source.target_kind == "queue":
            assert source.target in resources.queues, source
        else:
            assert source.target in FUNCTION_NAMES, source

"""template.yaml, read as data and as SAM translates it: what each function is given, routed and granted.
(What the linters say of it and what `sam build` makes of it: tests/test_build.py.)"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import tomllib
from typing import Any

import pytest

from devtools.local_run import (
    delivery,
)
from devtools.template import (
    ROOT,
    dead_letter_sources,
    event_routes,
    function_handlers,
    load_template,
    parameter_values,
    resolve,
    routes_for,
    table_definitions,
)
from tests.support.functions import (
    EVENTS,
    FUNCTIONS,
    HTTP_FUNCTIONS,
    POLICY_TEMPLATES,
    RULE_FUNCTIONS,
    RULE_KINDS,
    SEAT_TENANT,
    SECRET_PATTERN,
    TEMPLATE,
    sample_event_path,
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in template["Resources"].items() if resource["Type"] == kind}


# --- What the template says --------------------------------------------------------------------------


RESOURCE_NAMES = {
    "AccountsTable": "accounts",
    "IdempotencyTable": "idempotency",
    "UsageTable": "usage",
    "RegistrationsTable": "registrations",
    "ReconcileTable": "reconcile",
    "SeatSyncQueue": "https://sqs.example/seat-sync",
    "TenantUpdatedQueue": "https://sqs.example/tenant-updated",
}


def test_every_function_handler_imports_to_a_callable() -> None:
    handlers = function_handlers({"EventBusName": "bus", "StripeSecretName": "secret"})
    assert {name: handler.handler for name, handler in handlers.items()} == {
        name: function.handler for name, function in FUNCTIONS.items()
    }
    for handler in handlers.values():
        assert (ROOT / handler.code_uri).resolve() == (ROOT / "handlers").resolve()
        module = importlib.import_module(handler.module)
        assert callable(getattr(module, handler.function)), handler.handler


# A reconcile run pages through every subscription, saving its place after each page: it runs for up to
# Lambda's 15 minutes. Its repairs still hold a tenant's lease no longer than the lease (the lifecycle
# caps the holder's working time at the lease's end).
LONG_RUNNING = {"ReconcileFunction": 900}


def test_functions_run_python313_on_x86_64_by_default_for_30_seconds(template: dict[str, Any]) -> None:
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == [{"Ref": "Architecture"}]
    assert parameter_values(template)["Architecture"] == "x86_64"
    assert function_globals["Timeout"] == 30
    for name, handler in function_handlers({"EventBusName": "bus", "StripeSecretName": "secret"}).items():
        assert handler.timeout == LONG_RUNNING.get(name, 30), name
        assert handler.memory_size == "512"


def test_the_dependencies_layer_is_built_for_the_functions_architecture(template: dict[str, Any]) -> None:
    assert template["Parameters"]["Architecture"]["AllowedValues"] == ["x86_64", "arm64"]
    layer = template["Resources"]["DependenciesLayer"]
    assert layer["Properties"]["CompatibleArchitectures"] == [{"Ref": "Architecture"}]
    assert layer["Metadata"]["BuildArchitecture"] == {"Ref": "Architecture"}
    makefile = (ROOT / "layers" / "dependencies" / "Makefile").read_text()
    # The wheels' platform follows ARCHITECTURE, which scripts/sam sets from the parameter override.
    assert "PLATFORM_x86_64 := manylinux2014_x86_64" in makefile
    assert "PLATFORM_arm64 := manylinux2014_aarch64" in makefile
    assert "--platform $(PLATFORM)" in makefile
    assert "Architecture=arm64*) export ARCHITECTURE=arm64" in (ROOT / "scripts" / "sam").read_text()


def test_every_function_and_the_layer_ship_bytecode(template: dict[str, Any]) -> None:
    """Lambda's code and layer directories are read-only: what ships as source is compiled at every cold
    start. Each function is built by handlers/Makefile (its sources with hash-based bytecode, valid
    whatever timestamps the zip gives), the layer by its own (bytecode in its sources' place)."""
    for name in FUNCTIONS:
        assert template["Resources"][name].get("Metadata", {}).get("BuildMethod") == "makefile", name
    code = (ROOT / "handlers" / "Makefile").read_text()
    assert "build-%:" in code  # every function's target
    assert "-m compileall -q --invalidation-mode unchecked-hash" in code
    layer = (ROOT / "layers" / "dependencies" / "Makefile").read_text()
    assert "-m compileall -q -b" in layer  # the layer's .pyc in its sources' place
    assert '-name "*.py" -type f -delete' in layer


def test_snapstart_is_a_parameter_away_and_off_by_default(template: dict[str, Any]) -> None:
    function_globals = template["Globals"]["Function"]
    assert function_globals["AutoPublishAlias"] == "live"
    assert function_globals["SnapStart"] == {
        "ApplyOn": {"Fn::If": ["SnapStartEnabled", "PublishedVersions", "None"]}
    }
    assert template["Conditions"]["SnapStartEnabled"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "enabled"]}
    assert parameter_values(template)["SnapStart"] == "disabled"
    for name in FUNCTIONS:  # no function opts out of the alias or of SnapStart
        assert not {"AutoPublishAlias", "SnapStart"} & set(template["Resources"][name]["Properties"]), name


def invokes_the_alias(reference: Any, function: str) -> bool:
    alias = f"{function}Aliaslive"
    return reference == {"Ref": alias} or f"${{{alias}}}" in json.dumps(reference)


def test_every_event_source_rule_schedule_and_api_integration_invokes_the_alias() -> None:
    """What SAM makes of AutoPublishAlias: SnapStart restores only published versions, so whatever
    invokes a function must invoke its alias (never $LATEST)."""
    translated = translated_or_skip({"SnapStart": "enabled"})
    resources = translated["Resources"]
    values = parameter_values(template_of(translated), {"SnapStart": "enabled"})
    found: dict[str, list[str]] = {}
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        kind = resource["Type"]
        if kind in ("AWS::Lambda::EventSourceMapping", "AWS::Lambda::Permission"):
            [function] = [name for name in FUNCTIONS if logical_id.startswith(name)]
            assert invokes_the_alias(properties["FunctionName"], function), logical_id
            found.setdefault(kind, []).append(logical_id)
        elif kind == "AWS::Lambda::EventInvokeConfig":
            assert properties["Qualifier"] == "live", logical_id
            found.setdefault(kind, []).append(logical_id)
        elif kind == "AWS::Events::Rule":
            for target in properties["Targets"]:
                arn = target["Arn"]
                if "Fn::GetAtt" in arn and arn["Fn::GetAtt"][0].endswith("Queue"):
                    continue  # the lifecycle rules feed queues, whose mappings invoke the alias
                [function] = [name for name in FUNCTIONS if logical_id.startswith(name)]
                assert invokes_the_alias(arn, function), logical_id
                found.setdefault(kind, []).append(logical_id)
        elif kind == "AWS::Lambda::Function":
            applied = resolve(properties["SnapStart"], values, translated)
            assert applied == {"ApplyOn": "PublishedVersions"}, logical_id
    integrations = [
        (path, operation["x-amazon-apigateway-integration"]["uri"])
        for path, operations in resources["BillingApi"]["Properties"]["Body"]["paths"].items()
        for operation in operations.values()
    ]
    for path, uri in integrations:
        assert "Aliaslive" in json.dumps(uri), path
    assert len(found["AWS::Lambda::EventSourceMapping"]) == 4  # three lifecycle queues and the seat sync
    assert len(found["AWS::Events::Rule"]) == 4  # users, usage, the flush and the reconcile schedules
    assert len(found["AWS::Lambda::EventInvokeConfig"]) == len(ASYNC_FUNCTIONS)
    # the gate, the read, PATCH, the preview, the document, the two sessions, the webhook
    assert len(integrations) == 8


def test_without_snapstart_no_function_applies_it() -> None:
    translated = translated_or_skip({})
    values = parameter_values(template_of(translated))
    functions = [r for r in translated["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == len(FUNCTIONS)
    applied = [resolve(function["Properties"]["SnapStart"], values, translated) for function in functions]
    assert applied == [{"ApplyOn": "None"}] * len(FUNCTIONS)


def schedules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each Schedule event source, as `<function id><event id>` (the rule's logical id): its properties."""
    return {
        f"{name}{event_id}": event["Properties"]
        for name, resource in resources_of_type(template, "AWS::Serverless::Function").items()
        for event_id, event in (resource["Properties"].get("Events") or {}).items()
        if event["Type"] == "Schedule"
    }


def assert_retries_boundedly_then_dead_letters(rule_id: str, properties: dict[str, Any]) -> None:
    assert properties.get("RetryPolicy") == {
        "MaximumRetryAttempts": {"Ref": "RuleMaximumRetryAttempts"},
        "MaximumEventAgeInSeconds": {"Ref": "RuleMaximumEventAgeSeconds"},
    }, f"{rule_id} has no bounded RetryPolicy"
    dead_letter = properties.get("DeadLetterConfig", {})
    own = {source.source: source.queue_id for source in dead_letter_sources() if source.kind == "rule"}
    assert rule_id in own, f"{rule_id} does not dead-letter"
    assert dead_letter == {"Arn": {"Fn::GetAtt": [own[rule_id], "Arn"]}}


def test_every_rule_retries_boundedly_then_dead_letters(template: dict[str, Any]) -> None:
    routes = event_routes({"EventBusName": "bus"})
    assert {route.function_id for route in routes} == RULE_FUNCTIONS
    for route in routes:
        rule_id = route.rule_id if route.queue_id else f"{route.function_id}{route.rule_id}"
        assert_retries_boundedly_then_dead_letters(rule_id, route.properties)
        assert route.event_bus == "bus"  # the existing SBT bus, by parameter
    parameters = template["Parameters"]
    assert int(parameters["RuleMaximumRetryAttempts"]["MaxValue"]) <= 185
    assert int(parameters["RuleMaximumEventAgeSeconds"]["MaxValue"]) <= 86400


def test_the_usage_flush_and_the_reconciler_run_on_schedules_that_retry_boundedly_then_dead_letter(
    template: dict[str, Any],
) -> None:
    rules = schedules(template)
    expected = {
        "UsageFlushFunctionFlushSchedule": "UsageFlushSchedule",
        "ReconcileFunctionReconcileSchedule": "ReconcileSchedule",
    }
    assert set(rules) == set(expected)
    for rule_id, properties in rules.items():
        assert_retries_boundedly_then_dead_letters(rule_id, properties)
        assert properties["Schedule"] == {"Ref": expected[rule_id]}
    assert parameter_values(template)["UsageFlushSchedule"] == "rate(15 minutes)"
    assert parameter_values(template)["ReconcileSchedule"] == "rate(1 day)"


QUEUED_FUNCTIONS = {
    "SeatSyncFunction": "SeatSyncQueue",
    "ProvisionSuccessFunction": "ProvisionSuccessQueue",
    "TenantUpdatedFunction": "TenantUpdatedQueue",
    "TenantDeletedFunction": "TenantDeletedQueue",
}


def test_every_queue_redrives_to_the_dead_letter_queue_and_its_function_reports_batch_failures(
    template: dict[str, Any],
) -> None:
    sources = {
        name: event["Properties"]
        for name, resource in resources_of_type(template, "AWS::Serverless::Function").items()
        for event in (resource["Properties"].get("Events") or {}).values()
        if event["Type"] == "SQS"
    }
    assert set(sources) == set(QUEUED_FUNCTIONS)
    own = {source.source: source.queue_id for source in dead_letter_sources() if source.kind == "queue"}
    for function, queue_id in QUEUED_FUNCTIONS.items():
        queue = template["Resources"][queue_id]["Properties"]
        assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [own[queue_id], "Arn"]}
        assert 1 <= int(queue["RedrivePolicy"]["maxReceiveCount"]) <= 10
        assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue
        # AWS's advice for an SQS event source: a visibility timeout of at least six function timeouts.
        assert int(queue["VisibilityTimeout"]) >= 6 * template["Globals"]["Function"]["Timeout"]
        source = sources[function]
        assert source["Queue"] == {"Fn::GetAtt": [queue_id, "Arn"]}
        assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert 1 <= int(source["BatchSize"]) <= 10


def test_lifecycle_events_reach_stripe_through_queues_of_bounded_concurrency(
    template: dict[str, Any],
) -> None:
    routes = {route.function_id: route for route in event_routes({"EventBusName": "bus"}) if route.queue_id}
    assert set(routes) == {"ProvisionSuccessFunction", "TenantUpdatedFunction", "TenantDeletedFunction"}
    for function, route in routes.items():
        assert route.queue_id == QUEUED_FUNCTIONS[function]
        assert route.maximum_concurrency == 15  # the default, sized for test mode's 25 requests a second
        mapping = template["Resources"][function]["Properties"]["Events"]
        [source] = mapping.values()
        assert source["Properties"]["ScalingConfig"] == {
            "MaximumConcurrency": {"Ref": "LifecycleConcurrency"}
        }
    # Lambda accepts a maximum concurrency of 2 to 1,000.
    parameter = template["Parameters"]["LifecycleConcurrency"]
    assert (int(parameter["MinValue"]), int(parameter["MaxValue"])) == (2, 1000)
    # A message an invocation failed comes back after the default lease has expired, so its retry
    # takes the tenant over at once rather than finding the dead invocation's lease.
    lease = int(template["Parameters"]["LeaseSeconds"]["Default"])
    for queue_id in QUEUED_FUNCTIONS.values():
        assert int(template["Resources"][queue_id]["Properties"]["VisibilityTimeout"]) > lease, queue_id


def test_only_this_stacks_lifecycle_rules_may_send_to_the_lifecycle_queues(template: dict[str, Any]) -> None:
    policy = template["Resources"]["LifecycleQueuesPolicy"]["Properties"]
    assert sorted(queue["Ref"] for queue in policy["Queues"]) == sorted(
        ["ProvisionSuccessQueue", "TenantUpdatedQueue", "TenantDeletedQueue"]
    )
    allow, deny = policy["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert sorted(arn["Fn::GetAtt"][0] for arn in allow["Condition"]["ArnEquals"]["aws:SourceArn"]) == sorted(
        ["OnboardingRequestRule", "ProvisionSuccessRule", "TenantUpdatedRule", "TenantDeletedRule"]
    )
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# a rule invokes them
ASYNC_FUNCTIONS = {"TenantUsersFunction", "UsageIngestFunction", "UsageFlushFunction", "ReconcileFunction"}


def test_failed_async_invocations_go_to_a_dead_letter_queue_of_their_own(template: dict[str, Any]) -> None:
    assert (
        "EventInvokeConfig" not in template["Globals"]["Function"]
    )  # only where Lambda invokes asynchronously
    assert int(template["Parameters"]["AsyncMaximumEventAgeSeconds"]["MaxValue"]) <= 21600
    own = {source.source: source.queue_id for source in dead_letter_sources() if source.kind == "async"}
    assert set(own) == ASYNC_FUNCTIONS
    for name in FUNCTIONS:
        config = template["Resources"][name]["Properties"].get("EventInvokeConfig")
        if name not in ASYNC_FUNCTIONS:
            assert config is None, name
            continue
        assert config["MaximumRetryAttempts"] == 2
        on_failure = config["DestinationConfig"]["OnFailure"]
        assert on_failure == {"Type": "SQS", "Destination": {"Fn::GetAtt": [own[name], "Arn"]}}


def test_each_dead_letter_queue_holds_the_failures_of_one_source_only(template: dict[str, Any]) -> None:
    """Raw events a rule could not deliver, records a queue gave up on and Lambda's failure records
    never share a queue, so a redrive cannot send one source's messages to another's consumer."""
    sources = dead_letter_sources()
    queues = [source.queue_id for source in sources]
    assert len(queues) == len(set(queues)), "a dead-letter queue serves two sources"
    consumed = set(QUEUED_FUNCTIONS.values())
    for source in sources:
        queue = template["Resources"][source.queue_id]
        assert queue["Type"] == "AWS::SQS::Queue", source
        assert source.queue_id not in consumed, f"{source.queue_id} feeds a function"
        assert queue["Properties"].get("SqsManagedSseEnabled") is True, source.queue_id
        assert int(queue["Properties"]["MessageRetentionPeriod"]) == 1209600, source.queue_id
        if source.kind != "queue":  # no queue may make it its dead-letter queue
            assert queue["Properties"]["RedriveAllowPolicy"] == {"redrivePermission": "denyAll"}
        alarm = template["Resources"][f"{source.queue_id}Alarm"]["Properties"]
        assert alarm["Dimensions"] == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": [source.queue_id, "QueueName"]}}
        ]
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    # Every source has one: every queue a function reads, every rule, every asynchronous function.
    rules = {
        route.rule_id if route.queue_id else f"{route.function_id}{route.rule_id}"
        for route in event_routes({"EventBusName": "bus"})
    }
    expected = {("queue", queue) for queue in consumed}
    expected |= {("rule", rule) for rule in rules | set(schedules(template))}
    expected |= {("async", function) for function in ASYNC_FUNCTIONS}
    assert {(source.kind, source.source) for source in sources} == expected


def test_the_stack_creates_no_event_bus(template: dict[str, Any]) -> None:
    assert not resources_of_type(template, "AWS::Events::EventBus")
    assert "Default" not in template["Parameters"]["EventBusName"]


def test_table_key_schemas_are_what_devtools_creates(template: dict[str, Any]) -> None:
    tables = table_definitions("-suffix")
    assert (
        set(tables)
        == set(resources_of_type(template, "AWS::DynamoDB::Table"))
        == {"AccountsTable", "IdempotencyTable", "UsageTable", "RegistrationsTable", "ReconcileTable"}
    )
    for logical_id, table in tables.items():
        properties = template["Resources"][logical_id]["Properties"]
        assert table.name == f"{logical_id}-suffix"
        assert table.create_table["KeySchema"] == properties["KeySchema"]
        assert table.create_table["AttributeDefinitions"] == properties["AttributeDefinitions"]
        assert table.create_table.get("GlobalSecondaryIndexes") == properties.get("GlobalSecondaryIndexes")
        assert table.create_table["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["SSESpecification"]["SSEEnabled"] is True
    assert tables["AccountsTable"].create_table["KeySchema"] == [
        {"AttributeName": "tenantId", "KeyType": "HASH"}
    ]
    assert tables["AccountsTable"].ttl_attribute is None
    assert tables["IdempotencyTable"].create_table["KeySchema"] == [
        {"AttributeName": "id", "KeyType": "HASH"}
    ]
    assert tables["IdempotencyTable"].ttl_attribute == "expiration"
    usage = tables["UsageTable"].create_table
    assert usage["KeySchema"] == [
        {"AttributeName": "tenantId", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert [(index["IndexName"], index["KeySchema"]) for index in usage["GlobalSecondaryIndexes"]] == [
        (
            "pending",
            [
                {"AttributeName": "pendingTenant", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
        ),
        ("identifier", [{"AttributeName": "identifier", "KeyType": "HASH"}]),
    ]
    assert tables["UsageTable"].ttl_attribute is None
    assert tables["ReconcileTable"].create_table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert tables["ReconcileTable"].ttl_attribute == "expiration"


def test_the_accounts_and_usage_tables_outlive_the_stack(template: dict[str, Any]) -> None:
    for name in ("AccountsTable", "UsageTable"):
        table = template["Resources"][name]
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain", name
        assert table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_each_function_has_its_sample_event() -> None:
    for function in FUNCTIONS.values():
        assert sample_event_path(function.sample).exists()


def test_sample_events_route_to_their_functions() -> None:
    routes = event_routes({"EventBusName": "bus"})
    for name, function in FUNCTIONS.items():
        if function.kind in RULE_KINDS:
            event = json.loads(sample_event_path(function.sample).read_text())
            assert [route.function_id for route in routes_for(event, routes)] == [name]
    for stem, name in {
        "tenant_user_deleted": "TenantUsersFunction",
        "ingest_usage_too_old": "UsageIngestFunction",
    }.items():
        event = json.loads(sample_event_path(stem).read_text())
        assert [route.function_id for route in routes_for(event, routes)] == [name], stem


def test_every_sample_event_reaches_exactly_one_function(template: dict[str, Any]) -> None:
    """No orphan samples: each is routed by a bus rule, or is the SQS batch / schedule event of its
    function, or an API Gateway request for one of the template's routes."""
    routes = event_routes({"EventBusName": "bus"})
    api_routes = {
        (event["Properties"]["Path"], event["Properties"]["Method"].upper()): name
        for name in HTTP_FUNCTIONS
        for event in template["Resources"][name]["Properties"]["Events"].values()
        if event["Type"] == "Api"
    }
    samples = sorted(EVENTS.glob("*.json"))
    assert len(samples) >= 16
    for path in samples:
        event = json.loads(path.read_text())
        kind = delivery(path, event)  # as scripts/local-run tells them apart
        matched = [route.function_id for route in routes_for(event, routes)] if kind == "eventbridge" else []
        if kind == "eventbridge":
            assert len(matched) == 1, path.name
            assert matched[0] in RULE_FUNCTIONS, path.name
        elif kind == "api":
            assert (event["resource"], event["httpMethod"]) in api_routes, path.name
            assert path.name.startswith(("api_", "webhook_")), path.name
            target = api_routes[(event["resource"], event["httpMethod"])]
            assert (target == "StripeWebhookFunction") == path.name.startswith("webhook_"), path.name
        else:
            assert routes_for(event, routes) == [], path.name  # never delivered by a rule on the SBT bus


def test_the_seat_sync_sample_is_an_sqs_batch_naming_the_tenant() -> None:
    event = json.loads(sample_event_path("seat_sync_batch").read_text())
    [record] = event["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert json.loads(record["body"]) == {"tenantId": SEAT_TENANT}
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()  # SQS's body checksum


def test_the_usage_flush_sample_is_a_scheduled_event() -> None:
    event = json.loads(sample_event_path("usage_flush_schedule").read_text())
    assert (event["source"], event["detail-type"], event["detail"]) == ("aws.events", "Scheduled Event", {})
    assert [arn.split(":")[2] for arn in event["resources"]] == ["events"]


def test_offboarding_request_and_tenant_deleted_both_reach_the_delete_function() -> None:
    routes = event_routes({"EventBusName": "bus"})
    for detail_type in ("sbt_aws_offboardingRequest", "sbt_aws_tenantDeleted"):
        event: dict[str, Any] = {"source": "sbt.control.plane", "detail-type": detail_type, "detail": {}}
        assert [route.function_id for route in routes_for(event, routes)] == ["TenantDeletedFunction"]
    ours = {"source": "sbt.control.plane", "detail-type": "sbt_aws_billingSuccess", "detail": {}}
    assert routes_for(ours, routes) == []  # never our own answers


def test_older_sbt_detail_types_are_a_parameter_away() -> None:
    routes = event_routes({"EventBusName": "bus", "ProvisionSuccessDetailType": "provisionSuccess"})
    event = {"source": "sbt.application.plane", "detail-type": "provisionSuccess", "detail": {}}
    assert [route.function_id for route in routes_for(event, routes)] == ["ProvisionSuccessFunction"]
    prefixed = {**event, "detail-type": "sbt_aws_provisionSuccess"}
    assert routes_for(prefixed, routes) == []


def test_each_function_has_an_environment_of_its_own_that_settings_accept(template: dict[str, Any]) -> None:
    """Globals hold only Powertools' own variables; each function names the settings it reads (which
    exactly: tests/test_least_privilege.py, from what its code reads over every sample)."""
    from sbt_billing.bootstrap.settings import Settings

    shared = template["Globals"]["Function"]["Environment"]["Variables"]
    assert all(name.startswith("POWERTOOLS_") for name in shared)
    names = RESOURCE_NAMES
    handlers = function_handlers({"EventBusName": "bus", "StripeSecretName": "secret"}, names)
    assert set(handlers) == set(FUNCTIONS)
    known = set(Settings.variables().values())
    local_only = {"STRIPE_API_KEY", "STRIPE_API_BASE"}
    for name, handler in handlers.items():
        assert handler.unresolved == {}, name
        own = {variable for variable in handler.environment if not variable.startswith("POWERTOOLS_")}
        assert own <= known - local_only, (name, own - known)
    own = {  # settings only the function that uses them gets
        "ProvisionSuccessFunction": {
            "REGISTRATIONS_TABLE",
            "OPEN_ACCOUNT_ON",
            "ONBOARDING_REQUEST_DETAIL_TYPE",
            "PROVISION_SUCCESS_DETAIL_TYPE",
            "PROVISION_FAILURE_DETAIL_TYPE",
        },
        "TenantUpdatedFunction": {"TENANT_UPDATED_DETAIL_TYPE"},
        "TenantDeletedFunction": {"OFFBOARDING_REQUEST_DETAIL_TYPE", "TENANT_DELETED_DETAIL_TYPE"},
    }
    for name, variables in own.items():
        assert variables <= set(handlers[name].environment), name
    for name in set(FUNCTIONS) - set(own):
        assert not set().union(*own.values()) & set(handlers[name].environment), name
        assert "POWERTOOLS_LOG_LEVEL" in handler.environment
        settings = Settings.from_environment(handler.environment)
        assert settings.lease_seconds > handler.timeout or name in LONG_RUNNING
    lifecycle = Settings.from_environment(handlers["ProvisionSuccessFunction"].environment)
    assert set(lifecycle.tier_catalogue) == {"basic", "standard", "premium"}
    assert (lifecycle.usage_table, lifecycle.seat_sync_queue_url) == ("usage", names["SeatSyncQueue"])
    users = Settings.from_environment(handlers["TenantUsersFunction"].environment)
    assert users.user_created_detail_types == {"sbt_aws_tenantUserCreated"}
    # The user function never reaches Stripe, the accounts or the bus: it is given none of them.
    assert not {"STRIPE_SECRET_NAME", "ACCOUNTS_TABLE", "EVENT_BUS_NAME"} & set(
        handlers["TenantUsersFunction"].environment
    )


def test_the_public_webhook_holds_only_the_read_key_when_one_is_given() -> None:
    parameters = {"EventBusName": "bus", "StripeSecretName": "secret", "StripeReadSecretName": "read"}
    handlers = function_handlers(parameters, RESOURCE_NAMES)
    webhook = handlers["StripeWebhookFunction"].environment
    assert "STRIPE_SECRET_NAME" not in webhook
    assert webhook["STRIPE_READ_SECRET_NAME"] == "read"
    # The API reads with it too, and keeps the deployment's key for its PATCH.
    api = handlers["BillingApiFunction"].environment
    assert (api["STRIPE_SECRET_NAME"], api["STRIPE_READ_SECRET_NAME"]) == ("secret", "read")
    # The gate holds no Stripe key at all.
    gate = handlers["BillingGateFunction"].environment
    assert not {"STRIPE_SECRET_NAME", "STRIPE_READ_SECRET_NAME"} & set(gate)
    # The others write to Stripe: the deployment's key, never the read key.
    stripe_free = {"TenantUsersFunction", "BillingGateFunction"}
    for name in set(FUNCTIONS) - {"StripeWebhookFunction", "BillingApiFunction", *stripe_free}:
        assert handlers[name].environment["STRIPE_SECRET_NAME"] == "secret", name
        assert "STRIPE_READ_SECRET_NAME" not in handlers[name].environment, name
    without = function_handlers({"EventBusName": "bus", "StripeSecretName": "secret"}, RESOURCE_NAMES)
    assert without["StripeWebhookFunction"].environment["STRIPE_SECRET_NAME"] == "secret"
    assert without["StripeWebhookFunction"].environment["STRIPE_READ_SECRET_NAME"] == ""


def test_the_user_rule_and_the_created_detail_types_agree() -> None:
    from sbt_billing.bootstrap.settings import Settings

    overrides = {"EventBusName": "bus", "TenantUserCreatedDetailType": "tenantUserCreated"}
    [route] = [route for route in event_routes(overrides) if route.function_id == "TenantUsersFunction"]
    handler = function_handlers(overrides, RESOURCE_NAMES)["TenantUsersFunction"]
    created = Settings.from_environment(handler.environment).user_created_detail_types
    assert created == {"tenantUserCreated"}
    assert set(route.pattern["detail-type"]) == created | {"sbt_aws_tenantUserDeleted"}


def test_lease_cannot_be_set_below_the_function_timeout(template: dict[str, Any]) -> None:
    assert (
        int(template["Parameters"]["LeaseSeconds"]["MinValue"]) > template["Globals"]["Function"]["Timeout"]
    )


def test_enum_parameters_allow_only_what_settings_accept(template: dict[str, Any]) -> None:
    from sbt_billing.bootstrap import settings as module

    enums = {
        "CollectionMode": module.CollectionMode,
        "ProrationBehavior": module.ProrationBehavior,
        "CancellationMode": module.CancellationMode,
        "CustomerOnDelete": module.CustomerOnDelete,
    }
    for parameter, enum in enums.items():
        assert sorted(template["Parameters"][parameter]["AllowedValues"]) == sorted(
            item.value for item in enum
        )


def test_gate_states_are_the_billing_states_settings_know(template: dict[str, Any]) -> None:
    from sbt_billing.domain.billing_policy import BillingState

    pattern = re.compile(template["Parameters"]["GateAllowedStates"]["AllowedPattern"])
    assert pattern.fullmatch(",".join(state.value for state in BillingState))
    assert pattern.fullmatch(template["Parameters"]["GateAllowedStates"]["Default"])
    assert not pattern.fullmatch("active,gold")


def test_no_parameter_environment_variable_or_samconfig_holds_a_secret(template: dict[str, Any]) -> None:
    for name, parameter in template["Parameters"].items():
        assert not SECRET_PATTERN.search(json.dumps(parameter)), name
    raw_environment = json.dumps(template["Globals"]["Function"]["Environment"])
    assert not SECRET_PATTERN.search(raw_environment)
    for handler in function_handlers({"EventBusName": "bus", "StripeSecretName": "secret"}).values():
        assert "STRIPE_API_KEY" not in handler.environment
        assert not SECRET_PATTERN.search(json.dumps(handler.environment))
    for name in FUNCTIONS:
        variables = template["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert not SECRET_PATTERN.search(json.dumps(variables)), name
        assert variables.get("STRIPE_SECRET_NAME") in (
            None,
            {"Ref": "StripeSecretName"},
            {"Fn::If": ["HasStripeReadSecret", {"Ref": "AWS::NoValue"}, {"Ref": "StripeSecretName"}]},
        ), name
    samconfig = (ROOT / "samconfig.toml").read_text()
    tomllib.loads(samconfig)
    assert not SECRET_PATTERN.search(samconfig)


SECRET_ARN = {
    "Fn::If": [
        "StripeSecretIsArn",
        {"Ref": "StripeSecretName"},
        {
            "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
            ":secret:${StripeSecretName}-??????"
        },
    ]
}
ACCOUNTS_CRUD = {"DynamoDBCrudPolicy": {"TableName": {"Ref": "AccountsTable"}}}
ACCOUNTS_READ = {"DynamoDBReadPolicy": {"TableName": {"Ref": "AccountsTable"}}}
USAGE_CRUD = {"DynamoDBCrudPolicy": {"TableName": {"Ref": "UsageTable"}}}
IDEMPOTENCY_CRUD = {"DynamoDBCrudPolicy": {"TableName": {"Ref": "IdempotencyTable"}}}
REGISTRATIONS_CRUD = {"DynamoDBCrudPolicy": {"TableName": {"Ref": "RegistrationsTable"}}}
STRIPE_SECRET = {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": SECRET_ARN}}
READ_SECRET_ARN = {
    "Fn::If": [
        "StripeReadSecretIsArn",
        {"Ref": "StripeReadSecretName"},
        {
            "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
            ":secret:${StripeReadSecretName}-??????"
        },
    ]
}
READ_OR_WRITE_SECRET = {
    "Fn::If": [
        "HasStripeReadSecret",
        {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": READ_SECRET_ARN}},
        STRIPE_SECRET,
    ]
}
PUT_EVENTS = {"EventBridgePutEventsPolicy": {"EventBusName": {"Ref": "EventBusName"}}}
SEND_SEAT_SYNC = {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["SeatSyncQueue", "QueueName"]}}}
# A payment method the tenant gave, handed to the lifecycle (by the webhook, or the reconciler's replay).
SEND_TENANT_UPDATED = {
    "SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["TenantUpdatedQueue", "QueueName"]}}
}
# What each function's code does (tests/test_least_privilege.py checks every call it makes against its
# role): the lifecycle works on accounts, seats and usage, Stripe and the bus (onboarding on SBT's
# registrations too); the user function only records users and schedules syncs; the seat sync and usage
# functions read accounts; the API's changes go through the lifecycle (account writes, billing events,
# Idempotency-Key records) and it only reads the usage table; the gate only reads the accounts.
EXPECTED_POLICIES = {
    "BillingGateFunction": [ACCOUNTS_READ],
    "ProvisionSuccessFunction": [ACCOUNTS_CRUD, REGISTRATIONS_CRUD, USAGE_CRUD, STRIPE_SECRET, PUT_EVENTS],
    "TenantUpdatedFunction": [ACCOUNTS_CRUD, USAGE_CRUD, STRIPE_SECRET, PUT_EVENTS],
    "TenantDeletedFunction": [ACCOUNTS_CRUD, USAGE_CRUD, STRIPE_SECRET, PUT_EVENTS],
    "TenantUsersFunction": [USAGE_CRUD, SEND_SEAT_SYNC],
    "SeatSyncFunction": [ACCOUNTS_READ, USAGE_CRUD, STRIPE_SECRET, SEND_SEAT_SYNC],
    "UsageIngestFunction": [ACCOUNTS_READ, USAGE_CRUD, STRIPE_SECRET, PUT_EVENTS],
    "UsageFlushFunction": [ACCOUNTS_READ, USAGE_CRUD, STRIPE_SECRET, PUT_EVENTS],
    "ReconcileFunction": [
        ACCOUNTS_CRUD,
        {"DynamoDBCrudPolicy": {"TableName": {"Ref": "ReconcileTable"}}},
        IDEMPOTENCY_CRUD,
        USAGE_CRUD,
        STRIPE_SECRET,
        PUT_EVENTS,
        SEND_TENANT_UPDATED,
    ],
    "BillingApiFunction": [
        ACCOUNTS_CRUD,
        IDEMPOTENCY_CRUD,
        USAGE_CRUD,  # a PATCH may carry out a pending close: usage flushed, seats settled
        STRIPE_SECRET,
        {
            "Fn::If": [
                "HasStripeReadSecret",
                {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": READ_SECRET_ARN}},
                {"Ref": "AWS::NoValue"},
            ]
        },
        PUT_EVENTS,
    ],
}


def wildcard_grants(policy: Any, where: str) -> list[str]:
    """What in one entry of a function's Policies grants more than named actions on named resources:
    managed policies, inline statements with `*`, policy templates outside POLICY_TEMPLATES or with a
    literal (rather than a reference to this stack's resources or parameters) for a resource."""
    if isinstance(policy, str):
        return [f"{where}: managed policy {policy}"]
    if not isinstance(policy, dict) or len(policy) != 1:
        return [f"{where}: not a policy: {policy!r}"]
    ((name, argument),) = policy.items()
    if name == "Fn::If":
        _, *branches = argument
        return [
            problem
            for branch in branches
            if branch != {"Ref": "AWS::NoValue"}
            for problem in wildcard_grants(branch, f"{where} (Fn::If)")
        ]
    if name == "Statement" or "Statement" in (argument if isinstance(argument, dict) else {}):
        statements = argument if name == "Statement" else argument["Statement"]
        problems = []
        for statement in statements if isinstance(statements, list) else [statements]:
            actions = statement.get("Action", [])
            resources = statement.get("Resource", [])
            for value in (actions if isinstance(actions, list) else [actions]) + (
                resources if isinstance(resources, list) else [resources]
            ):
                if isinstance(value, str) and "*" in value:
                    problems.append(f"{where}: wildcard {value}")
        return problems
    if name not in POLICY_TEMPLATES:
        return [f"{where}: policy template {name} is not one this stack uses"]
    return [
        f"{where}: {name}.{parameter} is the literal {value!r}"
        for parameter, value in argument.items()
        if not isinstance(value, dict)
    ]


def test_functions_get_least_privilege(template: dict[str, Any]) -> None:
    for name in FUNCTIONS:
        properties = template["Resources"][name]["Properties"]
        assert "Role" not in properties, name
        assert "PermissionsBoundary" not in properties or properties["PermissionsBoundary"], name
        if name in EXPECTED_POLICIES:
            assert properties["Policies"] == EXPECTED_POLICIES[name], name


def test_no_function_is_granted_wildcard_actions_or_resources(template: dict[str, Any]) -> None:
    problems = [
        problem
        for name in FUNCTIONS
        for index, policy in enumerate(template["Resources"][name]["Properties"]["Policies"])
        for problem in wildcard_grants(policy, f"{name}.Policies[{index}]")
    ]
    assert problems == []
    webhook = template["Resources"]["StripeWebhookFunction"]["Properties"]["Policies"]
    assert READ_OR_WRITE_SECRET in webhook  # the read-only key when there is one, never both keys
    assert STRIPE_SECRET not in webhook


def test_the_wildcard_check_catches_broad_grants() -> None:
    assert wildcard_grants("arn:aws:iam::aws:policy/AdministratorAccess", "p")
    assert wildcard_grants({"Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "x"}]}, "p")
    assert wildcard_grants(
        {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}, "p"
    )
    assert wildcard_grants({"DynamoDBCrudPolicy": {"TableName": "*"}}, "p")
    assert wildcard_grants({"AmazonDynamoDBFullAccess": {}}, "p")
    assert wildcard_grants(
        {"Fn::If": ["C", {"S3FullAccessPolicy": {"BucketName": "*"}}, {"Ref": "AWS::NoValue"}]}, "p"
    )
    assert not wildcard_grants(ACCOUNTS_CRUD, "p")


def test_each_rule_may_send_only_to_its_own_dead_letter_queue(template: dict[str, Any]) -> None:
    policy = template["Resources"]["DeadLetterQueuesPolicy"]["Properties"]
    sources = dead_letter_sources()
    assert sorted(queue["Ref"] for queue in policy["Queues"]) == sorted(source.queue_id for source in sources)
    *allows, deny = policy["PolicyDocument"]["Statement"]
    rules = {source.queue_id: source.source for source in sources if source.kind == "rule"}
    assert len(allows) == len(rules)
    for statement in allows:
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage"
        [queue, _] = statement["Resource"]["Fn::GetAtt"]
        assert statement["Condition"] == {
            "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rules[queue], "Arn"]}}
        }
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert len(deny["Resource"]) == len(sources)


def test_outputs_name_the_tables_queues_api_and_functions(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {
        "AccountsTableName",
        "IdempotencyTableName",
        "UsageTableName",
        "ReconcileTableName",
        "SeatSyncQueueUrl",
        "ProvisionSuccessQueueUrl",
        "TenantUpdatedQueueUrl",
        "TenantDeletedQueueUrl",
        "BillingApiUrl",
        "StripeWebhookUrl",
    } <= set(outputs)
    missing = {f"{name}Arn" for name in FUNCTIONS} - set(outputs)
    assert not missing, f"no output for {sorted(missing)}"
    for name in FUNCTIONS:
        assert outputs[f"{name}Arn"]["Value"] == {"Fn::GetAtt": [name, "Arn"]}


def test_functions_keep_their_logs_for_a_bounded_time(template: dict[str, Any]) -> None:
    log_groups = resources_of_type(template, "AWS::Logs::LogGroup")
    for name in FUNCTIONS:
        logging = template["Resources"][name]["Properties"]["LoggingConfig"]
        assert logging["LogFormat"] == "JSON", name
        group = logging["LogGroup"]["Ref"]
        assert log_groups[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


def test_parameter_defaults_resolve_as_cloudformation_passes_them(template: dict[str, Any]) -> None:
    values = parameter_values(template, {"EventBusName": "bus"})
    assert values["ControlPlaneSource"] == ""  # as SbtRelease names it
    assert values["SbtRelease"] == "current"
    assert values["FunctionMemorySize"] == "512"
    with pytest.raises(KeyError):
        parameter_values(template, {"NoSuchParameter": "x"})


# --- Deploy-time rules ------------------------------------------------------------------------------


def rule_refusals(template: dict[str, Any], overrides: dict[str, str]) -> list[str]:
    """What CloudFormation's Rules section refuses for these parameter values: each rule whose
    RuleCondition holds must have every Assert hold."""
    values = parameter_values(template, {"EventBusName": "bus", "StripeSecretName": "s", **overrides})
    refused = []
    for name, rule in (template.get("Rules") or {}).items():
        if "RuleCondition" in rule and not resolve(rule["RuleCondition"], values):
            continue
        refused += [
            f"{name}: {a['AssertDescription']}"
            for a in rule["Assertions"]
            if not resolve(a["Assert"], values)
        ]
    return refused


@pytest.mark.parametrize(
    ("cancellation", "customer", "refused"),
    [
        ("immediately", "mark_offboarded", False),
        ("immediately", "delete", False),
        ("period_end", "mark_offboarded", False),
        ("period_end", "delete", True),  # deleting the customer would cancel the paid period at once
    ],
)
def test_a_deploy_that_would_lose_the_paid_period_is_refused(
    template: dict[str, Any], cancellation: str, customer: str, refused: bool
) -> None:
    problems = rule_refusals(template, {"CancellationMode": cancellation, "CustomerOnDelete": customer})
    assert bool(problems) is refused, problems


def test_the_settings_refuse_what_the_deploy_refuses() -> None:
    from sbt_billing.bootstrap.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="period_end needs CUSTOMER_ON_DELETE mark_offboarded"):
        Settings.from_environment({"CANCELLATION_MODE": "period_end", "CUSTOMER_ON_DELETE": "delete"})
    assert Settings.from_environment({"CANCELLATION_MODE": "period_end"}).customer_on_delete.value == (
        "mark_offboarded"
    )


# --- Least exposure ----------------------------------------------------------------------------------


def test_the_api_stage_keeps_access_logs_without_bodies(template: dict[str, Any]) -> None:
    api = template["Resources"]["BillingApi"]["Properties"]
    condition, setting, otherwise = api["AccessLogSetting"]["Fn::If"]
    assert (condition, otherwise) == ("ApiAccessLogsEnabled", {"Ref": "AWS::NoValue"})
    assert parameter_values(template)["ApiAccessLogs"] == "enabled"
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["BillingApiAccessLogGroup", "Arn"]}
    fields = json.loads(setting["Format"])
    assert {"requestId", "status", "caller", "resource"} <= set(fields)
    assert not re.search(r"requestBody|responseBody|requestOverride|\.header|querystring", setting["Format"])
    group = template["Resources"]["BillingApiAccessLogGroup"]
    assert group["Condition"] == "ApiAccessLogsEnabled"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_public_webhook_is_throttled_and_its_concurrency_bounded(template: dict[str, Any]) -> None:
    [path] = [
        event["Properties"]["Path"]
        for event in template["Resources"]["StripeWebhookFunction"]["Properties"]["Events"].values()
    ]
    settings = template["Resources"]["BillingApi"]["Properties"]["MethodSettings"]
    [webhook] = [entry for entry in settings if entry["ResourcePath"] == "/" + path.replace("/", "~1")]
    assert webhook["HttpMethod"] == "POST"
    assert webhook["ThrottlingRateLimit"] == {"Ref": "WebhookThrottlingRateLimit"}
    assert webhook["ThrottlingBurstLimit"] == {"Ref": "WebhookThrottlingBurstLimit"}
    values = parameter_values(template)
    assert int(values["WebhookThrottlingRateLimit"]) < 100  # below the rest of the API's
    reserved = template["Resources"]["StripeWebhookFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved == {
        "Fn::If": [
            "ReservesWebhookConcurrency",
            {"Ref": "WebhookReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert int(values["WebhookReservedConcurrency"]) > 0
    for name in set(FUNCTIONS) - {"StripeWebhookFunction"}:
        assert "ReservedConcurrentExecutions" not in template["Resources"][name]["Properties"], name


def test_billing_tables_are_protected_from_deletion_and_the_accounts_recoverable(
    template: dict[str, Any],
) -> None:
    assert parameter_values(template)["TableDeletionProtection"] == "true"
    assert resolve(
        template["Conditions"]["ProtectsTables"], parameter_values(template), template["Conditions"]
    )
    for name in ("AccountsTable", "UsageTable"):
        properties = template["Resources"][name]["Properties"]
        assert properties["DeletionProtectionEnabled"] == {"Fn::If": ["ProtectsTables", True, False]}, name
    accounts = template["Resources"]["AccountsTable"]["Properties"]
    assert accounts["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_tracing_is_a_parameter_away_and_off_by_default(template: dict[str, Any]) -> None:
    function_globals = template["Globals"]["Function"]
    assert function_globals["Tracing"] == {"Fn::If": ["TracingEnabled", "Active", {"Ref": "AWS::NoValue"}]}
    assert function_globals["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == {
        "Fn::If": ["TracingEnabled", "false", "true"]
    }
    assert template["Resources"]["BillingApi"]["Properties"]["TracingEnabled"] == {
        "Fn::If": ["TracingEnabled", True, False]
    }
    assert parameter_values(template)["Tracing"] == "disabled"


# --- Who may call the billing API --------------------------------------------------------------------


def translated_or_skip(parameters: dict[str, str]) -> dict[str, Any]:
    from devtools.sam_translate import TranslatorMissing, translate

    try:
        return translate({"EventBusName": "bus", "StripeSecretName": "s", **parameters})
    except TranslatorMissing as error:
        if os.environ.get("CI") == "true":
            pytest.fail(str(error))
        pytest.skip(str(error))


def api_policy(parameters: dict[str, str]) -> list[dict[str, Any]]:
    """The billing API's resource policy as CloudFormation deploys it with these parameters."""
    from devtools.intrinsics import StackNames
    from devtools.intrinsics import resolve as resolve_all

    translated = translated_or_skip(parameters)
    values = {
        **parameter_values(template_of(translated)),
        "EventBusName": "bus",
        "StripeSecretName": "s",
        **parameters,
    }
    names = StackNames(parameters=values, refs={}, attributes={}, conditions=translated["Conditions"])
    policy = translated["Resources"]["BillingApi"]["Properties"]["Body"]["x-amazon-apigateway-policy"]
    statements: list[dict[str, Any]] = resolve_all(policy, names)["Statement"]
    return statements


def template_of(translated: dict[str, Any]) -> dict[str, Any]:
    return {"Parameters": translated["Parameters"]}


WEBHOOK_CALL = ("execute-api:Invoke", "execute-api:/v1/POST/billing/stripe/webhook")
GATE_CALL = ("execute-api:Invoke", "execute-api:/v1/GET/tenants/t-1/billing/status")


def test_without_restriction_the_resource_policy_only_keeps_the_webhook_public() -> None:
    from devtools.iam import decision

    statements = api_policy({})
    assert [statement["Effect"] for statement in statements] == ["Allow"]
    assert decision(statements, *WEBHOOK_CALL, {}) == "Allow"  # Stripe calls without IAM
    assert decision(statements, *GATE_CALL, {"aws:PrincipalArn": "arn:aws:iam::1:role/x"}) == "ImplicitDeny"


def test_an_organisation_id_keeps_the_reads_to_its_principals() -> None:
    from devtools.iam import decision

    statements = api_policy({"ApiAllowedOrganizationId": "o-abcdefghij"})
    inside = {"aws:PrincipalOrgID": "o-abcdefghij", "aws:PrincipalArn": "arn:aws:iam::1:role/app"}
    outside = {"aws:PrincipalOrgID": "o-zzzzzzzzzz", "aws:PrincipalArn": "arn:aws:iam::2:role/app"}
    assert decision(statements, *GATE_CALL, inside) == "Allow"
    assert decision(statements, *GATE_CALL, outside) == "Deny"
    assert decision(statements, *GATE_CALL, {"aws:PrincipalArn": "arn:aws:iam::3:user/u"}) == "Deny"
    assert decision(statements, *WEBHOOK_CALL, {}) == "Allow"


def test_allowed_principals_keep_the_reads_to_them() -> None:
    from devtools.iam import decision

    statements = api_policy({"ApiAllowedPrincipalArns": "arn:aws:iam::111122223333:role/app-plane-*"})
    allowed = {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/app-plane-tenant-7"}
    other = {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/somebody-else"}
    assert decision(statements, *GATE_CALL, allowed) == "Allow"
    assert decision(statements, *GATE_CALL, other) == "Deny"
    assert decision(statements, *WEBHOOK_CALL, {}) == "Allow"


def test_the_suggested_grants_split_the_gate_from_the_full_read_and_allow_one_tenant(
    template: dict[str, Any],
) -> None:
    from devtools.iam import wildcard_match

    names = {"BillingApi": "api1"}
    outputs = {
        name: resolve(output["Value"], names)
        for name, output in template["Outputs"].items()
        if "InvokeArn" in name
    }
    base = "arn:aws:execute-api:us-east-1:123456789012:api1/v1/GET"
    gate, full = f"{base}/tenants/t-1/billing/status", f"{base}/tenants/t-1/billing"
    assert wildcard_match(outputs["BillingGateInvokeArn"], gate)
    assert not wildcard_match(outputs["BillingGateInvokeArn"], full)  # the gate holds no personal data
    assert wildcard_match(outputs["BillingReadInvokeArn"], full)
    assert not wildcard_match(outputs["BillingReadInvokeArn"], gate)
    per_tenant = outputs["BillingTenantInvokeArnPattern"]
    assert per_tenant.endswith("/v1/GET/tenants/${tenantId}/*")
    mine = per_tenant.replace("${tenantId}", "t-1")
    assert wildcard_match(mine, gate)
    assert wildcard_match(mine, full)
    assert not wildcard_match(mine, f"{base}/tenants/t-2/billing")
    api_doc = (ROOT / "docs" / "API.md").read_text()
    assert "${aws:PrincipalTag/tenantId}" in api_doc
    assert "BillingGateInvokeArn" in api_doc
    assert "ApiAllowedOrganizationId" in api_doc

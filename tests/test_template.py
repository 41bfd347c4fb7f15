"""template.yaml: it lints, it says what the handlers need, and what `sam build` makes of it runs."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import stripe

from devtools.local_run import seed_catalogue
from devtools.moto_server import AwsClients, EventCapture, LocalResources, aws_environment, create_resources
from devtools.template import (
    ROOT,
    event_routes,
    function_handlers,
    load_template,
    parameter_values,
    routes_for,
    table_definitions,
)

TEMPLATE = ROOT / "template.yaml"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
EVENTS = ROOT / "events"
# Lambda allows 250 MB unzipped; this budget catches a dev dependency or boto3 slipping in. The runtime
# set measures about 26.8 MB (7.1 MB zipped), 13.6 MB of it the stripe SDK (its typed params alone 6 MB),
# so the budget is 30 MB rather than 25.
ARTIFACT_LIMIT_BYTES = 30 * 1000 * 1000
SECRET_PATTERN = re.compile(r"\b(sk|rk|pk)_(live|test)_[0-9A-Za-z]{4,}|\bwhsec_[0-9A-Za-z]{4,}")
FUNCTIONS = {
    "ProvisionSuccessFunction": ("provision_success.lambda_handler", "provision_success"),
    "TenantUpdatedFunction": ("tenant_updated.lambda_handler", "tenant_updated"),
    "TenantDeletedFunction": ("tenant_deleted.lambda_handler", "tenant_deleted"),
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in template["Resources"].items() if resource["Type"] == kind}


def sample_event_path(stem: str) -> Path:
    """events/<stem>.json, or the first events/NN_<stem>.json."""
    exact = EVENTS / f"{stem}.json"
    if exact.exists():
        return exact
    numbered = sorted(EVENTS.glob(f"[0-9]*_{stem}.json"))
    if not numbered:
        pytest.fail(f"no sample event events/{stem}.json (or events/NN_{stem}.json)")
    return numbered[0]


def sam_cli() -> Path:
    if SAM.exists():
        return SAM
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"the SAM CLI is missing at {SAM.relative_to(ROOT)}: scripts/test installs it (ensure_sam)"
        )
    pytest.skip(f"the SAM CLI is not installed at {SAM.relative_to(ROOT)}: run scripts/test to install it")


def tool_environment() -> dict[str, str]:
    """The environment for sam and cfn-lint: the project venv's python3.13 first on PATH, no telemetry,
    a region (sam's translator needs one) and no way to reach a real AWS account."""
    environment = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    environment.pop("AWS_ENDPOINT_URL", None)
    return environment


# --- Linters ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cfn_lint_reports_nothing() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)],
        cwd=ROOT,
        env=tool_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.slow
def test_sam_validate_lint_reports_nothing() -> None:
    result = subprocess.run(
        [str(sam_cli()), "validate", "--lint", "--template-file", str(TEMPLATE)],
        cwd=ROOT,
        env=tool_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "is a valid SAM Template" in output


# --- What the template says --------------------------------------------------------------------------


def test_every_function_handler_imports_to_a_callable() -> None:
    handlers = function_handlers({"EventBusName": "bus", "StripeSecretName": "secret"})
    assert {name: handler.handler for name, handler in handlers.items()} == {
        name: handler for name, (handler, _) in FUNCTIONS.items()
    }
    for handler in handlers.values():
        assert (ROOT / handler.code_uri).resolve() == (ROOT / "handlers").resolve()
        module = importlib.import_module(handler.module)
        assert callable(getattr(module, handler.function)), handler.handler


def test_functions_run_python313_on_x86_64_for_30_seconds(template: dict[str, Any]) -> None:
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["x86_64"]
    assert function_globals["Timeout"] == 30
    for handler in function_handlers({"EventBusName": "bus", "StripeSecretName": "secret"}).values():
        assert handler.timeout == 30
        assert handler.memory_size == "512"


def test_every_rule_retries_boundedly_then_dead_letters(template: dict[str, Any]) -> None:
    queues = resources_of_type(template, "AWS::SQS::Queue")
    routes = event_routes({"EventBusName": "bus"})
    assert {route.function_id for route in routes} == set(FUNCTIONS)
    for route in routes:
        retry = route.properties.get("RetryPolicy")
        assert retry, f"{route.function_id}.{route.rule_id} has no RetryPolicy"
        assert set(retry) == {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"}
        dead_letter = route.properties.get("DeadLetterConfig", {}).get("Arn", {})
        assert dead_letter.get("Fn::GetAtt", [None])[0] in queues, f"{route.rule_id} has no DeadLetterConfig"
        assert route.event_bus == "bus"  # the existing SBT bus, by parameter
    parameters = template["Parameters"]
    assert int(parameters["RuleMaximumRetryAttempts"]["MaxValue"]) <= 185
    assert int(parameters["RuleMaximumEventAgeSeconds"]["MaxValue"]) <= 86400


def test_failed_async_invocations_go_to_the_same_dead_letter_queue(template: dict[str, Any]) -> None:
    config = template["Globals"]["Function"]["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 2
    assert int(template["Parameters"]["AsyncMaximumEventAgeSeconds"]["MaxValue"]) <= 21600
    on_failure = config["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    assert on_failure["Destination"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    queue = template["Resources"]["DeadLetterQueue"]["Properties"]
    assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue


def test_the_stack_creates_no_event_bus(template: dict[str, Any]) -> None:
    assert not resources_of_type(template, "AWS::Events::EventBus")
    assert "Default" not in template["Parameters"]["EventBusName"]


def test_table_key_schemas_are_what_devtools_creates(template: dict[str, Any]) -> None:
    tables = table_definitions("-suffix")
    assert (
        set(tables)
        == set(resources_of_type(template, "AWS::DynamoDB::Table"))
        == {
            "AccountsTable",
            "IdempotencyTable",
        }
    )
    for logical_id, table in tables.items():
        properties = template["Resources"][logical_id]["Properties"]
        assert table.name == f"{logical_id}-suffix"
        assert table.create_table["KeySchema"] == properties["KeySchema"]
        assert table.create_table["AttributeDefinitions"] == properties["AttributeDefinitions"]
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


def test_the_accounts_table_outlives_the_stack(template: dict[str, Any]) -> None:
    accounts = template["Resources"]["AccountsTable"]
    assert accounts["DeletionPolicy"] == accounts["UpdateReplacePolicy"] == "Retain"
    assert accounts["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_sample_events_route_to_their_functions() -> None:
    routes = event_routes({"EventBusName": "bus"})
    for function_id, (_, stem) in FUNCTIONS.items():
        event = json.loads(sample_event_path(stem).read_text())
        assert [route.function_id for route in routes_for(event, routes)] == [function_id]


def test_offboarding_request_and_tenant_deleted_both_reach_the_delete_function() -> None:
    routes = event_routes({"EventBusName": "bus"})
    for detail_type in ("sbt_aws_offboardingRequest", "sbt_aws_tenantDeleted"):
        event = {"source": "sbt.control.plane", "detail-type": detail_type, "detail": {}}
        assert [route.function_id for route in routes_for(event, routes)] == ["TenantDeletedFunction"]
    ours = {"source": "sbt.control.plane", "detail-type": "sbt_aws_billingSuccess", "detail": {}}
    assert routes_for(ours, routes) == []  # never our own answers


def test_older_sbt_detail_types_are_a_parameter_away() -> None:
    routes = event_routes({"EventBusName": "bus", "ProvisionSuccessDetailType": "provisionSuccess"})
    event = {"source": "sbt.application.plane", "detail-type": "provisionSuccess", "detail": {}}
    assert [route.function_id for route in routes_for(event, routes)] == ["ProvisionSuccessFunction"]
    prefixed = {**event, "detail-type": "sbt_aws_provisionSuccess"}
    assert routes_for(prefixed, routes) == []


def test_every_setting_reaches_every_function() -> None:
    from sbt_billing.settings import Settings

    names = {"AccountsTable": "accounts", "IdempotencyTable": "idempotency"}
    handlers = function_handlers({"EventBusName": "bus", "StripeSecretName": "secret"}, names)
    local_only = {"STRIPE_API_KEY", "STRIPE_API_BASE"}
    expected = {field.alias for field in Settings.model_fields.values() if field.alias} - local_only
    for handler in handlers.values():
        assert handler.unresolved == {}
        assert expected | {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= set(
            handler.environment
        )
        assert "POWERTOOLS_LOG_LEVEL" in handler.environment
        assert not local_only & set(handler.environment)
        settings = Settings.from_environment(handler.environment)
        assert settings.lease_seconds > handler.timeout
        assert set(settings.tier_catalogue) == {"basic", "standard", "premium"}


def test_lease_cannot_be_set_below_the_function_timeout(template: dict[str, Any]) -> None:
    assert (
        int(template["Parameters"]["LeaseSeconds"]["MinValue"]) > template["Globals"]["Function"]["Timeout"]
    )


def test_enum_parameters_allow_only_what_settings_accept(template: dict[str, Any]) -> None:
    from sbt_billing import settings as module

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
    from sbt_billing.models import BillingState

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
    assert template["Globals"]["Function"]["Environment"]["Variables"]["STRIPE_SECRET_NAME"] == {
        "Ref": "StripeSecretName"
    }
    samconfig = (ROOT / "samconfig.toml").read_text()
    tomllib.loads(samconfig)
    assert not SECRET_PATTERN.search(samconfig)


def test_functions_get_least_privilege(template: dict[str, Any]) -> None:
    secret_arn = {
        "Fn::If": [
            "StripeSecretIsArn",
            {"Ref": "StripeSecretName"},
            {
                "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
                ":secret:${StripeSecretName}-??????"
            },
        ]
    }
    expected = [
        {"DynamoDBCrudPolicy": {"TableName": {"Ref": "AccountsTable"}}},
        {"DynamoDBCrudPolicy": {"TableName": {"Ref": "IdempotencyTable"}}},
        {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": secret_arn}},
        {"EventBridgePutEventsPolicy": {"EventBusName": {"Ref": "EventBusName"}}},
    ]
    for name in FUNCTIONS:
        properties = template["Resources"][name]["Properties"]
        assert "Role" not in properties
        assert properties["Policies"] == expected, name


def test_queue_policy_lets_only_this_stacks_rules_send(template: dict[str, Any]) -> None:
    statement = template["Resources"]["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    rules = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert sorted(rule["Fn::GetAtt"][0] for rule in rules) == sorted(
        f"{route.function_id}{route.rule_id}" for route in event_routes({"EventBusName": "bus"})
    )


def test_outputs_name_the_tables_queue_and_functions(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {"AccountsTableName", "IdempotencyTableName", "DeadLetterQueueUrl"} <= set(outputs)
    assert {f"{name}Arn" for name in FUNCTIONS} <= set(outputs)


def test_functions_keep_their_logs_for_a_bounded_time(template: dict[str, Any]) -> None:
    log_groups = resources_of_type(template, "AWS::Logs::LogGroup")
    for name in FUNCTIONS:
        group = template["Resources"][name]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert log_groups[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_parameter_defaults_resolve_as_cloudformation_passes_them(template: dict[str, Any]) -> None:
    values = parameter_values(template, {"EventBusName": "bus"})
    assert values["ControlPlaneSource"] == "sbt.control.plane"
    assert values["FunctionMemorySize"] == "512"
    with pytest.raises(KeyError):
        parameter_values(template, {"NoSuchParameter": "x"})


# --- The built artifact -------------------------------------------------------------------------------

# Runs in a fresh interpreter whose path is the artifact and the runtime's boto3, nothing else:
# imports the handler, invokes it with the sample event, writes the result and where modules came from.
INVOKE = r"""
import importlib, json, sys, time, uuid

handler, event_path, result_path = sys.argv[1:4]
module_name, function_name = handler.rsplit(".", 1)


class Context:
    function_name = module_name
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + module_name
    aws_request_id = str(uuid.uuid4())
    log_group_name = "/aws/lambda/" + module_name
    log_stream_name = "artifact-test"
    _deadline = time.monotonic() + 30

    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)


with open(event_path) as stream:
    event = json.load(stream)
result = getattr(importlib.import_module(module_name), function_name)(event, Context())
origins = {
    name: getattr(sys.modules.get(name), "__file__", None)
    for name in (module_name, "sbt_billing", "stripe", "pydantic", "aws_lambda_powertools", "boto3", "botocore")
}
with open(result_path, "w") as stream:
    json.dump({"result": result, "origins": origins, "path": sys.path}, stream)
"""

# What Lambda's python3.13 runtime provides besides the artifact (it comes after the artifact on the path).
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "dateutil", "jmespath", "six", "urllib3")


@pytest.fixture(scope="module")
def build_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A python3.13 with pip for `sam build` (the uv-synced project venv has no pip): a throwaway venv
    of the project venv's interpreter, seeded offline by ensurepip. Returns its bin directory."""
    target = tmp_path_factory.mktemp("build-python")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(target)], check=True, timeout=300)
    return target / "bin"


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory, build_python: Path) -> Path:
    work = tmp_path_factory.mktemp("sam")
    build, cache = work / "build", work / "cache"
    environment = tool_environment()
    environment["PATH"] = os.pathsep.join([str(build_python), environment["PATH"]])
    result = subprocess.run(
        [
            str(sam_cli()),
            "build",
            "--template-file",
            str(TEMPLATE),
            "--build-dir",
            str(build),
            "--cache-dir",
            str(cache),
            "--cached",
            "--parallel",
        ],
        cwd=work,  # sam keeps its dependency cache (.aws-sam/deps) under the working directory
        env=environment,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return build


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only what Lambda's runtime adds (boto3 and its dependencies), linked from
    the project venv: nothing else of the venv is on the artifact's path."""
    runtime = tmp_path_factory.mktemp("lambda-runtime")
    for name in RUNTIME_MODULES:
        module = importlib.import_module(name)
        source = Path(str(module.__file__))
        source = source.parent if source.name == "__init__.py" else source
        (runtime / source.name).symlink_to(source, target_is_directory=source.is_dir())
    return runtime


def tree_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())


@pytest.fixture(scope="module")
def stack(moto_endpoint: str, emulator_url: str) -> tuple[LocalResources, str]:
    key = "sk_test_artifact_0000000000000000"
    resources = create_resources(moto_endpoint, stripe_api_key=key)
    catalogue = json.loads(parameter_values(load_template(TEMPLATE))["TierCatalogue"])
    seed_catalogue(stripe.StripeClient(key, base_addresses={"api": emulator_url}), catalogue)
    return resources, emulator_url


@pytest.mark.slow
def test_built_artifacts_are_small(build_dir: Path, record_property: Any) -> None:
    for name in FUNCTIONS:
        artifact = build_dir / name
        assert (artifact / "requirements.txt").exists() or (artifact / "stripe").is_dir()
        size = tree_size(artifact)
        record_property(f"{name}_unzipped_bytes", size)
        print(f"{name}: {size / 1e6:.1f} MB unzipped")  # shown with pytest -s
        assert size < ARTIFACT_LIMIT_BYTES, f"{name} is {size / 1e6:.1f} MB unzipped"
        assert not (artifact / "boto3").exists(), "boto3 comes with the runtime: keep it out of the artifact"
        assert not (artifact / "tests").exists()


@pytest.mark.slow
def test_built_artifacts_handle_the_sample_events(
    build_dir: Path, runtime_dir: Path, stack: tuple[LocalResources, str], tmp_path: Path
) -> None:
    resources, emulator_url = stack
    capture = EventCapture(AwsClients(resources.endpoint, resources.region), resources.event_bus_name)
    handlers = function_handlers(resources.parameter_overrides(), resources.resource_names())
    for name, (handler, stem) in FUNCTIONS.items():  # in lifecycle order: provision, update, delete
        artifact = build_dir / name
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join([str(artifact), str(runtime_dir)]),
            **aws_environment(resources.endpoint, resources.region),
            **handlers[name].environment,
            # The key comes from the Secrets Manager secret (on moto), as in AWS; Stripe is the emulator.
            "STRIPE_API_BASE": emulator_url,
        }
        result_path = tmp_path / f"{name}.json"
        run = subprocess.run(
            [
                sys.executable,
                "-S",
                "-P",
                "-c",
                INVOKE,
                handler,
                str(sample_event_path(stem)),
                str(result_path),
            ],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, f"{name}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        report = json.loads(result_path.read_text())
        for module, origin in report["origins"].items():
            where = runtime_dir if module in ("boto3", "botocore") else artifact
            assert origin is not None, f"{module} was not imported"
            assert Path(origin).is_relative_to(where), f"{module} came from {origin}"
        assert not any(".venv" in entry or entry.startswith(str(ROOT)) for entry in report["path"])
        assert report["result"].get("result") == "applied", f"{name}: {report['result']}"
        published = capture.drain()
        assert [event["detail-type"] for event in published] == ["sbt_aws_billingSuccess"], name

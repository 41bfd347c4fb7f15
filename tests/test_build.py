"""template.yaml built and linted: cfn-lint and `sam validate --lint` report nothing, and the artifacts
`sam build` makes are small and handle the sample events in a Lambda-like interpreter (slow).
(The template read as data: tests/test_template.py.)"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import stripe

from devtools.local_run import (
    LOCAL_PARAMETERS,
    LOCAL_TIER_CATALOGUE,
    LOCAL_USAGE_METERS,
    SEAT_PRICE,
    rebased,
    seed_catalogue,
    seed_meters,
)
from devtools.moto_server import AwsClients, EventCapture, LocalResources, aws_environment, create_resources
from devtools.template import (
    ROOT,
    function_handlers,
)
from tests.support.functions import (
    ARTIFACT_LIMIT_BYTES,
    FUNCTIONS,
    SEAT_TENANT,
    TEMPLATE,
    sample_event_path,
)
from tests.toolchain import sam_cli, tool_environment, tree_size

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

# The functions that never call Stripe, so never load its SDK (their cold start is the lighter for it).
STRIPE_FREE_FUNCTIONS = {"BillingGateFunction", "TenantUsersFunction"}

# What Lambda's python3.13 runtime provides besides the artifact (it comes after the artifact on the path).
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "dateutil", "jmespath", "six", "urllib3")


# `sam build` runs once per test run: tests/conftest.py's session fixtures build_python and build_dir.


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


@dataclass(frozen=True)
class ArtifactStack:
    resources: LocalResources
    emulator_url: str
    parameters: dict[str, str]  # the template's, for the local stack: seats, a meter, a webhook secret
    webhook_signing_secret: str

    def stripe(self) -> stripe.StripeClient:
        return stripe.StripeClient(ARTIFACT_STRIPE_KEY, base_addresses={"api": self.emulator_url})


ARTIFACT_STRIPE_KEY = "sk_test_artifact_0000000000000000"


@pytest.fixture(scope="module")
def stack(moto_endpoint: str, emulator_url: str) -> ArtifactStack:
    """The local stack of scripts/local-run: per-seat prices for standard and premium, the API-call
    meter and its metered price, no delay before a seat sync; plus a webhook signing secret."""
    resources = create_resources(moto_endpoint, stripe_api_key=ARTIFACT_STRIPE_KEY)
    signing_secret = "whsec_" + os.urandom(16).hex()
    webhook_secret_name = f"{resources.secret_name}-webhook"
    AwsClients(moto_endpoint, resources.region).secretsmanager().create_secret(
        Name=webhook_secret_name, SecretString=signing_secret
    )
    client = stripe.StripeClient(ARTIFACT_STRIPE_KEY, base_addresses={"api": emulator_url})
    seed_catalogue(client, LOCAL_TIER_CATALOGUE)
    seed_meters(client, LOCAL_USAGE_METERS)
    parameters = {
        **resources.parameter_overrides(),
        **LOCAL_PARAMETERS,
        "WebhookSecretName": webhook_secret_name,
    }
    return ArtifactStack(resources, emulator_url, parameters, signing_secret)


@pytest.mark.slow
def test_built_artifacts_are_small(build_dir: Path, record_property: Any) -> None:
    layer = build_dir / "DependenciesLayer" / "python"
    assert (layer / "stripe" / "__init__.pyc").is_file()
    assert not (layer / "stripe" / "params").exists(), "stripe's typed params are for type checking only"
    assert not (layer / "boto3").exists(), "boto3 comes with the runtime: keep it out of the layer"
    layer_size = tree_size(layer)
    record_property("DependenciesLayer_unzipped_bytes", layer_size)
    for name in FUNCTIONS:
        artifact = build_dir / name
        assert not (artifact / "stripe").exists(), "the dependencies are in the layer, once"
        size = tree_size(artifact) + layer_size  # what Lambda unpacks for the function
        record_property(f"{name}_unzipped_bytes", size)
        print(f"{name}: {size / 1e6:.1f} MB unzipped with its layer")  # shown with pytest -s
        assert size < ARTIFACT_LIMIT_BYTES, f"{name} is {size / 1e6:.1f} MB unzipped with its layer"
        assert not (artifact / "boto3").exists(), "boto3 comes with the runtime: keep it out of the artifact"
        assert not (artifact / "tests").exists()


def sources_without_bytecode(tree: Path) -> list[str]:
    """The modules under `tree` that ship without an unchecked hash-based .pyc for python3.13 beside
    them (PEP 552: flags 0b01 in the header's second word)."""
    missing = []
    for source in tree.rglob("*.py"):
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        header = compiled.read_bytes()[:8] if compiled.is_file() else b""
        if len(header) < 8 or int.from_bytes(header[4:8], "little") != 0b01:
            missing.append(str(source.relative_to(tree)))
    return missing


@pytest.mark.slow
def test_built_artifacts_ship_bytecode(build_dir: Path) -> None:
    layer = build_dir / "DependenciesLayer" / "python"
    assert list(layer.rglob("*.py")) == []  # each library module is its .pyc alone
    assert (layer / "pydantic" / "main.pyc").is_file()
    assert (layer / "stripe" / "__init__.pyc").is_file()
    for name in FUNCTIONS:
        assert sources_without_bytecode(build_dir / name) == [], name
        assert not (build_dir / name / "Makefile").exists()


@dataclass
class BuiltFunctions:
    """Invokes a built function, each time in a fresh interpreter that sees only its artifact and
    what Lambda's runtime adds, against the local stack."""

    build_dir: Path
    runtime_dir: Path
    stack: ArtifactStack
    layer_dir: Path
    work: Path
    runs: int = 0

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        resources = self.stack.resources
        handler = function_handlers(self.stack.parameters, resources.resource_names())[name]
        assert handler.unresolved == {}, name
        artifact = self.build_dir / name
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "LANG": "C.UTF-8",
            # Lambda's order: the function's code, its layer's python/, then the runtime's own packages.
            "PYTHONPATH": os.pathsep.join([str(artifact), str(self.layer_dir), str(self.runtime_dir)]),
            **aws_environment(resources.endpoint, resources.region),
            **handler.environment,
            # The key comes from the Secrets Manager secret (on moto), as in AWS; Stripe is the emulator.
            "STRIPE_API_BASE": self.stack.emulator_url,
        }
        self.runs += 1
        event_path = self.work / f"{self.runs:02d}-{name}-event.json"
        result_path = self.work / f"{self.runs:02d}-{name}-result.json"
        event_path.write_text(json.dumps(event))
        run = subprocess.run(
            [
                sys.executable,
                "-S",
                "-P",
                "-c",
                INVOKE,
                FUNCTIONS[name].handler,
                str(event_path),
                str(result_path),
            ],
            cwd=self.work,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, f"{name}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        report = json.loads(result_path.read_text())
        for module, origin in report["origins"].items():
            if module == "stripe" and name in STRIPE_FREE_FUNCTIONS:
                assert origin is None, f"{name} loaded stripe, which it never calls"
                continue
            where = (
                self.runtime_dir
                if module in ("boto3", "botocore")
                else artifact
                if module == FUNCTIONS[name].handler.split(".")[0] or module == "sbt_billing"
                else self.layer_dir
            )
            assert origin is not None, f"{name}: {module} was not imported"
            assert Path(origin).is_relative_to(where), f"{name}: {module} came from {origin}"
        assert not any(".venv" in entry or entry.startswith(str(ROOT)) for entry in report["path"])
        return report["result"]


def sample(function: str) -> dict[str, Any]:
    """The function's sample event, its times moved to now as scripts/local-run moves them."""
    event: dict[str, Any] = rebased(json.loads(sample_event_path(FUNCTIONS[function].sample).read_text()))
    return event


def signed(event: dict[str, Any], secret: str, replacements: dict[str, str]) -> dict[str, Any]:
    """The webhook sample with its body's placeholder ids replaced and a fresh Stripe-Signature."""
    body = str(event["body"])
    for placeholder, value in replacements.items():
        body = body.replace(placeholder, value)
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    header = f"t={timestamp},v1={digest}"
    return {
        **event,
        "body": body,
        "headers": {**event["headers"], "Stripe-Signature": header},
        "multiValueHeaders": {**event["multiValueHeaders"], "Stripe-Signature": [header]},
    }


def seat_quantity(client: stripe.StripeClient, subscription_id: str) -> int:
    subscription = client.v1.subscriptions.retrieve(subscription_id)
    [seat_item] = [item for item in subscription["items"].data if item.price.lookup_key == SEAT_PRICE]
    return int(seat_item.quantity or 0)


@pytest.mark.slow
def test_built_artifacts_handle_the_sample_events(
    build_dir: Path, runtime_dir: Path, stack: ArtifactStack, tmp_path: Path
) -> None:
    resources = stack.resources
    capture = EventCapture(AwsClients(resources.endpoint, resources.region), resources.event_bus_name)
    built = BuiltFunctions(
        build_dir=build_dir,
        runtime_dir=runtime_dir,
        stack=stack,
        layer_dir=build_dir / "DependenciesLayer" / "python",
        work=tmp_path,
    )
    invoked: set[str] = set()

    def invoke(name: str, event: dict[str, Any]) -> Any:
        invoked.add(name)
        return built.invoke(name, event)

    def published() -> list[str]:
        return [event["detail-type"] for event in capture.drain()]

    # Lifecycle: SBT registers a tenant (acme, basic), provisions it (by its registration id), and its
    # customer details change.
    onboarded = invoke(
        "ProvisionSuccessFunction",
        rebased(json.loads(sample_event_path("onboarding_request").read_text())),
    )
    assert onboarded.get("result") == "recorded", onboarded
    opened = invoke("ProvisionSuccessFunction", sample("ProvisionSuccessFunction"))
    assert opened.get("result") == "applied", opened
    assert published() == ["sbt_aws_billingSuccess"]
    updated = invoke("TenantUpdatedFunction", sample("TenantUpdatedFunction"))
    assert updated.get("result") == "applied", updated
    assert published() == ["sbt_aws_billingSuccess"]

    # Usage for globex before its account opens is kept; the scheduled flush sends it once it is open.
    usage = invoke("UsageIngestFunction", sample("UsageIngestFunction"))
    assert (usage["new"], usage["sent"], usage["rejected"]) == (2, 0, []), usage
    globex = invoke(
        "ProvisionSuccessFunction",
        rebased(json.loads(sample_event_path("provision_success_flat_missing_email").read_text())),
    )
    assert (globex.get("result"), globex.get("tenant_id")) == ("applied", SEAT_TENANT), globex
    assert published() == ["sbt_aws_billingSuccess"]
    flushed = invoke("UsageFlushFunction", sample("UsageFlushFunction"))
    assert flushed == {"operation": "flush_usage", "sent": 2}

    # Seats: a user is recorded, and the seat sync batch (naming globex) sets its seat quantity.
    user = invoke("TenantUsersFunction", sample("TenantUsersFunction"))
    assert user.get("result") == "recorded", user
    synced = invoke("SeatSyncFunction", sample("SeatSyncFunction"))
    assert synced == {"batchItemFailures": []}
    assert seat_quantity(stack.stripe(), globex["subscription_id"]) == 1
    assert "sbt_aws_billingFailure" not in published()

    # The billing API answers for the tenant that now exists: the gate, and the full read from Stripe.
    status = invoke("BillingGateFunction", sample("BillingGateFunction"))
    assert status["statusCode"] == 200, status
    assert json.loads(status["body"])["tenantId"] == opened["tenant_id"]
    billing = invoke("BillingApiFunction", sample("BillingApiFunction"))
    assert billing["statusCode"] == 200, billing
    assert json.loads(billing["body"])["tenantId"] == opened["tenant_id"]
    assert json.loads(billing["body"])["customer"]["id"] == opened["customer_id"]

    # The webhook: a delivery signed with the endpoint's secret is applied, a malformed one refused.
    delivery = signed(
        json.loads(sample_event_path("webhook_invoice_paid").read_text()),
        stack.webhook_signing_secret,
        {
            "cus_SbtSampleCustomer1": opened["customer_id"],
            "sub_SbtSampleSubscription1": opened["subscription_id"],
        },
    )
    paid = invoke("StripeWebhookFunction", delivery)
    assert (paid["statusCode"], json.loads(paid["body"]).get("result")) == (200, "applied"), paid
    malformed = invoke("StripeWebhookFunction", sample("StripeWebhookFunction"))
    assert (malformed["statusCode"], json.loads(malformed["body"])) == (400, {"error": "invalid_signature"})
    malformed = invoke(
        "StripeWebhookFunction", signed(sample("StripeWebhookFunction"), stack.webhook_signing_secret, {})
    )
    assert (malformed["statusCode"], json.loads(malformed["body"])) == (400, {"error": "invalid_event"})
    capture.drain()

    # And acme is offboarded, by a batch from the function's queue as deployed (its event moved to
    # now); the same fact again, as a bare event, changes nothing.
    batch = json.loads(sample_event_path("tenant_deleted_queue_batch").read_text())
    [record] = batch["Records"]
    record["body"] = json.dumps(rebased(json.loads(record["body"])))
    record["md5OfBody"] = hashlib.md5(record["body"].encode()).hexdigest()
    assert invoke("TenantDeletedFunction", batch) == {"batchItemFailures": []}
    assert published() == ["sbt_aws_billingSuccess"]
    again = invoke("TenantDeletedFunction", sample("TenantDeletedFunction"))
    assert again.get("result") == "unchanged", again
    assert published() == []

    # The scheduled reconcile run compares every account with Stripe and finishes its pass.
    reconciled = invoke("ReconcileFunction", sample("ReconcileFunction"))
    assert (reconciled.get("operation"), reconciled.get("complete")) == ("reconcile", True), reconciled

    assert invoked == set(FUNCTIONS)

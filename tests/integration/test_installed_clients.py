"""The clients as a caller installs them, against the billing API on loopback (the template's routes
behind a SigV4-verifying gateway, moto's server and the Stripe emulator): the Python client's wheel in a
fresh virtualenv, and the TypeScript client built from its lock file and run by node's test runner."""

from __future__ import annotations

import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.moto_server import DUMMY_CREDENTIALS
from devtools.template import ROOT
from tests.support.harness import sample, stack_on
from tests.support.local_gateway import CREDENTIALS, LocalApiGateway
from tests.toolchain import node_project, run, uv

pytestmark = pytest.mark.slow

PYTHON_CLIENT = ROOT / "clients" / "python"
TYPESCRIPT_CLIENT = ROOT / "clients" / "typescript"
TENANT = sample("00_onboarding_request.json")["detail"]["tenantId"]
CALLER_ENVIRONMENT = {
    **DUMMY_CREDENTIALS,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_REGION": "us-east-1",
}

# Run by the fresh virtualenv's python (-I: no user site, no current directory on the path).
CALLER = r"""
import json, sys
import sbt_billing_client
from sbt_billing_client import BillingClient, TenantNotFound

url, tenant = sys.argv[1], sys.argv[2]
billing = BillingClient(url)
gate = billing.status(tenant)
view = billing.billing(tenant)
change = billing.update(tenant, tier="premium", idempotency_key="caller-1")
try:
    billing.status("no-such-tenant")
    missing = None
except TenantNotFound as error:
    missing = error.code
print(json.dumps({
    "module": sbt_billing_client.__file__,
    "gate": [gate.state, gate.allowed],
    "tier": view.plan.tier,
    "change": [change.result, change.tier],
    "missing": missing,
}))
"""


@pytest.fixture
def api(moto_endpoint: str, emulator_url: str) -> Iterator[LocalApiGateway]:
    """A tenant SBT onboarded and provisioned on the basic tier, and the API in front of the stack."""
    with stack_on(moto_endpoint, emulator_url) as stack:
        stack.deliver(sample("00_onboarding_request.json"))
        stack.deliver(sample("01_provision_success.json"))
        with LocalApiGateway(stack.invoke, CREDENTIALS) as gateway:
            yield gateway


def test_the_python_clients_wheel_installs_alone_and_calls_the_api(
    api: LocalApiGateway, tmp_path: Path, record_property: Any
) -> None:
    dist = tmp_path / "dist"
    run([uv(), "build", "--wheel", "--quiet", "--out-dir", dist, PYTHON_CLIENT], cwd=ROOT)
    [wheel] = dist.glob("sbt_billing_client-*.whl")
    venv = tmp_path / "caller"
    run([uv(), "venv", "--quiet", "--python", sys.executable, venv], cwd=tmp_path)
    run([uv(), "pip", "install", "--quiet", "--python", venv / "bin" / "python", wheel], cwd=tmp_path)

    answer = run(
        [venv / "bin" / "python", "-I", "-c", CALLER, api.url, TENANT],
        cwd=tmp_path,
        environment=CALLER_ENVIRONMENT,
    )

    called = json.loads(answer.stdout)
    assert Path(called["module"]).is_relative_to(venv), "the client came from the wheel, not the repository"
    assert called["gate"] == ["active", True]
    assert called["tier"] == "basic"
    assert called["change"] == ["applied", "premium"]
    assert called["missing"] == "tenant_not_found"
    names = zipfile.ZipFile(wheel).namelist()
    assert "sbt_billing_client/py.typed" in names
    assert not [name for name in names if name.startswith(("tests/", "handlers/"))]
    record_property("python_client_wheel_bytes", wheel.stat().st_size)
    print(f"{wheel.name}: {wheel.stat().st_size / 1000:.1f} kB")  # shown with pytest -s


def test_the_typescript_client_builds_from_its_lock_file_and_calls_the_api(
    api: LocalApiGateway, record_property: Any
) -> None:
    project = node_project(TYPESCRIPT_CLIENT)
    run(
        ["npm", "run", "--silent", "build"], cwd=project
    )  # the types are checked against docs/openapi.json first

    tested = run(
        ["node", "--test", "dist/test/"],
        cwd=project,
        environment={**CALLER_ENVIRONMENT, "BILLING_API_URL": api.url, "BILLING_TENANT_ID": TENANT},
    )

    assert "# fail 0" in tested.stdout, tested.stdout
    assert "# pass 7" in tested.stdout, tested.stdout
    [packed] = json.loads(run(["npm", "pack", "--dry-run", "--json", "--ignore-scripts"], cwd=project).stdout)
    assert {entry["path"] for entry in packed["files"]} >= {"dist/src/index.js", "dist/src/index.d.ts"}
    assert not [entry["path"] for entry in packed["files"] if entry["path"].startswith(("dist/test", "src/"))]
    record_property("typescript_client_package_bytes", packed["size"])
    print(
        f"{packed['filename']}: {packed['size'] / 1000:.1f} kB packed, {packed['unpackedSize'] / 1000:.1f} kB unpacked"
    )

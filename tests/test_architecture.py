"""The layers hold, and each function loads only what it uses.

The import contracts themselves (layers, a pure domain, no cycles) are import-linter's, in pyproject.toml,
run by scripts/test. Here: what a contract cannot say (the domain never reads the environment), and
what each deployed function's handler module loads in a fresh interpreter, told from the template:
a function given no Stripe key never loads stripe, and the heavier utilities load only where they run.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from devtools.template import ROOT, function_handlers, load_template

DOMAIN = ROOT / "handlers" / "sbt_billing" / "domain"
PARAMETERS = {"EventBusName": "bus", "StripeSecretName": "secret", "WebhookSecretName": "webhook"}


def environment_reads(source: str) -> list[str]:
    """Where a module reads the process environment: `os` imported, or `environ` / `getenv` named."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.name for alias in node.names]
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module == "os" or "os" in names or {"environ", "getenv"} & set(names):
                found.append(f"line {node.lineno}: imports {module or ', '.join(names)}")
        elif isinstance(node, ast.Attribute | ast.Name):
            name = node.attr if isinstance(node, ast.Attribute) else node.id
            if name in ("environ", "getenv"):
                found.append(f"line {node.lineno}: {name}")
    return found


def test_the_domain_never_reads_the_environment() -> None:
    modules = sorted(DOMAIN.glob("*.py"))
    assert len(modules) > 10
    reads = {path.name: environment_reads(path.read_text()) for path in modules}
    assert {name: where for name, where in reads.items() if where} == {}


def test_the_environment_check_finds_a_read() -> None:
    assert environment_reads("import os\nvalue = os.environ['X']\n")
    assert environment_reads("from os import getenv\n")
    assert not environment_reads("from datetime import UTC\n")


def loaded_modules(module: str) -> set[str]:
    """The modules a fresh interpreter holds after importing the handler module, as Lambda's runtime
    imports it at a cold start."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "handlers")}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True, timeout=120
    )
    return set(json.loads(run.stdout))


def uses(properties: dict[str, object], environment: dict[str, object]) -> dict[str, bool]:
    """What the template says the function does, by the settings and events it is given."""
    events = properties.get("Events") or {}
    kinds = {event["Type"] for event in events.values()} if isinstance(events, dict) else set()
    return {
        "stripe": bool({"STRIPE_SECRET_NAME", "STRIPE_READ_SECRET_NAME"} & set(environment)),
        # Stripe's events are applied by the webhook, and replayed by the reconciler (its RECONCILE_TABLE
        # is where its place is kept; the webhook notes there the newest event it applied).
        "sbt_billing.domain.stripe_reports": bool(
            {"WEBHOOK_SECRET_NAME", "RECONCILE_TABLE"} & set(environment)
        ),
        "sbt_billing.domain.lifecycle": "LEASE_SECONDS" in environment,
        "aws_lambda_powertools.utilities.idempotency": "IDEMPOTENCY_TABLE" in environment,
        "aws_lambda_powertools.utilities.batch": "SQS" in kinds,
        "aws_lambda_powertools.event_handler": "Api" in kinds,
        # Powertools' batch utility imports its typed records of every stream when pydantic is already
        # loaded (the settings load none of it before the batch utility is imported).
        "aws_lambda_powertools.utilities.parser.models.dynamodb": "DynamoDB" in kinds,
        "aws_lambda_powertools.utilities.parser.models.kinesis": "Kinesis" in kinds,
        "aws_lambda_powertools.utilities.parser.models.kafka": bool({"MSK", "SelfManagedKafka"} & kinds),
    }


@pytest.fixture(scope="module")
def functions() -> dict[str, tuple[dict[str, bool], set[str]]]:
    """Each function: what it uses (by the template), and what its handler loads."""
    template = load_template()
    handlers = function_handlers(PARAMETERS)
    return {
        name: (
            uses(template["Resources"][name]["Properties"], {**handler.unresolved, **handler.environment}),
            loaded_modules(handler.module),
        )
        for name, handler in handlers.items()
    }


def test_each_function_loads_only_the_libraries_and_rules_it_uses(
    functions: dict[str, tuple[dict[str, bool], set[str]]],
) -> None:
    loaded_unused = sorted(
        (name, module)
        for name, (used, loaded) in functions.items()
        for module, needed in used.items()
        if module in loaded and not needed
    )
    assert loaded_unused == []


def test_the_gate_and_the_user_function_never_load_stripe(
    functions: dict[str, tuple[dict[str, bool], set[str]]],
) -> None:
    assert "stripe" not in functions["BillingGateFunction"][1]
    assert "stripe" not in functions["TenantUsersFunction"][1]
    assert "stripe" in functions["BillingApiFunction"][1]  # the check sees stripe where it is loaded


def test_the_rules_of_what_a_function_uses_follow_the_template() -> None:
    used = uses({"Events": {"Queue": {"Type": "SQS"}}}, {"STRIPE_SECRET_NAME": "s", "LEASE_SECONDS": "60"})
    assert used["stripe"]
    assert used["aws_lambda_powertools.utilities.batch"]
    assert used["sbt_billing.domain.lifecycle"]
    assert not used["aws_lambda_powertools.event_handler"]
    assert not used["sbt_billing.domain.stripe_reports"]
    assert not used["aws_lambda_powertools.utilities.parser.models.kafka"]
    assert uses({"Events": {"Stream": {"Type": "Kinesis"}}}, {})[
        "aws_lambda_powertools.utilities.parser.models.kinesis"
    ]


def test_the_import_contracts_are_declared_for_the_layers() -> None:
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(contract for contract in contracts if contract["type"] == "layers")
    assert layers["layers"] == [
        f"sbt_billing.{name}" for name in ("entrypoints", "bootstrap", "adapters", "domain")
    ]
    assert {path.name for path in (ROOT / "handlers" / "sbt_billing").iterdir() if path.is_dir()} - {
        "__pycache__"
    } == {"entrypoints", "bootstrap", "adapters", "domain"}
    assert any(contract["type"] == "acyclic_siblings" for contract in contracts)


def test_no_module_under_sbt_billing_stands_outside_a_layer() -> None:
    top = [path.name for path in (ROOT / "handlers" / "sbt_billing").glob("*.py")]
    assert top == ["__init__.py"]


def test_handler_modules_stay_thin() -> None:
    for path in sorted((ROOT / "handlers").glob("*.py")):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        assert len(lines) <= 25, f"{path.name} has {len(lines)} lines: its work belongs in sbt_billing"


def test_handler_modules_import_no_adapter_directly() -> None:
    for path in sorted((ROOT / "handlers").glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [module for module in imported if module.startswith("sbt_billing.adapters")], path.name

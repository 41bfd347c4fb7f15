"""Cold start of each function, as Lambda's runtime does one: a fresh interpreter that imports the
handler and serves its first sample event against the local stack (moto's server, the Stripe emulator),
next to the floor it is held to, interleaved in one run.

    .venv/bin/python bench/cold_start.py [--runs 9] [--before <git ref>]

Lambda-like: each interpreter runs with `-S -P` and a path of the function's code and the layer's pinned
requirements plus what the runtime adds (boto3 and its dependencies), linked from the project's venv;
nothing else of the venv is importable. Per function it measures, in the interpreter, the handler's
import and its first event, and next to it the import of the libraries the function's own modules
import (the third-party imports, names included, made at module level in every module of this project
the handler loads, told from the source; with pydantic's BaseModel, one model class defined, at which
pydantic loads its schema machinery): what only fewer or lighter libraries could lower. It also counts
the pydantic model classes of this project each import builds and their CPU, and measures the import
as the functions ran before their build compiled them: code and layer as source, no bytecode kept
(Lambda's directories are read-only), the runtime's boto3 with its own. The gate is also held
to a bare Powertools REST resolver with validation doing one consistent GetItem
(bench/baselines/bare_gate.py), which serves the same event. With --before, the same is measured for
that commit's handlers (default: main), in the same run: before the layers, its gate is
BillingApiFunction's handler, which serves the gate's event.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "handlers"), str(ROOT)]

from devtools.local_run import (  # noqa: E402
    LOCAL_PARAMETERS,
    LOCAL_TIER_CATALOGUE,
    LOCAL_USAGE_METERS,
    rebased,
    seed_catalogue,
    seed_meters,
    stripe_client,
)
from devtools.moto_server import AwsClients, MotoServer, aws_environment, create_resources  # noqa: E402
from devtools.template import function_handlers  # noqa: E402
from stripe_emulator import StripeEmulator  # noqa: E402

KEY = "sk_test_cold_start_00000000000000"
SAMPLES = {  # each function's first event (samples that leave the stack as they found it, after a first run)
    "ProvisionSuccessFunction": "01_provision_success.json",
    "TenantUpdatedFunction": "04_tenant_updated.json",
    "TenantDeletedFunction": "07_deleted_before_create_offboarding.json",
    "TenantUsersFunction": "11_tenant_user_created.json",
    "SeatSyncFunction": "15_seat_sync_batch.json",
    "UsageIngestFunction": "13_ingest_usage.json",
    "UsageFlushFunction": "16_usage_flush_schedule.json",
    "BillingGateFunction": "api_billing_status.json",
    "BillingApiFunction": "api_billing.json",
    "StripeWebhookFunction": "webhook_malformed_body.json",
    "ReconcileFunction": "25_reconcile_schedule.json",
}
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "python-dateutil", "jmespath", "six", "urllib3")
CHILD = r"""
import importlib, json, sys, time, uuid
kind, target, event_path = sys.argv[1:4]
class Context:
    function_name = "cold-start"
    function_version = "1"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cold-start"
    aws_request_id = str(uuid.uuid4())
    log_group_name = "/aws/lambda/cold-start"
    log_stream_name = "cold-start"
    def get_remaining_time_in_millis(self):
        return 30000
built = []  # kind "models": (module, CPU ms) of each pydantic model class the import builds
if kind == "models":
    import pydantic
    from pydantic._internal import _model_construction
    class Warm(pydantic.BaseModel):  # pydantic loads its schema machinery at its first model: not ours
        value: int
    build = _model_construction.ModelMetaclass.__new__
    def timed(mcs, name, bases, namespace, **kwargs):
        begun = time.process_time()
        made = build(mcs, name, bases, namespace, **kwargs)
        built.append((namespace.get("__module__", ""), (time.process_time() - begun) * 1000))
        return made
    _model_construction.ModelMetaclass.__new__ = timed
started, cpu = time.perf_counter(), time.process_time()
if kind == "statement":
    exec(target)
    module = None
else:
    module = importlib.import_module(target)
imported, imported_cpu = time.perf_counter(), time.process_time()
if module is not None and event_path != "-":
    with open(event_path) as stream:
        module.lambda_handler(json.load(stream), Context())
served, served_cpu = time.perf_counter(), time.process_time()
print(json.dumps({
    "import": (imported_cpu - cpu) * 1000, "first": (served_cpu - imported_cpu) * 1000,
    "import wall": (imported - started) * 1000, "first wall": (served - imported) * 1000,
    "loaded": sorted(sys.modules), "models": built,
}))
"""


def lambda_like_path(work: Path, name: str = "site", layer_as_source: bool = False) -> Path:
    """The layer's requirements and the runtime's boto3, linked from the venv into one directory; with
    `layer_as_source`, the layer's packages copied without their bytecode (as SAM's Python builder and
    a layer built without compiling ship them), the runtime's still linked."""
    target = work / name
    target.mkdir()
    requirements = (ROOT / "layers" / "dependencies" / "requirements.txt").read_text()
    names = [line.split("==")[0] for line in requirements.splitlines() if "==" in line and line[0].isalpha()]
    for distribution_name in (*names, *RUNTIME_DISTRIBUTIONS):
        distribution = metadata.distribution(distribution_name)
        tops = {Path(str(file)).parts[0] for file in distribution.files or []}
        for top in tops:
            if top.endswith((".dist-info", ".pth")) or top in ("__pycache__", "bin", ".."):
                continue
            source = Path(str(distribution.locate_file(top)))
            if not source.exists() or (target / top).exists():
                continue
            if layer_as_source and distribution_name not in RUNTIME_DISTRIBUTIONS:
                if source.is_dir():
                    shutil.copytree(source, target / top, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(source, target / top)
            else:
                (target / top).symlink_to(source, target_is_directory=source.is_dir())
    return target


def module_level_imports(path: Path) -> set[tuple[str, str]]:
    """The imports a source file makes when it is imported, as (module, statement): module level, outside
    TYPE_CHECKING blocks and outside `except ImportError` fallbacks' optional imports. A `from` import
    keeps its names: a package that loads its members lazily (pydantic, Powertools) is only imported
    whole when its names are."""

    def walk(body: list[ast.stmt]) -> Iterator[tuple[str, str]]:
        for node in body:
            if isinstance(node, ast.Import):
                yield from ((alias.name, f"import {alias.name}") for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = ", ".join(alias.name for alias in node.names)
                yield node.module, f"from {node.module} import {names}"
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                yield from walk(node.body)
                yield from walk(node.orelse)
            elif isinstance(node, ast.Try):
                guarded = any(
                    "ImportError" in ast.unparse(handler.type or ast.Name("")) for handler in node.handlers
                )
                if not guarded:
                    yield from walk(node.body)

    return set(walk(ast.parse(path.read_text()).body))


def libraries_called(code: Path, loaded: list[str], handler: str) -> list[str]:
    """The import statements of third-party modules that the project's modules loaded by `handler` make
    themselves."""
    ours = [
        name for name in loaded if name == handler or name == "sbt_billing" or name.startswith("sbt_billing.")
    ]
    found: set[tuple[str, str]] = set()
    for name in ours:
        relative = Path(*name.split("."))
        path = code / relative / "__init__.py" if (code / relative).is_dir() else code / f"{relative}.py"
        found |= module_level_imports(path)
    return sorted(
        statement
        for module, statement in found
        if module.split(".")[0] not in sys.stdlib_module_names
        and module.split(".")[0] not in ("sbt_billing", "__future__")
    )


def run_child(
    kind: str, target: str, event: str, code: Path, site: Path, environment: dict[str, str]
) -> dict[str, Any]:
    """One fresh interpreter. With PYTHONDONTWRITEBYTECODE in `environment`, it writes no bytecode, as
    Lambda's read-only directories let none be written."""
    paths = [str(code), str(ROOT / "bench" / "baselines"), str(site)]
    run = subprocess.run(
        [sys.executable, "-S", "-P", "-c", CHILD, kind, target, event],
        env={**environment, "PYTHONPATH": os.pathsep.join(paths)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if run.returncode != 0:
        raise RuntimeError(f"{target}: {run.stderr[-2000:]}")
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def before_tree(ref: str, work: Path) -> Path:
    """`ref`'s handlers/, unpacked from git."""
    archive = work / "before.tar"
    with archive.open("wb") as stream:
        subprocess.run(["git", "archive", ref, "handlers"], cwd=ROOT, stdout=stream, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(work / "before", filter="data")
    return work / "before" / "handlers"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--before", default="main", help="a commit to measure in the same run ('' for none)")
    arguments = parser.parse_args()

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        moto = stack.enter_context(MotoServer())
        emulator = stack.enter_context(StripeEmulator())
        resources = create_resources(moto.endpoint, stripe_api_key=KEY)
        webhook_secret = f"{resources.secret_name}-webhook"
        AwsClients(moto.endpoint, resources.region).secretsmanager().create_secret(
            Name=webhook_secret, SecretString="whsec_" + "c" * 32
        )
        client = stripe_client(KEY, emulator.url)
        seed_catalogue(client, LOCAL_TIER_CATALOGUE)
        seed_meters(client, LOCAL_USAGE_METERS)
        parameters = {
            **resources.parameter_overrides(),
            **LOCAL_PARAMETERS,
            "WebhookSecretName": webhook_secret,
        }
        handlers = function_handlers(parameters, resources.resource_names())
        base = {
            "PATH": os.environ.get("PATH", ""),
            "LANG": "C.UTF-8",
            "POWERTOOLS_SERVICE_NAME": "sbt-stripe-billing",
            "POWERTOOLS_METRICS_NAMESPACE": "SbtStripeBillingBench",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            **aws_environment(moto.endpoint, resources.region),
            "STRIPE_API_BASE": emulator.url,
        }
        environments = {name: {**base, **handler.environment} for name, handler in handlers.items()}
        events: dict[str, str] = {}
        for name in ("00_onboarding_request.json", *SAMPLES.values()):
            path = work / name
            path.write_text(json.dumps(rebased(json.loads((ROOT / "events" / name).read_text()))))
            events[name] = str(path)
        site = lambda_like_path(work)
        after = ROOT / "handlers"
        # The tenant the samples name exists: onboarded and provisioned (not measured).
        for name in ("00_onboarding_request.json", "01_provision_success.json"):
            run_child(
                "module",
                "provision_success",
                events[name],
                after,
                site,
                environments["ProvisionSuccessFunction"],
            )

        # As Lambda ran the functions before the build compiled them: the code and the layer as source,
        # no bytecode written (the runtime's boto3 keeps its own).
        source_site = lambda_like_path(work, "source-site", layer_as_source=True)
        source_code = work / "source-handlers"
        shutil.copytree(after, source_code, ignore=shutil.ignore_patterns("__pycache__"))
        targets: dict[str, tuple[str, str, str, Path, Path, dict[str, str]]] = {
            "interpreter": ("statement", "pass", "-", after, site, base),
            "bare gate (Powertools resolver + GetItem)": (
                "module",
                "bare_gate",
                events[SAMPLES["BillingGateFunction"]],
                after,
                site,
                environments["BillingGateFunction"],
            ),
        }
        trees = [("after", after)]
        if arguments.before:
            trees.append(("before", before_tree(arguments.before, work)))
        libraries: dict[str, list[str]] = {}
        model_builds: dict[str, tuple[int, float]] = {}
        for label, code in trees:
            for function, sample in SAMPLES.items():
                handler = handlers[function].module
                if not (code / f"{handler}.py").exists() and function == "BillingGateFunction":
                    handler = "billing_api"  # the gate was a route of the API's one function
                if not (code / f"{handler}.py").exists():
                    continue  # a function the commit before did not have
                environment = environments["BillingApiFunction" if handler == "billing_api" else function]
                targets[f"{label} {function}"] = ("module", handler, events[sample], code, site, environment)
                if label == "after":
                    targets[f"source {function}"] = (
                        "module",
                        handler,
                        events[sample],
                        source_code,
                        source_site,
                        {**environment, "PYTHONDONTWRITEBYTECODE": "1"},
                    )
                loaded = run_child("module", handler, "-", code, site, environment)["loaded"]
                if label == "after":  # what building pydantic's model classes costs (its own, untimed run)
                    own = [
                        ms
                        for module, ms in run_child("models", handler, "-", code, site, environment)["models"]
                        if module == handler or module.startswith("sbt_billing")
                    ]
                    model_builds[function] = (len(own), sum(own))
                libraries[f"{label} {function}"] = libraries_called(code, loaded, handler)
                statement = "\n".join(libraries[f"{label} {function}"])
                if "BaseModel" in statement:
                    # pydantic imports its schema machinery (some 30 modules) at the first model class
                    # defined: the library's own loading, whoever defines that class.
                    statement += "\nclass FirstModel(BaseModel):\n    value: int"
                targets[f"{label} {function} libraries"] = (
                    "statement",
                    statement,
                    "-",
                    code,
                    site,
                    environment,
                )
        for target in targets.values():  # a first run of each: bytecode compiled, the stack in its state
            run_child(*target)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for _ in range(arguments.runs):
            for name, target in targets.items():
                samples[name].append(run_child(*target))

    def median(name: str, part: str) -> float:
        return statistics.median(sample[part] for sample in samples[name])

    bare_name = "bare gate (Powertools resolver + GetItem)"
    print(
        f"{arguments.runs} fresh interpreters per target, interleaved, median ms; python {sys.version.split()[0]}"
    )
    print("CPU time of the interpreter (process_time): other work on the machine hardly moves it; wall time")
    print(
        "(in brackets) moves with the machine's load. Interpreter start-up is in neither. own = import less"
    )
    print("libraries; models = the pydantic model classes of this project the import builds, and the CPU ms")
    print("pydantic spends building them (measured in a run of its own). as source = the import with the")
    print("code and the layer as source and no bytecode written, as the stack shipped them before its build")
    print("compiled them (Lambda's directories are read-only: nothing compiled is kept).")
    bare, bare_wall = median(bare_name, "import"), median(bare_name, "import wall")
    print(f"bare gate: import {bare:.1f} ({bare_wall:.0f}), first event {median(bare_name, 'first'):.1f}")
    header = (
        f"{'function':<26} {'import':>13} {'libraries':>10} {'x libs':>7} {'own':>6} {'models':>12}"
        f" {'first event':>12} {'as source':>10}"
    )
    if arguments.before:
        header += f" {'before import':>14} {'before x libs':>14} {'before first':>13}"
    print(header)
    for function in SAMPLES:
        name = f"after {function}"
        imported, wall = median(name, "import"), median(name, "import wall")
        floor = median(f"{name} libraries", "import")
        cells = f"{imported:.1f} ({wall:.0f})"
        count, building = model_builds[function]
        models = f"{count} in {building:.1f}"
        line = (
            f"{function:<26} {cells:>13} {floor:>10.1f} {imported / floor:>7.2f} {imported - floor:>6.1f}"
            f" {models:>12} {median(name, 'first'):>12.1f} {median(f'source {function}', 'import'):>10.1f}"
        )
        if arguments.before and f"before {function}" in samples:
            was = median(f"before {function}", "import")
            was_floor = median(f"before {function} libraries", "import")
            line += f" {was:>14.1f} {was / was_floor:>14.2f} {median(f'before {function}', 'first'):>13.1f}"
        print(line)
    gate, gate_wall = (
        median("after BillingGateFunction", "import"),
        median("after BillingGateFunction", "import wall"),
    )
    print(
        f"gate import = {gate / bare:.2f}x the bare resolver's (target <= 1.1); wall {gate_wall / bare_wall:.2f}x"
    )
    if arguments.before:
        was = median("before BillingGateFunction", "import")
        print(f"before: the gate imported in {was:.1f} ms = {was / bare:.2f}x the bare resolver's")
    for name, modules in libraries.items():
        if name.startswith("after"):
            print(f"{name.removeprefix('after ')}: {'; '.join(modules)}")


if __name__ == "__main__":
    main()

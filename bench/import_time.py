"""Cold import time of each function's handler module, in fresh interpreters, next to a baseline of
importing aws_lambda_powertools and boto3 alone, measured in the same run.

Each target is imported by a new `python -c "import <module>"` (as a Lambda cold start imports the
handler), RUNS times, the targets interleaved so that they share the machine's conditions; the wall
time of each interpreter is taken and the median reported. `python -c pass` is measured too, so the
imports can also be compared net of the interpreter's own start-up.

    .venv/bin/python bench/import_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = (
    "provision_success",
    "tenant_updated",
    "tenant_deleted",
    "tenant_users",
    "usage_ingest",
    "usage_flush",
    "seat_sync",
    "billing_gate",
    "billing_api",
    "stripe_webhook",
)
BASELINE = "aws_lambda_powertools, boto3"
# What the handlers import from their dependencies, without any code of this project: the floor that
# only fewer or lighter dependencies could lower.
DEPENDENCIES = (
    "aws_lambda_powertools, aws_lambda_powertools.metrics, aws_lambda_powertools.utilities.batch, "
    "aws_lambda_powertools.utilities.parser.models, aws_lambda_powertools.utilities.idempotency, "
    "aws_lambda_powertools.utilities.parameters, boto3, pydantic, stripe"
)
DEPENDENCIES_NAME = "(dependencies alone: powertools utilities, boto3, pydantic, stripe)"
INTERPRETER = "(interpreter start-up: pass)"


def cold(statement: str) -> float:
    """Seconds for a fresh interpreter to run `statement` (bytecode cached, after the first run)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "handlers")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, env=environment, cwd=ROOT / "handlers")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    arguments = parser.parse_args()

    targets = {
        INTERPRETER: "pass",
        f"import {BASELINE}": f"import {BASELINE}",
        DEPENDENCIES_NAME: f"import {DEPENDENCIES}",
    }
    targets |= {module: f"import {module}" for module in HANDLERS}
    for statement in targets.values():  # compile every module once, so no run pays for bytecode
        cold(statement)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(arguments.runs):
        for name, statement in targets.items():
            samples[name].append(cold(statement))

    medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    bare = medians[INTERPRETER]
    baseline = medians[f"import {BASELINE}"]
    print(f"{arguments.runs} fresh interpreters per target, median wall time; {sys.version.split()[0]}")
    dependencies = medians[DEPENDENCIES_NAME]
    print(
        f"{'target':<40} {'median ms':>10} {'x baseline':>11} {'net ms':>8} {'net x baseline':>15} "
        f"{'x dependencies':>15}"
    )
    for name, median in medians.items():
        net = median - bare
        print(
            f"{name[:40]:<40} {median:>10.1f} {median / baseline:>11.2f} {net:>8.1f} "
            f"{net / (baseline - bare):>15.2f} {median / dependencies:>15.2f}"
        )
    worst = max(HANDLERS, key=lambda module: medians[module])
    print(
        f"slowest handler: {worst} {medians[worst]:.1f} ms = {medians[worst] / baseline:.2f}x the baseline "
        f"({(medians[worst] - bare) / (baseline - bare):.2f}x net of interpreter start-up); target <= 1.3x"
    )
    print(
        f"dependencies alone: {dependencies:.1f} ms = {dependencies / baseline:.2f}x the baseline; the slowest "
        f"handler is {medians[worst] / dependencies:.2f}x its dependencies"
    )


if __name__ == "__main__":
    main()

"""Servers shared by the whole run: moto's server for AWS and the Stripe emulator, both on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.moto_server import MotoServer, aws_environment
from devtools.template import TEMPLATE_PATH
from tests.toolchain import sam_cli, tool_environment

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SbtStripeBillingTests")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "sbt-stripe-billing")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with MotoServer() as server:
        previous = {name: os.environ.get(name) for name in aws_environment(server.endpoint)}
        os.environ.update(aws_environment(server.endpoint))
        yield server.endpoint
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    from stripe_emulator import StripeEmulator

    with StripeEmulator() as emulator:
        yield emulator.url


@pytest.fixture(scope="session")
def build_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A python3.13 with pip for `sam build` (the uv-synced project venv has no pip): a throwaway venv
    of the project venv's interpreter, seeded offline by ensurepip. Returns its bin directory."""
    target = tmp_path_factory.mktemp("build-python")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(target)], check=True, timeout=300)
    return target / "bin"


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory, build_python: Path) -> Path:
    """What `sam build` makes of template.yaml, once per run (the built-artifact and publishing tests)."""
    work = tmp_path_factory.mktemp("sam")
    build, cache = work / "build", work / "cache"
    environment = tool_environment()
    environment["PATH"] = os.pathsep.join([str(build_python), environment["PATH"]])
    result = subprocess.run(
        [
            str(sam_cli()),
            "build",
            "--template-file",
            str(TEMPLATE_PATH),
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

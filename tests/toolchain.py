"""The tools some tests run beside pytest: the SAM CLI (.venv-sam), uv (.tools/uv), node and npm with
the packages each Node project's lock file pins. scripts/test installs them all; a test that lacks one
fails in CI and is skipped elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from devtools.template import ROOT

SAM = ROOT / ".venv-sam" / "bin" / "sam"
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
UV = ROOT / ".tools" / "uv" / "bin" / "uv"


def missing(what: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}: scripts/test installs it")
    pytest.skip(f"{what}: run scripts/test to install it")


def sam_cli() -> Path:
    if not SAM.exists():
        missing(f"the SAM CLI is missing at {SAM.relative_to(ROOT)} (ensure_sam)")
    return SAM


def sam_python() -> Path:
    if not SAM_PYTHON.exists():
        missing(f"the SAM CLI's python is missing at {SAM_PYTHON.relative_to(ROOT)} (ensure_sam)")
    return SAM_PYTHON


def uv() -> Path:
    if not UV.exists():
        missing(f"uv is missing at {UV.relative_to(ROOT)} (ensure_uv)")
    return UV


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


def node_project(directory: Path) -> Path:
    """A Node project whose packages `npm ci` installed from its lock file (scripts/test does)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        missing("node and npm are not on PATH")
    if not (directory / "node_modules" / ".package-lock.json").exists():
        missing(f"{directory.relative_to(ROOT)}/node_modules is missing (npm ci)")
    return directory


def run(
    command: Sequence[str | Path],
    cwd: Path,
    environment: Mapping[str, str] | None = None,
    timeout: int = 300,
) -> subprocess.CompletedProcess[str]:
    """Runs `command` to its end; fails the test with its output if it fails."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={**os.environ, **(environment or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, command))} failed:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
        )
    return result


def tree_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())

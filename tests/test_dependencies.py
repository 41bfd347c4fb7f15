"""layers/dependencies/requirements.txt (what `sam build` puts in the functions' layer) is exactly uv.lock's
runtime set."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "layers" / "dependencies" / "requirements.txt"
UV = ROOT / ".tools" / "uv" / "bin" / "uv"
DEV_ONLY = {
    "pytest",
    "moto",
    "boto3",
    "botocore",
    "mypy",
    "ruff",
    "hypothesis",
    "cfn-lint",
    "pyyaml",
    "s3transfer",
}


def pinned(text: str) -> dict[str, str]:
    return {
        match[1].lower().replace("_", "-"): match[2]
        for match in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", text, re.MULTILINE)
    }


def test_requirements_match_what_export_requirements_writes(tmp_path: Path) -> None:
    """Runs scripts/export-requirements itself, on a copy of the project files it reads, and compares."""
    if not UV.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"uv is missing at {UV.relative_to(ROOT)}: scripts/test installs it (ensure_uv)")
        pytest.skip(f"uv is not installed at {UV.relative_to(ROOT)}: run scripts/test to install it")
    copy = tmp_path / "project"
    (copy / "scripts").mkdir(parents=True)
    (copy / "layers" / "dependencies").mkdir(parents=True)
    for name in ("scripts/lib.sh", "scripts/export-requirements", "pyproject.toml", "uv.lock"):
        shutil.copy2(ROOT / name, copy / name)
    (copy / ".tools").symlink_to(ROOT / ".tools", target_is_directory=True)  # the same uv, not a new one
    result = subprocess.run(
        ["bash", str(copy / "scripts" / "export-requirements")],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    exported = (copy / "layers" / "dependencies" / "requirements.txt").read_text()
    assert REQUIREMENTS.read_text() == exported, (
        "layers/dependencies/requirements.txt is stale: run scripts/export-requirements"
    )


def test_requirements_hold_no_test_or_build_tool() -> None:
    names = set(pinned(REQUIREMENTS.read_text()))
    assert not names & DEV_ONLY


def test_requirements_pin_the_runtime_dependencies_of_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = pinned("\n".join(project["dependencies"]))
    exported = pinned(REQUIREMENTS.read_text())
    assert runtime.items() <= exported.items()
    assert "--hash=sha256:" in REQUIREMENTS.read_text()

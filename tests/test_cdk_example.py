"""The CDK example on SBT itself (examples/cdk-sbt): SBT's ControlPlane, from the @cdklabs/sbt-aws its
lock file pins, with the billing stack nested on its bus. It synthesises offline (no Docker: bundling
skipped), and its event-contract test reads the synthesised templates (README "Add billing to SBT")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devtools.cdk_template import write_cdk_template
from devtools.template import ROOT
from tests.toolchain import node_project, run, tree_size

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "examples" / "cdk-sbt"
# The CDK CLI never calls home during a test (no telemetry, notices or version check), and the CDK keeps
# its caches (~/.cdk: asset fingerprints) in the test's own directory.
CLI_OFFLINE = {"CDK_DISABLE_CLI_TELEMETRY": "true", "CDK_DISABLE_VERSION_CHECK": "true"}


@pytest.fixture(scope="module")
def synthesised(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """cdk.out of the example, synthesised from template.yaml as SAM translates it."""
    project = node_project(EXAMPLE)
    work = tmp_path_factory.mktemp("cdk-sbt")
    template = write_cdk_template(work / "billing.template.json")
    run(["npm", "run", "--silent", "build"], cwd=project)
    cdk_out, home = work / "cdk.out", work / "home"
    home.mkdir()
    synth = [project / "node_modules" / ".bin" / "cdk", "synth", "--quiet", "-c", "bundling=none"]
    synth += ["-c", f"billingTemplate={template}", "--output", str(cdk_out)]
    run(synth, cwd=project, environment={**CLI_OFFLINE, "HOME": str(home)})
    return cdk_out, template


def test_the_example_keeps_sbts_event_contract(synthesised: tuple[Path, Path], record_property: Any) -> None:
    cdk_out, template = synthesised

    tested = run(
        ["node", "--test", "dist/test/"],
        cwd=EXAMPLE,
        environment={
            "CDK_OUT": str(cdk_out),
            "BILLING_TEMPLATE": str(template),
            "HOME": str(cdk_out.parent / "home"),
        },
    )

    assert "# fail 0" in tested.stdout, tested.stdout
    assert "# pass 10" in tested.stdout, tested.stdout
    said = [line for line in tested.stdout.splitlines() if line.startswith("# ") and ":" in line[2:30]]
    print("\n".join(said))  # the SBT release checked and the events matched, with pytest -s
    record_property("cdk_out_bytes", tree_size(cdk_out))


def test_the_synthesised_sbt_is_the_one_the_lock_file_pins(synthesised: tuple[Path, Path]) -> None:
    cdk_out, _ = synthesised
    lock = json.loads((EXAMPLE / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/@cdklabs/sbt-aws"]["version"]

    tree = json.loads((cdk_out / "tree.json").read_text())
    control_plane = tree["tree"]["children"]["SbtWithStripeBilling"]["children"]["ControlPlane"]

    assert control_plane["constructInfo"] == {"fqn": "@cdklabs/sbt-aws.ControlPlane", "version": pinned}
    assert json.loads((EXAMPLE / "package.json").read_text())["dependencies"]["@cdklabs/sbt-aws"] == pinned

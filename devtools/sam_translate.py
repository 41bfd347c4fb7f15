"""template.yaml as CloudFormation receives it: SAM's own translator (from the SAM CLI's environment,
.venv-sam, the same one `sam deploy` runs), and its intrinsic functions resolved against a stack whose
resources' names are known (the local stack on moto, or any other).

The translation runs in the SAM CLI's interpreter (it pins its own pydantic and boto3, which the
project's environment cannot share), once per set of parameter values.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from devtools.template import ROOT, TEMPLATE_PATH

SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"

# Run by the SAM CLI's python: the template with its local code paths replaced by S3 ones (as `sam
# validate` does), translated with no managed policy names to look up (the template names none).
_TRANSLATE = r"""
import json, sys
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicyNames(ManagedPolicyLoader):
    def __init__(self):
        pass

    def load(self):
        return {}


template_path, parameters = sys.argv[1], json.loads(sys.argv[2])
with open(template_path, encoding="utf-8") as stream:
    template = yaml_parse(stream.read())
template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
for resource in template.get("Resources", {}).values():
    if resource.get("Type") == "AWS::Serverless::Function":
        resource.setdefault("Properties", {})["CodeUri"] = "s3://bucket/code.zip"
    elif resource.get("Type") == "AWS::Serverless::LayerVersion":
        resource.setdefault("Properties", {})["ContentUri"] = "s3://bucket/layer.zip"
json.dump(transform(template, parameters, NoManagedPolicyNames()), sys.stdout)
"""


class TranslatorMissing(RuntimeError):
    """The SAM CLI's environment is not there: scripts/test (ensure_sam) makes it."""


def translate(
    parameters: Mapping[str, str] | None = None, template_path: Path = TEMPLATE_PATH
) -> dict[str, Any]:
    """The CloudFormation template SAM makes of `template_path` with these parameter values."""
    return json.loads(_translate(str(template_path), json.dumps(dict(parameters or {}), sort_keys=True)))  # type: ignore[no-any-return]


@cache
def _translate(template_path: str, parameters: str) -> str:
    if not SAM_PYTHON.exists():
        raise TranslatorMissing(f"{SAM_PYTHON.relative_to(ROOT)} is missing: scripts/test installs it")
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",  # the translator builds ARNs with the region's partition
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", _TRANSLATE, template_path, parameters],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise ValueError(f"SAM could not translate {template_path}:\n{result.stderr[-4000:]}")
    return result.stdout

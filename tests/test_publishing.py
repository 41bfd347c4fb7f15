"""What `sam publish` would put in the AWS Serverless Application Repository (SAR): the template's
AWS::ServerlessRepo::Application metadata, held to SAR's documented constraints and read by the SAM
CLI's own publisher; and `sam package` of the build into S3 on moto, whose packaged template (what
sam publish sends) must translate, lint and point at every artefact it uploaded. No AWS account: the
one step left out is SAR's own CreateApplication call."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from devtools.moto_server import REGION, aws_environment
from devtools.sam_translate import translate
from devtools.template import ROOT, TEMPLATE_PATH, load_template
from tests.support.functions import FUNCTIONS
from tests.toolchain import run, sam_cli, sam_python, tool_environment

METADATA: dict[str, Any] = load_template()["Metadata"]["AWS::ServerlessRepo::Application"]
# SAR's constraints on the metadata (AWS SAM developer guide, "AWS SAM template Metadata section properties").
NAME = re.compile(r"[a-zA-Z0-9\-]{1,140}")
AUTHOR = re.compile(r"[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?")
LABEL = re.compile(r"[a-zA-Z0-9+\-_:/@]{1,127}")
SEMANTIC_VERSION = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?"
)
MAX_FILE_BYTES = 5 * 1000 * 1000
BUCKET = "sbt-billing-artifacts"

# Run by the SAM CLI's python: the request `sam publish` would send SAR for a template, checked against
# the SAR API's model in botocore (names, types, required members).
_PUBLISH_REQUEST = r"""
import json, sys
import botocore.session
from botocore.validate import validate_parameters
from samcli.vendor.serverlessrepo.parser import get_app_metadata, parse_template
from samcli.vendor.serverlessrepo.publish import _create_application_request

with open(sys.argv[1], encoding="utf-8") as stream:
    metadata = get_app_metadata(parse_template(stream.read()))
request = _create_application_request(metadata, "<the packaged template>")
model = botocore.session.get_session().get_service_model("serverlessrepo")
validate_parameters(request, model.operation_model("CreateApplication").input_shape)
print(json.dumps(request))
"""


def publish_request(template: Path) -> dict[str, Any]:
    result = subprocess.run(
        [str(sam_python()), "-c", _PUBLISH_REQUEST, str(template)],
        env=tool_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    request: dict[str, Any] = json.loads(result.stdout)
    return request


def test_the_metadata_is_within_sars_constraints() -> None:
    assert not [key for key, value in METADATA.items() if isinstance(value, dict)], "SAR takes no intrinsics"
    assert NAME.fullmatch(METADATA["Name"])
    assert AUTHOR.fullmatch(METADATA["Author"])
    assert len(METADATA["Author"]) <= 127
    assert 1 <= len(METADATA["Description"]) <= 256
    assert len(METADATA["Labels"]) <= 10
    assert all(LABEL.fullmatch(label) for label in METADATA["Labels"])
    assert SEMANTIC_VERSION.fullmatch(METADATA["SemanticVersion"])
    assert METADATA["HomePageUrl"].startswith("https://")
    assert METADATA["SourceCodeUrl"].startswith("https://")
    for key in ("LicenseUrl", "ReadmeUrl"):  # local files: sam package uploads them
        path = TEMPLATE_PATH.parent / METADATA[key]
        assert path.is_file(), key
        assert path.stat().st_size <= MAX_FILE_BYTES, key


def test_the_published_version_licence_and_source_are_the_projects() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python_client = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())["project"]
    typescript_client = json.loads((ROOT / "clients" / "typescript" / "package.json").read_text())

    assert METADATA["SemanticVersion"] == project["version"]
    assert (
        METADATA["SpdxLicenseId"]
        == project["license"]
        == python_client["license"]
        == typescript_client["license"]
    )
    licence = (TEMPLATE_PATH.parent / METADATA["LicenseUrl"]).read_text().split()
    assert licence[:4] == ["Apache", "License", "Version", "2.0,"]
    assert (
        METADATA["SourceCodeUrl"] == python_client["urls"]["Source"] == typescript_client["repository"]["url"]
    )


def test_sam_publish_makes_a_valid_sar_request_of_the_metadata() -> None:
    request = publish_request(TEMPLATE_PATH)

    assert request["Name"] == "sbt-stripe-billing"
    assert request["SemanticVersion"] == METADATA["SemanticVersion"]
    assert {"Author", "Description", "HomePageUrl", "Labels", "SourceCodeUrl", "SpdxLicenseId"} <= set(
        request
    )


# --- sam package, into S3 on moto ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def packaged(build_dir: Path, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The template `sam package` writes for the build, its artefacts uploaded to a bucket on moto."""
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    output = tmp_path_factory.mktemp("packaged") / "packaged.yaml"
    command = [sam_cli(), "package", "--template-file", build_dir / "template.yaml", "--s3-bucket", BUCKET]
    command += ["--output-template-file", output, "--region", REGION]
    aws = {**aws_environment(moto_endpoint), "SAM_CLI_TELEMETRY": "0", "PATH": tool_environment()["PATH"]}
    run(command, cwd=build_dir, environment=aws)
    yield output
    for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    s3.delete_bucket(Bucket=BUCKET)


def uploaded(moto_endpoint: str) -> dict[str, int]:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    return {item["Key"]: item["Size"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}


def s3_key(uri: str) -> str:
    assert uri.startswith(f"s3://{BUCKET}/"), uri
    return uri.removeprefix(f"s3://{BUCKET}/")


@pytest.mark.slow
def test_sam_package_uploads_every_artefact_the_packaged_template_names(
    packaged: Path, moto_endpoint: str, record_property: Any
) -> None:
    template = yaml.load(packaged.read_text(), Loader=yaml.BaseLoader)  # keeps !Ref and the like as text
    objects = uploaded(moto_endpoint)
    metadata = template["Metadata"]["AWS::ServerlessRepo::Application"]
    resources = template["Resources"]

    functions = {
        name: r["Properties"]["CodeUri"]
        for name, r in resources.items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    layers = {
        name: r["Properties"]["ContentUri"]
        for name, r in resources.items()
        if r["Type"] == "AWS::Serverless::LayerVersion"
    }
    named = {"LICENSE": metadata["LicenseUrl"], "README.md": metadata["ReadmeUrl"], **functions, **layers}

    assert set(functions) == set(FUNCTIONS)
    assert set(layers) == {"DependenciesLayer"}
    for what, uri in named.items():
        assert s3_key(uri) in objects, what
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    for name in ("LICENSE", "README.md"):
        body = s3.get_object(Bucket=BUCKET, Key=s3_key(named[name]))["Body"].read()
        assert body == (ROOT / name).read_bytes(), name
    sizes = {what: objects[s3_key(uri)] for what, uri in named.items()}
    for what, size in sizes.items():
        record_property(f"{what}_zip_bytes", size)
    code = sorted({(s3_key(uri), objects[s3_key(uri)]) for uri in functions.values()})
    print(
        f"functions' code: {len(code)} zip(s), {[f'{size / 1000:.1f} kB' for _, size in code]}"
    )  # pytest -s
    print(f"dependencies layer: {sizes['DependenciesLayer'] / 1e6:.2f} MB zipped")
    print(f"LICENSE {sizes['LICENSE'] / 1000:.1f} kB, README.md {sizes['README.md'] / 1000:.1f} kB")


@pytest.mark.slow
def test_the_packaged_template_is_what_sar_and_cloudformation_take(
    packaged: Path, moto_endpoint: str
) -> None:
    objects = uploaded(moto_endpoint)

    request = publish_request(packaged)
    translated = translate({}, packaged, packaged=True)
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(packaged)],
        env=tool_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert s3_key(request["LicenseUrl"]) in objects
    assert s3_key(request["ReadmeUrl"]) in objects
    for name, resource in translated["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            code = resource["Properties"]["Code"]
            assert (code["S3Bucket"], code["S3Key"] in objects) == (BUCKET, True), name
        if resource["Type"] == "AWS::Lambda::LayerVersion":
            content = resource["Properties"]["Content"]
            assert (content["S3Bucket"], content["S3Key"] in objects) == (BUCKET, True), name
    assert (lint.returncode, lint.stdout.strip()) == (0, ""), lint.stdout + lint.stderr

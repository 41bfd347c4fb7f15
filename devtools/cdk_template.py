"""The billing stack as plain CloudFormation for the CDK example (examples/cdk-sbt): SAM's translation of
template.yaml, or of the template `sam package` wrote, which CDK's CfnInclude nests in an SBT app.

CfnInclude cannot take the SAM template itself: its resources refer to the ones SAM's transform makes
(a function's rule, role and permission), which exist only after the translation.

    python -m devtools.cdk_template                                   # from template.yaml: synth only
    python -m devtools.cdk_template --packaged .aws-sam/packaged.yaml  # code in S3: synth and deploy
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from devtools.sam_translate import translate
from devtools.template import ROOT, TEMPLATE_PATH

DEFAULT_OUTPUT = ROOT / "examples" / "cdk-sbt" / "billing.template.json"


def write_cdk_template(output: Path, packaged: Path | None = None) -> Path:
    """Writes the translation (with every parameter left a parameter) to `output` and returns it."""
    template = translate({}, packaged or TEMPLATE_PATH, packaged=packaged is not None)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(template, indent=1, sort_keys=True) + "\n")
    return output


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packaged", type=Path, help="the template `sam package` wrote (code in S3)")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    arguments = parser.parse_args()
    written = write_cdk_template(arguments.output, arguments.packaged)
    print(f"wrote {written}")


if __name__ == "__main__":
    main()

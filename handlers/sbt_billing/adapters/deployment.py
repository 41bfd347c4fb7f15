"""A deployed stack's settings, as its own function has them: the environment of the stack's
ReconcileFunction (its tables, bus, catalogue, billing choices and the name of the Stripe secret),
read with the caller's credentials (cloudformation:DescribeStackResource, lambda:GetFunctionConfiguration).
Names only: the Stripe key stays in Secrets Manager, read there when needed."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

FUNCTION = "ReconcileFunction"


class DeploymentError(Exception):
    pass


def deployed_environment(cloudformation: Any, lambda_client: Any, stack: str) -> dict[str, str]:
    try:
        resource = cloudformation.describe_stack_resource(StackName=stack, LogicalResourceId=FUNCTION)
        name = resource["StackResourceDetail"]["PhysicalResourceId"]
        configuration = lambda_client.get_function_configuration(FunctionName=name)
    except (ClientError, BotoCoreError) as error:
        code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else None
        raise DeploymentError(
            f"cannot read stack {stack}'s {FUNCTION}: {code or type(error).__name__}"
        ) from None
    variables = (configuration.get("Environment") or {}).get("Variables") or {}
    return {str(key): str(value) for key, value in variables.items()}

"""The events this product publishes on the SBT bus, by their canonical detail types (the bus adapter
publishes them under the deployment's SBT naming)."""

from __future__ import annotations

BILLING_SUCCESS = "sbt_aws_billingSuccess"
BILLING_FAILURE = "sbt_aws_billingFailure"
DEACTIVATE_REQUEST = "sbt_aws_deactivateRequest"
ACTIVATE_REQUEST = "sbt_aws_activateRequest"
TENANT_BILLING_UPDATED = "sbt_aws_tenantBillingUpdated"
TRIAL_WILL_END = "sbt_aws_tenantTrialWillEnd"
BILLING_DRIFT = "sbt_aws_billingDrift"

// SBT's names for the events billing listens to and publishes, read from SBT itself: its DetailType
// enum and the sources its EventManager assigns to each detail type. Nothing here is retyped, so an
// SBT release that renames an event renames it in the billing stack's parameters too.
import { DetailType, IEventManager } from '@cdklabs/sbt-aws';

/** The template parameters (template.yaml) that carry SBT's names. */
export type SbtNameParameters = {
  readonly SbtRelease: 'current' | 'legacy';
  readonly ControlPlaneSource: string;
  readonly ApplicationPlaneSource: string;
  readonly OnboardingRequestDetailType: string;
  readonly ProvisionSuccessDetailType: string;
  readonly ProvisionFailureDetailType: string;
  readonly OffboardingRequestDetailType: string;
  readonly TenantUserCreatedDetailType: string;
  readonly TenantUserDeletedDetailType: string;
  readonly IngestUsageDetailType: string;
  readonly EventSource: string;
};

/** The sbt-aws release line the names belong to: since mid-2025 SBT prefixes its detail types with
 * `sbt_aws_`. The template's SbtRelease names the two events SBT does not define (tenant updated and
 * tenant deleted) and the prefix of what billing publishes (billingSuccess, billingFailure, ...). */
export function sbtRelease(): 'current' | 'legacy' {
  return DetailType.BILLING_SUCCESS.startsWith('sbt_aws_') ? 'current' : 'legacy';
}

export function sbtNameParameters(events: IEventManager): SbtNameParameters {
  return {
    SbtRelease: sbtRelease(),
    ControlPlaneSource: events.supportedEvents[DetailType.ONBOARDING_REQUEST],
    ApplicationPlaneSource: events.supportedEvents[DetailType.PROVISION_SUCCESS],
    OnboardingRequestDetailType: DetailType.ONBOARDING_REQUEST,
    ProvisionSuccessDetailType: DetailType.PROVISION_SUCCESS,
    ProvisionFailureDetailType: DetailType.PROVISION_FAILURE,
    OffboardingRequestDetailType: DetailType.OFFBOARDING_REQUEST,
    TenantUserCreatedDetailType: DetailType.TENANT_USER_CREATED,
    TenantUserDeletedDetailType: DetailType.TENANT_USER_DELETED,
    IngestUsageDetailType: DetailType.INGEST_USAGE,
    // What billing publishes (billingSuccess, billingFailure, activateRequest...) comes from the source SBT
    // expects billingSuccess from.
    EventSource: events.supportedEvents[DetailType.BILLING_SUCCESS],
  };
}

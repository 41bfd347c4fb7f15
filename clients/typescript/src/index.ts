// A typed client of the SBT Stripe billing API for application planes written in Node.js: requests
// signed with the caller's IAM credentials (SigV4, execute-api), answers typed from docs/openapi.json.
//
//   import { BillingClient } from 'sbt-billing-client';
//   import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
//
//   const billing = new BillingClient(process.env.BILLING_API_URL!, { credentials: fromNodeProviderChain() });
//   const gate = await billing.status(tenantId);
//   if (!gate.allowed) throw new Error(`billing says ${gate.state}: ${gate.reasons.join(', ')}`);
export { BillingClient } from './client';
export type { BillingChange, BillingChangeResult, BillingClientOptions, GateStatus, PlanPreview, TenantBilling } from './client';
export {
  AccessDenied,
  BillingApiError,
  Busy,
  Conflict,
  IdempotencyKeyReused,
  InvalidRequest,
  PaymentRequired,
  ServiceUnavailable,
  TenantNotFound,
} from './errors';
export type * from './openapi';

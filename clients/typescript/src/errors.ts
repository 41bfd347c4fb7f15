// What can go wrong, by HTTP status: each error carries the API's code and message (docs/API.md).
import type { InvoiceOut } from './openapi';

export class BillingApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`${status} ${code}: ${message}`);
    this.name = new.target.name;
  }
}

/** 400: a malformed tenant id, query or body. */
export class InvalidRequest extends BillingApiError {}

/** 402 payment_required: the change is invoiced at once and the payment failed; the plan is unchanged
 * until `invoice` is paid (`invoice.hostedInvoiceUrl`). */
export class PaymentRequired extends BillingApiError {
  constructor(status: number, code: string, message: string, readonly invoice: InvoiceOut | null) {
    super(status, code, message);
  }
}

/** 403: the request was not signed, or the caller may not invoke the API. */
export class AccessDenied extends BillingApiError {}

/** 404: no billing account for this tenant. */
export class TenantNotFound extends BillingApiError {}

/** 409: tenant_offboarded (final), account_not_open; Busy: retry after `retryAfter` seconds. */
export class Conflict extends BillingApiError {
  constructor(status: number, code: string, message: string, readonly retryAfter: number | null) {
    super(status, code, message);
  }
}

/** 409 tenant_busy or idempotency_in_progress: the change is recorded; retry after `retryAfter`
 * seconds with the same idempotency key to read its result. */
export class Busy extends Conflict {}

/** 422 idempotency_key_reused: the key came with another request before. */
export class IdempotencyKeyReused extends BillingApiError {}

/** 5xx, or the API could not be reached: retrying later may succeed. */
export class ServiceUnavailable extends BillingApiError {}

const BUSY = new Set(['tenant_busy', 'idempotency_in_progress']);

export function errorFor(
  status: number,
  code: string,
  message: string,
  extra: { retryAfter?: number | null; invoice?: InvoiceOut | null } = {},
): BillingApiError {
  if (status === 402) return new PaymentRequired(status, code, message, extra.invoice ?? null);
  if (status === 409) return new (BUSY.has(code) ? Busy : Conflict)(status, code, message, extra.retryAfter ?? null);
  if (status === 400) return new InvalidRequest(status, code, message);
  if (status === 403) return new AccessDenied(status, code, message);
  if (status === 404) return new TenantNotFound(status, code, message);
  if (status === 422) return new IdempotencyKeyReused(status, code, message);
  if (status >= 500) return new ServiceUnavailable(status, code, message);
  return new BillingApiError(status, code, message);
}

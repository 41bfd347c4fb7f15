// The HTTP side: requests signed with SigV4 (service execute-api), sent with fetch, answers typed from
// docs/openapi.json, errors by status.
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { BillingApiError, errorFor } from './errors';
import type { ErrorOut, InvoiceOut, Paths } from './openapi';

type Route = keyof Paths;
type Answer<R extends Route, M extends keyof Paths[R]> = Paths[R][M] extends { response: infer A } ? A : never;

export type GateStatus = Answer<'/tenants/{tenantId}/billing/status', 'get'>;
export type TenantBilling = Answer<'/tenants/{tenantId}/billing', 'get'>;
export type BillingChange = Paths['/tenants/{tenantId}/billing']['patch']['body'];
export type BillingChangeResult = Answer<'/tenants/{tenantId}/billing', 'patch'>;
export type PlanPreview = Answer<'/tenants/{tenantId}/billing/preview', 'get'>;

export interface BillingClientOptions {
  /** The caller's credentials, or a provider of them: on Lambda, `fromNodeProviderChain()` of
   * @aws-sdk/credential-providers (or the function's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
   * AWS_SESSION_TOKEN). */
  readonly credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Default: the API's host name (abc123.execute-api.<region>.amazonaws.com), else AWS_REGION. */
  readonly region?: string;
  /** Milliseconds before a request is abandoned (ServiceUnavailable). Default 5000. */
  readonly timeoutMs?: number;
  /** Default: the global fetch. */
  readonly fetch?: typeof fetch;
}

const USER_AGENT = 'sbt-billing-client-js/1.0.0';

export class BillingClient {
  private readonly base: URL;
  private readonly signer: SignatureV4;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  /** `baseUrl` is the API's stage URL: the stack's BillingApiUrl output. */
  constructor(baseUrl: string, options: BillingClientOptions) {
    this.base = new URL(baseUrl.replace(/\/+$/, ''));
    if (this.base.protocol !== 'https:' && this.base.protocol !== 'http:') {
      throw new Error("baseUrl must be the API's https:// stage URL");
    }
    const region = options.region ?? regionOf(this.base) ?? process.env.AWS_REGION;
    if (!region) throw new Error('no region: pass region or set AWS_REGION');
    this.signer = new SignatureV4({ service: 'execute-api', region, credentials: options.credentials, sha256: Sha256 });
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.fetch = options.fetch ?? fetch;
  }

  /** The gate: may this tenant provision or create resources now? */
  status(tenantId: string): Promise<GateStatus> {
    return this.request('GET', `/tenants/${segment(tenantId)}/billing/status`);
  }

  /** Customer, plan, subscription, next invoice, seats, usage and one page of invoices (newest first). */
  billing(tenantId: string, page: { limit?: number; startingAfter?: string } = {}): Promise<TenantBilling> {
    return this.request('GET', `/tenants/${segment(tenantId)}/billing`, { query: page });
  }

  /** Every invoice of the tenant, newest first, page by page. */
  async *invoices(tenantId: string, pageSize = 25): AsyncGenerator<InvoiceOut> {
    let startingAfter: string | undefined;
    for (;;) {
      const { invoices } = await this.billing(tenantId, { limit: pageSize, startingAfter });
      yield* invoices.data;
      if (!invoices.hasMore || !invoices.nextCursor) return;
      startingAfter = invoices.nextCursor;
    }
  }

  /** What changing the tenant to `tier` costs now and on the next invoice. Pass its prorationDate to
   * update() to be invoiced exactly that. */
  preview(tenantId: string, tier: string, prorationDate?: number): Promise<PlanPreview> {
    return this.request('GET', `/tenants/${segment(tenantId)}/billing/preview`, { query: { tier, prorationDate } });
  }

  /** Changes the tenant's tier and/or details; answers once Stripe has the change. With an
   * `idempotencyKey` (one per user action) a retry returns the first answer. */
  update(tenantId: string, change: BillingChange, options: { idempotencyKey?: string } = {}): Promise<BillingChangeResult> {
    const headers: Record<string, string> = options.idempotencyKey ? { 'idempotency-key': options.idempotencyKey } : {};
    return this.request('PATCH', `/tenants/${segment(tenantId)}/billing`, { body: change, headers });
  }

  private async request<T>(
    method: string,
    path: string,
    options: { query?: Record<string, string | number | undefined>; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<T> {
    const query = Object.fromEntries(
      Object.entries(options.query ?? {})
        .filter(([, value]) => value !== undefined)
        .map(([name, value]) => [name, String(value)]),
    );
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const fullPath = `${this.base.pathname.replace(/\/$/, '')}${path}`;
    const signed = await this.signer.sign({
      method,
      protocol: this.base.protocol,
      hostname: this.base.hostname,
      port: this.base.port ? Number(this.base.port) : undefined,
      path: fullPath,
      query,
      headers: {
        host: this.base.host,
        accept: 'application/json',
        'user-agent': USER_AGENT,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...options.headers,
      },
      body,
    });
    const search = Object.entries(query)
      .map(([name, value]) => `${escape(name)}=${escape(value)}`)
      .join('&');
    const url = `${this.base.origin}${fullPath}${search ? `?${search}` : ''}`;
    const { host: _host, ...headers } = signed.headers;
    let response: Response;
    try {
      response = await this.fetch(url, { method, headers, body, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (error) {
      throw errorFor(503, 'unreachable', error instanceof Error ? error.message : String(error));
    }
    const text = await response.text();
    if (!response.ok) throw failure(response, text);
    const document = JSON.parse(text) as unknown;
    if (document === null || typeof document !== 'object' || Array.isArray(document)) {
      throw errorFor(502, 'bad_response', 'the API answered something other than a JSON object');
    }
    return document as T;
  }
}

function failure(response: Response, text: string): BillingApiError {
  let document: Partial<ErrorOut> & { message?: string } = {};
  try {
    document = JSON.parse(text);
  } catch {
    // not JSON: a gateway's own page
  }
  const retryAfter = Number(response.headers.get('retry-after'));
  if (document.error) {
    return errorFor(response.status, document.error.code, document.error.message, {
      retryAfter: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
      invoice: document.error.invoice ?? null,
    });
  }
  // API Gateway's own refusals (a missing or bad signature) are {"message": "..."}.
  return errorFor(response.status, 'gateway', String(document.message ?? ''));
}

/** SigV4's encoding (RFC 3986: all but A-Z a-z 0-9 - _ . ~), so the URL says what was signed. */
function escape(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function segment(value: string): string {
  return escape(value);
}

/** abc123.execute-api.<region>.amazonaws.com */
function regionOf(url: URL): string | undefined {
  const parts = url.hostname.split('.');
  return parts.length > 3 && parts[1] === 'execute-api' ? parts[2] : undefined;
}

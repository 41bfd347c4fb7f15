// The client against a running billing API: tests/integration/test_installed_clients.py starts the local
// API (the template's routes behind a SigV4-verifying gateway, moto and the Stripe emulator), opens a
// tenant on the basic tier, and runs these with
//   BILLING_API_URL, BILLING_TENANT_ID, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { AccessDenied, BillingApiError, BillingClient, InvalidRequest, TenantNotFound } from '../src';

const url = required('BILLING_API_URL');
const tenant = required('BILLING_TENANT_ID');
const credentials = {
  accessKeyId: required('AWS_ACCESS_KEY_ID'),
  secretAccessKey: required('AWS_SECRET_ACCESS_KEY'),
  sessionToken: process.env.AWS_SESSION_TOKEN,
};
const billing = new BillingClient(url, { region: 'us-east-1', credentials });

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run through tests/integration/test_installed_clients.py`);
  return value;
}

test('the gate answers for an open account', async () => {
  const gate = await billing.status(tenant);

  assert.deepEqual(gate, {
    tenantId: tenant,
    state: 'active',
    allowed: true,
    reasons: ['subscription_active'],
    scheduledChange: null,
  });
});

test('the billing view has the plan, the subscription and the first invoice', async () => {
  const view = await billing.billing(tenant, { limit: 5 });

  assert.equal(view.plan?.tier, 'basic');
  assert.equal(view.plan?.amount, 2900);
  assert.equal(view.subscription?.status, 'active');
  assert.equal(view.invoices.data.length, 1);
  assert.equal(view.invoices.data[0].amountDue, 2900);
  const every = [];
  for await (const invoice of billing.invoices(tenant, 1)) every.push(invoice.id);
  assert.deepEqual(every, [view.invoices.data[0].id]);
});

test('a previewed tier change is applied once, and its retry with the same key answers the same', async () => {
  const preview = await billing.preview(tenant, 'premium');
  const key = randomUUID();

  const change = await billing.update(tenant, { tier: 'premium', prorationDate: preview.prorationDate }, { idempotencyKey: key });
  const retry = await billing.update(tenant, { tier: 'premium', prorationDate: preview.prorationDate }, { idempotencyKey: key });

  assert.equal(preview.currentTier, 'basic');
  assert.equal(change.result, 'applied');
  assert.equal(change.tier, 'premium');
  assert.deepEqual(retry, change);
  assert.equal((await billing.billing(tenant)).plan?.tier, 'premium');
});

test('an unknown tenant is TenantNotFound', async () => {
  await assert.rejects(billing.status('no-such-tenant'), TenantNotFound);
});

test('a tenant id that needs escaping is signed as it is sent', async () => {
  // The gateway verifies the signature over the escaped path: the API answers, rather than refusing it.
  await assert.rejects(
    billing.status('acme:eu@1+2=3 x'),
    (error: unknown) => error instanceof BillingApiError && !(error instanceof AccessDenied),
  );
});

test('a malformed query is InvalidRequest', async () => {
  await assert.rejects(billing.billing(tenant, { limit: 0 }), InvalidRequest);
});

test('a request signed with other credentials is AccessDenied', async () => {
  const stranger = new BillingClient(url, { region: 'us-east-1', credentials: { ...credentials, secretAccessKey: 'wrong' } });

  await assert.rejects(stranger.status(tenant), (error: unknown) => error instanceof AccessDenied && error.status === 403);
});

// The event contract between SBT and billing, read from the synthesised app (cdk.out): every detail
// type and source billing's rules listen to is one SBT's EventManager defines, every SBT event billing
// must handle reaches it, and what billing publishes is what SBT expects.
//
//   npm run build && npm run synth && npm test
//   CDK_OUT=... BILLING_TEMPLATE=... npm test   # as tests/test_cdk_example.py runs it
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DetailType, EventManager } from '@cdklabs/sbt-aws';
import { App, Stack } from 'aws-cdk-lib';
import { Template as Synthesised } from 'aws-cdk-lib/assertions';
import { readAssembly, Resolver, Resource, strings, Template, Unknown, Value } from './cloudformation';
import { sbtRelease } from '../lib/sbt-names';
import { StripeBilling } from '../lib/stripe-billing';

const EXAMPLE = join(__dirname, '..', '..');
const CDK_OUT = process.env.CDK_OUT ?? join(EXAMPLE, 'cdk.out');
const BILLING_TEMPLATE = process.env.BILLING_TEMPLATE ?? join(EXAMPLE, 'billing.template.json');
const STACK = 'SbtWithStripeBilling';

// Every detail type SBT defines (by its DetailType key), and what billing does with it. A key SBT adds
// or renames fails `every detail type SBT defines is one billing has decided about`.
const HANDLED = [
  'ONBOARDING_REQUEST',
  'PROVISION_SUCCESS',
  'PROVISION_FAILURE',
  'OFFBOARDING_REQUEST',
  'TENANT_USER_CREATED',
  'TENANT_USER_DELETED',
  'INGEST_USAGE',
] as const;
// Billing's canonical names of what it publishes (handlers/: sbt_aws_ + name, the prefix as SbtRelease says).
const PUBLISHED = {
  BILLING_SUCCESS: 'billingSuccess',
  BILLING_FAILURE: 'billingFailure',
  ACTIVATE_REQUEST: 'activateRequest',
  DEACTIVATE_REQUEST: 'deactivateRequest',
} as const;
const NOT_FOR_BILLING = [
  'ONBOARDING_SUCCESS',
  'ONBOARDING_FAILURE',
  'OFFBOARDING_SUCCESS',
  'OFFBOARDING_FAILURE',
  'DEPROVISION_SUCCESS',
  'DEPROVISION_FAILURE',
  'ACTIVATE_SUCCESS',
  'ACTIVATE_FAILURE',
  'DEACTIVATE_SUCCESS',
  'DEACTIVATE_FAILURE',
];
// Events billing defines because SBT has none (README "The events"): the template's SbtNames entry, and
// the DetailType key SBT would give it. Should SBT define one, billing must listen to SBT's name.
const BILLING_OWN = { TenantUpdated: 'TENANT_UPDATED', TenantDeleted: 'TENANT_DELETED' } as const;

type Pair = { source: string; detailType: string };
type Rule = { id: string; bus: Value; sources: string[]; detailTypes: string[]; functions: string[] };

const sbt = (() => {
  const events = new EventManager(new Stack(new App(), 'Probe'), 'Events');
  const types = DetailType as unknown as Record<string, string>;
  const packageJson = JSON.parse(readFileSync(require.resolve('@cdklabs/sbt-aws/package.json'), 'utf8'));
  const lock = JSON.parse(readFileSync(join(EXAMPLE, 'package-lock.json'), 'utf8'));
  return {
    version: String(packageJson.version),
    locked: String(lock.packages['node_modules/@cdklabs/sbt-aws'].version),
    types,
    source: (detailType: string): string | undefined => events.supportedEvents[detailType],
  };
})();

function rulesOf(template: Template, resolver: Resolver): Rule[] {
  const resources = template.Resources;
  // A function is named directly, or through the alias SAM publishes (AutoPublishAlias, for SnapStart).
  const functionOf = (id: string): string =>
    resources[id].Type === 'AWS::Lambda::Alias' ? ((resources[id].Properties!.FunctionName as any).Ref as string) : id;
  const functionsOf = (rule: Resource): string[] =>
    (rule.Properties!.Targets as any[]).flatMap((target) => {
      const id: string = target.Arn.Ref ?? target.Arn['Fn::GetAtt'][0];
      if (['AWS::Lambda::Function', 'AWS::Lambda::Alias'].includes(resources[id].Type)) return [functionOf(id)];
      return Object.values(resources)
        .filter((r) => r.Type === 'AWS::Lambda::EventSourceMapping')
        .filter((r) => (r.Properties!.EventSourceArn as any)['Fn::GetAtt'][0] === id)
        .map((r) => functionOf((r.Properties!.FunctionName as any).Ref as string));
    });
  return Object.entries(resources)
    .filter(([, resource]) => resource.Type === 'AWS::Events::Rule' && resource.Properties?.EventPattern)
    .map(([id, resource]) => {
      const pattern = resolver.resolve(resource.Properties!.EventPattern) as Record<string, Value>;
      return {
        id,
        bus: resolver.resolve(resource.Properties!.EventBusName ?? null),
        sources: strings(pattern.source, `${id} source`),
        detailTypes: strings(pattern['detail-type'], `${id} detail-type`),
        functions: functionsOf(resource),
      };
    });
}

const pairsOf = (rules: Rule[]): Pair[] =>
  rules.flatMap((rule) => rule.sources.flatMap((source) => rule.detailTypes.map((detailType) => ({ source, detailType }))));
const show = (pair: Pair): string => `${pair.detailType} from ${pair.source}`;
const matched = (pair: Pair, rules: Rule[]): boolean =>
  rules.some((rule) => rule.sources.includes(pair.source) && rule.detailTypes.includes(pair.detailType));

const app = (() => {
  const assembly = readAssembly(CDK_OUT);
  const parent = assembly.stacks[STACK];
  assert.ok(parent, `no stack ${STACK} in ${CDK_OUT}: run npm run synth`);
  const [, nestedResource] = Object.entries(parent.Resources).find(
    ([, resource]) =>
      resource.Type === 'AWS::CloudFormation::Stack' && String(resource.Metadata?.['aws:cdk:path']).includes('/StripeBilling/'),
  )!;
  const nested = assembly.read(String(nestedResource.Metadata!['aws:asset:path']));
  // What the parent passes the nested stack: its own resources (the bus) are known by name only.
  const passed = Object.fromEntries(
    Object.entries(nestedResource.Properties!.Parameters as Record<string, any>).map(([name, value]) => [
      name,
      typeof value === 'string' ? value : new Unknown(`${STACK} ${value.Ref}`),
    ]),
  );
  const billing = new Resolver(nested, passed);
  const sbtParent = new Resolver(parent);
  const [busId] = Object.entries(parent.Resources).find(
    ([, resource]) => resource.Type === 'AWS::Events::EventBus' && String(resource.Metadata?.['aws:cdk:path']).includes('/EventManager/'),
  )!;
  const functions = (template: Template, resolver: Resolver) =>
    Object.entries(template.Resources)
      .filter(([, resource]) => resource.Type === 'AWS::Lambda::Function')
      .map(([id, resource]) => ({
        id,
        environment: resolver.resolve((resource.Properties!.Environment as any)?.Variables ?? {}) as Record<string, Value>,
      }));
  const sbtFunctions = functions(parent, sbtParent);
  return {
    nested,
    busId,
    rules: rulesOf(nested, billing),
    billingFunctions: functions(nested, billing),
    // What SBT's synthesised control plane puts on the bus (its functions' EVENT_SOURCE and *_DETAIL_TYPE)...
    sbtEmits: sbtFunctions.flatMap(({ environment }) =>
      typeof environment.EVENT_SOURCE !== 'string'
        ? []
        : Object.entries(environment)
            .filter(([name]) => name.endsWith('_DETAIL_TYPE'))
            .map(([, detailType]) => ({ source: environment.EVENT_SOURCE as string, detailType: String(detailType) })),
    ),
    // ...and what its own rules take from the application plane.
    sbtConsumes: pairsOf(rulesOf(parent, sbtParent)),
    ownName: (entry: keyof typeof BILLING_OWN): string =>
      String(billing.resolve({ 'Fn::FindInMap': ['SbtNames', sbtRelease(), entry] })),
  };
})();

test('the example is synthesised with the SBT release its lock file pins', (t) => {
  assert.equal(sbt.version, sbt.locked);
  t.diagnostic(`@cdklabs/sbt-aws ${sbt.version}`);
});

test("billing's rules are on the control plane's event bus", () => {
  assert.ok(app.rules.length > 0);
  for (const rule of app.rules) {
    assert.equal(String(rule.bus), `<${STACK} ${app.busId}>`, `${rule.id} is on ${String(rule.bus)}`);
  }
});

test('every event billing listens to is one SBT defines, from the source SBT gives it', (t) => {
  const own = Object.keys(BILLING_OWN).map((entry) => app.ownName(entry as keyof typeof BILLING_OWN));
  for (const pair of pairsOf(app.rules)) {
    if (own.includes(pair.detailType)) {
      assert.ok(!Object.values(sbt.types).includes(pair.detailType), `${pair.detailType} is SBT's now`);
      t.diagnostic(`billing's own: ${show(pair)}`);
      continue;
    }
    assert.ok(sbt.source(pair.detailType) !== undefined, `SBT ${sbt.version} defines no ${pair.detailType}`);
    assert.equal(pair.source, sbt.source(pair.detailType), `SBT sends ${pair.detailType} from ${sbt.source(pair.detailType)}`);
    t.diagnostic(`matched: ${show(pair)}`);
  }
});

test('every SBT event billing should handle reaches billing', () => {
  for (const key of HANDLED) {
    const detailType = sbt.types[key];
    assert.ok(detailType, `SBT ${sbt.version} has no DetailType.${key}`);
    const pair = { source: sbt.source(detailType)!, detailType };
    assert.ok(matched(pair, app.rules), `no billing rule takes ${show(pair)}`);
  }
  // The synthesised control plane's own configuration of those events agrees.
  const handled = new Set<string>(HANDLED.map((key) => sbt.types[key]));
  const synthesised = [...app.sbtEmits, ...app.sbtConsumes].filter((pair) => handled.has(pair.detailType));
  assert.ok(synthesised.length >= 3, 'the control plane emits the onboarding and offboarding requests, takes provisioning');
  for (const pair of synthesised) {
    assert.ok(matched(pair, app.rules), `SBT's control plane has ${show(pair)}; no billing rule takes it`);
  }
});

test('every detail type SBT defines is one billing has decided about', () => {
  const decided = new Set<string>([...HANDLED, ...Object.keys(PUBLISHED), ...NOT_FOR_BILLING]);
  for (const key of Object.keys(sbt.types)) {
    assert.ok(decided.has(key), `SBT ${sbt.version} defines DetailType.${key}: handle it, publish it or say it is not for billing`);
  }
  for (const [entry, key] of Object.entries(BILLING_OWN)) {
    assert.ok(!(key in sbt.types), `SBT defines DetailType.${key}: billing's ${entry} must take SBT's name`);
  }
});

test('what billing publishes is what SBT expects, from the source SBT expects it from', (t) => {
  const publishers = app.billingFunctions.filter(({ environment }) => 'PUBLISHED_DETAIL_TYPE_PREFIX' in environment);
  assert.ok(publishers.length > 0);
  for (const { id, environment } of publishers) {
    for (const [key, name] of Object.entries(PUBLISHED)) {
      const published = `${String(environment.PUBLISHED_DETAIL_TYPE_PREFIX)}${name}`;
      assert.equal(published, sbt.types[key], `${id} publishes ${published}, SBT defines ${sbt.types[key]}`);
      assert.equal(environment.EVENT_SOURCE, sbt.source(published), `${id} publishes ${published} from ${String(environment.EVENT_SOURCE)}`);
    }
  }
  t.diagnostic(`published: ${Object.keys(PUBLISHED).map((key) => show({ detailType: sbt.types[key], source: sbt.source(sbt.types[key])! })).join('; ')}`);
});

test('each billing function accepts the detail types its rules route to it', () => {
  const routed = new Map<string, Set<string>>();
  for (const rule of app.rules) {
    for (const id of rule.functions) {
      routed.set(id, new Set([...(routed.get(id) ?? []), ...rule.detailTypes]));
    }
  }
  let configured = 0;
  for (const { id, environment } of app.billingFunctions) {
    for (const [name, value] of Object.entries(environment)) {
      if (!/_DETAIL_TYPES?$/.test(name)) continue;
      configured += 1;
      for (const detailType of String(value).split(',')) {
        assert.ok(routed.get(id)?.has(detailType), `${id} ${name}=${detailType}, but its rules route ${[...(routed.get(id) ?? [])]}`);
      }
    }
  }
  assert.ok(configured >= 6, 'the lifecycle and user functions name the detail types they handle');
});

test("SBT's destroy-on-delete policy stops at its control plane: billing keeps its tables", () => {
  for (const id of ['AccountsTable', 'UsageTable']) {
    assert.equal(app.nested.Resources[id].DeletionPolicy, 'Retain', id);
  }
});

test('from the Serverless Application Repository, billing is given the same names', () => {
  const stack = new Stack(new App(), 'FromServerlessRepo');
  const events = new EventManager(stack, 'Events');
  new StripeBilling(stack, 'StripeBilling', {
    eventManager: events,
    stripeSecretName: 'sbt/stripe',
    source: { applicationId: 'arn:aws:serverlessrepo:us-east-1:123456789012:applications/sbt-stripe-billing', semanticVersion: '0.1.0' },
  });
  const [application] = Object.values(Synthesised.fromStack(stack).findResources('AWS::Serverless::Application'));
  const given = Object.fromEntries(
    Object.entries(application.Properties.Parameters as Record<string, any>).map(([name, value]) => [
      name,
      typeof value === 'string' ? value : new Unknown(`${STACK} ${app.busId}`),
    ]),
  );
  const template = JSON.parse(readFileSync(BILLING_TEMPLATE, 'utf8')) as Template;
  const listened = (rules: Rule[]) => pairsOf(rules).map(show).sort();
  assert.deepEqual(listened(rulesOf(template, new Resolver(template, given))), listened(app.rules));
});

#!/usr/bin/env node
// SBT's control plane with Stripe billing on its event bus.
//
//   npx cdk synth -c bundling=none                          # offline, no Docker (what CI runs)
//   npx cdk deploy -c adminEmail=ops@example.com            # billing from billing.template.json (scripts/cdk-template)
//   npx cdk deploy -c adminEmail=ops@example.com \
//     -c billingApplicationId=arn:aws:serverlessrepo:us-east-1:123456789012:applications/sbt-stripe-billing \
//     -c billingVersion=0.1.0                               # billing from the Serverless Application Repository
import { ControlPlane } from '@cdklabs/sbt-aws';
import { App, CfnOutput, Stack } from 'aws-cdk-lib';
import { BillingSource, StripeBilling } from '../lib/stripe-billing';

const app = new App();
// SBT's functions are PythonFunctions, bundled in Docker at synth time. `-c bundling=none` skips
// bundling for every stack (the CLI refuses `aws:` context keys such as aws:cdk:bundling-stacks on
// its command line, so the app sets it): enough to read the templates, not to deploy them.
if (app.node.tryGetContext('bundling') === 'none') {
  app.node.setContext('aws:cdk:bundling-stacks', []);
}
const context = (key: string): string | undefined => app.node.tryGetContext(key);

const stack = new Stack(app, 'SbtWithStripeBilling', {
  description: 'SaaS Builder Toolkit control plane with Stripe billing',
});
const controlPlane = new ControlPlane(stack, 'ControlPlane', {
  systemAdminEmail: context('adminEmail') ?? 'admin@example.com',
});

const applicationId = context('billingApplicationId');
const source: BillingSource = applicationId
  ? { applicationId, semanticVersion: context('billingVersion') ?? '0.1.0' }
  : { templateFile: context('billingTemplate') ?? 'billing.template.json' };
const billing = new StripeBilling(stack, 'StripeBilling', {
  eventManager: controlPlane.eventManager,
  stripeSecretName: context('stripeSecretName') ?? 'sbt/stripe',
  source,
});

new CfnOutput(stack, 'BillingApiUrl', { value: billing.billingApiUrl });

// The Stripe billing stack on an SBT control plane's event bus, as a nested stack: either the
// CloudFormation template made from this repository's template.yaml (scripts/cdk-template), or the
// application published in the AWS Serverless Application Repository (README "Publish").
import { IEventManager } from '@cdklabs/sbt-aws';
import { CfnResource, NestedStack, Token } from 'aws-cdk-lib';
import { CfnApplication } from 'aws-cdk-lib/aws-sam';
import { CfnInclude } from 'aws-cdk-lib/cloudformation-include';
import { Construct } from 'constructs';
import { sbtNameParameters } from './sbt-names';

export type BillingSource =
  /** A CloudFormation (JSON) template made by scripts/cdk-template: from a `sam package`d template for
   * a deploy, or from template.yaml itself (code locations are placeholders) for a synth. */
  | { readonly templateFile: string }
  /** The application published with `sam publish`, shared with the deploying account. */
  | { readonly applicationId: string; readonly semanticVersion: string };

export interface StripeBillingProps {
  /** The control plane's event manager: its bus, and SBT's names for the events. */
  readonly eventManager: IEventManager;
  /** Name (or ARN) of the Secrets Manager secret holding the Stripe secret key. */
  readonly stripeSecretName: string;
  readonly source: BillingSource;
  /** Any other parameter of template.yaml, e.g. TierCatalogue, CollectionMode, WebhookSecretName. */
  readonly parameters?: Record<string, string>;
}

export class StripeBilling extends Construct {
  /** What the billing stack is given: the bus, the Stripe secret, SBT's names, then `parameters`. */
  readonly parameters: Record<string, string>;
  /** The billing API's stage URL, for the application plane's clients (clients/python, clients/typescript). */
  readonly billingApiUrl: string;
  /** The nested stack's resource in this stack. */
  readonly stackResource: CfnResource;

  constructor(scope: Construct, id: string, props: StripeBillingProps) {
    super(scope, id);
    this.parameters = {
      EventBusName: props.eventManager.busName,
      StripeSecretName: props.stripeSecretName,
      ...sbtNameParameters(props.eventManager),
      ...props.parameters,
    };
    if ('templateFile' in props.source) {
      const nested = new NestedStack(this, 'Stack', {
        description: 'Stripe billing for the SBT control plane (sbt-stripe-billing)',
      });
      // CfnInclude puts the given values in place of the template's parameters; a token (the bus name)
      // becomes a parameter of the nested stack, which CDK passes from this stack.
      new CfnInclude(nested, 'Template', {
        templateFile: props.source.templateFile,
        parameters: this.parameters,
      });
      this.stackResource = nested.nestedStackResource!;
      // The template's own output, read from the nested stack (not re-exported through CDK's tokens).
      this.billingApiUrl = Token.asString(this.stackResource.getAtt('Outputs.BillingApiUrl'));
    } else {
      const application = new CfnApplication(this, 'Application', {
        location: {
          applicationId: props.source.applicationId,
          semanticVersion: props.source.semanticVersion,
        },
        parameters: this.parameters,
      });
      this.billingApiUrl = application.getAtt('Outputs.BillingApiUrl').toString();
      this.stackResource = application;
    }
  }
}

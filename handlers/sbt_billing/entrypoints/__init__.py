"""The edge: what Lambda hands a function (SBT's events, SQS batches, Stripe's deliveries, API Gateway's
requests) parsed and checked here, then one call into the domain through the composition root
(`sbt_billing.bootstrap`), and its outcome answered, logged and counted."""

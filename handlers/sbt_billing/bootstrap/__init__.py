"""The composition root: the one place adapters are built (lazily, once per container) and handed to
the domain. One module per kind of function, so that each function imports what it runs and nothing
else: the gate (`gate`) and the user function (`users`) never load stripe, and only the webhook
(`webhook`) loads the Stripe-report rules.

    settings     the deployment's settings, read from the environment once
    clients      AWS clients, the per-container caches, forget_clients (tests, local runs)
    stores       the DynamoDB, SQS and EventBridge adapters
    stripe       Stripe keys, clients and gateways
    gate         the billing gate
    users        the user function's recorder
    lifecycle    the lifecycle, seats and usage (the lifecycle, seat sync and usage functions)
    api          the billing API's full read and changes
    webhook      Stripe's webhook: the report processor, signing secrets, meter error reports

Nothing here runs at import: the environment, a secret or the network are read at first use.
"""

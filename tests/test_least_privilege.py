"""Every function may do what its code does, and no more.

moto does not enforce IAM: a call the template does not grant passes every local test and fails in
AWS (the billing API's read of the usage table did). Here every function runs over every sample event
in events/ (in name order, on moto and the Stripe emulator, each with only its own environment) while
each AWS call it makes is recorded, and each call is checked against the role SAM's translator makes
of template.yaml, its intrinsics resolved to the local stack's names. Generic: a new function, route,
queue or sample is covered by being in the template and in events/.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import stripe

from devtools.iam import Account, AwsCall, CallRecorder, decision, role_statements
from devtools.intrinsics import StackNames, resolve
from devtools.local_run import (
    LOCAL_PARAMETERS,
    LOCAL_TIER_CATALOGUE,
    LOCAL_USAGE_METERS,
    FakeLambdaContext,
    delivery,
    rebased,
    seed_catalogue,
    seed_meters,
)
from devtools.moto_server import AwsClients, LocalResources, create_resources
from devtools.sam_translate import TranslatorMissing, translate
from devtools.template import ROOT, event_routes, function_handlers, load_template, sample_targets

EVENTS = ROOT / "events"
STRIPE_KEY = "sk_test_least_privilege_000000000"
READ_KEY = "rk_test_least_privilege_000000000"
# Variables only a local run or a test sets (the key itself, the emulator's address), never the template.
LOCAL_ONLY = {"STRIPE_API_KEY", "STRIPE_API_BASE"}
# Set for every function by Globals: Powertools' own configuration, not the code's settings.
POWERTOOLS = re.compile(r"^POWERTOOLS_")


@dataclass
class Run:
    """What one pass over every sample recorded."""

    parameters: dict[str, str]
    statements: dict[str, list[dict[str, Any]]]  # function id -> its role's statements, resolved
    calls: dict[str, list[AwsCall]]
    environments: dict[str, dict[str, str]]
    settings_read: dict[str, set[str]] = field(default_factory=dict)  # function id -> env names read
    delivered: dict[str, list[str]] = field(default_factory=dict)  # sample file -> function ids
    answers: list[tuple[str, str, Any]] = field(default_factory=list)  # (sample, function, answer)


# --- The local stack, as CloudFormation would name it ------------------------------------------------------


def stack_names(
    resources: LocalResources, parameters: Mapping[str, str], translated: Mapping[str, Any]
) -> StackNames:
    where = Account()
    refs: dict[str, str] = {}
    attributes: dict[tuple[str, str], str] = {}
    for logical_id, table in resources.tables.items():
        refs[logical_id] = table
        attributes[(logical_id, "Arn")] = where.arn("dynamodb", f"table/{table}")
    for logical_id, url in resources.queues.items():
        name = url.rstrip("/").rsplit("/", 1)[-1]
        refs[logical_id] = url
        attributes[(logical_id, "QueueName")] = name
        attributes[(logical_id, "Arn")] = where.arn("sqs", name)
        attributes[(logical_id, "QueueUrl")] = url
    values = {
        name: spec["Default"] for name, spec in translated.get("Parameters", {}).items() if "Default" in spec
    }
    values = {name: ",".join(map(str, v)) if isinstance(v, list) else str(v) for name, v in values.items()}
    return StackNames(
        parameters={**values, **parameters},
        refs=refs,
        attributes=attributes,
        conditions=translated.get("Conditions", {}),
        mappings=translated.get("Mappings", {}),
    )


# --- Settings: which environment variables each function's code reads ----------------------------------


@contextmanager
def settings_reads_recorded(run: Run, current: list[str]) -> Iterator[None]:
    """sbt_billing.bootstrap.settings builds its Settings through a subclass that notes each field read while a
    function runs (`current` names it)."""
    from sbt_billing.bootstrap import settings as module

    base = module.Settings
    aliases = base.variables()

    class RecordingSettings(base):  # type: ignore[misc, valid-type]
        def __getattribute__(self, name: str) -> Any:
            if name in aliases and current:
                run.settings_read.setdefault(current[0], set()).add(aliases[name])
            return super().__getattribute__(name)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "Settings", RecordingSettings)
        yield


@contextmanager
def only_environment(variables: Mapping[str, str], cleared: set[str]) -> Iterator[None]:
    """os.environ with `cleared` removed and `variables` set, as a function's own environment."""
    saved = {name: os.environ.get(name) for name in cleared | set(variables)}
    for name in cleared:
        os.environ.pop(name, None)
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- Samples as the platform delivers them ----------------------------------------------------------------


def sign(event: dict[str, Any], secret: str) -> dict[str, Any]:
    body = str(event["body"])
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    header = f"t={timestamp},v1={digest}"
    return {
        **event,
        "headers": {**(event.get("headers") or {}), "Stripe-Signature": header},
        "multiValueHeaders": {**(event.get("multiValueHeaders") or {}), "Stripe-Signature": [header]},
    }


def with_real_ids(event: dict[str, Any], accounts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A webhook sample's placeholder Stripe ids (cus_SbtSample..., sub_SbtSample...) replaced by those
    of the account its body names (else of the first account Stripe holds), so that the delivery
    concerns a real tenant of the run."""
    body = str(event["body"])
    opened = [account for account in accounts.values() if account.get("customer_id")]
    named = [account for tenant_id, account in accounts.items() if tenant_id in body]
    for account in (named or opened)[:1]:
        body = re.sub(r"cus_SbtSample\w+", str(account["customer_id"]), body)
        body = re.sub(r"sub_SbtSample\w+", str(account.get("subscription_id", "")), body)
    return {**event, "body": body}


def deliveries(
    path: Path, event: dict[str, Any], kind: str, webhook_secret: str, accounts: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The sample as the platform hands it over (its times moved to now); a webhook sample also
    signed as Stripe signs it, with the run's ids."""
    if kind == "sqs":
        records = []
        for record in event["Records"]:
            body = json.dumps(rebased(json.loads(record["body"])))
            records.append({**record, "body": body, "md5OfBody": hashlib.md5(body.encode()).hexdigest()})
        return [{**event, "Records": records}]
    if (
        kind == "api"
        and event.get("httpMethod") == "POST"
        and "Stripe-Signature" in (event.get("headers") or {})
    ):
        return [event, sign(with_real_ids(event, accounts), webhook_secret)]
    return [rebased(event)]


def account_rows(clients: AwsClients, table: str) -> dict[str, dict[str, Any]]:
    items = clients.dynamodb().scan(TableName=table).get("Items", [])
    return {
        item["tenantId"]["S"]: {key: next(iter(value.values())) for key, value in item.items()}
        for item in items
    }


def card_changed_unheard(client: stripe.StripeClient, accounts: Mapping[str, Mapping[str, Any]]) -> None:
    """What a tenant does in Stripe while the webhook hears nothing of it: a new default card, on the
    customer of an account still open. The reconciler's replay hands it to the lifecycle (its queue), as
    the webhook would have."""
    open_accounts = [
        account
        for account in accounts.values()
        if account.get("customer_id") and account.get("status") not in ("closed", "closing")
    ]
    assert open_accounts, "the samples leave an open account with a customer"
    customer = str(open_accounts[0]["customer_id"])
    card = client.v1.payment_methods.attach("pm_card_mastercard", {"customer": customer})
    client.v1.customers.update(customer, {"invoice_settings": {"default_payment_method": card.id}})


def meter_error_reported(
    client: stripe.StripeClient,
    accounts: Mapping[str, Mapping[str, Any]],
    emulator_url: str,
    webhook_secret: str,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Usage Stripe takes and then drops (its customer deleted in Stripe, which the account has not
    heard of): the usage event, then Stripe's error report as an event destination delivers it to the
    webhook (signed, without its data)."""
    usage = rebased(json.loads((EVENTS / "13_ingest_usage.json").read_text()))
    client.v1.customers.delete(str(accounts[usage["detail"]["tenantId"]]["customer_id"]))
    usage["id"] = f"{usage['id']}-dropped"
    usage["detail"]["usage"] = [{**item, "id": f"{item['id']}-dropped"} for item in usage["detail"]["usage"]]
    yield "UsageIngestFunction", usage
    reports = client.v2.core.events.list().data
    assert reports, "Stripe reported the usage it dropped"
    delivery = emulator_admin(emulator_url, f"events/{reports[0].id}/signed", {"secret": webhook_secret})
    request = json.loads((EVENTS / "webhook_invoice_paid.json").read_text())
    request["body"] = delivery["payload"]
    request["headers"] = {**request["headers"], **delivery["headers"]}
    request["multiValueHeaders"] = {name: [value] for name, value in request["headers"].items()}
    yield "StripeWebhookFunction", request


def emulator_admin(url: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
    import urllib.request

    request = urllib.request.Request(
        f"{url}/_emulator/{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


# --- One pass -----------------------------------------------------------------------------------------------


def samples_in_run_order() -> list[tuple[Path, dict[str, Any], str]]:
    """Every sample with its delivery: the event-driven ones in name order, then the scheduled ones (a
    scheduled run, such as the reconciler's, sees what the day's events left; run before the webhook's
    samples, its replay would make them duplicates and the webhook's own paths would go unexercised)."""
    samples = [(path, json.loads(path.read_text())) for path in sorted(EVENTS.glob("*.json"))]
    ordered = [(path, sample, delivery(path, sample)) for path, sample in samples]
    return sorted(ordered, key=lambda item: item[2] == "schedule")


def run_every_sample(moto_endpoint: str, emulator_url: str, read_key: bool) -> Run:
    from sbt_billing.bootstrap.clients import forget_clients

    stripe_client = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": emulator_url})
    emulator_reset(emulator_url)
    seed_catalogue(stripe_client, LOCAL_TIER_CATALOGUE)
    seed_meters(stripe_client, LOCAL_USAGE_METERS)

    resources = create_resources(moto_endpoint, stripe_api_key=STRIPE_KEY)
    clients = AwsClients(moto_endpoint, resources.region)
    secrets = clients.secretsmanager()
    webhook_secret = "whsec_" + os.urandom(16).hex()
    parameters = {
        **resources.parameter_overrides(),
        **LOCAL_PARAMETERS,
        "WebhookSecretName": f"{resources.secret_name}-webhook",
    }
    secrets.create_secret(Name=parameters["WebhookSecretName"], SecretString=webhook_secret)
    if read_key:
        parameters["StripeReadSecretName"] = f"{resources.secret_name}-read"
        secrets.create_secret(Name=parameters["StripeReadSecretName"], SecretString=READ_KEY)

    translated = translate(parameters)
    names = stack_names(resources, parameters, translated)
    handlers = function_handlers(parameters, resources.resource_names())
    statements = {
        function_id: role_statements(translated, function_id, lambda value: resolve(value, names))
        for function_id in handlers
    }
    environments = {
        function_id: {**handler.environment, "STRIPE_API_BASE": emulator_url}
        for function_id, handler in handlers.items()
    }
    for function_id, handler in handlers.items():
        assert handler.unresolved == {}, (function_id, handler.unresolved)
    from sbt_billing.bootstrap.settings import Settings

    cleared = (
        set(Settings.variables().values())
        | {name for environment in environments.values() for name in environment}
    ) - {name for name in os.environ if POWERTOOLS.match(name)}

    def secret_arn(name: str) -> str:  # the ARN IAM sees: the name with Secrets Manager's suffix
        return str(secrets.describe_secret(SecretId=name)["ARN"])

    recorder = CallRecorder(Account(), secret_arn)
    run = Run(parameters, statements, recorder.calls, environments)
    routes = event_routes(parameters)
    template = load_template()
    current: list[str] = []

    def invoke(function_id: str, event: Mapping[str, Any]) -> Any:
        """The function's handler on one event, in its own environment only, its AWS calls recorded."""
        handler = handlers[function_id]
        with only_environment(environments[function_id], cleared):
            forget_clients()
            module = importlib.import_module(handler.module)
            current[:] = [function_id]
            try:
                with recorder.working_for(function_id):
                    return getattr(module, handler.function)(
                        json.loads(json.dumps(event)), FakeLambdaContext(function_id)
                    )
            except Exception as error:  # reported by the tests, with the sample that raised it
                return {"raised": f"{type(error).__name__}: {error}"}
            finally:
                current.clear()
                forget_clients()

    with recorder.recording(), settings_reads_recorded(run, current):
        scheduled = False
        for path, sample, kind in samples_in_run_order():
            if kind == "schedule" and not scheduled:
                scheduled = True
                card_changed_unheard(stripe_client, account_rows(clients, resources.tables["AccountsTable"]))
            targets = sample_targets(sample, kind, routes, template)
            run.delivered[path.name] = targets
            accounts = account_rows(clients, resources.tables["AccountsTable"])
            for function_id in targets:
                for event in deliveries(path, sample, kind, webhook_secret, accounts):
                    run.answers.append((path.name, function_id, invoke(function_id, event)))
        # Usage Stripe takes and then drops: its error report reaches the webhook as a thin event.
        accounts = account_rows(clients, resources.tables["AccountsTable"])
        for function_id, event in meter_error_reported(stripe_client, accounts, emulator_url, webhook_secret):
            run.answers.append(("(meter error report)", function_id, invoke(function_id, event)))
    return run


def emulator_reset(url: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"{url}/_emulator/reset", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture(scope="module", params=[False, True], ids=["one-stripe-key", "read-only-key-for-http"])
def run(request: pytest.FixtureRequest, moto_endpoint: str, emulator_url: str) -> Run:
    try:
        return run_every_sample(moto_endpoint, emulator_url, read_key=request.param)
    except TranslatorMissing as error:
        if os.environ.get("CI") == "true":
            pytest.fail(str(error))
        pytest.skip(str(error))


# --- What it shows --------------------------------------------------------------------------------------------


def test_every_function_runs_on_its_samples_and_every_sample_reaches_a_function(run: Run) -> None:
    assert {name for name, targets in run.delivered.items() if not targets} == set()
    invoked = {function_id for targets in run.delivered.values() for function_id in targets}
    assert invoked == set(run.environments)


def test_no_function_fails_or_answers_a_server_error_on_its_samples(run: Run) -> None:
    failures = [
        (sample, function_id, answer)
        for sample, function_id, answer in run.answers
        if "raised" in answer or int(answer.get("statusCode", 200)) >= 500
    ]
    assert failures == []


def test_every_aws_call_a_function_makes_is_granted_by_its_role(run: Run) -> None:
    refused = sorted(
        {
            f"{function_id}: {call} needs {action} on {resource} ({verdict})"
            if call.problem is None
            else f"{function_id}: {call}: {call.problem}"
            for function_id, calls in run.calls.items()
            for call in calls
            for action, resource in (call.needs or (("?", "?"),))
            if call.problem is not None
            or (verdict := decision(run.statements[function_id], action, resource)) != "Allow"
        }
    )
    assert refused == []
    assert set(run.calls) == set(run.environments), "every function makes at least one AWS call"


def test_each_function_gets_the_environment_its_code_reads_and_no_more(run: Run) -> None:
    problems = []
    for function_id, environment in run.environments.items():
        given = {name for name in environment if not POWERTOOLS.match(name)} - LOCAL_ONLY
        read = run.settings_read.get(function_id, set()) - LOCAL_ONLY
        if missing := read - given:
            problems.append(f"{function_id} reads {sorted(missing)} without having them (defaults apply)")
        if unused := given - read:
            problems.append(f"{function_id} is given {sorted(unused)}, which its code never reads")
    assert problems == []


def test_stripes_meter_error_report_marks_the_usage_it_names_in_the_webhooks_own_environment(
    run: Run,
) -> None:
    [(_, _, answer)] = [
        entry
        for entry in run.answers
        if entry[0] == "(meter error report)" and entry[1] == "StripeWebhookFunction"
    ]
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["rejected"] >= 1

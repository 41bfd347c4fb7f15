"""scripts/adopt: bill the tenants a running SBT already has, through the same lifecycle as a tenant SBT
onboards today (domain/adoption.py says what is done for each).

    scripts/adopt --stack sbt-billing --sbt-api https://<id>.execute-api.<region>.amazonaws.com/prod --dry-run
    scripts/adopt --stack sbt-billing --sbt-api https://...                # the same plan, then applied
    scripts/adopt --stack sbt-billing --tenants tenants.json               # or an export (JSON or CSV)
    scripts/adopt --stack sbt-billing --report                             # the reconciler's last report

It lists SBT's tenants, Stripe's customers and live subscriptions (100 a request) and the accounts
billing has, prints the plan, and (without --dry-run) applies it with a progress bar, its Stripe
requests paced (--rate), each tenant done noted in the state file (--state) so that a run stopped at
any point (Ctrl-C, an outage) is run again with the same command and resumes: what was done is not
done again (and the lifecycle would not do it twice anyway). It ends with a summary table and the
reconciler's report.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from sbt_billing.adapters.deployment import DeploymentError
from sbt_billing.bootstrap.adoption import (
    TenantSourceError,
    accounts_of,
    adoption,
    checkpoint,
    last_reconcile_report,
    stripe_index,
    stripe_requests_made,
    tenants_from,
    tier_catalogue,
    use_deployment,
)
from sbt_billing.domain.adoption import AdoptionAction, AdoptionResult, AdoptionStep, SbtTenant, plan_step
from sbt_billing.domain.errors import ConfigurationError, TransientBillingError
from sbt_billing.domain.reconcile_state import ReconcileReport
from sbt_billing.entrypoints.console import Progress, table

DEFAULT_RATE = 20.0  # Stripe requests a second: under test mode's 25 (live mode allows 100)
SHOWN = 50  # rows of the plan shown (all with --show 0)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/adopt", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="the deployed stack whose settings to use (else the environment's)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--sbt-api", help="SBT's control plane API URL: GET /tenants, signed with your IAM credentials"
    )
    source.add_argument(
        "--tenants", type=Path, help="an export of SBT's tenants: JSON (a list or {data: [...]}) or CSV"
    )
    parser.add_argument("--region", help="the SBT API's region (default: from its URL or your profile)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    parser.add_argument(
        "--state", type=Path, default=Path("adopt-state.jsonl"), help="where done tenants are noted"
    )
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="Stripe requests a second (default 20)"
    )
    parser.add_argument("--default-tier", help="the tier of tenants whose SBT record names none")
    parser.add_argument(
        "--confirm-email-links",
        action="store_true",
        help="link every customer found by email alone (else each is asked, or skipped when not interactive)",
    )
    parser.add_argument("--show", type=int, default=SHOWN, help="rows of the plan to show (0: all)")
    parser.add_argument("--report", action="store_true", help="only print the reconciler's last report")
    args = parser.parse_args(argv)
    if not args.report and args.sbt_api is None and args.tenants is None:
        parser.error("one of --sbt-api or --tenants is required (or --report)")
    if not 0 < args.rate <= 100:
        parser.error("--rate must be between 0 and 100 requests a second")
    return args


def main(
    argv: Sequence[str] | None = None,
    *,
    after_each: Callable[[int], None] | None = None,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    args = parse(argv)

    def say(text: str = "") -> None:
        out.write(text + "\n")
        out.flush()

    try:
        use_deployment(args.stack, args.rate)
        if args.report:
            say(report_text(last_reconcile_report()))
            return 0
        tenants, unusable = _tenants(args)
    except (DeploymentError, TenantSourceError, ConfigurationError) as error:
        err.write(f"adopt: {error}\n")
        return 2
    say(
        f"SBT: {len(tenants)} tenants"
        + (f" ({unusable} records without a valid tenantId left out)" if unusable else "")
    )
    listing = Progress(0, "listing Stripe", stream=err)
    index = stripe_index(on_request=lambda: listing.advance())
    say(
        f"Stripe: {index.customers} customers ({len(index.by_tenant)} naming a tenant), listed with their "
        f"live subscriptions in {listing.done} requests"
    )
    accounts = accounts_of([tenant.tenant_id for tenant in tenants])
    steps = [plan_step(tenant, accounts.get(tenant.tenant_id), index, tier_catalogue()) for tenant in tenants]
    done = checkpoint(args.state).done()
    say()
    say(plan_text(steps, done, args.show))
    if args.dry_run:
        say("\n--dry-run: nothing changed.")
        say("\n" + report_text(last_reconcile_report()))
        return 0
    confirmed = _confirmed(steps, done, args.confirm_email_links, stdin, say)
    todo = [
        step
        for step in steps
        if step.action is not AdoptionAction.SKIP
        and step.tenant_id not in done
        and (step.action is not AdoptionAction.LINK_BY_EMAIL or step.tenant_id in confirmed)
    ]
    results, failures, stopped = _apply(todo, args.state, after_each, err)
    say()
    say(summary_text(steps, done, confirmed, results))
    if failures:
        say("\nFailed (Stripe refused; reported on the bus as billingFailure):")
        say(table(["tenant", "reason"], failures))
    say(f"\nStripe requests: {stripe_requests_made()} (paced at {args.rate:g} a second)")
    if stopped:
        say(f"\nStopped: {stopped}. Run the same command again to resume (state: {args.state}).")
    say("\n" + report_text(last_reconcile_report()))
    if stopped:
        return 130 if stopped == "interrupted" else 75
    return 1 if failures else 0


def _tenants(args: argparse.Namespace) -> tuple[list[SbtTenant], int]:
    found = tenants_from(args.sbt_api, args.tenants, args.region)
    tenants: dict[str, SbtTenant] = {}
    for tenant in found:
        if tenant is None or tenant.tenant_id in tenants:
            continue
        if tenant.tier is None and args.default_tier:
            tenant = tenant.model_copy(update={"tier": args.default_tier})
        tenants[tenant.tenant_id] = tenant
    return list(tenants.values()), sum(1 for tenant in found if tenant is None)


def _confirmed(
    steps: Sequence[AdoptionStep],
    done: dict[str, str],
    all_confirmed: bool,
    stdin: TextIO,
    say: Callable[[str], None],
) -> set[str]:
    """The tenants whose customer, found by email alone, may be linked: every one with
    --confirm-email-links, else each as answered at the terminal (none when it is not one)."""
    asked = [s for s in steps if s.action is AdoptionAction.LINK_BY_EMAIL and s.tenant_id not in done]
    if all_confirmed:
        return {step.tenant_id for step in asked}
    if not asked or not stdin.isatty():
        return set()
    confirmed = set()
    for step in asked:
        say(f"Link tenant {step.tenant_id} to {step.customer_id} (same email, no tenantId)? [y/N] ")
        if stdin.readline().strip().lower() in ("y", "yes"):
            confirmed.add(step.tenant_id)
    return confirmed


def _apply(
    todo: Sequence[AdoptionStep], state: Path, after_each: Callable[[int], None] | None, err: TextIO
) -> tuple[Counter[str], list[tuple[str, str]], str | None]:
    """Each step through the lifecycle, noted in the state file once done; (results, failures, why it
    stopped early if it did)."""
    service, noted = adoption(), checkpoint(state)
    results: Counter[str] = Counter()
    failures: list[tuple[str, str]] = []
    progress = Progress(len(todo), "adopting", stream=err)
    stopped = None
    try:
        for n, step in enumerate(todo, start=1):
            try:
                result, reason = service.apply(step)
            except TransientBillingError as error:
                stopped = f"Stripe or AWS unavailable ({error})"
                break
            results[result.value] += 1
            if result is AdoptionResult.FAILED:
                failures.append((step.tenant_id, reason or ""))
            else:
                noted.record(step.tenant_id, result.value)
            progress.advance()
            if after_each is not None:
                after_each(n)
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        progress.close()
    return results, failures, stopped


# -- what it prints ---------------------------------------------------------------------------------------


def plan_text(steps: Sequence[AdoptionStep], done: dict[str, str], show: int) -> str:
    counts = Counter("done before" if s.tenant_id in done else s.action.value for s in steps)
    lines = ["Plan:", table(["action", "tenants"], sorted(counts.items()))]
    notable = [s for s in steps if s.tenant_id not in done and s.action is not AdoptionAction.OPEN]
    if notable:
        shown = notable if show == 0 else notable[:show]
        rows = [
            (
                s.tenant_id,
                s.action.value,
                s.customer_id or "",
                s.subscription_id or "",
                f"{s.subscription_tier} -> {s.tenant.tier}" if s.subscription_tier else "",
                s.reason or "",
            )
            for s in shown
        ]
        lines += ["", table(["tenant", "action", "customer", "subscription", "tier change", "reason"], rows)]
        if len(shown) < len(notable):
            lines.append(f"... and {len(notable) - len(shown)} more (--show 0 for all)")
    return "\n".join(lines)


def summary_text(
    steps: Sequence[AdoptionStep], done: dict[str, str], confirmed: set[str], results: Counter[str]
) -> str:
    rows: list[tuple[str, int]] = [(result, results[result]) for result in sorted(results)]
    before = sum(1 for s in steps if s.tenant_id in done)
    skipped = sum(1 for s in steps if s.tenant_id not in done and s.action is AdoptionAction.SKIP)
    unconfirmed = sum(
        1
        for s in steps
        if s.tenant_id not in done
        and s.action is AdoptionAction.LINK_BY_EMAIL
        and s.tenant_id not in confirmed
    )
    rows += [("skipped", skipped), ("not confirmed (email)", unconfirmed), ("done before (state)", before)]
    return "Summary:\n" + table(["result", "tenants"], [row for row in rows if row[1] or row[0] == "skipped"])


def report_text(report: ReconcileReport | None) -> str:
    if report is None:
        return "Reconciler: no pass yet (or no reconcile table in these settings)."
    state = f"complete at {report.finished_at:%Y-%m-%d %H:%M:%S}Z" if report.finished_at else "under way"
    lines = [
        f"Reconciler: pass {report.pass_id} started {report.started_at:%Y-%m-%d %H:%M:%S}Z, {state}, "
        f"{report.invocations} invocation(s), {report.count('stripe_requests')} Stripe requests",
        f"  accounts checked {report.count('accounts_checked')}, subscriptions listed "
        f"{report.count('subscriptions_listed')}, events replayed {report.count('events_applied')} "
        f"(already applied {report.count('events_unchanged')})",
    ]
    drift = report.drift_counts()
    if not drift:
        lines.append("  no drift")
        return "\n".join(lines)
    lines.append(table(["drift", "tenants"], sorted(drift.items())))
    rows = [
        (example.tenant_id, drift.kind.value, drift.action.value, drift.account or "", drift.stripe or "")
        for example in report.examples[:20]
        for drift in example.drifts
    ]
    lines += ["", table(["tenant", "kind", "action", "billing", "stripe"], rows)]
    return "\n".join(lines)


def run() -> None:
    started = time.monotonic()
    code = main()
    sys.stderr.write(f"adopt: {time.monotonic() - started:.1f} s\n")
    raise SystemExit(code)


if __name__ == "__main__":
    run()

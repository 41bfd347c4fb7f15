"""The reconcile function: each invocation (on its schedule, or on demand) continues the current pass,
or starts the next one, until it is done or the invocation's time is nearly up; then counts what it
found, one metric per kind of drift. An on-demand invocation may pass `{"restart": true}` to abandon
an unfinished pass and start anew."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext

from sbt_billing.adapters.clock import SystemClock
from sbt_billing.adapters.stripe_seam import invocation_end
from sbt_billing.bootstrap.reconcile import event_processor, reconciler
from sbt_billing.domain.errors import InvalidEvent
from sbt_billing.domain.event_replay import Replayed
from sbt_billing.domain.reconcile import ReconcileRun
from sbt_billing.domain.results import Result
from sbt_billing.domain.stripe_events import StripeEvent
from sbt_billing.entrypoints.observability import logger, metrics
from sbt_billing.entrypoints.stripe_event_apply import apply_once, prepare

# Kept of the invocation's time for what follows the last page: saving the pass, flushing metrics.
RESERVE_SECONDS = 20.0
# The metrics of a run: its counts under these names (each drift kind and action as Drift_<name>).
METRICS = {
    "accounts_checked": "ReconcileAccountsChecked",
    "accounts_busy": "ReconcileAccountsBusy",
    "subscriptions_listed": "ReconcileSubscriptionsListed",
    "stripe_requests": "ReconcileStripeRequests",
    "tenants_with_drift": "DriftTenants",
    "repairs_failed": "DriftRepairsFailed",
    "events_listed": "StripeEventsListed",
    "events_applied": "StripeEventsReplayed",
    "events_unchanged": "StripeEventsAlreadyApplied",
    "events_in_flight": "StripeEventsInFlight",
    "events_rejected": "StripeEventsRejected",
}


def handle_reconcile(event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
    restart = event.get("restart") is True
    seconds_left = context.get_remaining_time_in_millis() / 1000
    deadline = SystemClock().now() + timedelta(seconds=max(0.0, seconds_left - RESERVE_SECONDS))
    # Built now, whatever the run meets: a setting or a table missing fails here, not half-way.
    processor = event_processor()
    prepare()

    def replay(stripe_event: StripeEvent) -> Replayed:
        try:
            outcome, now = apply_once(stripe_event, lambda: processor, context)
        except IdempotencyAlreadyInProgressError:
            return Replayed.IN_FLIGHT
        except InvalidEvent:
            return Replayed.REJECTED
        if now and outcome.result in (Result.APPLIED, Result.RECORDED):
            return Replayed.APPLIED
        return Replayed.UNCHANGED

    with invocation_end(seconds_left):
        run = reconciler(replay, owner=context.aws_request_id, deadline=deadline).run(
            deadline, restart=restart
        )
    _count(run)
    return run_answer(run)


def _count(run: ReconcileRun) -> None:
    if run.busy:
        metrics.add_metric(name="ReconcileBusy", unit=MetricUnit.Count, value=1)
        logger.info("reconcile pass held by another invocation")
        return
    for name, value in run.counts.items():
        kind, _, detail = name.partition(":")
        metric = f"Drift_{detail}" if kind in ("drift", "action") else METRICS.get(name)
        if metric is not None:
            metrics.add_metric(name=metric, unit=MetricUnit.Count, value=value)
    if run.complete:
        metrics.add_metric(name="ReconcilePassCompleted", unit=MetricUnit.Count, value=1)
    report = run.report
    logger.info(
        "reconcile invocation done",
        pass_id=run.pass_id,
        complete=run.complete,
        counts=run.counts,
        drift=report.drift_counts() if report else {},
    )


def run_answer(run: ReconcileRun) -> dict[str, Any]:
    answer: dict[str, Any] = {"operation": "reconcile", "passId": run.pass_id, "complete": run.complete}
    if run.busy:
        answer["busy"] = True
    answer["counts"] = dict(sorted(run.counts.items()))
    if run.report is not None:
        answer["passCounts"] = dict(sorted(run.report.counts.items()))
    return answer

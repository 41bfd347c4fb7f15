"""SBT's tenant lifecycle events (onboarding request, provisioning, tenant updated, offboarding and
deletion), parsed at the boundary into the domain's TenantFacts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, NamedTuple

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import (
    AliasChoices,
    Field,
    field_validator,
)

from sbt_billing.domain.errors import InvalidEvent
from sbt_billing.domain.models import Address, Facts, TenantFacts
from sbt_billing.entrypoints import bounded_json
from sbt_billing.entrypoints.customer_fields import Country, CustomerName, Email
from sbt_billing.entrypoints.sbt_inbound import Inbound, RegistrationId, TenantId, Text

# How far `updatedAt` may run ahead of the envelope's time (clocks differ a little): a stamp far in the
# future would win every later update of its fields, for good.
UPDATED_AT_LEAD = timedelta(minutes=5)


class InboundAddress(Inbound):
    line1: Text | None = None
    line2: Text | None = None
    city: Text | None = None
    state: Text | None = None
    postal_code: Annotated[Text | None, Field(validation_alias=AliasChoices("postal_code", "postalCode"))] = (
        None
    )
    country: Country | None = None

    def to_domain(self) -> Address:
        return Address(
            line1=self.line1,
            line2=self.line2,
            city=self.city,
            state=self.state,
            postal_code=self.postal_code,
            country=self.country,
        )


class TenantFields(Inbound):
    """The tenant fields billing reads, wherever SBT puts them."""

    name: Annotated[CustomerName | None, Field(validation_alias=AliasChoices("tenantName", "name"))] = None
    email: Annotated[Email | None, Field(validation_alias=AliasChoices("email", "tenantEmail"))] = None
    tier: Text | None = None
    address: InboundAddress | None = None

    @field_validator("address", mode="before")
    @classmethod
    def _exported_as_text(cls, value: Any) -> Any:
        """A provisioning job exports its variables as strings: an address arrives as JSON text."""
        if isinstance(value, str):
            try:
                return bounded_json.loads(value, "address")
            except InvalidEvent as error:
                too_deep = error.problem == bounded_json.TOO_DEEP
                raise ValueError(error.problem if too_deep else "is text that is not a JSON object") from None
        return value


FIELDS = ("name", "email", "tier", "address")


class JobData(TenantFields):
    """What a provisioning job exported (`environmentVariablesToOutgoingEvent`): strings, of which billing
    reads the tenant fields and, when the builder exports them, the tenant and registration ids."""

    tenant_id: Annotated[TenantId | None, Field(alias="tenantId")] = None
    registration_id: Annotated[RegistrationId | None, Field(alias="tenantRegistrationId")] = None


class JobOutput(Inbound):
    tenant_data: Annotated[JobData | None, Field(alias="tenantData")] = None
    tenant_registration_data: Annotated[JobData | None, Field(alias="tenantRegistrationData")] = None


class OnboardingRequestDetail(TenantFields):
    """`sbt_aws_onboardingRequest` (`POST /tenant-registrations`): the registration's data and the
    tenant's data merged flat, with the new `tenantId` and `tenantRegistrationId`."""

    tenant_id: Annotated[TenantId, Field(alias="tenantId")]
    registration_id: Annotated[RegistrationId | None, Field(alias="tenantRegistrationId")] = None


class ProvisioningDetail(JobData):
    """`sbt_aws_provisionSuccess` / `sbt_aws_provisionFailure` from SBT's provisioning job:
    `{tenantRegistrationId, jobOutput: {tenantData, tenantRegistrationData}}` (no tenantId, no tier
    unless the job exports them). Also the same fields flat. The tenant is `tenantId` (top level, or
    exported in tenantData / tenantRegistrationData), else found through `tenantRegistrationId`.
    tenantData wins over tenantRegistrationData, which wins over flat fields."""

    job_output: Annotated[JobOutput | None, Field(alias="jobOutput")] = None

    def layers(self) -> list[JobData]:
        layers: list[JobData] = [self]
        if self.job_output is not None:
            layers += [
                layer
                for layer in (self.job_output.tenant_registration_data, self.job_output.tenant_data)
                if layer is not None
            ]
        return layers

    def merged(self) -> JobData:
        values: dict[str, Any] = {}
        for layer in self.layers():
            values.update(
                {
                    key: getattr(layer, key)
                    for key in (*FIELDS, "tenant_id", "registration_id")
                    if getattr(layer, key) is not None
                }
            )
        return JobData.model_validate(values)


class TenantUpdatedDetail(TenantFields):
    """`sbt_aws_tenantUpdated` (defined by this project; see README): the fields that changed.
    `updatedAt`, when present, orders updates more finely than the envelope's one-second time."""

    tenant_id: Annotated[TenantId, Field(alias="tenantId")]
    updated_at: Annotated[datetime | None, Field(alias="updatedAt")] = None


class TenantDeletedDetail(Inbound):
    """`sbt_aws_offboardingRequest` / `sbt_aws_tenantDeleted`: only the tenant id matters."""

    tenant_id: Annotated[TenantId, Field(alias="tenantId")]


class OnboardingRequestEvent(EventBridgeModel):
    detail: OnboardingRequestDetail


class ProvisioningEvent(EventBridgeModel):
    detail: ProvisioningDetail


class TenantUpdatedEvent(EventBridgeModel):
    detail: TenantUpdatedDetail


class TenantDeletedEvent(EventBridgeModel):
    detail: TenantDeletedDetail


class OnboardingRequest(NamedTuple):
    facts: TenantFacts
    registration_id: str | None


class ProvisioningReport(NamedTuple):
    """What a provisioning job reported, about a tenant known by id or only by its registration."""

    facts: Facts
    tenant_id: str | None
    registration_id: str | None


def onboarding_request(event: OnboardingRequestEvent) -> OnboardingRequest:
    detail = event.detail
    return OnboardingRequest(_facts(detail.tenant_id, detail, event.time), detail.registration_id)


def provisioning_report(event: ProvisioningEvent, succeeded: bool) -> ProvisioningReport:
    fields = event.detail.merged()
    if fields.tenant_id is None and fields.registration_id is None:
        raise InvalidEvent("detail.tenantRegistrationId", "is required (or tenantId) to find the tenant")
    facts = Facts(
        **_fields(fields),
        occurred_at=event.time,
        open_requested=succeeded,
        provisioning_failed=not succeeded,
    )
    return ProvisioningReport(facts, fields.tenant_id, fields.registration_id)


def update_facts(event: TenantUpdatedEvent) -> TenantFacts:
    detail = event.detail
    if all(getattr(detail, key) is None for key in FIELDS):
        raise InvalidEvent("detail", "names none of tenantName, email, tier, address: nothing to update")
    updated_at = detail.updated_at
    if updated_at is not None:
        if updated_at.tzinfo is None:
            raise InvalidEvent("detail.updatedAt", "has no time zone")
        if updated_at > event.time + UPDATED_AT_LEAD:
            minutes = int(UPDATED_AT_LEAD.total_seconds() // 60)
            raise InvalidEvent("detail.updatedAt", f"is more than {minutes} minutes after the event's time")
    return _facts(detail.tenant_id, detail, updated_at or event.time)


def named_tier(event: EventBridgeModel) -> str | None:
    """The tier a lifecycle event names, wherever it carries it (None: it names none)."""
    detail = event.detail
    if isinstance(detail, ProvisioningDetail):
        return detail.merged().tier
    return detail.tier if isinstance(detail, TenantFields) else None


def deletion_facts(event: TenantDeletedEvent) -> TenantFacts:
    return TenantFacts(tenant_id=event.detail.tenant_id, occurred_at=event.time)


def _facts(tenant_id: str, fields: TenantFields, occurred_at: datetime) -> TenantFacts:
    if occurred_at.tzinfo is None:
        raise InvalidEvent("detail.updatedAt", "has no time zone")
    return TenantFacts(tenant_id=tenant_id, occurred_at=occurred_at, **_fields(fields))


def _fields(fields: TenantFields) -> dict[str, Any]:
    return {
        "name": fields.name,
        "email": fields.email,
        "tier": fields.tier,
        "address": fields.address.to_domain() if fields.address else None,
    }

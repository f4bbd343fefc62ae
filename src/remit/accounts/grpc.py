"""AccountsService over gRPC: protobuf in, use case, protobuf out. Nothing else."""

from datetime import timedelta
from typing import Any

import grpc

from remit.accounts.domain import Account, AccountMadeBefore, ApiKey, KeyKind, Pricing
from remit.accounts.key_events import UNCHECKED_ROLE, KeyActor, KeyEvent, KeyEventAction
from remit.accounts.service import AccountOptions, AccountsService
from remit.core.errors import invalid
from remit.grpcutil.caller_role import caller_role
from remit.grpcutil.metadata import REPLAYED_KEY, idempotency_key_of
from remit.grpcutil.protoconv import request_timedelta, timestamp
from remit.grpcutil.server import ServiceRegistration
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from versions import KNOWN_VERSIONS

Context = grpc.aio.ServicerContext[Any, Any]

# A page of keys, as every list of the API pages (Stripe's `limit`).
DEFAULT_LIST_LIMIT = 10
MAX_LIST_LIMIT = 100

_KIND_TO_PROTO = {
    KeyKind.SECRET: accounts_pb2.API_KEY_KIND_SECRET,
    KeyKind.PUBLISHABLE: accounts_pb2.API_KEY_KIND_PUBLISHABLE,
}
_KIND_FROM_PROTO = {value: key for key, value in _KIND_TO_PROTO.items()}
_ACTION_TO_PROTO = {
    action: accounts_pb2.ApiKeyEventAction.Value(f"API_KEY_EVENT_ACTION_{action.name}")
    for action in KeyEventAction
}


def _actor(operator: str = "", reason: str = "") -> KeyActor:
    """Who makes the call being served: the role its credential proved, and the operator and
    reason it names."""
    return KeyActor(role=caller_role() or UNCHECKED_ROLE, operator=operator, reason=reason)


def account_message(account: Account) -> accounts_pb2.Account:
    message = accounts_pb2.Account(
        id=account.id,
        created=timestamp(account.created_at),
        default_currency=account.default_currency,
        settings=accounts_pb2.AccountSettings(
            pricing=accounts_pb2.Pricing(
                fee_percent_bps=account.pricing.fee_percent_bps,
                fee_fixed_minor=account.pricing.fee_fixed_minor,
            ),
            available_delay_days=account.available_delay_days,
            automatic_payouts=account.automatic_payouts,
            raw_card_access=account.raw_card_access,
            radar_enabled=account.radar_enabled,
        ),
    )
    if account.api_version is not None:
        message.api_version = account.api_version
    return message


def key_message(key: ApiKey) -> accounts_pb2.ApiKey:
    message = accounts_pb2.ApiKey(
        id=key.id,
        kind=_KIND_TO_PROTO[key.kind],
        prefix=("sk" if key.kind is KeyKind.SECRET else "pk")
        + ("_live" if key.livemode else "_test"),
        last4=key.last4,
        livemode=key.livemode,
        created=timestamp(key.created_at),
    )
    if key.revoked_at is not None:
        message.revoked_at.CopyFrom(timestamp(key.revoked_at))
    return message


def key_event_message(event: KeyEvent) -> accounts_pb2.ApiKeyEvent:
    message = accounts_pb2.ApiKeyEvent(
        id=event.id,
        created=timestamp(event.created_at),
        key_id=event.key_id,
        action=_ACTION_TO_PROTO[event.action],
        kind=_KIND_TO_PROTO[event.kind],
        livemode=event.livemode,
        masked_key=event.masked_key,
        role=event.role,
        operator=event.operator,
        reason=event.reason,
    )
    if event.stops_at is not None:
        message.stops_at.CopyFrom(timestamp(event.stops_at))
    if event.stops_at_before is not None:
        message.stops_at_before.CopyFrom(timestamp(event.stops_at_before))
    if event.replaced_by is not None:
        message.replaced_by = event.replaced_by
    return message


def _account_options(request: accounts_pb2.CreateAccountRequest) -> AccountOptions:
    """The settings a CreateAccount call asks for; those it leaves unset take the defaults."""
    options = AccountOptions(
        default_currency=request.default_currency or "usd",
        raw_card_access=request.raw_card_access,
        automatic_payouts=request.automatic_payouts,
    )
    if request.HasField("api_version"):
        options["api_version"] = _known_version(request.api_version)
    if request.HasField("pricing"):
        options["pricing"] = Pricing(
            request.pricing.fee_percent_bps, request.pricing.fee_fixed_minor
        )
    if request.HasField("available_delay_days"):
        options["available_delay_days"] = request.available_delay_days
    if request.HasField("radar_enabled"):
        options["radar_enabled"] = request.radar_enabled
    return options


def _known_version(version: str) -> str:
    if version not in KNOWN_VERSIONS:
        raise invalid(f"Unknown API version: {version}", "api_version")
    return version


class AccountsServicer(accounts_pb2_grpc.AccountsServiceServicer):
    def __init__(self, service: AccountsService) -> None:
        self._service = service

    async def CreateAccount(
        self, request: accounts_pb2.CreateAccountRequest, context: Context
    ) -> accounts_pb2.CreateAccountResponse:
        options = _account_options(request)
        key = idempotency_key_of(context)
        made = (
            await self._service.create_account(_actor(), **options)
            if key is None
            else await self._service.create_account_once(key, _actor(), **options)
        )
        response = accounts_pb2.CreateAccountResponse(
            account=account_message(made.account),
            secret_api_key=key_message(made.secret_api_key),
            publishable_api_key=key_message(made.publishable_api_key),
        )
        if isinstance(made, AccountMadeBefore):
            context.set_trailing_metadata(((REPLAYED_KEY, "true"),))
        else:
            response.secret_key = made.secret_key
            response.publishable_key = made.publishable_key
        return response

    async def GetAccount(
        self, request: accounts_pb2.GetAccountRequest, context: Context
    ) -> accounts_pb2.GetAccountResponse:
        account = await self._service.get_account(request.account_id)
        return accounts_pb2.GetAccountResponse(account=account_message(account))

    async def UpdateAccountSettings(
        self, request: accounts_pb2.UpdateAccountSettingsRequest, context: Context
    ) -> accounts_pb2.UpdateAccountSettingsResponse:
        current = await self._service.get_account(request.account_id)
        changes: dict[str, object] = {}
        if request.HasField("fee_percent_bps") or request.HasField("fee_fixed_minor"):
            changes["pricing"] = Pricing(
                request.fee_percent_bps
                if request.HasField("fee_percent_bps")
                else current.pricing.fee_percent_bps,
                request.fee_fixed_minor
                if request.HasField("fee_fixed_minor")
                else current.pricing.fee_fixed_minor,
            )
        for name in (
            "available_delay_days",
            "automatic_payouts",
            "raw_card_access",
            "radar_enabled",
            "default_currency",
        ):
            if request.HasField(name):
                changes[name] = getattr(request, name)
        account = await self._service.update_account(request.account_id, **changes)
        return accounts_pb2.UpdateAccountSettingsResponse(account=account_message(account))

    async def CreateApiKey(
        self, request: accounts_pb2.CreateApiKeyRequest, context: Context
    ) -> accounts_pb2.CreateApiKeyResponse:
        if request.kind not in _KIND_FROM_PROTO:
            raise invalid("kind must be secret or publishable", "kind")
        if request.livemode:
            raise invalid("Live mode keys are not available on this platform.", "livemode")
        kind = _KIND_FROM_PROTO[request.kind]
        actor = _actor(request.operator, request.reason)
        idempotency_key = idempotency_key_of(context)
        if idempotency_key is None:
            made: tuple[ApiKey, str | None] = await self._service.create_key(
                request.account_id, kind, actor
            )
        else:
            made = await self._service.create_key_once(
                idempotency_key, request.account_id, kind, actor
            )
        key, plaintext = made
        if plaintext is None:
            context.set_trailing_metadata(((REPLAYED_KEY, "true"),))
        return accounts_pb2.CreateApiKeyResponse(
            api_key=key_message(key), plaintext_key=plaintext or ""
        )

    async def ListApiKeys(
        self, request: accounts_pb2.ListApiKeysRequest, context: Context
    ) -> accounts_pb2.ListApiKeysResponse:
        limit = request.limit or DEFAULT_LIST_LIMIT
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise invalid(f"limit must be between 1 and {MAX_LIST_LIMIT}.", "limit")
        keys, has_more = await self._service.page_keys(
            request.account_id,
            limit=limit,
            starting_after=request.starting_after if request.HasField("starting_after") else None,
            ending_before=request.ending_before if request.HasField("ending_before") else None,
            working_only=not request.include_revoked,
        )
        return accounts_pb2.ListApiKeysResponse(
            data=[key_message(key) for key in keys], has_more=has_more
        )

    async def RevokeApiKey(
        self, request: accounts_pb2.RevokeApiKeyRequest, context: Context
    ) -> accounts_pb2.RevokeApiKeyResponse:
        expire_after = (
            request_timedelta(request.expire_after, "expire_after")
            if request.HasField("expire_after")
            else timedelta(0)
        )
        revoked = await self._service.revoke_key(
            request.account_id,
            request.key_id,
            expire_after=expire_after,
            replaced_by=request.replaced_by if request.HasField("replaced_by") else None,
            actor=_actor(request.operator, request.reason),
        )
        return accounts_pb2.RevokeApiKeyResponse(api_key=key_message(revoked))

    async def ListApiKeyEvents(
        self, request: accounts_pb2.ListApiKeyEventsRequest, context: Context
    ) -> accounts_pb2.ListApiKeyEventsResponse:
        limit = request.limit or DEFAULT_LIST_LIMIT
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise invalid(f"limit must be between 1 and {MAX_LIST_LIMIT}.", "limit")
        events, has_more = await self._service.page_key_events(
            request.account_id,
            limit=limit,
            starting_after=request.starting_after if request.HasField("starting_after") else None,
        )
        return accounts_pb2.ListApiKeyEventsResponse(
            data=[key_event_message(event) for event in events], has_more=has_more
        )

    async def AuthenticateApiKey(
        self, request: accounts_pb2.AuthenticateApiKeyRequest, context: Context
    ) -> accounts_pb2.AuthenticateApiKeyResponse:
        principal = await self._service.authenticate(request.key)
        response = accounts_pb2.AuthenticateApiKeyResponse(
            account_id=principal.account_id,
            key_id=principal.key_id,
            key_kind=_KIND_TO_PROTO[principal.key_kind],
            livemode=principal.livemode,
            raw_card_access=principal.raw_card_access,
        )
        if principal.api_version is not None:
            response.api_version = principal.api_version
        return response

    async def ListKeyDigests(
        self, request: accounts_pb2.ListKeyDigestsRequest, context: Context
    ) -> accounts_pb2.ListKeyDigestsResponse:
        digests, has_more = await self._service.working_key_digests(request.limit)
        return accounts_pb2.ListKeyDigestsResponse(digests=digests, has_more=has_more)

    async def PinApiVersion(
        self, request: accounts_pb2.PinApiVersionRequest, context: Context
    ) -> accounts_pb2.PinApiVersionResponse:
        version = _known_version(request.api_version)
        pinned, newly = await self._service.pin_api_version(request.account_id, version)
        return accounts_pb2.PinApiVersionResponse(api_version=pinned, newly_pinned=newly)

    async def UpgradeApiVersion(
        self, request: accounts_pb2.UpgradeApiVersionRequest, context: Context
    ) -> accounts_pb2.UpgradeApiVersionResponse:
        before = (await self._service.get_account(request.account_id)).api_version
        version = await self._service.upgrade_api_version(
            request.account_id, request.api_version, ordered_versions=list(KNOWN_VERSIONS)
        )
        response = accounts_pb2.UpgradeApiVersionResponse(api_version=version)
        if before is not None:
            response.previous_api_version = before
        return response


def accounts_registration(service: AccountsService) -> ServiceRegistration:
    servicer = AccountsServicer(service)
    return ServiceRegistration(
        full_name=accounts_pb2.DESCRIPTOR.services_by_name["AccountsService"].full_name,
        add_to_server=lambda server: accounts_pb2_grpc.add_AccountsServiceServicer_to_server(
            servicer, server
        ),
    )

"""Webhook use cases for the core process. Each public method is one unit of work."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.accounts.tables import accounts
from remit.core.clock import Clock, SystemClock
from remit.core.errors import ErrorKind, RemitError, echoed, invalid, not_found
from remit.core.ids import new_id
from remit.core.metadata import updated_metadata
from remit.payments.keyed import Done, Keyed, Replay, run_keyed, value_of
from remit.webhooks.deleted import stage_ending
from remit.webhooks.delivery import (
    RecordedAttempt,
    disabled_notice,
    outcome_of,
    record_manual_attempt,
    signed_request,
)
from remit.webhooks.domain import (
    EVENT_RETENTION,
    MAX_ENDPOINTS_PER_ACCOUNT,
    MAX_SIGNING_ROLLED_SECRETS,
    OLD_SECRET_DEFAULT_LIFETIME,
    DeliveryAttempt,
    DisabledReason,
    EndpointStatus,
    Event,
    RolledSecret,
    WebhookEndpoint,
)
from remit.webhooks.event_types import (
    TooManyEventTypesError,
    UnknownEventTypeError,
    too_many_event_types,
    validate_enabled_events,
)
from remit.webhooks.outbox import queue_again
from remit.webhooks.rendering import Renderer
from remit.webhooks.repository import (
    Cursor,
    DeliveryRepository,
    EndpointRepository,
    EventCursor,
    EventFilter,
    EventRepository,
    Page,
)
from remit.webhooks.sender import WebhookSender
from remit.webhooks.signing import generate_secret
from remit.webhooks.urls import UrlPolicy, validate_endpoint_url
from versions import KNOWN_VERSIONS

MAX_LIST_LIMIT = 100
# How many events one redelivery call looks at, at most.
REDELIVERY_BATCH = 1000
_KNOWN_VERSIONS = frozenset(KNOWN_VERSIONS)


class WebhooksError(RemitError):
    """Root of the errors the webhooks service raises."""


@dataclass(frozen=True)
class PageArgs:
    limit: int = 10
    starting_after: str | None = None
    ending_before: str | None = None


@dataclass(frozen=True)
class Redelivery:
    """What one redelivery call did: how many events it queued, whether more of its window
    remain, and the last event it looked at (where the next call starts)."""

    queued: int
    has_more: bool
    last_event: str | None


@dataclass(frozen=True)
class EndpointChanges:
    """An update: None leaves a field alone; `description=""` clears it."""

    url: str | None = None
    enabled_events: Sequence[str] | None = None
    disabled: bool | None = None
    description: str | None = None
    set_metadata: Mapping[str, str] | None = None
    unset_metadata_keys: Sequence[str] = ()
    clear_metadata: bool = False


def _enabling_without_a_valid_url(endpoint: WebhookEndpoint) -> WebhooksError:
    """Enabling an endpoint disabled for its URL, without a new one. FAILED_PRECONDITION: the
    request is well formed, and would enable any other endpoint; the endpoint's stored URL is
    what stands in the way, until an update changes it. `param` names `url`, the parameter
    that mends it."""
    return WebhooksError(
        message=f"This webhook endpoint ({endpoint.id}) was disabled because remit never "
        f"delivers to its URL, {echoed(endpoint.url)}: its host is an IPv4 address not written "
        "in dotted-decimal form. To enable it, pass a valid url in the same request (the "
        "endpoint is enabled again once its url is valid).",
        kind=ErrorKind.FAILED_PRECONDITION,
        code="url_invalid",
        param="url",
    )


def _enabled_events(values: Sequence[str], param: str = "enabled_events") -> list[str]:
    if not values:
        raise invalid('enabled_events must name at least one event type, or "*".', param)
    try:
        return validate_enabled_events(values)
    except TooManyEventTypesError as error:
        raise invalid(too_many_event_types(param, error.count), param) from None
    except UnknownEventTypeError as error:
        raise invalid(
            f"Invalid {param}[{error.index}]: {error.value!r} is not a Stripe event type. "
            'Use "*" for every type.',
            f"{param}[{error.index}]",
        ) from None


def _enabled_again(before: WebhookEndpoint, after: WebhookEndpoint) -> bool:
    return before.status is EndpointStatus.DISABLED and after.status is EndpointStatus.ENABLED


def _check_version(version: str) -> str:
    if version not in _KNOWN_VERSIONS:
        raise invalid(
            f"Invalid api_version: {version}. Known versions include {KNOWN_VERSIONS[0]} "
            f"(newest) back to {KNOWN_VERSIONS[-1]}.",
            "api_version",
        )
    return version


def _too_many_endpoints() -> WebhooksError:
    """A creation past MAX_ENDPOINTS_PER_ACCOUNT. Stripe's 400 invalid_request_error, on
    `url` as Stripe names it; FAILED_PRECONDITION: the same request succeeds once an endpoint
    is deleted."""
    return WebhooksError(
        message=f"This account already has {MAX_ENDPOINTS_PER_ACCOUNT} webhook endpoints, the "
        "most an account may have. Delete one it no longer needs before creating another, "
        "or subscribe an existing endpoint to more events.",
        kind=ErrorKind.FAILED_PRECONDITION,
        param="url",
    )


def _too_many_rolled_secrets(
    endpoint: WebhookEndpoint, signing: Sequence[RolledSecret]
) -> WebhooksError:
    """A roll that would keep more than MAX_SIGNING_ROLLED_SECRETS old secrets signing.
    FAILED_PRECONDITION: the same request succeeds once one of them has expired, or at once
    when it retires the current secret without a grace period."""
    first_to_expire = min(old.expires_at for old in signing)
    return WebhooksError(
        message=f"This webhook endpoint ({endpoint.id}) already has {len(signing)} old signing "
        f"secrets that still sign its events, the most it may have; the first of them expires "
        f"at {first_to_expire.isoformat()}. Roll again after that, or pass "
        "expire_old_secret_after=0 to stop signing with the current secret at once.",
        kind=ErrorKind.FAILED_PRECONDITION,
        param="expire_old_secret_after",
    )


def _precondition(message: str) -> WebhooksError:
    return WebhooksError(message=message, kind=ErrorKind.FAILED_PRECONDITION)


class WebhooksService:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        policy: UrlPolicy,
        sender: WebhookSender | None = None,
        renderer: Renderer | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._engine = engine
        self._policy = policy
        self._sender = sender or WebhookSender(policy)
        self.renderer = renderer
        self._clock = clock or SystemClock()

    async def close(self) -> None:
        await self._sender.close()

    def now(self) -> datetime:
        """The time by the service's clock (the core's is the database's), for what it hands
        out besides rows, so it agrees with the rows' times."""
        return self._clock.now()

    # --- endpoints ------------------------------------------------------------------------

    async def create_endpoint(
        self,
        account_id: str,
        *,
        url: str,
        enabled_events: Sequence[str],
        api_version: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> WebhookEndpoint:
        return value_of(
            await self.create_endpoint_once(
                account_id, None, url=url, enabled_events=enabled_events,
                api_version=api_version, description=description, metadata=metadata,
            )
        )  # fmt: skip

    async def create_endpoint_once(
        self,
        account_id: str,
        keyed: Keyed[WebhookEndpoint] | None,
        *,
        url: str,
        enabled_events: Sequence[str],
        api_version: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Done[WebhookEndpoint] | Replay:
        endpoint = WebhookEndpoint(
            id=new_id("we"),
            account_id=account_id,
            url=validate_endpoint_url(url, self._policy),
            enabled_events=tuple(_enabled_events(enabled_events)),
            api_version=None if api_version is None else _check_version(api_version),
            description=description or None,
            metadata=dict(metadata or {}),
            status=EndpointStatus.ENABLED,
            disabled_reason=None,
            secret=generate_secret(),
            rolled_secrets=(),
            failing_since=None,
            rate_limited_until=None,
            created_at=self._clock.now(),
        )

        async def insert(db: AsyncConnection) -> WebhookEndpoint:
            endpoints = EndpointRepository(db)
            if await endpoints.count_locked(account_id) >= MAX_ENDPOINTS_PER_ACCOUNT:
                raise _too_many_endpoints()
            await endpoints.insert(endpoint)
            return endpoint

        return await run_keyed(self._engine, keyed, self._clock.now(), insert)

    async def get_endpoint(self, account_id: str, endpoint_id: str) -> WebhookEndpoint:
        async with self._engine.begin() as db:
            return await self._endpoint(db, account_id, endpoint_id)

    @staticmethod
    async def _endpoint(
        db: AsyncConnection, account_id: str, endpoint_id: str, *, for_update: bool = False
    ) -> WebhookEndpoint:
        endpoint = await EndpointRepository(db).get(account_id, endpoint_id, for_update=for_update)
        if endpoint is None:
            raise not_found("webhook_endpoint", endpoint_id)
        return endpoint

    async def update_endpoint(
        self, account_id: str, endpoint_id: str, changes: EndpointChanges
    ) -> WebhookEndpoint:
        return value_of(await self.update_endpoint_once(account_id, None, endpoint_id, changes))

    async def update_endpoint_once(
        self,
        account_id: str,
        keyed: Keyed[WebhookEndpoint] | None,
        endpoint_id: str,
        changes: EndpointChanges,
    ) -> Done[WebhookEndpoint] | Replay:
        async def change(db: AsyncConnection) -> WebhookEndpoint:
            current = await self._endpoint(db, account_id, endpoint_id, for_update=True)
            updated = self._apply(current, changes)
            endpoints = EndpointRepository(db)
            await endpoints.save(updated)
            if _enabled_again(current, updated):
                await endpoints.start_afresh(updated.id)
            return updated

        return await run_keyed(self._engine, keyed, self._clock.now(), change)

    def _apply(self, endpoint: WebhookEndpoint, changes: EndpointChanges) -> WebhookEndpoint:
        updated = endpoint
        if changes.url is not None:
            updated = replace(updated, url=validate_endpoint_url(changes.url, self._policy))
        if changes.enabled_events is not None:
            updated = replace(
                updated, enabled_events=tuple(_enabled_events(changes.enabled_events))
            )
        if changes.description is not None:
            updated = replace(updated, description=changes.description or None)
        metadata = updated_metadata(
            updated.metadata,
            clear=changes.clear_metadata,
            unset=changes.unset_metadata_keys,
            values=changes.set_metadata,
        )
        updated = replace(updated, metadata=metadata)
        # An endpoint disabled for its URL (core migration 0051) is delivered to by no attempt
        # until the URL is mended: one a new valid URL mends is enabled again, as its owner
        # last left it (only enabled endpoints were disabled so), unless the same update
        # disables it; one whose URL stays as it was cannot be enabled, and stays disabled for
        # its URL whoever disables it too, so a later enabling is refused just the same.
        url_invalid = endpoint.disabled_reason is DisabledReason.URL_INVALID
        url_mended = url_invalid and changes.url is not None
        if changes.disabled is True:
            reason = DisabledReason.URL_INVALID if url_invalid and not url_mended else (
                DisabledReason.BY_USER
            )  # fmt: skip
            updated = replace(updated, status=EndpointStatus.DISABLED, disabled_reason=reason)
        elif changes.disabled is False or url_mended:
            if url_invalid and not url_mended:
                raise _enabling_without_a_valid_url(endpoint)
            updated = replace(updated, status=EndpointStatus.ENABLED, disabled_reason=None)
            if _enabled_again(endpoint, updated):
                # A fresh start (`EndpointRepository.start_afresh` resets the rest). Only for an
                # endpoint that was disabled: `disabled=false` sent to an enabled one (some
                # clients send every field) must not wipe out the run that would disable it.
                updated = replace(updated, failing_since=None, rate_limited_until=None)
        return updated

    async def delete_endpoint(self, account_id: str, endpoint_id: str) -> None:
        now = self._clock.now()
        async with self._engine.begin() as db:
            if not await EndpointRepository(db).delete(account_id, endpoint_id, now):
                raise not_found("webhook_endpoint", endpoint_id)
            # Its pending deliveries end, batch by batch (`remit.webhooks.deleted` says why not
            # here): nothing will deliver them, and their events must stop counting them.
            await stage_ending(db, endpoint_id=endpoint_id, account_id=account_id, now=now)

    async def list_endpoints(
        self, account_id: str, args: PageArgs
    ) -> tuple[list[WebhookEndpoint], bool]:
        async with self._engine.begin() as db:
            repo = EndpointRepository(db)
            page = await _page(args, lambda object_id: repo.cursor(account_id, object_id),
                               "webhook_endpoint")  # fmt: skip
            return await repo.list(account_id, page)

    async def roll_secret(
        self, account_id: str, endpoint_id: str, *, expire_old_after: timedelta | None = None
    ) -> tuple[WebhookEndpoint, datetime]:
        return value_of(
            await self.roll_secret_once(
                account_id, None, endpoint_id, expire_old_after=expire_old_after
            )
        )

    async def roll_secret_once(
        self,
        account_id: str,
        keyed: Keyed[tuple[WebhookEndpoint, datetime]] | None,
        endpoint_id: str,
        *,
        expire_old_after: timedelta | None = None,
    ) -> Done[tuple[WebhookEndpoint, datetime]] | Replay:
        """A new signing secret; a retry under the key answers with the same one instead of
        rolling again, which would retire the secret the first answer gave."""
        lifetime = OLD_SECRET_DEFAULT_LIFETIME if expire_old_after is None else expire_old_after
        if lifetime < timedelta(0) or lifetime > timedelta(days=7):
            raise invalid("expire_old_secret_after must be between 0 and 7 days.",
                          "expire_old_secret_after")  # fmt: skip
        now = self._clock.now()

        async def roll(db: AsyncConnection) -> tuple[WebhookEndpoint, datetime]:
            current = await self._endpoint(db, account_id, endpoint_id, for_update=True)
            signing = current.signing_rolled_secrets(now)
            if lifetime > timedelta(0) and len(signing) >= MAX_SIGNING_ROLLED_SECRETS:
                raise _too_many_rolled_secrets(current, signing)
            rolled = current.rolled(generate_secret(), now=now, old_lifetime=lifetime)
            await EndpointRepository(db).save(rolled)
            return rolled, now + lifetime

        return await run_keyed(self._engine, keyed, now, roll)

    # --- events ---------------------------------------------------------------------------

    def _retention_start(self) -> datetime:
        return self._clock.now() - EVENT_RETENTION

    async def get_event(self, account_id: str, event_id: str) -> Event:
        async with self._engine.begin() as db:
            event = await EventRepository(db).get(account_id, event_id)
        if event is None or event.created_at < self._retention_start():
            raise not_found("event", event_id)
        return event

    async def list_events(
        self, account_id: str, where: EventFilter, args: PageArgs
    ) -> tuple[list[Event], bool]:
        kept = replace(
            where,
            created=replace(where.created, gte=max(
                where.created.gte or self._retention_start(), self._retention_start()
            )),
        )  # fmt: skip
        async with self._engine.begin() as db:
            repo = EventRepository(db)
            page = await _page(args, lambda object_id: repo.cursor(account_id, object_id), "event")
            return await repo.list(account_id, kept, page)

    async def account_api_version(self, account_id: str) -> str | None:
        async with self._engine.begin() as db:
            row = (
                await db.execute(select(accounts.c.api_version).where(accounts.c.id == account_id))
            ).first()
        return None if row is None else row.api_version

    async def events_after(
        self, account_id: str, after: EventCursor | None, limit: int
    ) -> tuple[list[Event], EventCursor | None]:
        """Events newer than `after`, oldest first, and the place of the last of them."""
        async with self._engine.begin() as db:
            return await EventRepository(db).after(account_id, after, limit)

    async def event_cursor(self, account_id: str, event_id: str | None) -> EventCursor | None:
        """Where a stream starts: after `event_id`, or after the newest event when None."""
        async with self._engine.begin() as db:
            repo = EventRepository(db)
            if event_id is None:
                return await repo.newest(account_id)
            cursor = await repo.cursor(account_id, event_id)
        if cursor is None:
            raise not_found("event", event_id, param="starting_after")
        return cursor

    # --- deliveries -----------------------------------------------------------------------

    async def list_attempts(
        self, account_id: str, *, event_id: str | None, endpoint_id: str | None, args: PageArgs
    ) -> tuple[list[DeliveryAttempt], bool]:
        if event_id is None and endpoint_id is None:
            raise invalid("Name an event, a webhook_endpoint, or both.", "event")
        async with self._engine.begin() as db:
            repo = DeliveryRepository(db)
            page = await _page(args, lambda object_id: repo.attempt_cursor(account_id, object_id),
                               "webhook_delivery_attempt")  # fmt: skip
            return await repo.list_attempts(
                account_id, event_id=event_id, endpoint_id=endpoint_id, page=page
            )

    async def resend(self, account_id: str, event_id: str, endpoint_id: str) -> RecordedAttempt:
        """One attempt now, made by this process and recorded like any other; it does not
        disturb the scheduled retries except by ending them when it succeeds. An answer of 410
        Gone disables the endpoint, which is logged, as the worker logs it, and said by the
        result."""
        now = self._clock.now()
        async with self._engine.begin() as db:
            endpoint = await self._endpoint(db, account_id, endpoint_id)
            if endpoint.status is EndpointStatus.DISABLED:
                raise _precondition(f"Webhook endpoint {endpoint_id} is disabled; enable it "
                                    "before resending events to it.")  # fmt: skip
            if await EventRepository(db).get(account_id, event_id) is None:
                raise not_found("event", event_id, param="event")
            deliveries = DeliveryRepository(db)
            existing = await deliveries.get(account_id, event_id, endpoint_id)
            if existing is None:
                # Not subscribed (or created after the event): nothing is scheduled for it. A
                # redelivery may have queued it since it was read: then it is that delivery.
                delivery_id = await deliveries.add_failed_unless_present(
                    account_id=account_id, event_id=event_id, endpoint_id=endpoint_id, now=now
                )
            else:
                delivery_id = existing.id
            ctx = await deliveries.context(delivery_id)
        assert ctx is not None
        body, headers = await signed_request(ctx, self.renderer, now)
        result = await self._sender.post(endpoint.url, body, headers)
        async with self._engine.begin() as db:
            recorded = await record_manual_attempt(db, ctx, outcome_of(result, now), now=now)
        if recorded.disabled is not None:
            disabled_notice(endpoint_id, recorded.disabled)()
        return recorded

    async def redeliver(
        self,
        account_id: str,
        endpoint_id: str,
        since: datetime | None,
        *,
        starting_after: str | None = None,
        limit: int | None = None,
    ) -> Redelivery:
        """Queue again, oldest first, the events created since `since` (None: every event
        still kept) that the endpoint subscribes to and that were not delivered to it: their
        delivery failed, or they were recorded while it was disabled. Deliveries pending or
        succeeded are left alone, so a second call queues nothing the first did while those
        run. At most `limit` (REDELIVERY_BATCH) events are looked at per call: a long outage's
        window is gone through call by call, `starting_after` the previous call's
        `last_event`, never read whole."""
        now = self._clock.now()
        window_start = self._redelivery_window_start(since, now)
        batch = REDELIVERY_BATCH if limit is None else limit
        async with self._engine.begin() as db:
            endpoint = await self._endpoint(db, account_id, endpoint_id)
            if endpoint.status is EndpointStatus.DISABLED:
                raise _precondition(f"Webhook endpoint {endpoint_id} is disabled; enable it "
                                    "before redelivering events to it.")  # fmt: skip
            after = None
            if starting_after is not None:
                after = await EventRepository(db).cursor(account_id, starting_after)
                if after is None:
                    raise not_found("event", starting_after, param="starting_after")
            # One more than the batch says whether more remain.
            found = await DeliveryRepository(db).undelivered(
                account_id, endpoint, since=window_start, after=after, limit=batch + 1
            )
            chosen = found[:batch]
            queued = await queue_again(db, account_id=account_id, endpoint_id=endpoint_id,
                                       event_ids=[c.id for c in chosen], now=now)  # fmt: skip
        return Redelivery(
            queued=queued,
            has_more=len(found) > batch,
            last_event=chosen[-1].id if chosen else None,
        )

    def _redelivery_window_start(self, since: datetime | None, now: datetime) -> datetime:
        """Events are kept 30 days: a window reaching further back would silently miss the
        events purged from it, so it is refused."""
        kept_from = now - EVENT_RETENTION
        if since is None:
            return kept_from
        if since < kept_from:
            days = EVENT_RETENTION.days
            raise invalid(f"since must be within the last {days} days: events are kept "
                          f"{days} days, and older ones can no longer be redelivered.",
                          "since")  # fmt: skip
        return since


async def _page(args: PageArgs, cursor_of: object, kind: str) -> Page:
    if not 1 <= args.limit <= MAX_LIST_LIMIT:
        raise invalid("limit must be between 1 and 100.", "limit")
    if args.starting_after is not None and args.ending_before is not None:
        raise invalid("starting_after and ending_before cannot be used together.",
                      "ending_before")  # fmt: skip

    async def anchor(object_id: str | None, param: str) -> Cursor | None:
        if object_id is None:
            return None
        found = await cursor_of(object_id)  # type: ignore[operator]
        if found is None:
            raise not_found(kind, object_id, param=param)
        assert isinstance(found, Cursor)
        return found

    return Page(
        limit=args.limit,
        starting_after=await anchor(args.starting_after, "starting_after"),
        ending_before=await anchor(args.ending_before, "ending_before"),
    )

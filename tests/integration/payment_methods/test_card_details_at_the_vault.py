"""A payment method's new expiry and billing details reach the vault, which sends them with the
card's authorizations, before the core commits them: a refusal at the vault changes nothing, a
core commit that fails after the vault's is retried to the same state, a replay under an
idempotency key never reaches the vault, and a card shared with other payment methods (a test
id's) keeps its details in the core. With a real vault over gRPC."""

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import ErrorKind, RemitError
from remit.core.secrets import Secret
from remit.customers.domain import CustomerFields
from remit.customers.service import CustomersService
from remit.payment_methods import vault_client
from remit.payment_methods.domain import (
    NewPaymentMethod,
    PaymentMethod,
    PaymentMethodChanges,
    VaultCard,
)
from remit.payment_methods.service import NoPaymentMethodHooks, PaymentMethodsService
from remit.payment_methods.vault_client import TIMEOUT_S, GrpcCardVault
from remit.payments.keyed import Done, Keyed, KeyedCall, Replay
from remit.storage.engine import dispose, make_engine
from remit.vault.domain import ForwardRequest
from remit.vault.keystore import FileKeyStore
from remit.vault.service import VaultService
from tests.support.fake_acquirer import RecordingAcquirer, running_acquirer
from tests.support.postgres import WorkerDatabases
from tests.support.vault import RunningVault, empty_vault_database, running_vault

pytestmark = pytest.mark.anyio

NEW_BILLING = {"name": "Ada King", "address": {"line1": "12 New St", "postal_code": "W1"}}


class CountingVault(GrpcCardVault):
    """The vault over gRPC, counting the card details sent to it."""

    updates: list[tuple[tuple[int, int] | None, Mapping[str, object] | None]]
    unavailable: bool = False

    async def update_card_details(
        self,
        account_id: str,
        vault_token: str,
        *,
        expiry: tuple[int, int] | None,
        billing_details: Mapping[str, object] | None,
    ) -> VaultCard:
        self.updates.append((expiry, billing_details))
        if self.unavailable:
            raise RemitError(
                message="An internal service is unavailable; please retry.",
                kind=ErrorKind.UNAVAILABLE,
                error_type="api_error",
                should_retry=True,
            )
        return await super().update_card_details(
            account_id, vault_token, expiry=expiry, billing_details=billing_details
        )


class FailingHooks(NoPaymentMethodHooks):
    """Fails the core's transaction after the vault has taken the new details."""

    async def payment_method_changed(
        self, db: AsyncConnection, before: PaymentMethod, after: PaymentMethod
    ) -> None:
        raise ConnectionError("the core's database went away before the commit")


@dataclass
class Core:
    account_id: str
    methods: PaymentMethodsService
    customers: CustomersService
    vault: RunningVault
    client: CountingVault
    acquirer: RecordingAcquirer


@pytest.fixture
async def core(
    core_engine: AsyncEngine, databases: WorkerDatabases, tmp_path: Path
) -> AsyncIterator[Core]:
    vault_engine = make_engine(databases.vault_url, pool_size=5)
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    account = (await AccountsService(core_engine).create_account()).account.id
    try:
        async with (
            running_acquirer() as (acquirer, target),
            running_vault(vault_engine, keys, {"acquirer": target}) as vault,
        ):
            client = CountingVault(vault.channel)
            client.updates = []
            methods = PaymentMethodsService(core_engine, client)
            customers = CustomersService(core_engine, methods)
            yield Core(account, methods, customers, vault, client, acquirer)
    finally:
        await empty_vault_database(vault_engine)
        await dispose(vault_engine)


async def _saved_card(core: Core) -> PaymentMethod:
    tokenized = await core.vault.service.tokenize(
        core.account_id, Secret("4242424242424242"), 11, 2031, None, requester="test",
        billing_details={"name": "Ada Lovelace", "address": {"line1": "1 Old Rd"}},
    )  # fmt: skip
    method = await core.methods.create(
        core.account_id,
        NewPaymentMethod(
            vault_token=tokenized.token,
            billing_details={"name": "Ada Lovelace", "address": {"line1": "1 Old Rd"}},
        ),
    )
    customer = await core.customers.create(core.account_id, CustomerFields())
    return await core.methods.attach(core.account_id, method.id, customer.id)


async def _at_the_vault(core: Core, method: PaymentMethod) -> tuple[int, int, object]:
    details = await core.vault.service.card_details(
        core.account_id, method.vault_token, requester="test"
    )
    return details.summary.exp_month, details.summary.exp_year, details.billing_details


async def _forwarded(core: Core, method: PaymentMethod, reference: str) -> Any:
    await core.vault.service.forward(
        core.account_id,
        method.vault_token,
        ForwardRequest(
            destination="acquirer",
            amount_minor=500,
            currency="usd",
            reference=reference,
            capture=True,
            purpose="test",
            requester="core",
        ),
    )
    return core.acquirer.requests[-1]


async def test_a_payment_after_an_update_sends_the_new_expiry_and_billing_address(
    core: Core,
) -> None:
    method = await _saved_card(core)

    updated = await core.methods.update(
        core.account_id,
        method.id,
        PaymentMethodChanges(exp_month=3, exp_year=2033, billing_details=NEW_BILLING),
    )

    expected = {"name": "Ada King", "address": {"line1": "12 New St", "postal_code": "W1"}}
    assert updated.billing_details == expected
    assert await _at_the_vault(core, method) == (3, 2033, expected)
    sent = await _forwarded(core, method, "op_after_update")
    assert (sent.exp_month, sent.exp_year) == (3, 2033)
    assert (sent.billing_address.line1, sent.billing_address.postal_code) == ("12 New St", "W1")


async def test_an_update_of_other_fields_does_not_reach_the_vault(core: Core) -> None:
    method = await _saved_card(core)

    await core.methods.update(core.account_id, method.id, PaymentMethodChanges(metadata={"k": "v"}))

    assert core.client.updates == []


async def test_an_address_part_sends_the_merged_billing_details_and_keeps_the_expiry(
    core: Core,
) -> None:
    method = await _saved_card(core)

    await core.methods.update(
        core.account_id,
        method.id,
        PaymentMethodChanges(billing_details={"address": {"postal_code": "10001"}}),
    )

    merged = {"name": "Ada Lovelace", "address": {"line1": "1 Old Rd", "postal_code": "10001"}}
    # The expiry goes with it, whole, as the core holds it (`test_a_lost_vault_reply_...`).
    assert core.client.updates == [((11, 2031), merged)]
    assert await _at_the_vault(core, method) == (11, 2031, merged)


async def test_a_refusal_at_the_vault_changes_nothing_in_the_core(core: Core) -> None:
    method = await _saved_card(core)
    await core.vault.service.delete_card(core.account_id, method.vault_token, requester="admin")

    with pytest.raises(RemitError) as caught:
        await core.methods.update(
            core.account_id, method.id, PaymentMethodChanges(exp_month=3, exp_year=2033)
        )

    assert caught.value.kind is ErrorKind.FAILED_PRECONDITION
    assert caught.value.code == "payment_method_unexpected_state"
    assert "was not changed" in caught.value.message
    # The vault's handle on the card is not the merchant's to see.
    assert method.vault_token not in caught.value.message
    assert await core.methods.get(core.account_id, method.id) == method


async def test_an_unavailable_vault_fails_the_update_retryably_and_changes_nothing(
    core: Core,
) -> None:
    method = await _saved_card(core)
    core.client.unavailable = True

    with pytest.raises(RemitError) as caught:
        await core.methods.update(
            core.account_id, method.id, PaymentMethodChanges(billing_details=NEW_BILLING)
        )

    assert (caught.value.kind, caught.value.should_retry) == (ErrorKind.UNAVAILABLE, True)
    assert await core.methods.get(core.account_id, method.id) == method


async def test_a_retry_after_the_cores_commit_failed_converges(core: Core) -> None:
    method = await _saved_card(core)
    changes = PaymentMethodChanges(exp_month=3, exp_year=2033, billing_details=NEW_BILLING)
    core.methods.hooks = FailingHooks()
    with pytest.raises(ConnectionError):
        await core.methods.update(core.account_id, method.id, changes)
    assert await core.methods.get(core.account_id, method.id) == method
    assert (await _at_the_vault(core, method))[:2] == (3, 2033)

    core.methods.hooks = NoPaymentMethodHooks()
    updated = await core.methods.update(core.account_id, method.id, changes)

    assert (updated.card.exp_month, updated.card.exp_year) == (3, 2033)
    assert await _at_the_vault(core, method) == (3, 2033, updated.billing_details)
    assert len(core.client.updates) == 2


async def test_a_replay_under_its_key_never_reaches_the_vault(core: Core) -> None:
    method = await _saved_card(core)
    call = KeyedCall(
        account_id=core.account_id, key="k1", endpoint="UpdatePaymentMethod",
        request_body=b"exp 3/2033",
    )  # fmt: skip
    keyed: Keyed[PaymentMethod] = Keyed(call, lambda made: made.id.encode())
    changes = PaymentMethodChanges(exp_month=3, exp_year=2033)

    first = await core.methods.update_once(core.account_id, keyed, method.id, changes)
    again = await core.methods.update_once(core.account_id, keyed, method.id, changes)
    other = Keyed(KeyedCall(**{**call.__dict__, "request_body": b"exp 4/2034"}), keyed.respond)
    with pytest.raises(RemitError) as caught:
        await core.methods.update_once(
            core.account_id, other, method.id, PaymentMethodChanges(exp_month=4, exp_year=2034)
        )

    assert isinstance(first, Done)
    assert isinstance(again, Replay)
    assert caught.value.kind is ErrorKind.ALREADY_EXISTS
    assert core.client.updates == [((3, 2033), method.billing_details)]
    assert (await _at_the_vault(core, method))[:2] == (3, 2033)


async def test_racing_updates_leave_the_core_and_the_vault_alike(core: Core) -> None:
    method = await _saved_card(core)

    await asyncio.gather(
        *(
            core.methods.update(
                core.account_id, method.id, PaymentMethodChanges(exp_month=month, exp_year=2033)
            )
            for month in range(1, 7)
        )
    )

    final = await core.methods.get(core.account_id, method.id)
    assert final is not None
    assert (await _at_the_vault(core, method))[:2] == (final.card.exp_month, 2033)


async def test_a_test_ids_card_keeps_the_update_in_the_core(core: Core) -> None:
    customer = await core.customers.create(core.account_id, CustomerFields())
    named = await core.methods.to_attach(core.account_id, "pm_card_visa")
    async with core.methods._engine.begin() as db:
        method = await core.methods.attach_named_in(db, core.account_id, named, customer.id)

    updated = await core.methods.update(
        core.account_id, method.id, PaymentMethodChanges(exp_month=3, exp_year=2033)
    )

    assert (updated.card.exp_month, updated.card.exp_year) == (3, 2033)
    # Shared with every payment method made of pm_card_visa: theirs is left as it was.
    assert (await _at_the_vault(core, method))[:2] == (method.card.exp_month, method.card.exp_year)


async def _a_card_and_its_copy(
    core: Core, *, attach_the_copy: bool
) -> tuple[PaymentMethod, PaymentMethod]:
    """A saved card and a copy of it (`payment_method=`), holding one vault card; the copy or
    the source attached to a customer."""
    tokenized = await core.vault.service.tokenize(
        core.account_id, Secret("4242424242424242"), 11, 2031, None, requester="test"
    )
    source = await core.methods.create(
        core.account_id, NewPaymentMethod(vault_token=tokenized.token)
    )
    copy = await core.methods.create(core.account_id, NewPaymentMethod(payment_method_id=source.id))
    customer = await core.customers.create(core.account_id, CustomerFields())
    attached = copy if attach_the_copy else source
    await core.methods.attach(core.account_id, attached.id, customer.id)
    return source, copy


async def test_a_card_another_payment_method_holds_takes_the_update_for_both(
    core: Core,
) -> None:
    """A copy (`payment_method=`) holds its source's vault card, one physical card: its new
    expiry reaches the vault, which every payment of either sends, and both show it."""
    source, copy = await _a_card_and_its_copy(core, attach_the_copy=True)

    await core.methods.update(
        core.account_id, copy.id, PaymentMethodChanges(exp_month=3, exp_year=2033)
    )

    assert [expiry for expiry, _ in core.client.updates] == [(3, 2033)]
    assert (await _at_the_vault(core, source))[:2] == (3, 2033)
    for held in (source, copy):
        shown = await core.methods.get(core.account_id, held.id)
        assert (shown.card.exp_month, shown.card.exp_year) == (3, 2033)
    assert (await _forwarded(core, source, "op_1")).exp_year == 2033


class RecordingHooks(NoPaymentMethodHooks):
    """Records the payment methods each change is told for (their events)."""

    def __init__(self) -> None:
        self.changed: list[tuple[str, int, int]] = []

    async def payment_method_changed(
        self, db: AsyncConnection, before: PaymentMethod, after: PaymentMethod
    ) -> None:
        self.changed.append((after.id, after.card.exp_month, after.card.exp_year))


async def test_every_copy_whose_details_change_is_told_as_changed(core: Core) -> None:
    source, copy = await _a_card_and_its_copy(core, attach_the_copy=False)
    hooks = RecordingHooks()
    core.methods.hooks = hooks

    await core.methods.update(
        core.account_id, source.id, PaymentMethodChanges(exp_month=3, exp_year=2033)
    )

    assert sorted(hooks.changed) == sorted([(source.id, 3, 2033), (copy.id, 3, 2033)])


async def test_billing_details_sent_for_a_copy_are_its_sources_too(core: Core) -> None:
    source, copy = await _a_card_and_its_copy(core, attach_the_copy=False)

    updated = await core.methods.update(
        core.account_id, source.id, PaymentMethodChanges(billing_details=NEW_BILLING)
    )

    shown = await core.methods.get(core.account_id, copy.id)
    assert shown.billing_details == updated.billing_details
    assert (shown.card.exp_month, shown.card.exp_year) == (11, 2031)


async def test_a_lost_vault_reply_is_made_good_by_the_next_update_of_the_card(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vault takes the new expiry but its reply is lost: the core rolls back and the
    merchant is told the update failed, under a key that is left free for the retry. Any next
    update naming the card's details sends both, whole, as the core holds them: the vault and
    the core agree again, whether it is the retry or another update."""
    method = await _saved_card(core)
    original = VaultService.update_card_details
    lose_the_reply = True
    updates: list[asyncio.Future[Any]] = []

    async def reply_lost(self: VaultService, *args: Any, **kwargs: Any) -> Any:
        if not lose_the_reply:
            return await original(self, *args, **kwargs)
        # The vault's update commits whenever the client's deadline lapses (the call's
        # cancellation is not passed on to it: cut off before its commit, it would roll back,
        # and there would be no lost reply, only a failed call); its reply never comes.
        updates.append(asyncio.ensure_future(original(self, *args, **kwargs)))
        answer = await asyncio.shield(updates[-1])
        await asyncio.Event().wait()  # past the client's deadline: the call is cancelled
        return answer

    monkeypatch.setattr(VaultService, "update_card_details", reply_lost)
    monkeypatch.setattr(vault_client, "TIMEOUT_S", 0.5)  # the wait for the lost reply
    call = KeyedCall(
        account_id=core.account_id, key="k1", endpoint="UpdatePaymentMethod",
        request_body=b"exp 3/2033",
    )  # fmt: skip
    keyed: Keyed[PaymentMethod] = Keyed(call, lambda made: made.id.encode())
    with pytest.raises(RemitError):
        await core.methods.update_once(
            core.account_id, keyed, method.id, PaymentMethodChanges(exp_month=3, exp_year=2033)
        )
    await asyncio.wait_for(updates[0], 30)
    assert await core.methods.get(core.account_id, method.id) == method
    assert (await _at_the_vault(core, method))[:2] == (3, 2033)
    lose_the_reply = False
    # The calls from here on are answered: the usual deadline, which no loaded machine nears.
    monkeypatch.setattr(vault_client, "TIMEOUT_S", TIMEOUT_S)

    # Another update, of the billing details alone: the core's expiry goes back to the vault.
    updated = await core.methods.update(
        core.account_id, method.id, PaymentMethodChanges(billing_details=NEW_BILLING)
    )
    assert await _at_the_vault(core, method) == (11, 2031, updated.billing_details)
    assert (await _forwarded(core, method, "op_1")).exp_year == 2031

    # The retry under the key is not a replay of the failure: it does the update.
    retried = await core.methods.update_once(
        core.account_id, keyed, method.id, PaymentMethodChanges(exp_month=3, exp_year=2033)
    )
    assert isinstance(retried, Done)
    assert await _at_the_vault(core, method) == (3, 2033, updated.billing_details)

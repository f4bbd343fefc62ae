"""Customers, payment methods and tokens in the core, with a real vault over gRPC."""

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import ErrorKind, RemitError
from remit.core.secrets import Secret
from remit.customers.domain import CustomerFields
from remit.customers.service import CustomersService
from remit.payment_methods import service as payment_methods_service
from remit.payment_methods.domain import NewPaymentMethod, PaymentMethodChanges
from remit.payment_methods.service import PaymentMethodsService
from remit.payment_methods.vault_client import GrpcCardVault
from remit.payments.keyed import Done, Keyed, KeyedCall, Replay
from remit.storage.engine import dispose, make_engine
from remit.vault.domain import ForwardRequest
from remit.vault.keystore import FileKeyStore
from remit_api.vault.v1 import vault_pb2
from tests.support.fake_acquirer import RecordingAcquirer, running_acquirer
from tests.support.postgres import WorkerDatabases
from tests.support.statements import statements_sent
from tests.support.vault import RunningVault, dump_database, empty_vault_database, running_vault

pytestmark = pytest.mark.anyio


@dataclass
class Core:
    account_id: str
    other_account_id: str
    payment_methods: PaymentMethodsService
    customers: CustomersService
    vault: RunningVault
    acquirer: RecordingAcquirer
    engine: AsyncEngine


@pytest.fixture
async def core(
    core_engine: AsyncEngine, databases: WorkerDatabases, tmp_path: Path
) -> AsyncIterator[Core]:
    vault_engine = make_engine(databases.vault_url, pool_size=5)
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    accounts = AccountsService(core_engine)
    account = (await accounts.create_account()).account.id
    other = (await accounts.create_account()).account.id
    try:
        async with (
            running_acquirer() as (acquirer, target),
            running_vault(vault_engine, keys, {"acquirer": target}) as vault,
        ):
            methods = PaymentMethodsService(core_engine, GrpcCardVault(vault.channel))
            yield Core(
                account, other, methods, CustomersService(core_engine, methods), vault, acquirer,
                core_engine,
            )  # fmt: skip
    finally:
        await empty_vault_database(vault_engine)
        await dispose(vault_engine)


async def _vault_token(core: Core, number: str = "4242424242424242", account: str = "") -> str:
    tokenized = await core.vault.service.tokenize(
        account or core.account_id, Secret(number), 11, 2031, Secret("123"), requester="test"
    )
    return tokenized.token


async def test_a_payment_method_made_from_a_vault_token_carries_only_public_details(
    core: Core,
) -> None:
    vault_token = await _vault_token(core)
    method = await core.payment_methods.create(
        core.account_id,
        NewPaymentMethod(vault_token=vault_token, billing_details={"name": "Ada"}),
    )
    assert method.id.startswith("pm_")
    assert (method.card.brand, method.card.last4, method.card.exp_year) == ("visa", "4242", 2031)
    assert method.billing_details == {"name": "Ada"}
    assert await core.payment_methods.get(core.account_id, method.id) == method
    dump = await dump_database(core.engine)
    assert method.id in dump
    assert "4242424242424242" not in dump


async def test_a_vault_token_of_another_account_cannot_be_used(core: Core) -> None:
    vault_token = await _vault_token(core, account=core.other_account_id)
    with pytest.raises(RemitError) as caught:
        await core.payment_methods.create(
            core.account_id, NewPaymentMethod(vault_token=vault_token)
        )
    assert caught.value.kind is ErrorKind.NOT_FOUND


async def test_a_test_id_becomes_a_chargeable_payment_method_of_the_account(core: Core) -> None:
    named = await core.payment_methods.to_charge(core.account_id, "pm_card_visa")
    method, vault_token = named.method, named.method.vault_token
    assert named.is_new
    assert method.id.startswith("pm_")
    assert method.id != "pm_card_visa"
    assert method.test_id == "pm_card_visa"
    again = await core.payment_methods.to_charge(core.account_id, "pm_card_visa")
    assert again.method.id != method.id
    assert again.method.card.fingerprint == method.card.fingerprint
    assert again.method.vault_token == vault_token
    forwarded = await core.vault.service.forward(
        core.account_id,
        vault_token,
        ForwardRequest(
            destination="acquirer", amount_minor=500, currency="usd", reference="op_pm1",
            capture=True, purpose="payment_intent.confirm pi_1", requester="core",
        ),
    )  # fmt: skip
    assert forwarded.result.approved
    assert core.acquirer.requests[-1].card_number == "4242424242424242"


async def test_a_card_has_one_fingerprint_in_an_account_and_another_in_each_other(
    core: Core,
) -> None:
    """As Stripe's: the same card added to two accounts has two fingerprints, so no account
    can find its cardholders among another's, nor read what fingerprint a number has there."""
    ours, again = [
        await core.payment_methods.create(
            core.account_id, NewPaymentMethod(vault_token=await _vault_token(core))
        )
        for _ in range(2)
    ]
    theirs = await core.payment_methods.create(
        core.other_account_id,
        NewPaymentMethod(vault_token=await _vault_token(core, account=core.other_account_id)),
    )
    assert ours.card.fingerprint == again.card.fingerprint
    assert theirs.card.fingerprint != ours.card.fingerprint
    # Stripe's test ids too: one card per account, each with its account's fingerprint.
    visa = (await core.payment_methods.to_charge(core.account_id, "pm_card_visa")).method
    other_visa = (
        await core.payment_methods.to_charge(core.other_account_id, "pm_card_visa")
    ).method
    assert visa.card.fingerprint == ours.card.fingerprint
    assert other_visa.card.fingerprint == theirs.card.fingerprint


async def test_a_token_is_single_use_and_test_tokens_are_not(core: Core) -> None:
    token = await core.payment_methods.create_token(
        core.account_id, await _vault_token(core), name="Ada", address={"postal_code": "94107"}
    )
    method = await core.payment_methods.create(core.account_id, NewPaymentMethod(token_id=token.id))
    assert method.vault_token == token.vault_token
    assert method.billing_details == {"name": "Ada", "address": {"postal_code": "94107"}}
    assert (await core.payment_methods.get_token(core.account_id, token.id)).used
    with pytest.raises(RemitError) as caught:
        await core.payment_methods.create(core.account_id, NewPaymentMethod(token_id=token.id))
    assert (caught.value.code, caught.value.param) == ("token_already_used", "card[token]")
    for _ in range(2):
        made = await core.payment_methods.create(
            core.account_id, NewPaymentMethod(token_id="tok_mastercard")
        )
        assert made.card.brand == "mastercard"


async def test_attach_update_detach_follow_stripes_rules(core: Core) -> None:
    methods, customers = core.payment_methods, core.customers
    customer = await customers.create(core.account_id, CustomerFields(email="a@example.com"))
    method = await methods.create(
        core.account_id, NewPaymentMethod(vault_token=await _vault_token(core))
    )
    with pytest.raises(RemitError, match="save this PaymentMethod to a customer"):
        await methods.update(core.account_id, method.id, PaymentMethodChanges(exp_month=3))
    attached = await methods.attach(core.account_id, method.id, customer.id)
    assert attached.customer_id == customer.id
    updated = await methods.update(
        core.account_id,
        method.id,
        PaymentMethodChanges(exp_month=3, exp_year=2032, metadata={"k": "v"}),
    )
    assert (updated.card.exp_month, updated.card.exp_year, updated.metadata) == (
        3,
        2032,
        {"k": "v"},
    )
    with pytest.raises(RemitError) as caught:
        await methods.update(core.account_id, method.id, PaymentMethodChanges(exp_month=13))
    assert caught.value.code == "invalid_expiry_month"
    page, has_more = await methods.list(core.account_id, limit=10, customer_id=customer.id)
    assert ([m.id for m in page], has_more) == ([method.id], False)
    detached = await methods.detach(core.account_id, method.id)
    assert detached.customer_id is None
    with pytest.raises(RemitError) as caught:
        await methods.to_charge(core.account_id, method.id)
    assert caught.value.code == "payment_method_unexpected_state"
    with pytest.raises(RemitError):
        await methods.attach(core.account_id, method.id, customer.id)


async def test_customers_can_be_created_with_a_test_card_updated_listed_and_deleted(
    core: Core,
) -> None:
    customers = core.customers
    customer = await customers.create(
        core.account_id,
        CustomerFields(name="Ada", email="ada@example.com", metadata={"tier": "gold"}),
        payment_method_id="pm_card_visa",
    )
    attached, _ = await core.payment_methods.list(
        core.account_id, limit=10, customer_id=customer.id
    )
    assert [m.card.last4 for m in attached] == ["4242"]
    updated = await customers.update(
        core.account_id,
        customer.id,
        CustomerFields(name="", unset_metadata_keys=("tier",), metadata={"a": "b"}),
    )
    assert (updated.name, updated.email, updated.metadata) == (None, "ada@example.com", {"a": "b"})
    other = await customers.create(core.account_id, CustomerFields(email="other@example.com"))
    found, _ = await customers.list(core.account_id, limit=10, email="ada@example.com")
    assert [c.id for c in found] == [customer.id]
    everyone, _ = await customers.list(core.account_id, limit=10)
    assert {c.id for c in everyone} == {customer.id, other.id}
    await customers.delete(core.account_id, customer.id)
    with pytest.raises(RemitError) as caught:
        await customers.get(core.account_id, customer.id)
    assert caught.value.kind is ErrorKind.NOT_FOUND
    detached = await core.payment_methods.get(core.account_id, attached[0].id)
    assert (detached.customer_id, detached.usable) == (None, False)
    with pytest.raises(RemitError) as caught:
        await customers.get(core.other_account_id, other.id)
    assert caught.value.kind is ErrorKind.NOT_FOUND


async def test_charging_a_saved_payment_method_reads_it_in_one_statement(core: Core) -> None:
    """Every payment with a saved payment method reads it: one autocommitted statement, not a
    transaction around a read (BEGIN, SELECT and COMMIT: three round trips)."""
    saved = await core.payment_methods.create(
        core.account_id, NewPaymentMethod(vault_token=await _vault_token(core))
    )
    transactions: list[object] = []

    def began(connection: object) -> None:
        transactions.append(connection)

    event.listen(core.engine.sync_engine, "begin", began)
    try:
        with statements_sent(core.engine) as statements:
            named = await core.payment_methods.to_charge(core.account_id, saved.id)
    finally:
        event.remove(core.engine.sync_engine, "begin", began)
    assert (named.method, named.is_new) == (saved, False)
    assert len(statements) == 1, statements
    assert transactions == []
    with pytest.raises(RemitError) as missing:
        await core.payment_methods.to_charge(core.other_account_id, saved.id)
    assert missing.value.kind is ErrorKind.NOT_FOUND


def _keyed(core: Core, key: str, endpoint: str, body: bytes) -> Keyed[Any]:
    call = KeyedCall(account_id=core.account_id, key=key, endpoint=endpoint, request_body=body)
    return Keyed(call, lambda made: str(made.id).encode())


async def test_a_spent_token_is_a_refusal_by_its_state_replayed_under_the_key(
    core: Core,
) -> None:
    """A token used already refuses the create by the token's state, not the request's
    parameters: the refusal is stored under the key and replayed, as Stripe stores it."""
    token = await core.payment_methods.create_token(core.account_id, await _vault_token(core))
    await core.payment_methods.create(core.account_id, NewPaymentMethod(token_id=token.id))
    keyed = _keyed(core, f"again-{token.id}", "CreatePaymentMethod", token.id.encode())
    with pytest.raises(RemitError) as refused:
        await core.payment_methods.create_once(
            core.account_id, keyed, NewPaymentMethod(token_id=token.id)
        )
    assert (refused.value.kind, refused.value.code, refused.value.param) == (
        ErrorKind.FAILED_PRECONDITION,
        "token_already_used",
        "card[token]",
    )

    again = await core.payment_methods.create_once(
        core.account_id, keyed, NewPaymentMethod(token_id=token.id)
    )

    assert isinstance(again, Replay)
    assert again.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]


async def test_a_copy_of_a_customers_method_is_refused_by_its_state(core: Core) -> None:
    customer = await core.customers.create(core.account_id, CustomerFields())
    method = await core.payment_methods.create(
        core.account_id, NewPaymentMethod(vault_token=await _vault_token(core))
    )
    await core.payment_methods.attach(core.account_id, method.id, customer.id)
    with pytest.raises(RemitError) as refused:
        await core.payment_methods.create(
            core.account_id, NewPaymentMethod(payment_method_id=method.id)
        )
    assert (refused.value.kind, refused.value.code, refused.value.param) == (
        ErrorKind.FAILED_PRECONDITION,
        "parameter_invalid",
        "payment_method",
    )


async def test_racing_creates_under_one_key_make_one_customer_and_replay_it(core: Core) -> None:
    """Eight copies of one request race with one key: the key, the customer and the stored
    answer commit together, so one makes the customer and the others wait and replay it."""
    keyed = _keyed(core, "race", "CreateCustomer", b"ada")
    results = await asyncio.gather(
        *(core.customers.create_once(core.account_id, keyed, CustomerFields(name="Ada"))
          for _ in range(8))
    )  # fmt: skip
    made = [r.value.id for r in results if isinstance(r, Done)]
    replayed = {r.body.decode() for r in results if isinstance(r, Replay)}
    assert len(made) == 1
    assert replayed == set(made)
    listed, _ = await core.customers.list(core.account_id, limit=10)
    assert [c.id for c in listed] == made


async def test_one_card_tokenized_twice_is_one_payment_method_under_one_key(core: Core) -> None:
    """The vault token differs on each tokenization of the same card; the key's identity is
    the card's fingerprint and expiry, so a retry replays and another card is refused."""
    keyed = _keyed(core, "pm", "CreatePaymentMethod", b"same request")
    first = await core.payment_methods.create_once(
        core.account_id, keyed, NewPaymentMethod(vault_token=await _vault_token(core))
    )
    again = await core.payment_methods.create_once(
        core.account_id, keyed, NewPaymentMethod(vault_token=await _vault_token(core))
    )
    assert isinstance(first, Done)
    assert isinstance(again, Replay)
    assert again.body == first.value.id.encode()
    other = await _vault_token(core, "5555555555554444")
    with pytest.raises(RemitError) as refused:
        await core.payment_methods.create_once(
            core.account_id, keyed, NewPaymentMethod(vault_token=other)
        )
    assert refused.value.kind is ErrorKind.ALREADY_EXISTS
    assert "same parameters" in refused.value.message


async def _held_by_vault(core: Core, vault_token: str) -> bool:
    """Whether the vault still holds the card (a deleted one is shredded and answers as if it
    never existed)."""
    try:
        await core.vault.service.card_details(core.account_id, vault_token, requester="test")
    except RemitError as error:
        if error.kind is not ErrorKind.NOT_FOUND:
            raise
        return False
    return True


async def test_a_card_tokenized_for_a_replay_or_a_refusal_is_deleted_at_the_vault(
    core: Core,
) -> None:
    """A retry's card is used by nothing once the key replays, nor is a refused request's."""
    keyed = _keyed(core, "pm-cards", "CreatePaymentMethod", b"same request")
    first = await core.payment_methods.create_once(
        core.account_id, keyed, NewPaymentMethod(vault_token=await _vault_token(core))
    )
    assert isinstance(first, Done)
    retry = await _vault_token(core)
    again = await core.payment_methods.create_once(
        core.account_id, keyed, NewPaymentMethod(vault_token=retry)
    )
    assert isinstance(again, Replay)
    assert again.body == first.value.id.encode()
    other = _keyed(core, "pm-cards", "CreatePaymentMethod", b"other request")
    refused_token = await _vault_token(core)
    with pytest.raises(RemitError) as mismatch:
        await core.payment_methods.create_once(
            core.account_id, other, NewPaymentMethod(vault_token=refused_token)
        )
    assert mismatch.value.error_type == "idempotency_error"
    assert await _held_by_vault(core, first.value.vault_token)
    assert not await _held_by_vault(core, retry)
    assert not await _held_by_vault(core, refused_token)
    events = await core.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_DELETE)
    )
    assert sorted((e.vault_token, e.requester) for e in events.data) == sorted(
        [(retry, "core"), (refused_token, "core")]
    )

    token_key = _keyed(core, "tok-cards", "CreateToken", b"same token request")
    token = await core.payment_methods.create_token_once(
        core.account_id, token_key, await _vault_token(core)
    )
    assert isinstance(token, Done)
    token_retry = await _vault_token(core)
    replayed_token = await core.payment_methods.create_token_once(
        core.account_id, token_key, token_retry
    )
    assert isinstance(replayed_token, Replay)
    assert await _held_by_vault(core, token.value.vault_token)
    assert not await _held_by_vault(core, token_retry)


async def test_a_card_a_payment_method_or_token_holds_is_never_deleted(core: Core) -> None:
    """A caller that gives a card already in use (the same vault token sent twice under one
    key, or one another object holds) gets its answer, and the card stays."""
    keyed = _keyed(core, "pm-same", "CreatePaymentMethod", b"same request")
    vault_token = await _vault_token(core)
    first = await core.payment_methods.create_once(
        core.account_id, keyed, NewPaymentMethod(vault_token=vault_token)
    )
    again = await core.payment_methods.create_once(
        core.account_id, keyed, NewPaymentMethod(vault_token=vault_token)
    )
    assert isinstance(first, Done)
    assert isinstance(again, Replay)
    assert await _held_by_vault(core, vault_token)

    token = await core.payment_methods.create_token(core.account_id, await _vault_token(core))
    with pytest.raises(RemitError) as mismatch:
        await core.payment_methods.create_once(
            core.account_id,
            _keyed(core, "pm-same", "CreatePaymentMethod", b"another request"),
            NewPaymentMethod(vault_token=token.vault_token),
        )
    assert mismatch.value.error_type == "idempotency_error"
    assert await _held_by_vault(core, token.vault_token)


@dataclass
class VaultThatCannotDelete(GrpcCardVault):
    async def delete_card(self, account_id: str, vault_token: str) -> bool:
        raise RemitError(message="The vault is unavailable.", kind=ErrorKind.UNAVAILABLE)


async def test_a_replay_stands_when_its_card_cannot_be_deleted(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    methods = PaymentMethodsService(core.engine, VaultThatCannotDelete(core.vault.channel))
    keyed = _keyed(core, "pm-undeletable", "CreatePaymentMethod", b"same request")
    first = await methods.create_once(
        core.account_id, keyed, NewPaymentMethod(vault_token=await _vault_token(core))
    )
    retry = await _vault_token(core)
    with caplog.at_level(logging.WARNING, logger="remit.payment_methods.service"):
        again = await methods.create_once(
            core.account_id, keyed, NewPaymentMethod(vault_token=retry)
        )
    assert isinstance(first, Done)
    assert isinstance(again, Replay)
    assert again.body == first.value.id.encode()
    assert [record.getMessage() for record in caplog.records] == [
        f"the unused vault card {retry} could not be deleted: RemitError: The vault is unavailable."
    ]


async def _methods_of_account(core: Core) -> list[tuple[str | None, str | None]]:
    methods, _ = await core.payment_methods.list(core.account_id, limit=100)
    return [(method.customer_id, method.test_id) for method in methods]


async def test_racing_creates_of_a_customer_with_a_test_card_make_one_payment_method(
    core: Core,
) -> None:
    """The test id's payment method is made in the transaction of the key: one customer and
    one payment method, whoever wins, and none for a request the key refuses."""
    keyed = _keyed(core, "race-pm", "CreateCustomer", b"ada with visa")
    results = await asyncio.gather(
        *(core.customers.create_once(core.account_id, keyed, CustomerFields(name="Ada"),
                                     payment_method_id="pm_card_visa")
          for _ in range(8))
    )  # fmt: skip
    made = [r.value.id for r in results if isinstance(r, Done)]
    assert len(made) == 1
    assert {r.body.decode() for r in results if isinstance(r, Replay)} == set(made)
    with pytest.raises(RemitError) as mismatch:
        await core.customers.create_once(
            core.account_id,
            _keyed(core, "race-pm", "CreateCustomer", b"grace with visa"),
            CustomerFields(name="Grace"),
            payment_method_id="pm_card_visa",
        )
    assert mismatch.value.error_type == "idempotency_error"
    assert await _methods_of_account(core) == [(made[0], "pm_card_visa")]


async def test_a_retried_customer_create_replays_after_its_payment_method_was_detached(
    core: Core,
) -> None:
    """The key is checked before the payment method: a retry replays the customer even once
    the method can no longer be attached (its customer deleted, which detaches it)."""
    method = await core.payment_methods.create(
        core.account_id, NewPaymentMethod(vault_token=await _vault_token(core))
    )
    keyed = _keyed(core, "cus-pm-gone", "CreateCustomer", b"ada")

    async def create() -> Done[Any] | Replay:
        return await core.customers.create_once(
            core.account_id, keyed, CustomerFields(name="Ada"), payment_method_id=method.id
        )

    first = await create()
    assert isinstance(first, Done)
    await core.customers.delete(core.account_id, first.value.id)
    again = await create()
    assert isinstance(again, Replay)
    assert again.body == first.value.id.encode()


async def test_a_retried_attach_of_a_test_id_makes_one_payment_method(core: Core) -> None:
    customer = await core.customers.create(core.account_id, CustomerFields(name="Ada"))
    keyed = _keyed(core, "attach-visa", "AttachPaymentMethod", b"visa to ada")
    results = [
        await core.payment_methods.attach_once(core.account_id, keyed, "pm_card_visa", customer.id)
        for _ in range(3)
    ]
    first = results[0]
    assert isinstance(first, Done)
    assert [type(r) for r in results[1:]] == [Replay, Replay]
    assert await _methods_of_account(core) == [(customer.id, "pm_card_visa")]
    with pytest.raises(RemitError) as missing:
        await core.payment_methods.attach_once(core.account_id, None, "pm_card_visa", "cus_missing")
    assert missing.value.kind is ErrorKind.NOT_FOUND
    assert await _methods_of_account(core) == [(customer.id, "pm_card_visa")]


async def test_a_payment_method_made_from_a_test_id_is_the_only_one_it_makes(core: Core) -> None:
    """Given a test id as its source, a create makes its own payment method of the test card
    and no other; a retry under its key makes none."""
    keyed = _keyed(core, "copy-visa", "CreatePaymentMethod", b"from visa")
    results = [
        await core.payment_methods.create_once(
            core.account_id, keyed, NewPaymentMethod(payment_method_id="pm_card_visa")
        )
        for _ in range(2)
    ]
    first, again = results
    assert isinstance(first, Done)
    assert isinstance(again, Replay)
    assert first.value.card.last4 == "4242"
    assert [m.id for m in (await core.payment_methods.list(core.account_id, limit=10))[0]] == [
        first.value.id
    ]


async def test_a_detach_that_finds_its_payment_method_attached_since_it_looked_is_a_conflict(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The payment method was not attached when detach looked up its owner, and was attached
    before detach locked it: that customer is not locked, so detach answers 409 (which the
    client retries) rather than "not attached"."""
    customer = await core.customers.create(core.account_id, CustomerFields(email="a@example.com"))
    method = await core.payment_methods.create(
        core.account_id, NewPaymentMethod(vault_token=await _vault_token(core))
    )
    await core.payment_methods.attach(core.account_id, method.id, customer.id)

    async def looked_before_the_attach(*_: object) -> None:
        return None

    monkeypatch.setattr(payment_methods_service, "_lock_owner", looked_before_the_attach)
    with pytest.raises(RemitError) as refused:
        await core.payment_methods.detach(core.account_id, method.id)
    assert (refused.value.kind, refused.value.code) == (
        ErrorKind.CONFLICT,
        "payment_method_unexpected_state",
    )
    monkeypatch.undo()
    detached = await core.payment_methods.detach(core.account_id, method.id)
    assert detached.customer_id is None

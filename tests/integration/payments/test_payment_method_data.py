"""payment_method_data on CreatePaymentIntent and ConfirmPaymentIntent, over gRPC: the card
given (a vault token the facade has just stored, or a token) becomes a payment method of the
account in the transaction of the intent or its attempt, and the intent pays with it. A refused
request or a replay makes none, and the vault card stored for such a request is deleted."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import not_found
from remit.core.ids import random_token
from remit.customers.service import CustomersService
from remit.payment_methods.domain import CardSummary, VaultCard
from remit.payment_methods.service import PaymentMethodsService
from remit.payment_methods.tables import payment_methods
from remit.payments.grpc import PaymentsServicer, payment_intent_message
from remit.payments.keyed_rpc import REPLAYED_KEY
from remit.payments.methods import StoredPaymentMethods
from remit.payments.service import PaymentsService
from remit.payments.tables import payment_intents
from remit.payments.wiring import payment_hooks
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support.accounts import call_metadata
from tests.support.card_vaults import TestCardsKeepTheirDetails
from tests.support.fake_network import FakeNetwork
from tests.support.payments_server import serving_payments

pytestmark = pytest.mark.anyio

# The in-process network declines the card whose vault token is "declined".
_TEST_TOKENS = {"tok_visa": "visa", "tok_chargeDeclined": "declined"}


def _summary(fingerprint: str, exp_year: int = 2034) -> CardSummary:
    return CardSummary("visa", "4242", 12, exp_year, fingerprint, "credit", "US")


@dataclass
class HandingOverVault(TestCardsKeepTheirDetails):
    """The vault as the core sees it: the cards the facade stored, one new vault token for
    each tokenization, Stripe's test tokens, and the cards the core deleted."""

    cards: dict[str, VaultCard] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)

    def store(self, fingerprint: str = "fp_ada", token: str | None = None) -> str:
        """A card stored as the facade stores the raw card of a request."""
        vault_token = token or f"vtok_{random_token(10)}"
        self.cards[vault_token] = VaultCard(vault_token, _summary(fingerprint))
        return vault_token

    async def card_details(self, account_id: str, vault_token: str) -> VaultCard:
        if vault_token not in self.cards:
            raise not_found("vault_token", vault_token, param="vault_token")
        return self.cards[vault_token]

    async def resolve_test_card(self, account_id: str, test_id: str) -> VaultCard:
        return VaultCard(_TEST_TOKENS[test_id], _summary(f"fp_{test_id}"))

    def forget_card(self, account_id: str, vault_token: str) -> None:
        return None

    async def delete_card(self, account_id: str, vault_token: str) -> bool:
        self.deleted.append(vault_token)
        return self.cards.pop(vault_token, None) is not None


@dataclass
class Core:
    account_id: str
    engine: AsyncEngine
    vault: HandingOverVault
    methods: PaymentMethodsService
    network: FakeNetwork
    stub: Any  # payments_pb2_grpc.PaymentsServiceStub on an aio channel

    def metadata(self, key: str | None = None) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.account_id, key)

    async def methods_made(self) -> list[tuple[str, str, str | None]]:
        """(id, vault token, test id) of the account's payment methods, as stored."""
        async with self.engine.connect() as db:
            rows = await db.execute(
                select(
                    payment_methods.c.id, payment_methods.c.vault_token, payment_methods.c.test_id
                ).where(payment_methods.c.account_id == self.account_id)
            )
        return [(row.id, row.vault_token, row.test_id) for row in rows]

    async def intent_count(self) -> int:
        async with self.engine.connect() as db:
            query = select(func.count()).where(payment_intents.c.account_id == self.account_id)
            return int((await db.execute(query)).scalar_one())


@pytest.fixture
async def core(core_engine: AsyncEngine) -> AsyncIterator[Core]:
    account = await AccountsService(core_engine).create_account(radar_enabled=False)
    vault = HandingOverVault()
    methods = PaymentMethodsService(core_engine, vault)
    network = FakeNetwork()
    payments = PaymentsService(
        core_engine,
        network,
        StoredPaymentMethods(methods),
        present=payment_intent_message,
        hooks=payment_hooks(),
    )
    servicer = PaymentsServicer(payments, CustomersService(core_engine, methods), methods)
    async with serving_payments(servicer) as stub:
        yield Core(account.account.id, core_engine, vault, methods, network, stub)


def _card_data(
    card: pb.CardInput, *, name: str | None = None, metadata: dict[str, str] | None = None
) -> pb.PaymentMethodData:
    data = pb.PaymentMethodData(
        type=pb.PAYMENT_METHOD_TYPE_CARD, card=card, metadata=metadata or {}
    )
    if name is not None:
        data.billing_details.CopyFrom(common_pb2.BillingDetails(name=name))
    return data


def _create(data: pb.PaymentMethodData, **fields: Any) -> pb.CreatePaymentIntentRequest:
    values: dict[str, Any] = {"amount": 1500, "currency": "usd", "confirm": True, **fields}
    return pb.CreatePaymentIntentRequest(payment_method_data=data, **values)


async def _created(
    core: Core, request: pb.CreatePaymentIntentRequest, key: str | None = None
) -> tuple[pb.PaymentIntent, bool]:
    """The intent, and whether the answer was a replay."""
    call = core.stub.CreatePaymentIntent(request, metadata=core.metadata(key))
    response = await call
    trailing = dict(await call.trailing_metadata() or ())
    return response.payment_intent, trailing.get(REPLAYED_KEY) == "true"


async def _refused(core: Core, request: Any, key: str | None = None) -> grpc.aio.AioRpcError:
    method = (
        core.stub.CreatePaymentIntent
        if isinstance(request, pb.CreatePaymentIntentRequest)
        else core.stub.ConfirmPaymentIntent
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await method(request, metadata=core.metadata(key))
    return refused.value


async def test_a_vault_token_card_pays_with_a_new_payment_method(core: Core) -> None:
    vault_token = core.vault.store()
    data = _card_data(pb.CardInput(vault_token=vault_token), name="Ada", metadata={"k": "v"})
    intent, _ = await _created(core, _create(data))
    assert intent.status == pb.PAYMENT_INTENT_STATUS_SUCCEEDED
    [(method_id, held, test_id)] = await core.methods_made()
    assert (intent.payment_method, held, test_id) == (method_id, vault_token, None)
    method = await core.methods.get(core.account_id, method_id)
    assert (method.billing_details.get("name"), method.metadata) == ("Ada", {"k": "v"})
    assert core.vault.deleted == []


async def test_a_create_without_confirm_names_its_new_payment_method(core: Core) -> None:
    data = _card_data(pb.CardInput(token="tok_visa"))
    intent, _ = await _created(core, _create(data, confirm=False))
    assert intent.status == pb.PAYMENT_INTENT_STATUS_REQUIRES_CONFIRMATION
    assert await core.methods_made() == [(intent.payment_method, "visa", "tok_visa")]


async def test_a_create_refused_for_a_missing_customer_makes_no_payment_method(
    core: Core,
) -> None:
    vault_token = core.vault.store()
    data = _card_data(pb.CardInput(vault_token=vault_token))
    refused = await _refused(core, _create(data, customer="cus_missing"), key="no-customer")
    assert refused.code() is grpc.StatusCode.NOT_FOUND
    assert await core.methods_made() == []
    assert await core.intent_count() == 0
    # The card the facade stored for the request is used by nothing: it is deleted.
    assert core.vault.deleted == [vault_token]


async def test_a_keyed_create_retried_with_its_card_stored_again_makes_one_payment_method(
    core: Core,
) -> None:
    """Each retry brings a new vault token of the same card: the key knows the card, replays
    the first answer, and the retry's copy of the card is deleted. Another card under the key
    is refused, and its copy deleted too."""

    def request(vault_token: str) -> pb.CreatePaymentIntentRequest:
        return _create(_card_data(pb.CardInput(vault_token=vault_token)))

    first = core.vault.store()
    paid, replayed = await _created(core, request(first), key="pay-once")
    assert (paid.status, replayed) == (pb.PAYMENT_INTENT_STATUS_SUCCEEDED, False)
    retry = core.vault.store()
    again, replayed = await _created(core, request(retry), key="pay-once")
    assert (again.id, replayed) == (paid.id, True)
    other_card = core.vault.store(fingerprint="fp_grace")
    mismatch = await _refused(core, request(other_card), key="pay-once")
    assert mismatch.code() is grpc.StatusCode.ALREADY_EXISTS  # idempotency_error
    assert await core.methods_made() == [(paid.payment_method, first, None)]
    assert await core.intent_count() == 1
    assert core.vault.deleted == [retry, other_card]


async def test_a_retry_that_finishes_an_earlier_requests_payment_deletes_its_own_card(
    core: Core,
) -> None:
    """The network does not answer the first request, whose attempt (and payment method) is
    stored already; its retry resumes that attempt, paying with the first request's payment
    method: the card the facade stored for the retry is used by nothing."""

    def request(vault_token: str) -> pb.CreatePaymentIntentRequest:
        return _create(_card_data(pb.CardInput(vault_token=vault_token)))

    first = core.vault.store()
    core.network.faults.extend(["before"] * 4)  # the first send and every resend fail
    unanswered = await _refused(core, request(first), key="resumed")
    assert unanswered.code() is grpc.StatusCode.UNAVAILABLE
    retry = core.vault.store()
    paid, _ = await _created(core, request(retry), key="resumed")
    assert paid.status == pb.PAYMENT_INTENT_STATUS_SUCCEEDED
    assert await core.methods_made() == [(paid.payment_method, first, None)]
    assert core.vault.deleted == [retry]


async def test_a_declined_card_stays_with_the_payment_method_it_was_declined_with(
    core: Core,
) -> None:
    vault_token = core.vault.store(token="declined")
    declined = await _refused(core, _create(_card_data(pb.CardInput(vault_token=vault_token))))
    assert declined.code() is grpc.StatusCode.FAILED_PRECONDITION
    [(method_id, held, _)] = await core.methods_made()
    listed = await core.stub.ListPaymentIntents(
        pb.ListPaymentIntentsRequest(), metadata=core.metadata()
    )
    [intent] = listed.data
    assert (intent.status, intent.last_payment_error.payment_method) == (
        pb.PAYMENT_INTENT_STATUS_REQUIRES_PAYMENT_METHOD,
        method_id,
    )
    assert held == vault_token
    assert core.vault.deleted == []


async def test_payment_method_and_payment_method_data_together_are_refused(core: Core) -> None:
    vault_token = core.vault.store()
    data = _card_data(pb.CardInput(vault_token=vault_token))
    refused = await _refused(core, _create(data, payment_method="pm_card_visa"), key="both")
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "payment_method_data" in (refused.details() or "")
    waiting, _ = await _created(core, pb.CreatePaymentIntentRequest(amount=900, currency="usd"))
    confirm = pb.ConfirmPaymentIntentRequest(
        id=waiting.id,
        payment_method="pm_card_visa",
        payment_method_data=_card_data(pb.CardInput(token="tok_visa")),
    )
    refused = await _refused(core, confirm, key="both-confirm")
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "payment_method_data" in (refused.details() or "")
    assert await core.methods_made() == []
    assert core.vault.deleted == [vault_token]


async def test_payment_method_data_must_be_a_card(core: Core) -> None:
    unspecified = pb.PaymentMethodData(card=pb.CardInput(token="tok_visa"))
    refused = await _refused(core, _create(unspecified))
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "payment_method_data[type]" in (refused.details() or "")
    no_card = await _refused(core, _create(pb.PaymentMethodData(type=pb.PAYMENT_METHOD_TYPE_CARD)))
    assert no_card.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert await core.intent_count() == 0


async def test_a_confirmation_pays_with_the_payment_method_it_makes(core: Core) -> None:
    waiting, _ = await _created(core, pb.CreatePaymentIntentRequest(amount=900, currency="usd"))
    confirm = pb.ConfirmPaymentIntentRequest(
        id=waiting.id, payment_method_data=_card_data(pb.CardInput(token="tok_visa"))
    )
    confirmed = await core.stub.ConfirmPaymentIntent(confirm, metadata=core.metadata("confirm"))
    intent = confirmed.payment_intent
    assert intent.status == pb.PAYMENT_INTENT_STATUS_SUCCEEDED
    again = await core.stub.ConfirmPaymentIntent(confirm, metadata=core.metadata("confirm"))
    assert again.payment_intent.payment_method == intent.payment_method
    assert await core.methods_made() == [(intent.payment_method, "visa", "tok_visa")]


async def test_a_token_of_the_account_is_spent_once_and_a_retry_still_replays(
    core: Core,
) -> None:
    token = await core.methods.create_token(core.account_id, core.vault.store(), name="Ada")
    data = _card_data(pb.CardInput(token=token.id))
    paid, _ = await _created(core, _create(data), key="with-token")
    again, replayed = await _created(core, _create(data), key="with-token")
    assert (again.id, replayed) == (paid.id, True)
    spent = await _refused(core, _create(data), key="token-again")
    # A refusal by the token's state, stored under the key like the other state refusals.
    assert spent.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "more than once" in (spent.details() or "")
    [(method_id, held, _)] = await core.methods_made()
    assert (paid.payment_method, held) == (method_id, token.vault_token)
    method = await core.methods.get(core.account_id, method_id)
    assert method.billing_details.get("name") == "Ada"
    assert (await core.methods.get_token(core.account_id, token.id)).used

"""Cards end to end: the SDK tokenizes through the facade into the vault, the core keeps only
vault tokens, and no card number shows up in any log, database dump or error."""

import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import stripe

from remit.storage.engine import dispose, make_engine
from tests.support.accounts import TestAccount, create_account
from tests.support.platform import RunningPlatform
from tests.support.postgres import WorkerDatabases
from tests.support.vault import dump_database

pytestmark = [
    # One worker starts the module's platform, not both.
    pytest.mark.xdist_group("cards_and_vault"),
    pytest.mark.own_platform(
        reason="dumps every row of the databases and reads the whole log for card numbers, and "
        "rotates the vault's key, which re-wraps every card"
    ),
]

NUMBERS = ("4242424242424242", "5555555555554444", "378282246310005", "2223003122003222")
CVCS = ("739", "1842")


def _client(platform: RunningPlatform, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )


@pytest.fixture
def raw_account(platform: RunningPlatform) -> TestAccount:
    return create_account(platform.core, token=platform.internal_token, raw_card_access=True)


def _card(number: str, cvc: str = "739", **changes: object) -> Any:
    return {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": cvc, **changes}


def test_payment_methods_and_customers_through_the_sdk(
    platform: RunningPlatform, raw_account: TestAccount
) -> None:
    client = _client(platform, raw_account.secret_key)
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": _card("5555555555554444"),
            "billing_details": {"name": "Ada Lovelace", "address": {"postal_code": "94107"}},
        }
    )
    assert method.object == "payment_method"
    assert method.card is not None
    assert (method.card.brand, method.card.last4, method.card.exp_year) == (
        "mastercard",
        "4444",
        2034,
    )
    assert method.card.fingerprint is not None
    assert method.billing_details.name == "Ada Lovelace"
    assert method.customer is None

    customer = client.v1.customers.create(params={"email": "ada@example.com", "name": "Ada"})
    assert customer.id.startswith("cus_")
    attached = client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
    assert attached.customer == customer.id
    listed = client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    assert [m.id for m in listed.data] == [method.id]
    updated = client.v1.payment_methods.update(method.id, params={"metadata": {"k": "v"}})
    assert updated.metadata is not None
    assert updated.metadata.to_dict() == {"k": "v"}
    detached = client.v1.payment_methods.detach(method.id)
    assert detached.customer is None

    renamed = client.v1.customers.update(customer.id, params={"name": "Ada L."})
    assert (renamed.name, renamed.email) == ("Ada L.", "ada@example.com")
    assert client.v1.customers.retrieve(customer.id).name == "Ada L."
    assert customer.id in [c.id for c in client.v1.customers.list(params={"limit": 5}).data]
    deleted = client.v1.customers.delete(customer.id)
    assert deleted.deleted is True
    # As in Stripe, a deleted customer still answers a retrieve, with its deleted stub; it is
    # gone from lists and cannot be changed.
    stub = client.v1.customers.retrieve(customer.id)
    assert stub.to_dict() == {"id": customer.id, "object": "customer", "deleted": True}
    assert customer.id not in [c.id for c in client.v1.customers.list(params={"limit": 5}).data]
    with pytest.raises(stripe.InvalidRequestError) as updating:
        client.v1.customers.update(customer.id, params={"name": "Ada"})
    assert updating.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.customers.retrieve("cus_never_made")
    assert missing.value.http_status == 404


def test_a_customers_saved_card_pays_only_that_customers_intents(
    client: stripe.StripeClient,
) -> None:
    owner = client.v1.customers.create(params={"email": "owner@example.com"})
    other = client.v1.customers.create(params={"email": "other@example.com"})
    method = client.v1.payment_methods.create(
        params={"type": "card", "card": {"token": "tok_visa"}}
    )
    client.v1.payment_methods.attach(method.id, params={"customer": owner.id})

    def pay(customer: str | None) -> stripe.PaymentIntent:
        params: Any = {
            "amount": 2500,
            "currency": "usd",
            "payment_method": method.id,
            "confirm": True,
            "return_url": "https://shop.example/return",
        }
        if customer is not None:
            params["customer"] = customer
        return client.v1.payment_intents.create(params=params)

    for customer, names in ((other.id, other.id), (None, owner.id)):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            pay(customer)
        assert refused.value.http_status == 400
        assert refused.value.error is not None
        assert refused.value.error.param == "payment_method"
        assert names in str(refused.value.user_message)
    # Nothing was charged by the refusals: the only payment is the owner's.
    paid = pay(owner.id)
    assert (paid.status, paid.customer) == ("succeeded", owner.id)
    intents = client.v1.payment_intents.list(params={"limit": 10}).data
    assert [intent.id for intent in intents] == [paid.id]


def test_an_intent_names_only_a_live_customer_of_its_account(
    client: stripe.StripeClient,
) -> None:
    gone = client.v1.customers.create(params={"email": "gone@example.com"})
    client.v1.customers.delete(gone.id)
    live = client.v1.customers.create(params={"email": "live@example.com"})
    plain = client.v1.payment_intents.create(params={"amount": 700, "currency": "usd"})
    attempts: dict[str, Any] = {
        "create": lambda customer: client.v1.payment_intents.create(
            params={"amount": 700, "currency": "usd", "customer": customer}
        ),
        "create+confirm": lambda customer: client.v1.payment_intents.create(
            params={
                "amount": 700,
                "currency": "usd",
                "customer": customer,
                "payment_method": "pm_card_visa",
                "confirm": True,
                "return_url": "https://shop.example/return",
            }
        ),
        "update": lambda customer: client.v1.payment_intents.update(
            plain.id, params={"customer": customer}
        ),
    }
    for name, attempt in attempts.items():
        for customer in ("cus_doesNotExist", gone.id):
            with pytest.raises(stripe.InvalidRequestError) as refused:
                attempt(customer)
            assert refused.value.http_status == 404, name
            assert refused.value.code == "resource_missing"
            assert refused.value.error is not None
            assert refused.value.error.param == "customer"
    assert [i.id for i in client.v1.payment_intents.list().data] == [plain.id]
    assert client.v1.payment_intents.retrieve(plain.id).customer is None
    assert attempts["update"](live.id).customer == live.id


def test_customer_and_payment_method_expand_on_intents_and_charges(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create(params={"email": "expand@example.com"})
    method = client.v1.payment_methods.create(
        params={"type": "card", "card": {"token": "tok_mastercard"}}
    )
    client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1800,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
            "return_url": "https://shop.example/return",
            "expand": ["customer", "payment_method", "latest_charge.customer"],
        }
    )
    assert isinstance(intent.customer, stripe.Customer)
    assert (intent.customer.id, intent.customer.email) == (customer.id, "expand@example.com")
    assert isinstance(intent.payment_method, stripe.PaymentMethod)
    assert intent.payment_method.card is not None
    assert intent.payment_method.card.last4 == "4444"
    assert isinstance(intent.latest_charge, stripe.Charge)
    assert isinstance(intent.latest_charge.customer, stripe.Customer)
    listed = client.v1.payment_intents.list(params={"expand": ["data.customer"], "limit": 1})
    assert isinstance(listed.data[0].customer, stripe.Customer)
    # A deleted customer still expands, to Stripe's deleted stub.
    client.v1.customers.delete(customer.id)
    again = client.v1.payment_intents.retrieve(intent.id, params={"expand": ["customer"]})
    assert again.customer is not None
    assert not isinstance(again.customer, str)
    assert again.customer.to_dict() == {"id": customer.id, "object": "customer", "deleted": True}


def test_secret_keys_need_raw_card_access_and_publishable_keys_only_tokenize(
    platform: RunningPlatform, account: TestAccount
) -> None:
    secret = _client(platform, account.secret_key)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        secret.v1.payment_methods.create(params={"type": "card", "card": _card("4242424242424242")})
    assert caught.value.http_status == 400
    assert "Sending credit card numbers directly" in str(caught.value)
    assert "`remit accounts create --raw-card-access`" in str(caught.value)

    publishable = _client(platform, account.publishable_key)
    token = publishable.v1.tokens.create(params={"card": _card("4242424242424242", name="Ada")})
    assert token.id.startswith("tok_")
    assert token.card is not None
    assert (token.card.brand, token.card.last4, token.card.name) == ("Visa", "4242", "Ada")
    method = publishable.v1.payment_methods.create(
        params={"type": "card", "card": {"token": token.id}}
    )
    assert method.card is not None
    assert method.card.last4 == "4242"
    # A fingerprint matches a card across the merchant's payments: a public key, which anyone
    # holding a card number could use, is not told it.
    assert "fingerprint" not in method.card
    assert "fingerprint" not in token.card
    with pytest.raises(stripe.PermissionError):
        publishable.v1.payment_methods.retrieve(method.id)
    saved = secret.v1.payment_methods.retrieve(method.id)
    assert saved.id == method.id
    assert saved.card is not None
    assert saved.card.fingerprint is not None
    with pytest.raises(stripe.InvalidRequestError) as reused:
        secret.v1.payment_methods.create(params={"type": "card", "card": {"token": token.id}})
    assert reused.value.code == "token_already_used"


def test_invalid_cards_are_card_errors_naming_the_parameter(
    platform: RunningPlatform, account: TestAccount
) -> None:
    publishable = _client(platform, account.publishable_key)
    with pytest.raises(stripe.CardError) as caught:
        publishable.v1.payment_methods.create(
            params={"type": "card", "card": _card("4242424242424241")}
        )
    assert (caught.value.code, caught.value.param) == ("incorrect_number", "card[number]")
    assert "4242424242424241" not in str(caught.value.json_body)
    with pytest.raises(stripe.CardError) as caught:
        publishable.v1.tokens.create(params={"card": _card("4242424242424242", exp_month=13)})
    assert (caught.value.code, caught.value.param) == ("invalid_expiry_month", "card[exp_month]")


def test_test_ids_resolve_to_their_test_cards(client: stripe.StripeClient) -> None:
    visa = client.v1.payment_methods.retrieve("pm_card_visa")
    assert visa.id.startswith("pm_")
    assert visa.id != "pm_card_visa"
    assert visa.card is not None
    assert (visa.card.brand, visa.card.last4) == ("visa", "4242")
    from_token = client.v1.payment_methods.create(
        params={"type": "card", "card": {"token": "tok_visa"}}
    )
    assert from_token.card is not None
    assert from_token.card.fingerprint == visa.card.fingerprint
    amex = client.v1.payment_methods.retrieve("pm_card_amex")
    assert amex.card is not None
    assert amex.card.brand == "amex"
    token = client.v1.tokens.retrieve("tok_mastercard")
    assert token.card is not None
    assert token.card.brand == "MasterCard"


def test_only_the_vault_process_holds_vault_credentials(platform: RunningPlatform) -> None:
    children = {
        child.cmdline()[-1]: child
        for child in psutil.Process(platform.process.pid).children()
        if "remit" in child.cmdline()
    }
    assert {"api", "core", "vault", "worker"} <= set(children)
    for role, child in children.items():
        environ = child.environ()
        if role == "vault":
            assert "VAULT_DATABASE_URL" in environ
            assert "DATABASE_URL" not in environ
        else:
            assert "VAULT_DATABASE_URL" not in environ, role
    key_file = Path(platform.env["REMIT_VAULT_KEY_FILE"])
    assert key_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.anyio
async def test_no_card_number_in_any_log_database_or_error_after_raw_card_payments(
    platform: RunningPlatform, raw_account: TestAccount, databases: WorkerDatabases
) -> None:
    client = _client(platform, raw_account.secret_key)
    seen: list[str] = []  # every response body and error the client saw
    method_ids = []
    for index, number in enumerate(ALL_NUMBERS):
        cvc = _cvc_for(number)
        method = client.v1.payment_methods.create(
            params={"type": "card", "card": _card(number, cvc)}
        )
        method_ids.append(method.id)
        token = client.v1.tokens.create(params={"card": _card(number, cvc)})
        client.v1.payment_methods.create(params={"type": "card", "card": {"token": token.id}})
        seen += [_body(method), _body(token)]
        if number in DECLINED:
            seen.append(_declined_confirm(client, method.id, 2000 + index))
        else:
            seen += _pay_and_refund(client, method.id, 1000 + index, manual=index % 2 == 1)
        seen.append(_pay_with_card_data(client, number, cvc, 3000 + index))
        seen.extend(_provoke_errors(client, number))

    assert len([text for text in seen if text.startswith("error")]) == (
        2 * len(DECLINED) + PROVOKED_ERRORS * len(ALL_NUMBERS)
    )
    log = platform.log_text()
    for role in ("api", "core", "vault", "worker", "acquirer"):
        assert f" {role} " in log, f"no log line from {role}"
    dumps = {}
    for name, url in (("core", databases.core_url), ("vault", databases.vault_url),
                      ("acquirer", databases.acquirer_url)):  # fmt: skip
        engine = make_engine(url, pool_size=1)
        try:
            dumps[name] = await dump_database(engine)
        finally:
            await dispose(engine)
    assert all(method_id in dumps["core"] for method_id in method_ids)
    assert "vtok_" in dumps["vault"]
    assert "auth_" in dumps["acquirer"]  # the payments did reach the acquirer
    # Stored request bodies (bytea, dumped as hex) are searched too: they name the methods.
    assert method_ids[0].encode().hex() in dumps["core"]
    places = {"the log": log, **{f"the {n} database": d for n, d in dumps.items()},
              "responses and errors": "\n".join(seen)}  # fmt: skip
    for number in ALL_NUMBERS:
        for place, text in places.items():
            assert number not in text, f"a card number in {place}"
            assert _spaced(number) not in text, f"a card number, as typed, in {place}"
        for place in ("vault", "core", "acquirer"):  # bytea columns dump as hex
            assert number.encode().hex() not in dumps[place], f"a card number in {place} (hex)"
    for cvc in CVCS:
        for place, text in places.items():
            assert not _standalone(cvc).search(text), f"a CVC in {place}"


DECLINED = ("4000000000000002", "4000000000009995")  # generic decline, insufficient funds
ALL_NUMBERS = NUMBERS + DECLINED


def _cvc_for(number: str) -> str:
    return "1842" if number.startswith("37") else "739"


def _standalone(cvc: str) -> re.Pattern[str]:
    """The CVC as a value of its own (quoted, or after `=` or `: `), not digits inside other
    values such as ids or the milliseconds of a timestamp."""
    return re.compile(rf"""(?:["'=]|: ){cvc}(?![0-9A-Za-z])""")


def _body(resource: stripe.StripeObject) -> str:
    response = resource.last_response
    assert response is not None
    return f"body {response.body}"


def _pay_and_refund(
    client: stripe.StripeClient, method_id: str, amount: int, *, manual: bool
) -> list[str]:
    """Confirm a payment with the raw-card payment method, capture it if manual, refund part."""
    params: Any = {"amount": amount, "currency": "usd", "payment_method": method_id,
                   "confirm": True, "return_url": "https://shop.test/r"}  # fmt: skip
    if manual:
        params["capture_method"] = "manual"
    intent = client.v1.payment_intents.create(params=params)
    bodies = [_body(intent)]
    if manual:
        assert intent.status == "requires_capture"
        intent = client.v1.payment_intents.capture(intent.id)
        bodies.append(_body(intent))
    assert intent.status == "succeeded"
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 100})
    assert refund.status == "succeeded"
    charge = client.v1.charges.retrieve(str(intent.latest_charge), params={"expand": ["refunds"]})
    return [*bodies, _body(refund), _body(charge)]


def _declined_confirm(client: stripe.StripeClient, method_id: str, amount: int) -> str:
    intent = client.v1.payment_intents.create(params={"amount": amount, "currency": "usd"})
    try:
        client.v1.payment_intents.confirm(
            intent.id, params={"payment_method": method_id, "return_url": "https://shop.test/r"}
        )
    except stripe.CardError as error:
        return f"error {error} {error.json_body}"
    raise AssertionError("the card was not declined")


def _pay_with_card_data(client: stripe.StripeClient, number: str, cvc: str, amount: int) -> str:
    """A payment with the raw card given as payment_method_data: its answer or its decline."""
    params: Any = {"amount": amount, "currency": "usd", "confirm": True,
                   "payment_method_data": {"type": "card", "card": _card(number, cvc)},
                   "return_url": "https://shop.test/r"}  # fmt: skip
    try:
        intent = client.v1.payment_intents.create(params=params)
    except stripe.CardError as error:
        assert number in DECLINED
        return f"error {error} {error.json_body}"
    assert intent.status == "succeeded"
    return _body(intent)


def _spaced(number: str) -> str:
    """`number` in groups of four with two spaces between, as the vault accepts it typed."""
    return "  ".join(number[start : start + 4] for start in range(0, len(number), 4))


PROVOKED_ERRORS = 8


def _provoke_errors(client: stripe.StripeClient, number: str) -> list[str]:
    """A bad CVC, the number where an id belongs (twice), a bad expiry; then the number where
    an id or a month belongs typed with its CVC after it (spaced, glued, dashed) or with two
    spaces between its groups: every error (`PROVOKED_ERRORS`), rendered."""
    cvc = _cvc_for(number)
    attempts = (
        lambda: client.v1.payment_methods.create(
            params={"type": "card", "card": _card(number, "1")}
        ),
        lambda: client.v1.customers.retrieve(number),
        lambda: client.v1.payment_intents.create(
            params={
                "amount": 500,
                "currency": "usd",
                "payment_method": number,
                "confirm": True,
                "return_url": "https://shop.test/r",
            }
        ),
        lambda: client.v1.tokens.create(params={"card": _card(number, exp_year=1999)}),
        lambda: client.v1.customers.retrieve(f"{number} {cvc}"),
        lambda: client.v1.customers.retrieve(f"{number}{cvc}"),
        lambda: client.v1.payment_intents.create(
            params={"amount": 500, "currency": "usd", "payment_method": _spaced(number)}
        ),
        lambda: client.v1.tokens.create(
            params={"card": _card(number, exp_month=f"{number}-{cvc}")}
        ),
    )
    errors = []
    for attempt in attempts:
        try:
            attempt()
        except stripe.StripeError as error:
            errors.append(f"error {error} {error.json_body}")
    return errors


def test_remit_vault_rotate_key_adds_a_version_and_rewraps_old_cards(
    platform: RunningPlatform, client: stripe.StripeClient
) -> None:
    method = client.v1.payment_methods.retrieve("pm_card_visa")

    def remit(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "remit", "vault", *args],
            env=platform.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    before = remit("key-status")
    current = int(before.split("current version")[1].split()[0])
    rotated = remit("rotate-key", "--wait")
    assert f"key version {current + 1} now wraps new data keys" in rotated
    assert "re-wrapped" in rotated
    retired = remit("retire-keys", "--minimum-version", str(current + 1))
    assert f"below {current + 1} can no longer decrypt" in retired
    status = remit("key-status")
    assert f"minimum decryption version  {current + 1}" in status
    removed = remit("remove-key-version", "--version", str(current))
    assert f"key version {current} removed from the key file" in removed
    assert f"  v{current} " not in remit("key-status")
    # The vault still serves cards stored before the rotation (decryption after rotation is
    # covered by tests/integration/vault/test_key_rotation.py, with an acquirer).
    again = client.v1.payment_methods.create(params={"type": "card", "payment_method": method.id})
    assert again.card is not None
    assert again.card.last4 == "4242"


def _pay_with(client: stripe.StripeClient, method_data: Any, **params: Any) -> stripe.PaymentIntent:
    """A payment confirmed at once with the card given as payment_method_data."""
    values: Any = {"amount": 2100, "currency": "usd", "confirm": True,
                   "payment_method_data": {"type": "card", **method_data},
                   "return_url": "https://shop.example/return", **params}  # fmt: skip
    return client.v1.payment_intents.create(params=values)


def test_payment_method_data_with_a_test_token_pays_with_a_new_payment_method(
    client: stripe.StripeClient,
) -> None:
    intent = _pay_with(client, {"card": {"token": "tok_visa"}})
    assert intent.status == "succeeded"
    assert isinstance(intent.payment_method, str)
    assert intent.payment_method.startswith("pm_")
    method = client.v1.payment_methods.retrieve(intent.payment_method)
    assert method.card is not None
    assert (method.card.brand, method.card.last4) == ("visa", "4242")
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert charge.payment_method == method.id


def test_payment_method_data_with_raw_card_fields_stores_the_card_at_the_vault(
    platform: RunningPlatform, raw_account: TestAccount
) -> None:
    client = _client(platform, raw_account.secret_key)
    intent = _pay_with(
        client,
        {
            "card": _card("5555555555554444"),
            "billing_details": {"name": "Ada Lovelace"},
            "metadata": {"order": "7"},
        },
    )
    assert intent.status == "succeeded"
    method = client.v1.payment_methods.retrieve(str(intent.payment_method))
    assert method.card is not None
    assert (method.card.brand, method.card.last4, method.card.exp_year) == (
        "mastercard",
        "4444",
        2034,
    )
    assert method.billing_details.name == "Ada Lovelace"
    assert method.metadata is not None
    assert method.metadata.to_dict() == {"order": "7"}


def test_payment_method_data_with_a_declining_test_token_is_a_card_error(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.CardError) as declined:
        _pay_with(client, {"card": {"token": "tok_chargeDeclined"}})
    assert (declined.value.http_status, declined.value.code) == (402, "card_declined")
    [intent] = client.v1.payment_intents.list(params={"limit": 10}).data
    assert intent.status == "requires_payment_method"
    # The payment method was made for the attempt, which was declined.
    [method] = client.v1.payment_methods.list().data
    assert method.card is not None
    assert method.card.last4 == "0002"


def test_a_confirmation_pays_with_the_payment_method_data_it_gives(
    client: stripe.StripeClient,
) -> None:
    waiting = client.v1.payment_intents.create(params={"amount": 1300, "currency": "usd"})
    assert waiting.payment_method is None
    params: Any = {
        "payment_method_data": {"type": "card", "card": {"token": "tok_mastercard"}},
        "return_url": "https://shop.example/return",
    }
    confirmed = client.v1.payment_intents.confirm(waiting.id, params=params)
    assert confirmed.status == "succeeded"
    method = client.v1.payment_methods.retrieve(str(confirmed.payment_method))
    assert method.card is not None
    assert method.card.last4 == "4444"


def test_payment_method_data_is_a_card_and_not_given_with_payment_method(
    client: stripe.StripeClient,
) -> None:
    visa = {"card": {"token": "tok_visa"}}
    attempts: list[tuple[Any, Any, str]] = [
        (visa, {"payment_method": "pm_card_visa"}, "payment_method_data"),
        ({**visa, "type": "sepa_debit"}, {}, "payment_method_data[type]"),
        ({}, {}, "payment_method_data[card]"),
    ]
    for method_data, params, param in attempts:
        with pytest.raises(stripe.InvalidRequestError) as refused:
            _pay_with(client, method_data, **params)
        assert (refused.value.http_status, refused.value.param) == (400, param)
    waiting = client.v1.payment_intents.create(params={"amount": 1300, "currency": "usd"})
    both: Any = {
        "payment_method": "pm_card_visa",
        "payment_method_data": {"type": "card", "card": {"token": "tok_visa"}},
    }
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.confirm(waiting.id, params=both)
    assert (refused.value.http_status, refused.value.param) == (400, "payment_method_data")
    assert client.v1.payment_methods.list(params={"limit": 10}).data == []


def test_a_customers_default_payment_method_is_set_on_create_expanded_and_cleared(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create(
        params={
            "email": "default@example.com",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    # The test id became a new payment method, attached to the customer: its default.
    listed = client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    [attached] = listed.data
    assert attached.id != "pm_card_visa"
    assert customer.invoice_settings is not None
    assert customer.invoice_settings.to_dict() == {
        "custom_fields": None,
        "default_payment_method": attached.id,
        "footer": None,
        "rendering_options": None,
    }
    expanded = client.v1.customers.retrieve(
        customer.id, params={"expand": ["invoice_settings.default_payment_method"]}
    )
    assert expanded.invoice_settings is not None
    default = expanded.invoice_settings.default_payment_method
    assert isinstance(default, stripe.PaymentMethod)
    assert default.card is not None
    assert (default.id, default.card.last4) == (attached.id, "4242")

    cleared = client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": ""}}
    )
    assert cleared.invoice_settings is not None
    assert cleared.invoice_settings.default_payment_method is None
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.customers.update(customer.id, params={"invoice_settings": {"footer": "Thanks"}})
    assert (refused.value.http_status, refused.value.param) == (400, "invoice_settings[footer]")
    assert "Received unknown parameter: invoice_settings[footer]" in str(refused.value)


def test_publishable_keys_may_send_expand_when_tokenizing_but_only_what_they_may_expand(
    platform: RunningPlatform, account: TestAccount
) -> None:
    # A client that always sends `expand`, empty when it wants nothing expanded.
    def create(path: str, body: Mapping[str, object]) -> httpx.Response:
        return httpx.post(
            f"{platform.api_base}{path}",
            json=body,
            headers={"Authorization": f"Bearer {account.publishable_key}"},
        )

    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "739"}
    token = create("/v1/tokens", {"card": card, "expand": []})
    assert token.status_code == 200, token.text
    method = create(
        "/v1/payment_methods",
        {"type": "card", "card": {"token": token.json()["id"]}, "expand": []},
    )
    assert method.status_code == 200, method.text
    assert method.json()["id"].startswith("pm_")
    # The publishable expansion allowlist still holds.
    for path, body in (
        ("/v1/payment_methods", {"type": "card", "card": card, "expand": ["customer"]}),
        ("/v1/tokens", {"card": card, "expand": ["card"]}),
    ):
        refused = create(path, body)
        assert refused.status_code == 400, refused.text
        message = refused.json()["error"]["message"]
        assert "cannot be expanded with a publishable API key" in message

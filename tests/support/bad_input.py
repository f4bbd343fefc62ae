"""Sending bad input to a running platform, and checking how it was refused.

Requests go out through `http.client`, which sends the bytes it is given: httpx would refuse
some of the headers and re-encode some of the query strings the fuzzing needs to send as they
are.
"""

import http.client
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote_from_bytes, urlsplit

import httpx
import psycopg

from remit.core.logging import luhn_valid
from remit.worker.runner import libpq_url
from tests.support.accounts import TestAccount, create_account
from tests.support.http import ok
from tests.support.platform import RunningPlatform

REFUSAL_STATUSES: Final = frozenset({400, 402, 404, 409})
_ERROR_TYPE_BY_STATUS: Final = {
    400: {"invalid_request_error", "idempotency_error"},
    402: {"card_error"},
    404: {"invalid_request_error"},
    409: {"idempotency_error", "invalid_request_error"},
}
# Digits with any spaces or dashes between them, as the vault accepts a card number typed.
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]+(?:[ -]+[0-9]+)*")

TEST_CARD_NUMBERS: Final = (
    "4242424242424242",
    "5555555555554444",
    "378282246310005",
    "4000000000000002",
    "4000002760003184",
)


def card_numbers_in(text: str) -> list[str]:
    """The card numbers `text` shows: runs of 13 to 19 digits that pass the Luhn check, and
    the test card numbers the fuzzing sends wherever they stand in a run of digits (with its
    CVC after it, say), however many spaces or dashes are between them."""
    found = []
    for match in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"[ -]", "", match.group(0))
        a_card = 13 <= len(digits) <= 19 and luhn_valid(digits)
        if a_card or any(number in digits for number in TEST_CARD_NUMBERS):
            found.append(digits)
    return found


def form_pair(name: str, value: str | bytes) -> bytes:
    """`name=value` percent-encoded as stripe-python sends it (brackets left as they are);
    lone surrogates are sent as the bytes UTF-8 would give them, which no decoder accepts."""
    raw_name = name.encode("utf-8", "surrogatepass")
    raw_value = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return (
        quote_from_bytes(raw_name, safe="[]").encode()
        + b"="
        + quote_from_bytes(raw_value, safe="").encode()
    )


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send(
    api_base: str,
    method: str,
    target: str,
    *,
    key: str,
    body: bytes | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
    content_type: str = "application/x-www-form-urlencoded",
) -> Answer:
    """One request to the facade, exactly as given: `target` is the path and query string,
    `body` (a form's, unless `content_type` says otherwise) sent as it is."""
    address = urlsplit(api_base)
    assert address.hostname is not None
    assert address.port is not None
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        connection.putheader("Authorization", f"Bearer {key}")
        for name, value in headers:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Type", content_type)
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return Answer(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()


def stripe_refusal(answer: Answer) -> dict[str, Any]:
    """The error of an answer that refused a request as Stripe does: a 4xx a client can act
    on, the error object with a message, and no card number anywhere in the body."""
    shown = answer.body[:600].decode("utf-8", "replace")
    assert answer.status in REFUSAL_STATUSES, f"{answer.status}: {shown}"
    assert answer.headers.get("content-type", "").startswith("application/json"), shown
    document = answer.json()
    assert isinstance(document, dict), shown
    assert set(document) == {"error"}, shown
    error = document["error"]
    assert error["type"] in _ERROR_TYPE_BY_STATUS[answer.status], shown
    assert isinstance(error.get("message"), str), shown
    assert error["message"].strip(), shown
    for name in ("code", "param"):
        assert error.get(name) is None or isinstance(error[name], str), shown
    assert card_numbers_in(answer.body.decode("utf-8")) == [], shown
    return error  # type: ignore[no-any-return]


def stored_idempotency_keys(core_url: str, account_id: str, keys: Sequence[str]) -> list[str]:
    """Which of `keys` the core keeps for `account_id`."""
    with psycopg.connect(libpq_url(core_url), autocommit=True) as db:
        rows = db.execute(
            "SELECT key FROM idempotency_keys WHERE account_id = %s AND key = ANY(%s)",
            (account_id, list(keys)),
        ).fetchall()
    return sorted(row[0] for row in rows)


@dataclass(frozen=True)
class Merchant:
    account: TestAccount
    waiting_intent: str
    """Waits for its payment method: what updates, confirmations and cancellations aim at."""
    paid_intent: str
    """Paid, and refunded in part: what refunds aim at."""


def make_merchant(platform: RunningPlatform) -> Merchant:
    """A new account with an intent waiting for its payment method, a paid intent refunded in
    part, and a customer."""
    account = create_account(platform.core, token=platform.internal_token)
    auth = {"Authorization": f"Bearer {account.secret_key}"}

    def post(path: str, data: dict[str, str]) -> Any:
        return ok(httpx.post(f"{platform.api_base}{path}", data=data, headers=auth))

    waiting = post(
        "/v1/payment_intents",
        {"amount": "1234", "currency": "usd", "description": "kept", "metadata[order]": "6735"},
    )
    paid = post(
        "/v1/payment_intents",
        {"amount": "5000", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true",
         "return_url": "https://shop.example/return"},
    )  # fmt: skip
    assert paid["status"] == "succeeded"
    post("/v1/refunds", {"payment_intent": paid["id"], "amount": "1000"})
    post("/v1/customers", {"email": "jenny@example.com"})
    return Merchant(account, waiting["id"], paid["id"])


def holdings(platform: RunningPlatform, merchant: Merchant) -> dict[str, Any]:
    """Everything the fuzzing must leave as it was: the two intents, the ids of every object
    of the account, and its balance (available and pending together, as funds become
    available on their own meanwhile)."""
    auth = {"Authorization": f"Bearer {merchant.account.secret_key}"}

    def get(path: str) -> Any:
        return ok(httpx.get(f"{platform.api_base}{path}", headers=auth))

    balance = get("/v1/balance")
    totals: dict[str, int] = {}
    for funds in (*balance["available"], *balance["pending"]):
        totals[funds["currency"]] = totals.get(funds["currency"], 0) + funds["amount"]
    return {
        "waiting": get(f"/v1/payment_intents/{merchant.waiting_intent}"),
        "paid": get(f"/v1/payment_intents/{merchant.paid_intent}?expand[]=latest_charge"),
        **{
            name: [item["id"] for item in get(f"/v1/{name}?limit=100")["data"]]
            for name in ("payment_intents", "charges", "refunds", "customers", "payment_methods")
        },
        "balance": totals,
    }

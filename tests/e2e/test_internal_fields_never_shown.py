"""No field kept off the wire (a charge's `authorization_released`) leaves remit, at the
latest version, where objects are made without it, nor at an old one, where a change reads it
and the engine takes it out: not in charges, PaymentIntents and what they expand, lists,
nor events."""

from typing import Any

import httpx
import pytest

from remit.versioning.descriptors import internal_fields
from tests.support.accounts import TestAccount
from tests.support.http import ok
from tests.support.platform import RunningPlatform

BEFORE_BASIL = "2025-03-01.dashboard"
BEFORE_2022_11_15 = "2022-08-01"


def _kept_off(body: Any, hidden: frozenset[str], where: str = "") -> list[str]:
    """The paths in `body` of every key named like a field kept off the wire."""
    if isinstance(body, list):
        return [p for n, item in enumerate(body) for p in _kept_off(item, hidden, f"{where}[{n}]")]
    if not isinstance(body, dict):
        return []
    found = [f"{where}.{key}" for key in body if key in hidden]
    for key, value in body.items():
        found += _kept_off(value, hidden, f"{where}.{key}")
    return found


def _call(
    platform: RunningPlatform,
    account: TestAccount,
    method: str,
    path: str,
    *,
    version: str | None = None,
    expand: tuple[str, ...] = (),
    data: dict[str, str] | None = None,
) -> Any:
    headers = {"Authorization": f"Bearer {account.secret_key}"}
    if version is not None:
        headers["Stripe-Version"] = version
    params = httpx.QueryParams([("expand[]", field) for field in expand])
    return ok(
        httpx.request(
            method, platform.api_base + path, params=params, data=data, headers=headers, timeout=30
        )
    )


@pytest.mark.parametrize("version", [None, BEFORE_BASIL, BEFORE_2022_11_15])
def test_no_response_shows_a_field_kept_off_the_wire(
    platform: RunningPlatform, account: TestAccount, version: str | None
) -> None:
    hidden = frozenset().union(*internal_fields().values())
    assert "authorization_released" in hidden
    pay = {"amount": "2000", "currency": "usd", "payment_method": "pm_card_visa",
           "confirm": "true", "return_url": "https://shop.test/r"}  # fmt: skip
    paid = _call(platform, account, "POST", "/v1/payment_intents", data=pay)
    _call(platform, account, "POST", "/v1/refunds", data={"charge": paid["latest_charge"]})
    held = _call(
        platform,
        account,
        "POST",
        "/v1/payment_intents",
        data={**pay, "capture_method": "manual"},
        version=version,
        expand=("latest_charge",),
    )
    released = _call(
        platform,
        account,
        "POST",
        f"/v1/payment_intents/{held['id']}/cancel",
        version=version,
        expand=("latest_charge",),
    )
    charge_id = held["latest_charge"]["id"]
    reads = [
        held,
        released,
        _call(platform, account, "GET", f"/v1/charges/{charge_id}", version=version),
        _call(
            platform,
            account,
            "GET",
            f"/v1/charges/{paid['latest_charge']}",
            version=version,
            expand=("refunds", "payment_intent.latest_charge"),
        ),
        _call(
            platform,
            account,
            "GET",
            "/v1/charges",
            version=version,
            expand=("data.refunds", "data.payment_intent.latest_charge"),
        ),
        _call(
            platform,
            account,
            "GET",
            "/v1/payment_intents",
            version=version,
            expand=("data.latest_charge.refunds",),
        ),
        _call(
            platform,
            account,
            "GET",
            "/v1/refunds",
            version=version,
            expand=("data.charge.payment_intent.latest_charge",),
        ),
    ]
    events = _call(platform, account, "GET", "/v1/events", version=version)
    assert any(event["data"]["object"].get("object") == "charge" for event in events["data"]), (
        "the scan reads events of charges"
    )
    reads += [events, _call(platform, account, "GET", f"/v1/events/{events['data'][0]['id']}")]
    released_charge = reads[2]
    assert released_charge["id"] == charge_id
    assert released_charge["captured"] is False
    assert _kept_off(reads, hidden) == []

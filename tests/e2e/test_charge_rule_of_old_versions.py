"""Before 2017-02-14 a Charge shows the Radar rule that decided it as an object, unasked:
retrieved, listed, embedded in a PaymentIntent's `charges` or its expanded `latest_charge`, and
in the PaymentIntent a decline error carries. A rule deleted since stays an id."""

from typing import Any

import httpx

from tests.support.accounts import TestAccount
from tests.support.http import ok
from tests.support.platform import RunningPlatform
from versions import LATEST_VERSION

BEFORE = "2017-01-27"
AT = "2017-02-14"


def _request(
    platform: RunningPlatform,
    account: TestAccount,
    method: str,
    path: str,
    *,
    version: str,
    params: httpx.QueryParams | None = None,
    data: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {account.secret_key}", "Stripe-Version": version}
    return httpx.request(
        method, platform.api_base + path, params=params, data=data, headers=headers, timeout=30
    )


def test_a_charge_a_block_rule_refused_shows_the_rule_before_2017_02_14(
    platform: RunningPlatform, account: TestAccount
) -> None:
    def get(path: str, version: str = BEFORE, **params: str) -> Any:
        query = httpx.QueryParams(params)
        return ok(_request(platform, account, "GET", path, version=version, params=query))

    rule = ok(
        _request(platform, account, "POST", "/v1/radar/rules", version=AT,
                 data={"rule": "Block if :amount_in_usd: > 1000"})
    )  # fmt: skip
    declined = _request(
        platform,
        account,
        "POST",
        "/v1/payment_intents",
        version=BEFORE,
        data={"amount": "100001", "currency": "usd", "payment_method": "pm_card_visa",
              "confirm": "true", "return_url": "https://example.com/back"},
    )  # fmt: skip
    assert declined.status_code == 402
    error = declined.json()["error"]
    charge_id = error["charge"]
    shown = {"id": rule["id"], "object": "rule", "action": "block",
             "predicate": ":amount_in_usd: > 1000"}  # fmt: skip

    def is_the_rule(value: Any) -> bool:
        return isinstance(value, dict) and {k: value.get(k) for k in shown} == shown

    # The intent the decline carries embeds its charges, each with the rule as an object.
    [embedded] = error["payment_intent"]["charges"]["data"]
    assert embedded["id"] == charge_id
    assert is_the_rule(embedded["outcome"]["rule"])

    retrieved = get(f"/v1/charges/{charge_id}")
    assert (retrieved["outcome"]["type"], retrieved["outcome"]["reason"]) == ("blocked", "rule")
    assert is_the_rule(retrieved["outcome"]["rule"])
    assert get(f"/v1/charges/{charge_id}", version=AT)["outcome"]["rule"] == rule["id"]

    [listed] = get("/v1/charges", limit="100")["data"]
    assert is_the_rule(listed["outcome"]["rule"])

    intent_id = error["payment_intent"]["id"]
    intent = get(f"/v1/payment_intents/{intent_id}", **{"expand[]": "latest_charge"})
    assert is_the_rule(intent["latest_charge"]["outcome"]["rule"])
    assert is_the_rule(intent["charges"]["data"][0]["outcome"]["rule"])

    # Deleted since: the charge still names it, by id, at every version.
    ok(_request(platform, account, "DELETE", f"/v1/radar/rules/{rule['id']}", version=AT))
    assert get(f"/v1/charges/{charge_id}")["outcome"]["rule"] == rule["id"]
    [listed] = get("/v1/charges", limit="100")["data"]
    assert listed["outcome"]["rule"] == rule["id"]


def test_a_rule_changed_since_shows_as_it_decided_the_charge_at_every_version(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """The charge keeps the rule's text and version; the rule's own page shows it as it is."""

    def get(path: str, version: str, **params: str) -> Any:
        query = httpx.QueryParams(params)
        return ok(_request(platform, account, "GET", path, version=version, params=query))

    rule = ok(
        _request(platform, account, "POST", "/v1/radar/rules", version=AT,
                 data={"rule": "Block if :amount_in_usd: > 1000"})
    )  # fmt: skip
    assert rule["version"] == 1
    declined = _request(
        platform,
        account,
        "POST",
        "/v1/payment_intents",
        version=AT,
        data={"amount": "100001", "currency": "usd", "payment_method": "pm_card_visa",
              "confirm": "true", "return_url": "https://example.com/back"},
    )  # fmt: skip
    assert declined.status_code == 402
    charge_id = declined.json()["error"]["charge"]
    intent_id = declined.json()["error"]["payment_intent"]["id"]
    changed = ok(
        _request(platform, account, "POST", f"/v1/radar/rules/{rule['id']}", version=AT,
                 data={"predicate": ":amount_in_usd: > 5000", "action": "review"})
    )  # fmt: skip
    assert (changed["action"], changed["predicate"], changed["version"]) == (
        "review",
        ":amount_in_usd: > 5000",
        2,
    )
    then = {"id": rule["id"], "object": "rule", "action": "block",
            "predicate": ":amount_in_usd: > 1000", "version": 1}  # fmt: skip

    def as_then(value: Any) -> bool:
        return isinstance(value, dict) and {k: value.get(k) for k in then} == then

    assert as_then(get(f"/v1/charges/{charge_id}", BEFORE)["outcome"]["rule"])
    for version in (AT, LATEST_VERSION):
        expanded = get(f"/v1/charges/{charge_id}", version, **{"expand[]": "outcome.rule"})
        assert as_then(expanded["outcome"]["rule"])
        [listed] = get("/v1/charges", version, **{"expand[]": "data.outcome.rule"})["data"]
        assert as_then(listed["outcome"]["rule"])
        intent = get(
            f"/v1/payment_intents/{intent_id}",
            version,
            **{"expand[]": "latest_charge.outcome.rule"},
        )
        assert as_then(intent["latest_charge"]["outcome"]["rule"])
    assert get(f"/v1/radar/rules/{rule['id']}", AT)["predicate"] == ":amount_in_usd: > 5000"

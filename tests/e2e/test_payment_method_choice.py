"""How a PaymentIntent's payment methods are chosen, over REST: `automatic_payment_methods`,
`allowed_payment_method_types` and `excluded_payment_method_types` at the latest version, the
`payment_method_types` parameter per version, and the return_url confirming needs from
2023-08-16 (`versions/v2019_02_11.py`, `v2023_08_16.py` and `v2026_09_30.py`)."""

from typing import Any

import httpx
import pytest

from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform

BEFORE_SOURCE_RENAMES = "2018-11-08"
BEFORE_AUTOMATIC_DEFAULT = "2022-11-15"
RETURN_URL = "https://shop.test/back"
NO_REDIRECTS = (
    "automatic_payment_methods[enabled]=true&automatic_payment_methods[allow_redirects]=never"
)


def _post(
    platform: RunningPlatform,
    account: TestAccount,
    path: str,
    body: str,
    version: str | None = None,
) -> httpx.Response:
    headers: dict[str, Any] = {
        "Authorization": f"Bearer {account.secret_key}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    if version is not None:
        headers["Stripe-Version"] = version
    return httpx.post(platform.api_base + path, content=body, headers=headers, timeout=30)


def _created(
    platform: RunningPlatform, account: TestAccount, extra: str = "", version: str | None = None
) -> dict[str, Any]:
    response = _post(
        platform, account, "/v1/payment_intents", "amount=500&currency=usd" + extra, version
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _confirm(
    platform: RunningPlatform,
    account: TestAccount,
    intent: dict[str, Any],
    body: str,
    version: str | None = None,
) -> httpx.Response:
    return _post(platform, account, f"/v1/payment_intents/{intent['id']}/confirm", body, version)


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


# --- automatic_payment_methods -------------------------------------------------------------


def test_automatic_payment_methods_given_on_create_is_kept_and_returned(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _created(platform, account, "&" + NO_REDIRECTS)
    assert intent["automatic_payment_methods"] == {"enabled": True, "allow_redirects": "never"}
    retrieved = httpx.get(
        f"{platform.api_base}/v1/payment_intents/{intent['id']}",
        headers={"Authorization": f"Bearer {account.secret_key}"},
        timeout=30,
    ).json()
    assert retrieved["automatic_payment_methods"] == intent["automatic_payment_methods"]


def test_an_intent_naming_no_payment_methods_has_automatic_payment_methods_on(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _created(platform, account)
    assert intent["automatic_payment_methods"] == {"enabled": True, "allow_redirects": None}
    assert intent["payment_method_types"] == ["card"]


def test_before_2023_08_16_an_intent_naming_no_payment_methods_takes_cards_only(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _created(platform, account, version=BEFORE_AUTOMATIC_DEFAULT)
    assert intent["automatic_payment_methods"] is None
    assert intent["payment_method_types"] == ["card"]


def test_automatic_payment_methods_and_payment_method_types_together_are_refused(
    platform: RunningPlatform, account: TestAccount
) -> None:
    response = _post(
        platform,
        account,
        "/v1/payment_intents",
        "amount=500&currency=usd&automatic_payment_methods[enabled]=true"
        "&payment_method_types[0]=card",
        BEFORE_AUTOMATIC_DEFAULT,
    )
    assert _error(response)["param"] == "automatic_payment_methods"


# --- allowed and excluded payment method types ---------------------------------------------


def test_allowed_and_excluded_payment_method_types_are_kept_and_returned_at_endive(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _created(
        platform,
        account,
        "&allowed_payment_method_types[0]=card&allowed_payment_method_types[1]=ideal"
        "&excluded_payment_method_types[0]=ideal",
    )
    assert intent["allowed_payment_method_types"] == ["card", "ideal"]
    assert intent["excluded_payment_method_types"] == ["ideal"]
    # What is left of the allowed list once remit's processable types are applied.
    assert intent["payment_method_types"] == ["card"]


def test_update_and_confirm_replace_the_allowed_and_excluded_lists(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _created(platform, account, "&allowed_payment_method_types[0]=card")
    updated = _post(
        platform,
        account,
        f"/v1/payment_intents/{intent['id']}",
        "excluded_payment_method_types[0]=ideal",
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["excluded_payment_method_types"] == ["ideal"]
    confirmed = _confirm(
        platform,
        account,
        intent,
        f"payment_method=pm_card_visa&return_url={RETURN_URL}"
        "&allowed_payment_method_types[0]=card&allowed_payment_method_types[1]=link",
    )
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["status"] == "succeeded"
    assert body["allowed_payment_method_types"] == ["card", "link"]
    assert body["excluded_payment_method_types"] == ["ideal"]


def test_update_and_confirm_lift_the_lists_with_an_empty_value(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """A restriction once set can be lifted, as Stripe unsets a field: `name=`."""
    intent = _created(
        platform, account,
        "&allowed_payment_method_types[0]=card&excluded_payment_method_types[0]=ideal",
    )  # fmt: skip
    path = f"/v1/payment_intents/{intent['id']}"
    lifted = _post(platform, account, path, "excluded_payment_method_types=")
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["excluded_payment_method_types"] is None
    assert lifted.json()["allowed_payment_method_types"] == ["card"]
    confirmed = _confirm(
        platform, account, intent,
        f"payment_method=pm_card_visa&return_url={RETURN_URL}&allowed_payment_method_types=",
    )  # fmt: skip
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["allowed_payment_method_types"] is None
    # Setting and lifting a list at once: the form itself is refused (the core would refuse it
    # too: tests/unit/payments/test_request_params.py).
    both = _post(
        platform, account, path,
        "excluded_payment_method_types=&excluded_payment_method_types[0]=ideal",
    )  # fmt: skip
    assert both.status_code == 400, both.text


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ("&allowed_payment_method_types[0]=ideal", "allowed_payment_method_types"),
        ("&excluded_payment_method_types[0]=card", "excluded_payment_method_types"),
    ],
)
def test_lists_that_leave_no_type_remit_can_process_are_refused(
    platform: RunningPlatform, account: TestAccount, extra: str, param: str
) -> None:
    response = _post(platform, account, "/v1/payment_intents", "amount=500&currency=usd" + extra)
    error = _error(response)
    assert (error["code"], error["param"]) == ("parameter_invalid", param)


def test_an_empty_allowed_list_is_refused(platform: RunningPlatform, account: TestAccount) -> None:
    response = httpx.post(
        platform.api_base + "/v1/payment_intents",
        json={"amount": 500, "currency": "usd", "allowed_payment_method_types": []},
        headers={"Authorization": f"Bearer {account.secret_key}"},
        timeout=30,
    )
    assert _error(response)["param"] == "allowed_payment_method_types"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("", "amount=500&currency=usd&excluded_payment_method_types[0]=bogus_pay",
         "excluded_payment_method_types[0]"),
        ("", "amount=500&currency=usd&allowed_payment_method_types[0]=card"
         "&allowed_payment_method_types[1]=bogus_pay", "allowed_payment_method_types[1]"),
        ("/{id}", "excluded_payment_method_types[0]=bogus_pay", "excluded_payment_method_types[0]"),
        ("/{id}/confirm", "payment_method=pm_card_visa&return_url=https://shop.test/back"
         "&allowed_payment_method_types[0]=bogus_pay", "allowed_payment_method_types[0]"),
    ],
)  # fmt: skip
def test_an_unknown_payment_method_type_is_refused_naming_it(
    platform: RunningPlatform, account: TestAccount, path: str, body: str, param: str
) -> None:
    intent = _created(platform, account)
    response = _post(platform, account, "/v1/payment_intents" + path.format(id=intent["id"]), body)
    error = _error(response)
    assert (error["code"], error["param"]) == ("parameter_invalid", param)
    assert "'bogus_pay'" in error["message"]
    assert "us_bank_account" in error["message"]


def test_every_stripe_payment_method_type_may_be_named(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _created(
        platform,
        account,
        "&excluded_payment_method_types[0]=revolut_pay&excluded_payment_method_types[1]=zip",
    )
    assert intent["excluded_payment_method_types"] == ["revolut_pay", "zip"]


# --- payment_method_types per version ------------------------------------------------------


def test_confirm_refuses_payment_method_types_at_endive(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _created(platform, account, "&" + NO_REDIRECTS)
    response = _confirm(
        platform, account, intent, "payment_method=pm_card_visa&payment_method_types[0]=card"
    )
    assert _error(response)["code"] == "payment_method_types_no_longer_supported"


def test_confirm_takes_allowed_source_types_before_2019_02_11(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _created(platform, account, version=BEFORE_SOURCE_RENAMES)
    response = _confirm(
        platform,
        account,
        intent,
        "payment_method=pm_card_visa&allowed_source_types[0]=card",
        BEFORE_SOURCE_RENAMES,
    )
    assert response.status_code == 200, response.text
    assert response.json()["allowed_source_types"] == ["card"]
    refused = _confirm(
        platform, account, intent, "payment_method_types[0]=card", BEFORE_SOURCE_RENAMES
    )
    assert _error(refused)["code"] == "parameter_unknown"


# --- return_url on confirm -----------------------------------------------------------------


def test_confirm_without_return_url_is_refused_for_automatic_payment_methods(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _created(platform, account)
    error = _error(_confirm(platform, account, intent, "payment_method=pm_card_visa"))
    assert (error["code"], error["param"]) == ("parameter_missing", "return_url")
    # Refused before anything happened: the intent still waits for a payment method.
    retried = _confirm(
        platform, account, intent, f"payment_method=pm_card_visa&return_url={RETURN_URL}"
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "succeeded"


def test_confirming_a_succeeded_intent_says_so_before_asking_for_a_return_url(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """The status refuses the confirmation whatever it carries: that, not the missing
    return_url, is what the caller needs to hear."""
    intent = _created(platform, account)
    paid = _confirm(
        platform, account, intent, f"payment_method=pm_card_visa&return_url={RETURN_URL}"
    )
    assert paid.json()["status"] == "succeeded"
    error = _error(_confirm(platform, account, intent, "payment_method=pm_card_visa"))
    assert error["code"] == "payment_intent_unexpected_state"


@pytest.mark.parametrize(
    ("create", "confirm"),
    [
        ("&" + NO_REDIRECTS, ""),
        ("", "&off_session=true"),
        ("&automatic_payment_methods[enabled]=false", ""),
    ],
)
def test_confirm_needs_no_return_url_when_no_redirect_can_happen(
    platform: RunningPlatform, account: TestAccount, create: str, confirm: str
) -> None:
    intent = _created(platform, account, create)
    response = _confirm(platform, account, intent, "payment_method=pm_card_visa" + confirm)
    assert response.status_code == 200, response.text


def test_before_2023_08_16_confirm_needs_no_return_url(
    platform: RunningPlatform, account: TestAccount
) -> None:
    intent = _created(platform, account, version=BEFORE_AUTOMATIC_DEFAULT)
    response = _confirm(
        platform, account, intent, "payment_method=pm_card_visa", BEFORE_AUTOMATIC_DEFAULT
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"


def test_creating_with_confirm_true_without_return_url_is_refused_from_2023_08_16(
    platform: RunningPlatform, account: TestAccount
) -> None:
    response = _post(
        platform,
        account,
        "/v1/payment_intents",
        "amount=500&currency=usd&payment_method=pm_card_visa&confirm=true",
    )
    assert _error(response)["param"] == "return_url"


BEFORE_ENDIVE = "2026-08-26.dahlia"


def test_before_endive_writing_payment_method_types_turns_automatic_payment_methods_off(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """Naming the types chooses them explicitly, on update and on confirm as on create: the
    intent no longer takes automatic payment methods, and its confirmation needs no
    return_url."""
    updated = _created(platform, account, version=BEFORE_ENDIVE)
    assert updated["automatic_payment_methods"]["enabled"] is True
    response = _post(
        platform, account, f"/v1/payment_intents/{updated['id']}",
        "payment_method_types[]=card", BEFORE_ENDIVE,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["automatic_payment_methods"] is None
    paid = _confirm(platform, account, updated, "payment_method=pm_card_visa", BEFORE_ENDIVE)
    assert paid.status_code == 200, paid.text

    confirmed = _created(platform, account, version=BEFORE_ENDIVE)
    paid = _confirm(
        platform, account, confirmed,
        "payment_method=pm_card_visa&payment_method_types[]=card", BEFORE_ENDIVE,
    )  # fmt: skip
    assert paid.status_code == 200, paid.text
    assert paid.json()["automatic_payment_methods"] is None
    assert paid.json()["status"] == "succeeded"

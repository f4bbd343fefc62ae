"""Test card 4000002500003155 (`pm_card_authenticationRequiredOnSetup`) as Stripe documents it:
3-D Secure for on-session payments and for its setup, none for the off-session payments that
cite that authenticated setup by its network transaction id (the networks' initial transaction
id of a stored credential). 4000002760003184 asks for authentication on every payment. Against
the real acquirer database."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from remit.acquirer.service import AcquirerService
from remit.core.errors import ErrorKind, RemitError
from tests.integration.acquirer.support import MERCHANT, authorization_request

pytestmark = pytest.mark.anyio

ON_SETUP = "4000002500003155"
ALWAYS = "4000002760003184"
OTHER_MERCHANT = "acct_1AnotherMerchantOfTheTests"


async def _setup(
    service: AcquirerService,
    number: str = ON_SETUP,
    *,
    three_d_secure: bool = True,
    setup_off_session: bool = True,
    merchant_id: str = MERCHANT,
) -> str:
    """The network transaction id of an approved cardholder-initiated payment."""
    recorded = await service.authorize(
        authorization_request(
            number,
            three_d_secure=three_d_secure,
            setup_off_session=setup_off_session,
            merchant_id=merchant_id,
        )
    )
    result = recorded.operation.authorization_result
    assert result is not None
    assert result.approved
    assert result.network_transaction_id is not None
    return result.network_transaction_id


async def _renewal(
    service: AcquirerService, number: str, cited: str | None
) -> tuple[bool, str | None]:
    """An off-session payment of `number` citing `cited`: (approved, decline code)."""
    recorded = await service.authorize(
        authorization_request(
            number, cvc=None, off_session=True, initial_network_transaction_id=cited
        )
    )
    result = recorded.operation.authorization_result
    assert result is not None
    return result.approved, result.decline_code


async def test_an_off_session_payment_citing_the_authenticated_setup_needs_no_authentication(
    service: AcquirerService,
) -> None:
    setup = await _setup(service)
    assert await _renewal(service, ON_SETUP, setup) == (True, None)
    # Every renewal cites the same setup.
    assert await _renewal(service, ON_SETUP, setup) == (True, None)


async def test_the_setup_card_asks_on_session_payments_to_authenticate_after_its_setup(
    service: AcquirerService,
) -> None:
    await _setup(service)
    recorded = await service.authorize(authorization_request(ON_SETUP))
    assert (recorded.operation.approved, recorded.operation.code) == (False, "card_declined")
    result = recorded.operation.authorization_result
    assert result is not None
    assert result.decline_code == "authentication_required"


async def test_the_setup_itself_needs_authentication(service: AcquirerService) -> None:
    recorded = await service.authorize(authorization_request(ON_SETUP, setup_off_session=True))
    result = recorded.operation.authorization_result
    assert result is not None
    assert (result.approved, result.decline_code) == (False, "authentication_required")
    # The declined setup has a network transaction id of its own, but sets nothing up.
    assert await _renewal(service, ON_SETUP, result.network_transaction_id) == (
        False,
        "authentication_required",
    )


Cited = Callable[[AcquirerService], Awaitable[str | None]]


async def _nothing(service: AcquirerService) -> None:
    return None


async def _unknown(service: AcquirerService) -> str:
    return "999999999999999"


async def _another_merchants_setup(service: AcquirerService) -> str:
    return await _setup(service, merchant_id=OTHER_MERCHANT)


async def _another_cards_setup(service: AcquirerService) -> str:
    return await _setup(service, "4242424242424242", three_d_secure=False)


async def _an_authenticated_payment_that_set_nothing_up(service: AcquirerService) -> str:
    return await _setup(service, setup_off_session=False)


@pytest.mark.parametrize(
    "cited",
    [
        _nothing,
        _unknown,
        _another_merchants_setup,
        _another_cards_setup,
        _an_authenticated_payment_that_set_nothing_up,
    ],
    ids=lambda cited: cited.__name__.strip("_"),
)
async def test_an_off_session_payment_without_an_authenticated_setup_of_its_card_declines(
    service: AcquirerService, cited: Cited
) -> None:
    assert await _renewal(service, ON_SETUP, await cited(service)) == (
        False,
        "authentication_required",
    )


async def test_the_always_authenticate_card_declines_off_session_even_after_its_setup(
    service: AcquirerService,
) -> None:
    setup = await _setup(service, ALWAYS)
    assert await _renewal(service, ALWAYS, setup) == (False, "authentication_required")
    assert await _renewal(service, ALWAYS, None) == (False, "authentication_required")


async def test_the_setup_and_the_payments_citing_it_are_recorded_as_the_network_saw_them(
    service: AcquirerService,
) -> None:
    setup_reference, renewal_reference = "op_setup_recorded", "op_renewal_recorded"
    setup = await service.authorize(
        authorization_request(
            ON_SETUP, reference=setup_reference, three_d_secure=True, setup_off_session=True
        )
    )
    result = setup.operation.authorization_result
    assert result is not None
    assert result.authorization_id is not None
    held = await service.get_authorization(result.authorization_id)
    assert (held.network_transaction_id, held.three_d_secure_authenticated) == (
        result.network_transaction_id,
        True,
    )
    assert held.setup_off_session
    renewal = authorization_request(
        ON_SETUP,
        reference=renewal_reference,
        off_session=True,
        initial_network_transaction_id=result.network_transaction_id,
    )
    first = await service.authorize(renewal)
    again = await service.authorize(renewal)
    assert (first.replayed, again.replayed) == (False, True)
    assert again.operation == first.operation
    # The same reference citing another setup is another request.
    with pytest.raises(RemitError) as reused:
        await service.authorize(
            authorization_request(
                ON_SETUP,
                reference=renewal_reference,
                off_session=True,
                initial_network_transaction_id="123456789012345",
            )
        )
    assert reused.value.code == "reference_reused"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"off_session": True, "setup_off_session": True}, "setup_off_session"),
        ({"initial_network_transaction_id": "123456789012345"}, "initial_network_transaction_id"),
        (
            {"off_session": True, "initial_network_transaction_id": "1" * 65},
            "initial_network_transaction_id",
        ),
    ],
    ids=["setup-while-off-session", "cited-on-session", "cited-id-too-long"],
)
async def test_stored_credential_fields_that_contradict_each_other_are_refused(
    service: AcquirerService, fields: dict[str, Any], param: str
) -> None:
    reference = f"op_refused_{param}_{len(fields)}"
    with pytest.raises(RemitError) as refused:
        await service.authorize(authorization_request(ON_SETUP, reference=reference, **fields))
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, param)
    with pytest.raises(RemitError) as missing:
        await service.lookup(reference)
    assert missing.value.kind is ErrorKind.NOT_FOUND

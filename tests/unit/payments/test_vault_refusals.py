"""Which errors of a forwarded authorization end the attempt as a card the vault will not
open: exactly the vault's own refusals about the card, never an error of the acquirer passed on
through the vault with the same status."""

from remit.acquirer.service import reference_reused
from remit.core.errors import ErrorKind, RemitError, not_found
from remit.payments.network import (
    network_holds_reference_for_other_parameters,
    vault_will_not_open_card,
)
from remit.vault.crypto import retired_key, tampered
from remit.vault.service import _no_such_token
from remit.vault.service import reference_reused as vault_reference_reused


def test_the_vaults_refusals_about_the_card_are_recognised() -> None:
    assert vault_will_not_open_card(_no_such_token("vtok_gone"))
    assert vault_will_not_open_card(retired_key("kek", 1, 2))


def test_other_errors_with_the_same_status_are_not() -> None:
    reused = reference_reused("ch_1")
    assert reused.kind is ErrorKind.FAILED_PRECONDITION
    assert not vault_will_not_open_card(reused)
    assert not vault_will_not_open_card(not_found("payment_intent", "pi_1", param="intent"))
    assert not vault_will_not_open_card(tampered())
    assert not vault_will_not_open_card(
        RemitError(
            message="denied", kind=ErrorKind.PERMISSION_DENIED, code="destination_not_allowed"
        )
    )


def test_a_reference_held_for_other_parameters_is_recognised_whoever_caught_it() -> None:
    for reused in (vault_reference_reused("ch_1"), reference_reused("ch_1")):
        assert network_holds_reference_for_other_parameters(reused)
        assert not vault_will_not_open_card(reused)
    assert not network_holds_reference_for_other_parameters(_no_such_token("vtok_gone"))
    assert not network_holds_reference_for_other_parameters(tampered())

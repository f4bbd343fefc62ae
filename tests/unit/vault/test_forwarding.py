"""The forwarding allowlist's configuration and the acquirer's answer mirrored by the vault."""

import pytest

from remit.core.secrets import Secret
from remit.vault.domain import OutboundAuthorization, StoredCredential
from remit.vault.forwarding import authorize_request, mirror_result, parse_allowlist
from remit_api.acquirer.v1 import acquirer_pb2
from remit_api.common.v1 import common_pb2


def test_the_allowlist_names_each_destination_and_its_address() -> None:
    assert parse_allowlist("acquirer=127.0.0.1:7423, backup=10.0.0.2:9000") == {
        "acquirer": "127.0.0.1:7423",
        "backup": "10.0.0.2:9000",
    }
    for bad in ("acquirer", "=127.0.0.1:1", "acquirer=localhost"):
        with pytest.raises(ValueError, match="name=host:port"):
            parse_allowlist(bad)


def test_every_field_of_the_acquirers_answer_that_the_vault_defines_is_kept() -> None:
    result = acquirer_pb2.AuthorizationResult(
        approved=True,
        authorization_id="auth_1",
        network_status=common_pb2.NETWORK_STATUS_APPROVED_BY_NETWORK,
        code="c",
        decline_code="d",
        message="m",
        cvc_check=common_pb2.CARD_CHECK_RESULT_PASS,
        address_line1_check=common_pb2.CARD_CHECK_RESULT_FAIL,
        address_postal_code_check=common_pb2.CARD_CHECK_RESULT_UNCHECKED,
        risk_level_hint=common_pb2.RISK_LEVEL_ELEVATED,
        captured=True,
        network_transaction_id="n",
        authorization_code="a",
        operation_id="op_1",
    )
    mirrored = mirror_result(result)
    shared = set(mirrored.DESCRIPTOR.fields_by_name) & set(result.DESCRIPTOR.fields_by_name)
    assert len(shared) >= 14
    for name in shared:
        assert getattr(mirrored, name) == getattr(result, name), name


def test_what_the_caller_says_of_the_kept_card_reaches_the_destination_unchanged() -> None:
    def outbound(stored_credential: StoredCredential) -> OutboundAuthorization:
        return OutboundAuthorization(
            reference="ch_1",
            merchant_id="acct_1",
            card_number=Secret("4000002500003155"),
            exp_month=12,
            exp_year=2034,
            cvc=None,
            amount_minor=1000,
            currency="usd",
            capture=True,
            stored_credential=stored_credential,
        )

    renewal = authorize_request(
        outbound(StoredCredential(off_session=True, initial_network_transaction_id="123"))
    )
    assert (renewal.off_session, renewal.setup_off_session) == (True, False)
    assert renewal.initial_network_transaction_id == "123"
    setup = authorize_request(outbound(StoredCredential(setup_off_session=True)))
    assert (setup.off_session, setup.setup_off_session) == (False, True)
    assert setup.initial_network_transaction_id == ""


def test_the_fee_the_acquirer_withholds_is_kept_and_an_unreported_fee_stays_unreported() -> None:
    """A fee of 0 (nothing captured) and a fee the acquirer did not report are different
    answers: the core books the first and cannot book the second."""
    assert mirror_result(acquirer_pb2.AuthorizationResult(captured=True, fee=150)).fee == 150
    zero = mirror_result(acquirer_pb2.AuthorizationResult(fee=0))
    assert zero.HasField("fee")
    assert zero.fee == 0
    assert not mirror_result(acquirer_pb2.AuthorizationResult(captured=True)).HasField("fee")

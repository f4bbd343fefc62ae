"""The vault tells the core which of the fingerprints it holds are its cards' shared fingerprints
that the account's own replaced (`CheckCardFingerprints`), never a shared fingerprint itself, and
audits each check as one event."""

import grpc
import pytest

from remit.core.secrets import Secret
from remit.vault.crypto import fingerprint
from remit.vault.domain import AuditAction, AuditFilter
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import VaultHarness
from tests.integration.vault.test_account_fingerprints import (
    MASTERCARD,
    VISA,
    _as_before_0010,
    _tokenize,
)

pytestmark = pytest.mark.anyio


async def _check(
    harness: VaultHarness, account_id: str, held: list[tuple[str, str]]
) -> list[tuple[str, int, str]]:
    reply = await harness.vault.stub.CheckCardFingerprints(
        vault_pb2.CheckCardFingerprintsRequest(
            account_id=account_id,
            cards=[
                vault_pb2.HeldFingerprint(vault_token=token, fingerprint=value)
                for token, value in held
            ],
            requester="worker",
        )
    )
    return [(card.vault_token, card.check, card.fingerprint) for card in reply.cards]


async def test_a_shared_fingerprint_is_answered_with_the_account_s_once_the_card_is_resealed(
    harness: VaultHarness,
) -> None:
    token = await _tokenize(harness, "acct_1")
    shared = await _as_before_0010(harness, token, VISA)

    assert await _check(harness, "acct_1", [(token, shared)]) == [
        (token, vault_pb2.FINGERPRINT_CHECK_PENDING, "")
    ]

    await harness.vault.service.reseal_all(requester="test")
    own = fingerprint(harness.keys.load(), "acct_1", Secret(VISA))
    assert await _check(harness, "acct_1", [(token, shared), (token, own)]) == [
        (token, vault_pb2.FINGERPRINT_CHECK_REPLACED, own),
        (token, vault_pb2.FINGERPRINT_CHECK_CURRENT, own),
    ]


async def test_a_fingerprint_that_is_not_the_card_s_gets_no_answer(harness: VaultHarness) -> None:
    token = await _tokenize(harness, "acct_1")
    other = await _tokenize(harness, "acct_1", MASTERCARD)
    other_shared = await _as_before_0010(harness, other, MASTERCARD)
    await harness.vault.service.reseal_all(requester="test")
    theirs = await _tokenize(harness, "acct_2")
    own_of_theirs = fingerprint(harness.keys.load(), "acct_2", Secret(VISA))

    answers = await _check(
        harness,
        "acct_1",
        [
            # Another card's shared fingerprint held for this card.
            (token, other_shared),
            # Another account's card, with its own fingerprint.
            (theirs, own_of_theirs),
            ("vtok_none", "abcdefghijklmnop"),
        ],
    )

    assert [check for _, check, _ in answers] == [vault_pb2.FINGERPRINT_CHECK_UNKNOWN] * 3
    assert [value for _, _, value in answers] == ["", "", ""]


async def test_a_card_deleted_before_its_reseal_keeps_no_answer(harness: VaultHarness) -> None:
    token = await _tokenize(harness, "acct_1")
    shared = await _as_before_0010(harness, token, VISA)
    assert await harness.vault.service.delete_card("acct_1", token, requester="test")
    await harness.vault.service.reseal_all(requester="test")

    assert await _check(harness, "acct_1", [(token, shared)]) == [
        (token, vault_pb2.FINGERPRINT_CHECK_UNKNOWN, "")
    ]


async def test_a_check_is_audited_as_one_event_counting_its_answers(
    harness: VaultHarness,
) -> None:
    tokens = [await _tokenize(harness, "acct_1") for _ in range(3)]
    shared = [await _as_before_0010(harness, token, VISA) for token in tokens]
    await harness.vault.service.reseal_all(requester="test")
    own = fingerprint(harness.keys.load(), "acct_1", Secret(VISA))

    await _check(
        harness, "acct_1", [(tokens[0], shared[0]), (tokens[1], shared[1]), (tokens[2], own)]
    )

    events, _ = await harness.vault.service.list_audit_events(
        AuditFilter(limit=100, action=AuditAction.CHECK_FINGERPRINTS)
    )
    assert len(events) == 1
    event = events[0]
    assert (event.account_id, event.requester, event.token) == ("acct_1", "worker", "")
    assert "3 cards (1 current, 2 replaced, 0 pending, 0 unknown)" in event.purpose
    assert tokens[0] in event.purpose
    assert tokens[1] in event.purpose
    assert tokens[2] not in event.purpose
    # Neither fingerprint is recorded.
    assert shared[0] not in event.purpose
    assert own not in event.purpose


async def test_a_check_takes_one_to_five_hundred_cards(harness: VaultHarness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as none:
        await _check(harness, "acct_1", [])
    assert none.value.code() is grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(grpc.aio.AioRpcError) as too_many:
        await _check(harness, "acct_1", [(f"vtok_{n}", "x") for n in range(501)])
    assert too_many.value.code() is grpc.StatusCode.INVALID_ARGUMENT

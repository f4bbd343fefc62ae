"""The worker's conversion of the core's card fingerprints to each account's own, with a real
vault over gRPC and the core's database: payment methods and tokens made before the vault's
re-seal hold the fingerprint every account shared, as do the Radar list items, velocity
counters and rules made of it."""

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.payment_methods.domain import NewPaymentMethod
from remit.payment_methods.fingerprint_conversion import ConversionCounts
from remit.payment_methods.service import PaymentMethodsService
from remit.radar.domain import ItemType, RuleAction
from remit.radar.history import ChangeAction
from tests.integration.payment_methods.fingerprint_bench import VISA, Bench, fingerprint_bench_for
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio


@pytest.fixture
async def bench(
    core_engine: AsyncEngine, databases: WorkerDatabases, tmp_path: Path
) -> AsyncIterator[Bench]:
    async with fingerprint_bench_for(core_engine, databases, tmp_path) as running:
        yield running


async def test_payment_methods_and_tokens_holding_the_shared_fingerprint_get_the_account_s(
    bench: Bench,
) -> None:
    method_id = await bench.method_made_before_the_upgrade()
    token = await bench.payment_methods.create_token(bench.account_id, await bench.store_card())
    await bench.as_before_the_upgrade("tokens", token.id)
    assert await bench.held("payment_methods", method_id) == (bench.shared, 1)

    counts = await bench.conversion().run()

    assert counts == ConversionCounts(checked=2, converted=2)
    assert await bench.held("payment_methods", method_id) == (bench.own, 2)
    assert await bench.held("tokens", token.id) == (bench.own, 2)
    method = await bench.payment_methods.get(bench.account_id, method_id)
    assert method.card.fingerprint == bench.own


async def test_a_row_already_holding_the_account_s_fingerprint_is_only_marked_checked(
    bench: Bench,
) -> None:
    method = await bench.payment_methods.create(
        bench.account_id,
        NewPaymentMethod(vault_token=await bench.store_card()),
    )
    # As a core before the vault said whose a fingerprint is stored a card re-sealed already.
    async with bench.core_engine.begin() as db:
        await db.execute(
            text("UPDATE payment_methods SET fingerprint_scope = DEFAULT WHERE id = :id"),
            {"id": method.id},
        )
    assert await bench.held("payment_methods", method.id) == (bench.own, 1)

    counts = await bench.conversion().run()

    assert counts == ConversionCounts(checked=1, converted=0)
    assert await bench.held("payment_methods", method.id) == (bench.own, 2)


async def test_the_conversion_run_again_changes_nothing_and_reads_nothing(
    bench: Bench,
) -> None:
    method_ids = [await bench.method_made_before_the_upgrade() for _ in range(3)]
    assert (await bench.conversion(batch_size=2).run()).converted == 3

    assert await bench.conversion(batch_size=2).run() == ConversionCounts()
    for method_id in method_ids:
        assert await bench.held("payment_methods", method_id) == (
            bench.own,
            2,
        )


async def test_a_card_the_vault_has_not_resealed_yet_is_left_for_a_later_run(
    bench: Bench,
) -> None:
    method_id = await bench.method_made_before_the_upgrade()
    method = await bench.payment_methods.get(bench.account_id, method_id)
    await bench.set_vault_scope(method.vault_token, 1)

    assert await bench.conversion().run() == ConversionCounts(checked=1, pending=1)
    assert await bench.held("payment_methods", method_id) == (bench.shared, 1)

    await bench.set_vault_scope(method.vault_token, 2)
    assert (await bench.conversion().run()).converted == 1
    assert await bench.held("payment_methods", method_id) == (bench.own, 2)


async def test_a_fingerprint_that_is_not_the_card_s_is_left_as_it_is(
    bench: Bench,
) -> None:
    method = await bench.payment_methods.create(
        bench.account_id,
        NewPaymentMethod(vault_token=await bench.store_card()),
    )
    async with bench.core_engine.begin() as db:
        await db.execute(
            text(
                "UPDATE payment_methods SET fingerprint = 'NotThisCardsOne', "
                "fingerprint_scope = 1 WHERE id = :id"
            ),
            {"id": method.id},
        )

    assert await bench.conversion().run() == ConversionCounts(checked=1, unknown=1)
    assert await bench.held("payment_methods", method.id) == ("NotThisCardsOne", 1)


async def test_a_card_fingerprint_list_item_follows_the_card_and_matches_it_again(
    bench: Bench,
) -> None:
    await bench.method_made_before_the_upgrade()
    blocked = await bench.radar.create_value_list(
        bench.account_id, alias="blocked", name="Blocked cards",
        item_type=ItemType.CARD_FINGERPRINT,
    )  # fmt: skip
    await bench.radar.add_item(bench.account_id, blocked.id, bench.shared)
    await bench.radar.create_rule(
        bench.account_id, RuleAction.BLOCK, ":card_fingerprint: in @blocked"
    )
    # Another account listing the same shared fingerprint holds no card of it: its list is
    # not this account's to rewrite, and stays as it was.
    theirs = await bench.radar.create_value_list(
        bench.other_account_id, alias="blocked", name="Blocked cards",
        item_type=ItemType.CARD_FINGERPRINT,
    )  # fmt: skip
    await bench.radar.add_item(bench.other_account_id, theirs.id, bench.shared)
    signals: dict[str, object] = {"card_fingerprint": bench.own}
    before = await bench.radar.evaluate(bench.account_id, signals)
    assert before.action is not RuleAction.BLOCK

    counts = await bench.conversion().run()

    assert counts.list_items == 1
    items, _ = await bench.radar.list_items(bench.account_id, blocked.id, limit=10)
    assert [item.value for item in items] == [bench.own]
    after = await bench.radar.evaluate(bench.account_id, signals)
    assert after.action is RuleAction.BLOCK
    their_items, _ = await bench.radar.list_items(bench.other_account_id, theirs.id, limit=10)
    assert [item.value for item in their_items] == [bench.shared]


async def test_a_rule_naming_the_card_s_fingerprint_still_blocks_it_after_the_conversion(
    bench: Bench,
) -> None:
    method_id = await bench.method_made_before_the_upgrade()
    # The same card as a token too: the second of its rows converted finds the rule rewritten.
    token = await bench.payment_methods.create_token(bench.account_id, await bench.store_card())
    await bench.as_before_the_upgrade("tokens", token.id)
    block = await bench.radar.create_rule(
        bench.account_id, RuleAction.BLOCK, f":card_fingerprint: = '{bench.shared}'"
    )
    in_set = await bench.radar.create_rule(
        bench.account_id, RuleAction.REVIEW,
        f":card_fingerprint: in ('NotThisCardsOne', '{bench.shared.lower()}')",
    )  # fmt: skip
    # The same string compared with another attribute, or in another account, is no card's.
    by_email = await bench.radar.create_rule(
        bench.account_id, RuleAction.REVIEW, f":email: = '{bench.shared}'"
    )
    theirs = await bench.radar.create_rule(
        bench.other_account_id, RuleAction.BLOCK, f":card_fingerprint: = '{bench.shared}'"
    )

    async def decided() -> RuleAction:
        method = await bench.payment_methods.get(bench.account_id, method_id)
        signals: dict[str, object] = {"card_fingerprint": method.card.fingerprint}
        return (await bench.radar.evaluate(bench.account_id, signals)).action

    assert await decided() is RuleAction.BLOCK

    counts = await bench.conversion().run()

    assert counts == ConversionCounts(checked=2, converted=2, rules=2)
    assert await bench.held("payment_methods", method_id) == (bench.own, 2)
    assert await decided() is RuleAction.BLOCK
    rewritten = await bench.radar.get_rule(bench.account_id, block.id)
    assert (rewritten.predicate, rewritten.version) == (f":card_fingerprint: = '{bench.own}'", 2)
    in_set_now = await bench.radar.get_rule(bench.account_id, in_set.id)
    assert in_set_now.predicate == f":card_fingerprint: in ('NotThisCardsOne', '{bench.own}')"
    assert in_set_now.version == 2
    assert await bench.radar.get_rule(bench.account_id, by_email.id) == by_email
    assert await bench.radar.get_rule(bench.other_account_id, theirs.id) == theirs
    changes, _ = await bench.radar.list_changes(bench.account_id, limit=10, object_id=block.id)
    assert [(c.action, c.rule_version, c.changed_by) for c in changes] == [
        (ChangeAction.UPDATED, 2, "remit"),
        (ChangeAction.CREATED, 1, "remit"),
    ]
    assert changes[0].before is not None
    assert changes[0].after is not None
    assert changes[0].before["predicate"] == block.predicate
    assert changes[0].after["predicate"] == rewritten.predicate

    assert await bench.conversion().run() == ConversionCounts()
    assert await bench.radar.get_rule(bench.account_id, block.id) == rewritten


async def test_a_stored_rule_that_no_longer_parses_is_left_as_it_is(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    await bench.method_made_before_the_upgrade()
    # Saved by an older parser, which took an address with a zone (core migration 0069).
    predicate = f":card_fingerprint: = '{bench.shared}' and :ip_address: = 'fe80::1%eth0'"
    async with bench.core_engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO radar_rules (id, account_id, action, predicate, position, "
                "created_at) VALUES ('rule_old', :account, 'block', :predicate, 0, now())"
            ),
            {"account": bench.account_id, "predicate": predicate},
        )

    with caplog.at_level(logging.WARNING):
        counts = await bench.conversion().run()

    assert (counts.converted, counts.rules) == (1, 0)
    # Its id, never the fingerprints it names.
    assert "rule_old" in caplog.text
    assert bench.shared not in caplog.text
    rule = await bench.radar.get_rule(bench.account_id, "rule_old")
    assert (rule.predicate, rule.version) == (predicate, 1)


async def test_a_list_holding_both_fingerprints_keeps_the_account_s_once(
    bench: Bench,
) -> None:
    await bench.method_made_before_the_upgrade()
    trusted = await bench.radar.create_value_list(
        bench.account_id, alias="trusted", name="Trusted cards",
        item_type=ItemType.CARD_FINGERPRINT,
    )  # fmt: skip
    await bench.radar.add_item(bench.account_id, trusted.id, bench.shared)
    await bench.radar.add_item(bench.account_id, trusted.id, bench.own)

    assert (await bench.conversion().run()).list_items == 1

    items, _ = await bench.radar.list_items(bench.account_id, trusted.id, limit=10)
    assert [item.value for item in items] == [bench.own]


async def test_the_card_s_velocity_counters_follow_it(bench: Bench) -> None:
    await bench.method_made_before_the_upgrade()
    await bench.count_card_uses(bench.account_id, bench.shared)
    await bench.count_card_uses(bench.other_account_id, bench.shared)

    await bench.conversion().run()

    assert await bench.card_counter_keys(bench.account_id) == [bench.own]
    assert await bench.card_counter_keys(bench.other_account_id) == [bench.shared]


async def test_the_conversion_logs_no_card_number_and_no_fingerprint(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    await bench.method_made_before_the_upgrade()
    with caplog.at_level(logging.DEBUG):
        counts = await bench.conversion().run()

    assert counts.converted == 1
    assert "1 given their account's fingerprint" in caplog.text
    for secret in (VISA, VISA[6:], bench.shared, bench.own):
        assert secret not in caplog.text


async def test_new_payment_methods_and_tokens_hold_the_account_s_fingerprint_for_good(
    bench: Bench,
) -> None:
    """The vault says with a card's details that its fingerprint is the account's own: every
    way the core stores a card keeps it so, and the conversion has nothing to ask about."""
    methods, account_id = bench.payment_methods, bench.account_id
    token = await methods.create_token(account_id, await bench.store_card())
    from_card = await methods.create(
        account_id, NewPaymentMethod(vault_token=await bench.store_card())
    )
    from_token = await methods.create(account_id, NewPaymentMethod(token_id=token.id))
    copied = await methods.create(account_id, NewPaymentMethod(payment_method_id=from_card.id))
    test_token = await methods.get_token(account_id, "tok_visa")
    of_test_token = await methods.create(account_id, NewPaymentMethod(token_id="tok_mastercard"))
    test_method = await methods.get(account_id, "pm_card_amex")
    # A payment with a test id: its payment method goes out with the payment's own writes.
    to_charge = await methods.to_charge(account_id, "pm_card_discover")
    async with bench.core_engine.begin() as db:
        await PaymentMethodsService.save_named_in(db, to_charge)

    for table, row_id in [
        ("tokens", token.id),
        ("tokens", test_token.id),
        ("payment_methods", from_card.id),
        ("payment_methods", from_token.id),
        ("payment_methods", copied.id),
        ("payment_methods", of_test_token.id),
        ("payment_methods", test_method.id),
        ("payment_methods", to_charge.method.id),
    ]:
        assert (await bench.held(table, row_id))[1] == 2, (table, row_id)
    assert (await bench.held("payment_methods", from_card.id))[0] == bench.own
    assert (await methods.get(account_id, from_token.id)).card.account_fingerprint
    assert await bench.conversion().run() == ConversionCounts()


async def test_a_card_the_vault_has_not_re_fingerprinted_is_stored_for_the_conversion(
    bench: Bench,
) -> None:
    vault_token = await bench.store_card()
    await bench.set_vault_scope(vault_token, 1)
    methods, account_id = bench.payment_methods, bench.account_id
    token = await methods.create_token(account_id, vault_token)
    method = await methods.create(account_id, NewPaymentMethod(vault_token=vault_token))
    from_token = await methods.create(account_id, NewPaymentMethod(token_id=token.id))

    assert (await bench.held("tokens", token.id))[1] == 1
    assert (await bench.held("payment_methods", method.id))[1] == 1
    assert (await bench.held("payment_methods", from_token.id))[1] == 1
    assert not (await methods.get(account_id, method.id)).card.account_fingerprint
    assert await bench.conversion().run() == ConversionCounts(checked=3, pending=3)


async def test_the_charges_of_a_converted_payment_method_show_the_account_s_fingerprint(
    bench: Bench,
) -> None:
    method_id = await bench.method_made_before_the_upgrade()
    old_charge = await bench.charge_showing(method_id, bench.shared)
    other_value = await bench.charge_showing(method_id, "NotTheOldOne")
    # A charge of a payment method the conversion has nothing to do for keeps what it shows.
    current = await bench.payment_methods.create(
        bench.account_id, NewPaymentMethod(vault_token=await bench.store_card())
    )
    of_current = await bench.charge_showing(current.id, bench.shared)
    shown_before = await bench.charge_card(old_charge)

    counts = await bench.conversion().run()

    assert counts == ConversionCounts(checked=1, converted=1, charges=1)
    assert await bench.charge_card(old_charge) == replace(shown_before, fingerprint=bench.own)
    assert (await bench.charge_card(other_value)).fingerprint == "NotTheOldOne"
    assert (await bench.charge_card(of_current)).fingerprint == bench.shared
    # Run again: nothing is left, and the charge stays converted.
    assert await bench.conversion().run() == ConversionCounts()
    assert (await bench.charge_card(old_charge)).fingerprint == bench.own


async def test_a_charge_is_converted_with_its_payment_method_once_the_vault_re_seals_its_card(
    bench: Bench,
) -> None:
    method_id = await bench.method_made_before_the_upgrade()
    charge_id = await bench.charge_showing(method_id, bench.shared)
    method = await bench.payment_methods.get(bench.account_id, method_id)
    await bench.set_vault_scope(method.vault_token, 1)

    assert await bench.conversion().run() == ConversionCounts(checked=1, pending=1)
    assert (await bench.charge_card(charge_id)).fingerprint == bench.shared

    await bench.set_vault_scope(method.vault_token, 2)
    assert (await bench.conversion().run()).charges == 1
    assert (await bench.charge_card(charge_id)).fingerprint == bench.own

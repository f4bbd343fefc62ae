"""What the REST facade asks the core for to show a list at an old API version, counted at the
gRPC channel: before 2022-11-15 each intent embeds its charges and each charge its refunds,
and before 2017-02-14 each charge shows the Radar rule that decided it. The facade runs in
process (the real app, over real gRPC, on a real database); its calls are a few per list page,
however many objects the page holds."""

import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import grpc
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import KeyKind, Principal
from remit.core.errors import RemitError
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.payments.charges import Refund, RefundStatus
from remit.payments.events import charge_json
from remit.payments.grpc import PaymentsServicer
from remit.payments.related import database_fetch, event_renderer
from remit.payments.repository import ChargeRepository, FirstPage, FirstPages, RefundRepository
from remit.payments.service import PaymentsService
from remit.radar.domain import ItemType, Rule, RuleAction
from remit.radar.grpc import RadarServicer
from remit.radar.repository import RuleRepository
from remit.radar.service import RadarService
from remit.rest.app import build_app
from remit.rest.auth import Authenticator
from remit.rest.dependencies import Dependencies
from remit.versioning import MAX_EMBEDDED
from remit.webhooks.domain import Event
from remit.webhooks.rendering import render_event
from remit_api.payments.v1 import payments_pb2_grpc
from remit_api.radar.v1 import radar_pb2_grpc
from tests.integration.payments.test_payments_service import pay
from tests.support.statements import statements_sent
from versions.v2017_02_14 import RULE_OF_CHARGE
from versions.v2022_11_15 import REFUNDS_OF_CHARGE

pytestmark = pytest.mark.anyio

KEY = "sk_test_" + "b" * 24
BEFORE_RULES_COLLAPSED = "2017-01-27"
"""Before 2017-02-14 (a charge's rule shown expanded) and 2022-11-15 (lists embedded)."""
INTENTS = 6


class CountingInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Counts the unary calls made on a channel, by method name."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def intercept_unary_unary(
        self,
        continuation: Callable[[Any, Any], Awaitable[Any]],
        client_call_details: Any,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else str(method)
        self.calls[name.rpartition("/")[2]] += 1
        return await continuation(client_call_details, request)


@dataclass
class Facade:
    client: httpx.AsyncClient
    calls: Counter[str]

    async def get(self, path: str, version: str, **params: str) -> Any:
        """GET `path` at `version`, counting only the calls this request makes."""
        self.calls.clear()
        response = await self.client.get(
            path, params=params, headers={"Stripe-Version": version}, auth=(KEY, "")
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def facade(
    core_engine: AsyncEngine, payments: PaymentsService, account_id: str
) -> AsyncIterator[Facade]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    # Lists read nothing of customers or payment methods.
    servicer = PaymentsServicer(payments, cast(Any, None), cast(Any, None))
    payments_pb2_grpc.add_PaymentsServiceServicer_to_server(servicer, server)
    radar_pb2_grpc.add_RadarServiceServicer_to_server(
        RadarServicer(RadarService(core_engine)), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    counter = CountingInterceptor()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", interceptors=[counter])

    async def lookup(key: str) -> Principal | None:
        return Principal(account_id, "key_1", KeyKind.SECRET, False, "2026-10-28.endive", False)

    deps = Dependencies(
        core_channel=channel,
        accounts=cast(Any, None),
        payments=payments_pb2_grpc.PaymentsServiceStub(channel),
        webhooks=cast(Any, None),
        ledger=cast(Any, None),
        authenticator=Authenticator(lookup),
        radar=radar_pb2_grpc.RadarServiceStub(channel),
        vault_channel=cast(Any, None),
        vault=cast(Any, None),
    )
    transport = httpx.ASGITransport(app=build_app(deps))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://remit") as client:
            yield Facade(client, counter.calls)
    finally:
        await channel.close()
        await server.stop(0)


async def _refunds(
    engine: AsyncEngine,
    account_id: str,
    intent_id: str,
    charge_id: str,
    count: int = 2,
    start: datetime | None = None,
) -> None:
    """`count` refunds of the charge, a second apart from `start` (now), written straight to
    the database: how refunds are made is not under test here."""
    start = start or datetime.now(UTC)
    async with engine.begin() as db:
        for n in range(count):
            at = start + timedelta(seconds=n)
            await RefundRepository(db).insert(
                Refund(id=f"re_{charge_id}_{n}", account_id=account_id, charge_id=charge_id,
                       payment_intent_id=intent_id, amount_minor=1, currency="usd",
                       status=RefundStatus.SUCCEEDED, created_at=at, updated_at=at)
            )  # fmt: skip


async def _decided_by(engine: AsyncEngine, charge_id: str, rule: Rule) -> None:
    """The charge's outcome names the rule, and its verdict keeps the rule's text and version
    (as a rule that allowed it would)."""
    verdict = {"action": "allow", "risk_level": "normal", "rule": rule.id,
               "explanation": {"rule": rule.text, "rule_version": rule.version}}  # fmt: skip
    async with engine.begin() as db:
        await db.execute(
            text(
                "UPDATE charges SET outcome = jsonb_set(outcome, '{rule}', to_jsonb("
                "CAST(:rule AS text))), risk = CAST(:risk AS jsonb) WHERE id = :charge"
            ),
            {"rule": rule.id, "risk": json.dumps(verdict), "charge": charge_id},
        )


async def test_a_page_at_an_old_version_asks_for_its_related_objects_once_per_kind(
    core_engine: AsyncEngine, payments: PaymentsService, account_id: str, facade: Facade
) -> None:
    radar = RadarService(core_engine)
    rules = [
        await radar.create_rule(account_id, RuleAction.ALLOW, f":amount_in_usd: < {n + 10}")
        for n in range(2)
    ]
    charge_ids: list[str] = []
    for n in range(INTENTS):
        intent = await pay(payments, account_id, f"pay-{n}", amount=1000 + n)
        charge_id = intent.latest_charge_id or ""
        charge_ids.append(charge_id)
        await _refunds(core_engine, account_id, intent.id, charge_id)
        await _decided_by(core_engine, charge_id, rules[n % 2])

    intents = await facade.get("/v1/payment_intents", BEFORE_RULES_COLLAPSED, limit="100")
    # One call for the page, one for the charges of all its intents, then one for the refunds
    # and one for the rules of all those charges: not one of each per intent.
    assert facade.calls == Counter(
        {
            "ListPaymentIntents": 1,
            "ListChargesOfPaymentIntents": 1,
            "ListRefundsOfCharges": 1,
            "GetRules": 1,
        }
    )
    assert len(intents["data"]) == INTENTS
    for intent in intents["data"]:
        [charge] = intent["charges"]["data"]
        assert intent["charges"]["total_count"] == 1
        assert charge["id"] == intent["latest_charge"]
        assert [r["id"] for r in charge["refunds"]["data"]] == [
            f"re_{charge['id']}_1",
            f"re_{charge['id']}_0",
        ]
        assert charge["refunds"]["total_count"] == 2
        assert charge["outcome"]["rule"]["id"] in {rule.id for rule in rules}

    listed = await facade.get("/v1/charges", BEFORE_RULES_COLLAPSED, limit="100")
    assert facade.calls == Counter({"ListCharges": 1, "ListRefundsOfCharges": 1, "GetRules": 1})
    assert sorted(charge["id"] for charge in listed["data"]) == sorted(charge_ids)
    assert all(charge["refunds"]["total_count"] == 2 for charge in listed["data"])
    assert all(isinstance(charge["outcome"]["rule"], dict) for charge in listed["data"])

    # From 2022-11-15 on nothing is embedded, and nothing more is asked.
    await facade.get("/v1/payment_intents", "2022-11-15", limit="100")
    assert facade.calls == Counter({"ListPaymentIntents": 1})


async def test_each_charge_of_a_page_shows_its_rule_as_it_decided_it_from_one_call(
    core_engine: AsyncEngine, payments: PaymentsService, account_id: str, facade: Facade
) -> None:
    """One rule decided the charges of a page under three texts: each charge shows the text
    that decided it, all of them found by one GetRules (as events are by one query)."""
    radar = RadarService(core_engine)
    rule = await radar.create_rule(account_id, RuleAction.ALLOW, ":amount_in_usd: < 10")
    decided: dict[str, tuple[str, int | None]] = {}
    for n in range(INTENTS):
        if n and n % 2 == 0:
            rule = await radar.update_rule(
                account_id, rule.id, predicate=f":amount_in_usd: < {n + 10}"
            )
        charge_id = (await pay(payments, account_id, f"pay-{n}", amount=1000 + n)).latest_charge_id
        assert charge_id is not None
        await _decided_by(core_engine, charge_id, rule)
        decided[charge_id] = (rule.predicate, rule.version)
    assert rule.version == 3

    listed = await facade.get("/v1/charges", BEFORE_RULES_COLLAPSED, limit="100")
    assert facade.calls == Counter({"ListCharges": 1, "ListRefundsOfCharges": 1, "GetRules": 1})
    shown = {
        charge["id"]: (charge["outcome"]["rule"]["predicate"], charge["outcome"]["rule"]["version"])
        for charge in listed["data"]
    }
    assert shown == decided
    assert len(set(shown.values())) == 3

    fetch = database_fetch(core_engine, account_id, as_of=datetime.now(UTC))
    keys = [RULE_OF_CHARGE.key_of(charge_id, rule.id) for charge_id in decided]
    with statements_sent(core_engine) as statements:
        pages = await fetch(RULE_OF_CHARGE, keys)
    assert len([sql for sql in statements if "FROM charges" in sql]) == 1
    assert [(page.data[0]["predicate"], page.data[0]["version"]) for page in pages.values()] == (
        list(decided.values())
    )


async def test_a_rule_invalid_now_shows_why_alike_on_the_charge_and_in_its_event(
    core_engine: AsyncEngine, payments: PaymentsService, account_id: str, facade: Facade
) -> None:
    """A rule stored before saving checked it, which decided a charge and fails a check now
    (it tests a country against a list of emails), shows its `invalid_reason` as the charge's
    rule: retrieved over REST and in the charge's event alike."""
    radar = RadarService(core_engine)
    await radar.create_value_list(account_id, alias="vips", name="VIPs", item_type=ItemType.EMAIL)
    rule = Rule("rule_wrong_kind", account_id, RuleAction.ALLOW, ":card_country: not in @vips", 0,
                datetime.now(UTC))  # fmt: skip
    async with core_engine.begin() as db:
        await RuleRepository(db).insert(rule)
    charge_id = (await pay(payments, account_id, "pay-invalid-rule")).latest_charge_id or ""
    await _decided_by(core_engine, charge_id, rule)

    shown = (await facade.get(f"/v1/charges/{charge_id}", BEFORE_RULES_COLLAPSED))["outcome"]
    assert shown["rule"]["invalid_reason"].startswith(":card_country: cannot be tested")

    async with core_engine.connect() as db:
        charge = await ChargeRepository(db).get(account_id, charge_id)
    assert charge is not None
    event = Event(id="evt_invalid_rule", account_id=account_id, type="charge.succeeded",
                  created_at=datetime.now(UTC), livemode=False, data_object=charge_json(charge),
                  previous_attributes=None, request_id=None, idempotency_key=None)  # fmt: skip
    rendered: Any = await render_event(event, event_renderer(core_engine), BEFORE_RULES_COLLAPSED)
    assert rendered["data"]["object"]["outcome"]["rule"] == shown["rule"]


async def test_the_core_answers_for_a_page_of_parents_at_most(
    payments: PaymentsService, account_id: str
) -> None:
    too_many = [f"pi_{n}" for n in range(101)]
    with pytest.raises(RemitError, match="At most 100 payment_intents"):
        await payments.charges_of_intents(account_id, too_many, limit=100)
    with pytest.raises(RemitError, match="limit"):
        await payments.refunds_of_charges(account_id, ["ch_1"], limit=101)
    # An id of no object of the account has nothing, and an id asked twice is answered once.
    assert await payments.refunds_of_charges(
        account_id, ["ch_none", "ch_none"], limit=10
    ) == FirstPages({"ch_none": FirstPage([], has_more=False, total_count=0)}, left_out=[])


async def test_a_list_longer_than_a_page_is_counted_in_the_same_call(
    core_engine: AsyncEngine, payments: PaymentsService, account_id: str, facade: Facade
) -> None:
    intent = await pay(payments, account_id, "pay-many-refunds", amount=10_000)
    charge_id = intent.latest_charge_id or ""
    await _refunds(core_engine, account_id, intent.id, charge_id, count=MAX_EMBEDDED + 3)

    charge = await facade.get(f"/v1/charges/{charge_id}", "2022-08-01")
    # The first page and the count come together: no page after the first is read to count.
    assert facade.calls == Counter({"GetCharge": 1, "ListRefundsOfCharges": 1})
    refunds = charge["refunds"]
    assert (len(refunds["data"]), refunds["has_more"]) == (MAX_EMBEDDED, True)
    assert refunds["total_count"] == MAX_EMBEDDED + 3
    assert refunds["data"][0]["id"] == f"re_{charge_id}_{MAX_EMBEDDED + 2}"


async def test_the_core_database_counts_the_long_lists_of_a_page_in_one_query(
    core_engine: AsyncEngine, payments: PaymentsService, account_id: str
) -> None:
    """What renders events at old versions: the lists of their time (nothing made after the
    event), each list longer than a page counted, all of them in one query."""
    start = datetime.now(UTC)
    made = []
    for n, count in enumerate((MAX_EMBEDDED + 2, MAX_EMBEDDED + 5, 1)):
        intent = await pay(payments, account_id, f"pay-long-{n}", amount=10_000)
        charge_id = intent.latest_charge_id or ""
        await _refunds(core_engine, account_id, intent.id, charge_id, count, start)
        made.append(charge_id)
    # One more refund of the first charge, after the event: not counted.
    as_of = start + timedelta(seconds=MAX_EMBEDDED + 10)
    await _refund_after(core_engine, account_id, made[0], as_of)

    fetch = database_fetch(core_engine, account_id, as_of=as_of)
    with statements_sent(core_engine) as statements:
        pages = await fetch(REFUNDS_OF_CHARGE, made)
    assert len([sql for sql in statements if "FROM refunds" in sql]) == 2
    assert [(pages[c].has_more, pages[c].total_count, len(pages[c].data)) for c in made] == [
        (True, MAX_EMBEDDED + 2, MAX_EMBEDDED),
        (True, MAX_EMBEDDED + 5, MAX_EMBEDDED),
        (False, 1, 1),
    ]


async def _refund_after(
    engine: AsyncEngine, account_id: str, charge_id: str, as_of: datetime
) -> None:
    """A refund of the charge made after `as_of`."""
    at = as_of + timedelta(seconds=1)
    async with engine.begin() as db:
        charge = await ChargeRepository(db).get(account_id, charge_id)
        assert charge is not None
        await RefundRepository(db).insert(
            Refund(id=f"re_{charge_id}_late", account_id=account_id, charge_id=charge_id,
                   payment_intent_id=charge.payment_intent_id, amount_minor=1, currency="usd",
                   status=RefundStatus.SUCCEEDED, created_at=at, updated_at=at)
        )  # fmt: skip


async def test_the_lists_an_event_embeds_are_cut_between_items_to_their_budget(
    core_engine: AsyncEngine, payments: PaymentsService, account_id: str
) -> None:
    """What renders one event at an old version shares a byte budget among its lists: each
    list in the order asked, newest first, as long as its items fit; a list cut short, or left
    empty once the budget is spent, says `has_more` with its whole count. A list of none says
    none, wherever it falls."""
    start = datetime.now(UTC)
    made = []
    for n, count in enumerate((4, 5, 0, 3)):
        intent = await pay(payments, account_id, f"pay-cut-{n}", amount=10_000)
        charge_id = intent.latest_charge_id or ""
        await _refunds(core_engine, account_id, intent.id, charge_id, count, start)
        made.append(charge_id)
    # The first charge's 4 refunds and the newest 2 of the second's fit, and not a third.
    fitting = [f"re_{made[0]}_{n}" for n in range(4)] + [f"re_{made[1]}_{n}" for n in (4, 3)]
    async with core_engine.begin() as db:
        sizes = (
            await db.execute(
                text(
                    "SELECT id, octet_length(row_to_json(r)::text) FROM refunds r"
                    " WHERE id = ANY(:ids)"
                ),
                {"ids": [*fitting, f"re_{made[1]}_2"]},
            )
        ).all()
    bytes_of = {str(row[0]): int(row[1]) for row in sizes}
    budget = sum(bytes_of[refund_id] for refund_id in fitting) + bytes_of[f"re_{made[1]}_2"] // 2

    fetch = database_fetch(
        core_engine, account_id, as_of=start + timedelta(minutes=1), embedded_bytes=budget
    )
    pages = await fetch(REFUNDS_OF_CHARGE, made)
    assert [(pages[c].has_more, pages[c].total_count) for c in made] == [
        (False, 4), (True, 5), (False, 0), (True, 3)
    ]  # fmt: skip
    assert [refund["id"] for c in made for refund in pages[c].data] == [
        *fitting[3::-1],
        *fitting[4:],
    ]
    # The budget spent, a later level of the same rendering embeds none, and says so.
    again = await fetch(REFUNDS_OF_CHARGE, [made[3], made[2]])
    assert [(again[c].data, again[c].has_more) for c in (made[3], made[2])] == [
        ([], True), ([], False)
    ]  # fmt: skip

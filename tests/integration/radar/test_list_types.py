"""A rule may test an attribute only against a value list that can hold its kind of value."""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import ErrorKind, RemitError
from remit.radar.domain import ItemType, RuleAction
from remit.radar.service import RadarService

pytestmark = pytest.mark.anyio


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


@pytest.fixture
async def radar(core_engine: AsyncEngine, account_id: str) -> RadarService:
    service = RadarService(core_engine)
    for alias, item_type in (
        ("countries", ItemType.COUNTRY),
        ("vips", ItemType.EMAIL),
        ("ips", ItemType.IP_ADDRESS),
        ("trusted", ItemType.CARD_FINGERPRINT),
        ("regulars", ItemType.CUSTOMER_ID),
        ("words", ItemType.STRING),
        ("exact", ItemType.CASE_SENSITIVE_STRING),
    ):
        await service.create_value_list(account_id, alias=alias, name=alias, item_type=item_type)
    return service


@pytest.mark.parametrize(
    "predicate",
    [
        ":card_country: in @countries",
        "not :ip_country: in @countries",
        ":email: in @vips",
        ":ip_address: not in @ips",
        ":card_fingerprint: in @trusted",
        ":customer: in @regulars",
        # A string list holds whatever the merchant puts in it.
        ":email: in @words or :card_brand: in @exact or :currency: in @words",
        ":ip_address: in @words",
    ],
)
async def test_an_attribute_may_be_tested_against_a_list_of_its_kind_of_value(
    radar: RadarService, account_id: str, predicate: str
) -> None:
    rule = await radar.create_rule(account_id, RuleAction.BLOCK, predicate)
    assert rule.predicate == predicate


@pytest.mark.parametrize(
    ("predicate", "attribute", "alias"),
    [
        (":email: in @countries", ":email:", "@countries"),
        (":card_country: in @countries or :ip_address: not in @countries", ":ip_address:", "@"),
        ("not :ip_country: in @ips", ":ip_country:", "@ips"),
        (":card_fingerprint: in @regulars", ":card_fingerprint:", "@regulars"),
        (":currency: in @vips", ":currency:", "@vips"),
    ],
)
async def test_an_attribute_tested_against_a_list_of_another_kind_is_refused_naming_both(
    radar: RadarService, account_id: str, predicate: str, attribute: str, alias: str
) -> None:
    with pytest.raises(RemitError) as refused:
        await radar.create_rule(account_id, RuleAction.BLOCK, predicate)
    error = refused.value
    assert (error.kind, error.code, error.param) == (
        ErrorKind.INVALID_ARGUMENT,
        "rule_invalid",
        "predicate",
    )
    assert attribute in error.message
    assert alias in error.message
    rule = await radar.create_rule(account_id, RuleAction.BLOCK, ":risk_score: > 90")
    with pytest.raises(RemitError) as updating:
        await radar.update_rule(account_id, rule.id, predicate=predicate)
    assert updating.value.code == "rule_invalid"


@pytest.mark.parametrize(
    "predicate", [":amount: in @words", ":amount: not in @words", "not :risk_score: in @words"]
)
async def test_a_number_is_never_tested_against_a_value_list(
    radar: RadarService, account_id: str, predicate: str
) -> None:
    with pytest.raises(RemitError) as refused:
        await radar.create_rule(account_id, RuleAction.BLOCK, predicate)
    assert (refused.value.code, refused.value.param) == ("rule_invalid", "predicate")
    assert "value list" in refused.value.message


async def test_a_list_of_card_bins_cannot_be_made_as_no_bin_reaches_the_core(
    radar: RadarService, account_id: str
) -> None:
    with pytest.raises(RemitError) as refused:
        await radar.create_value_list(
            account_id, alias="bins", name="BINs", item_type=ItemType.CARD_BIN
        )
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, "item_type")
    assert "BIN" in refused.value.message
    with pytest.raises(RemitError):
        await radar.create_rule(account_id, RuleAction.BLOCK, ":card_bin: in @bins")

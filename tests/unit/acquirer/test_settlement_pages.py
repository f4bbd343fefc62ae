"""Page sizes and page tokens of the settlement report."""

import base64
import json
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from remit.acquirer.settlement_pages import (
    MAX_PAGE_SIZE,
    ResumedReport,
    SettlementCursor,
    page_limit,
    page_token,
    resumed_from_token,
)
from remit.core.errors import ErrorKind, RemitError
from remit_api.acquirer.v1 import acquirer_pb2 as pb

DAY = date(2031, 3, 14)
CURSOR = SettlementCursor(
    datetime(2031, 3, 14, 23, 59, 59, 999_999, tzinfo=UTC), "op_1Last", "740:745:740,742"
)
# gRPC's default receive limit.
DEFAULT_MESSAGE_LIMIT = 4 * 1024 * 1024


def test_a_page_is_capped_and_zero_means_every_row() -> None:
    assert page_limit(0) is None
    assert page_limit(1) == 1
    assert page_limit(10**9) == MAX_PAGE_SIZE
    with pytest.raises(RemitError) as refused:
        page_limit(-1)
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, "page_size")


def test_a_full_page_of_the_largest_rows_stays_well_under_the_message_limit() -> None:
    row = pb.SettlementRow(
        kind=pb.SETTLEMENT_KIND_CAPTURE,
        reference="r" * 255,  # the longest reference the acquirer takes
        # Ids are a prefix and about 24 characters; these are longer.
        authorization_id="auth_" + "a" * 40,
        operation_id="op_" + "o" * 40,
        amount=99_999_999,
        currency="usd",
        fee=1_500_000,
        merchant_id="acct_" + "m" * 40,
    )
    row.settled_at.FromDatetime(CURSOR.settled_at)
    page = pb.GetSettlementReportResponse(
        date=DAY.isoformat(), rows=[row] * MAX_PAGE_SIZE, next_page_token="t" * 300
    )
    assert page.ByteSize() < DEFAULT_MESSAGE_LIMIT * 0.6


def test_a_token_carries_its_cursor_to_the_same_report_only() -> None:
    token = page_token(CURSOR, DAY, "acct_1A", partial=False)
    assert resumed_from_token(token, DAY, "acct_1A") == ResumedReport(CURSOR, partial=False)
    assert resumed_from_token("", DAY, "acct_1A") is None
    for day, merchant in [(date(2031, 3, 15), "acct_1A"), (DAY, None), (DAY, "acct_1B")]:
        with pytest.raises(RemitError) as refused:
            resumed_from_token(token, day, merchant)
        assert refused.value.param == "page_token"


@pytest.mark.parametrize("token", ["not base64!", "bm90IGpzb24=", "W10=", "e30="])
def test_a_token_this_report_did_not_make_is_refused(token: str) -> None:
    # Not base64, not JSON, a JSON list, an empty object.
    with pytest.raises(RemitError) as refused:
        resumed_from_token(token, DAY, None)
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, "page_token")


@pytest.mark.parametrize(
    "snapshot",
    [
        "",
        "740:745",
        "745:740:",
        "740:745:746",
        "740:745:742,741",
        "740:745:x",
        "1:2:'; --",
        # 0 is no transaction id: PostgreSQL refuses it as xmin or xmax.
        "0:0:",
        "0:5:",
        "0:5:0,3",
    ],
)
def test_a_token_whose_snapshot_postgresql_would_not_read_is_refused(snapshot: str) -> None:
    """Refused as the caller's error before the database sees it, where it would fail as
    remit's own. Tokens of the earlier version, which had no snapshot, are refused too."""
    token = page_token(replace(CURSOR, snapshot=snapshot), DAY, None, partial=False)
    with pytest.raises(RemitError) as refused:
        resumed_from_token(token, DAY, None)
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, "page_token")
    document = json.loads(base64.urlsafe_b64decode(page_token(CURSOR, DAY, None, partial=False)))
    del document["snapshot"]
    earlier = base64.urlsafe_b64encode(json.dumps(document).encode()).decode()
    with pytest.raises(RemitError):
        resumed_from_token(earlier, DAY, None)


def test_a_snapshot_without_transactions_in_progress_is_read() -> None:
    cursor = replace(CURSOR, snapshot="745:745:")
    resumed = resumed_from_token(page_token(cursor, DAY, None, partial=False), DAY, None)
    assert resumed == ResumedReport(cursor, partial=False)


@pytest.mark.parametrize("partial", [True, False])
def test_a_token_carries_whether_its_report_was_judged_partial_at_its_first_page(
    partial: bool,
) -> None:
    """Its pages are the first page's snapshot: what that page was judged, they are."""
    resumed = resumed_from_token(page_token(CURSOR, DAY, None, partial=partial), DAY, None)
    assert resumed is not None
    assert resumed.partial is partial


def test_a_token_of_the_version_before_leaves_partial_to_the_page_and_a_malformed_one_is_refused(
) -> None:  # fmt: skip
    document = json.loads(base64.urlsafe_b64decode(page_token(CURSOR, DAY, None, partial=True)))
    del document["partial"]
    earlier = base64.urlsafe_b64encode(json.dumps(document).encode()).decode()
    assert resumed_from_token(earlier, DAY, None) == ResumedReport(CURSOR, partial=None)
    document["partial"] = "no"
    malformed = base64.urlsafe_b64encode(json.dumps(document).encode()).decode()
    with pytest.raises(RemitError) as refused:
        resumed_from_token(malformed, DAY, None)
    assert refused.value.param == "page_token"

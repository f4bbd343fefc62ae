"""Timestamps and Durations from requests: what a datetime cannot hold is the caller's bad input,
answered as an invalid parameter naming the field, never as an internal error."""

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from remit.core.errors import RemitError
from remit.grpcutil.protoconv import filter_bound, request_datetime, request_timedelta
from remit_api.common.v1 import common_pb2

# Valid int64 seconds, past the year 9999 a datetime ends at.
BEYOND_YEAR_9999 = timestamp_pb2.Timestamp(seconds=10**12)
BEFORE_YEAR_1 = timestamp_pb2.Timestamp(seconds=-(10**12))


def test_a_timestamp_in_range_converts_to_an_aware_datetime() -> None:
    moment = datetime(2026, 11, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(moment)
    assert request_datetime(message, "since") == moment


@pytest.mark.parametrize("message", [BEYOND_YEAR_9999, BEFORE_YEAR_1])
def test_a_timestamp_out_of_range_is_an_invalid_parameter(
    message: timestamp_pb2.Timestamp,
) -> None:
    with pytest.raises(RemitError) as caught:
        request_datetime(message, "since")
    assert (caught.value.code, caught.value.param) == ("parameter_invalid", "since")


def test_a_duration_too_long_for_a_timedelta_is_an_invalid_parameter() -> None:
    assert request_timedelta(duration_pb2.Duration(seconds=90), "after") == timedelta(seconds=90)
    with pytest.raises(RemitError) as caught:
        request_timedelta(duration_pb2.Duration(seconds=10**17), "after")
    assert caught.value.param == "after"


def test_a_filter_bound_is_named_as_the_rest_api_names_it() -> None:
    created = common_pb2.CreatedFilter(lt=BEYOND_YEAR_9999)
    assert filter_bound(created, "gt") is None
    with pytest.raises(RemitError) as caught:
        filter_bound(created, "lt", "arrival_date")
    assert caught.value.param == "arrival_date[lt]"

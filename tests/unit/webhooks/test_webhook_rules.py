"""Pure rules of webhooks: the retry schedule, Retry-After, signatures, URL policy, event JSON."""

import ipaddress
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import stripe

from remit import versioning
from remit.core.errors import RemitError
from remit.core.jsonview import JsonObject, to_json
from remit.webhooks.delivery import Retry, retry_after_unsuccessful
from remit.webhooks.domain import (
    RETRY_GAP_JITTER,
    RETRY_WINDOW,
    AttemptOutcome,
    Delivery,
    DeliveryStatus,
    Event,
    after_pause,
    next_attempt_after_failure,
    next_attempt_after_rate_limit,
    parse_retry_after,
    retry_gap,
)
from remit.webhooks.event_types import filter_matches, validate_enabled_events
from remit.webhooks.grpc import event_message, rendered_json
from remit.webhooks.rendering import event_json, render_event
from remit.webhooks.signing import compute_signature, generate_secret, signature_header
from remit.webhooks.urls import UrlPolicy, is_internal, validate_endpoint_url
from tests.support.text import full_width
from versions import LATEST_VERSION

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _on_time_attempts() -> list[datetime]:
    """Every attempt of a delivery that always fails, each made the moment it falls due."""
    attempts = [T0]
    while (due := next_attempt_after_failure(T0, len(attempts), attempts[-1])) is not None:
        attempts.append(due)
    return attempts


def test_attempts_follow_stripes_published_gaps_and_stop_within_three_days() -> None:
    minutes = [int((at - T0).total_seconds() // 60) for at in _on_time_attempts()]
    # Ten attempts: the eleventh would fall beyond three days of the first.
    assert minutes == [0, 5, 35, 155, 455, 1055, 1775, 2495, 3215, 3935]


def test_each_retry_waits_a_full_gap_after_a_late_attempt() -> None:
    """After a worker outage the late attempt is followed by its gap, not by every retry that
    fell due while no worker ran."""
    late_second = T0 + timedelta(hours=24)
    assert next_attempt_after_failure(T0, 2, late_second) == late_second + timedelta(minutes=30)


def test_a_late_schedule_still_ends_three_days_after_the_first_attempt() -> None:
    late = T0 + timedelta(hours=71, minutes=45)
    assert next_attempt_after_failure(T0, 2, late) is None


def test_a_rate_limited_retry_waits_as_asked_within_the_retry_window() -> None:
    """Retry-After is honoured from one second up to twelve hours, and never past three days
    after the first attempt."""
    now = T0 + timedelta(seconds=10)
    assert next_attempt_after_rate_limit(T0, timedelta(0), now) == now + timedelta(seconds=1)
    assert next_attempt_after_rate_limit(T0, timedelta(days=2), now) == now + timedelta(hours=12)
    near_the_end = T0 + timedelta(hours=71)
    assert next_attempt_after_rate_limit(T0, timedelta(hours=2), near_the_end) is None


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.999999])
def test_a_gap_is_stretched_by_its_draw_up_to_a_tenth_never_shortened(draw: float) -> None:
    ended = T0 + timedelta(hours=1)
    for failures in range(1, 8):
        gap = retry_gap(failures)
        due = next_attempt_after_failure(T0, failures, ended, draw)
        assert due == ended + gap * (1 + RETRY_GAP_JITTER * draw)
        assert ended + gap <= due < ended + gap * 1.1 + timedelta(microseconds=1)


def test_every_stretched_schedule_ends_within_three_days_with_ten_attempts_or_nine() -> None:
    """The stretch never takes an attempt past the retry window: the schedule drawn at its
    shortest keeps the ten attempts on time; at its longest the tenth falls beyond three days
    and the delivery ends after nine."""
    for draw in (0.0, 0.999999):
        attempts = [T0]
        while (
            due := next_attempt_after_failure(T0, len(attempts), attempts[-1], draw)
        ) is not None:
            attempts.append(due)
        assert attempts[-1] <= T0 + RETRY_WINDOW
        assert len(attempts) == (10 if draw == 0.0 else 9)


def test_a_draw_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="random draw"):
        next_attempt_after_failure(T0, 1, T0, 1.0)
    with pytest.raises(ValueError, match="random draw"):
        after_pause(T0 + timedelta(seconds=5), T0, -0.1)


@pytest.mark.parametrize(
    ("pause", "spread"),
    [
        (timedelta(seconds=90), timedelta(seconds=9)),  # a tenth of the pause
        (timedelta(seconds=2), timedelta(seconds=1)),  # at least a second
        (timedelta(hours=12), timedelta(minutes=1)),  # at most a minute
    ],
)
def test_a_wake_up_after_a_pause_falls_within_its_spread(
    pause: timedelta, spread: timedelta
) -> None:
    until = T0 + pause
    assert after_pause(until, T0, 0.0) == until
    assert after_pause(until, T0, 0.5) == until + spread / 2
    assert until < after_pause(until, T0, 0.999999) < until + spread


def _delivery_at_step(step: int) -> Delivery:
    return Delivery(id=1, account_id="acct_1", event_id="evt_1", endpoint_id="we_1",
                    status=DeliveryStatus.PENDING, attempts=step + 4, retry_step=step,
                    first_attempt_at=T0, next_attempt_at=None)  # fmt: skip


def test_an_honoured_429_stays_at_its_step_and_any_other_failure_takes_the_next() -> None:
    now = T0 + timedelta(hours=1)
    paused = AttemptOutcome(429, 5, "", None, retry_after=timedelta(seconds=30))
    assert retry_after_unsuccessful(_delivery_at_step(2), paused, now) == Retry(
        step=2, at=now + timedelta(seconds=30)
    )
    # A 429 without a usable Retry-After is an ordinary failure.
    for failed in (AttemptOutcome(429, 5, "", None), AttemptOutcome(500, 5, "", None)):
        assert retry_after_unsuccessful(_delivery_at_step(2), failed, now) == Retry(
            step=3, at=now + timedelta(hours=2)
        )


def test_past_ten_honoured_429s_a_delivery_s_429s_step_the_schedule_on() -> None:
    """An endpoint answering `429 Retry-After: 1` to everything gets ten quick tries, then the
    ordinary schedule, not a call a second for three days."""
    now = T0 + timedelta(hours=1)
    paused = AttemptOutcome(429, 5, "", None, retry_after=timedelta(seconds=1))

    def after(attempts: int) -> Delivery:  # all of them 429s after the first
        return replace(_delivery_at_step(0), attempts=attempts, retry_step=0)

    assert retry_after_unsuccessful(after(9), paused, now) == Retry(
        step=0, at=now + timedelta(seconds=1)
    )
    assert retry_after_unsuccessful(after(10), paused, now) == Retry(
        step=1, at=now + timedelta(minutes=5)
    )


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert parse_retry_after("120", T0) == timedelta(seconds=120)
    assert parse_retry_after("Sun, 01 Nov 2026 12:01:30 GMT", T0) == timedelta(seconds=90)
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after(None, T0) is None


def test_signatures_verify_with_stripes_own_helper() -> None:
    secret = generate_secret()
    payload = b'{"id":"evt_1","object":"event"}'
    header = signature_header(payload, [secret], 1_700_000_000)
    expected = stripe.WebhookSignature._compute_signature(f"1700000000.{payload.decode()}", secret)
    assert header == f"t=1700000000,v1={expected}"
    assert compute_signature(payload, secret, 1_700_000_001) != expected
    two = signature_header(payload, [secret, "whsec_old"], 1)
    assert two.count("v1=") == 2


@pytest.mark.parametrize(
    "value",
    [
        "99999999999999999999",  # overflows a timedelta
        "12345678901",  # more than ten digits
        "\u00b2",  # superscript two: a digit to str.isdigit
        "\u0661\u0662",  # Arabic-Indic digits
        "\uff11\uff12",  # full-width digits
        "-5",
        "1.5",
        "Sun, 01 Nov 99999999999999999999 12:01:30 GMT",  # a year that overflows
        "Sun, 01 Nov 2026 99999999999999999999:01:30 GMT",
        "Sun, 01 Nov 2026 12:01:30 +99999999999999999999",
        "Sun, 01 Nov 2026 12:01:30",  # no zone
    ],
)
def test_a_retry_after_that_is_no_number_or_date_is_unusable_and_never_raises(
    value: str,
) -> None:
    assert parse_retry_after(value, T0) is None


def test_a_retry_after_is_clamped_to_twelve_hours() -> None:
    assert parse_retry_after("9999999999", T0) == timedelta(hours=12)
    assert parse_retry_after("Sun, 01 Nov 2099 12:00:00 GMT", T0) == timedelta(hours=12)
    assert parse_retry_after(" 0042 ", T0) == timedelta(seconds=42)


def test_enabled_events_accept_known_types_and_star_only() -> None:
    assert validate_enabled_events(["*", "charge.refunded", "*"]) == ["*", "charge.refunded"]
    with pytest.raises(ValueError, match=r"charge\.\*"):
        validate_enabled_events(["charge.*"])
    assert filter_matches(["payment_intent.*"], "payment_intent.succeeded")
    assert not filter_matches(["payment_intent.*"], "charge.succeeded")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "https://10.1.2.3/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/hook",
        "https://api.localhost/hook",
    ],
)
def test_internal_addresses_are_refused_outside_development(url: str) -> None:
    with pytest.raises(RemitError, match="private or loopback") as refused:
        validate_endpoint_url(url, UrlPolicy(allow_internal=False))
    assert refused.value.param == "url"
    assert validate_endpoint_url(url, UrlPolicy(allow_internal=True)) == url


@pytest.mark.parametrize(
    ("url", "address"),
    [
        # ideographic full stops
        ("http://169\u3002254\u3002169\u3002254/latest/meta-data", "169.254.169.254"),
        (f"http://{full_width('127')}.0.0.1:7421/", "127.0.0.1"),
        ("http://10\uff0e0\uff0e0\uff0e1/", "10.0.0.1"),  # full-width full stops
        (f"http://[::{full_width('ffff')}:127.0.0.1]/", "::ffff:7f00:1"),
    ],
)
def test_an_ip_address_spelt_in_unicode_is_refused_even_in_development(
    url: str, address: str
) -> None:
    """aiohttp connects to such a host as the ASCII address it normalises to; no endpoint has
    a reason to spell an address so, whatever the policy."""
    for policy in (UrlPolicy(allow_internal=False), UrlPolicy(allow_internal=True)):
        with pytest.raises(RemitError, match=f"IP address {address} written") as refused:
            validate_endpoint_url(url, policy)
        assert (refused.value.param, refused.value.code) == ("url", "url_invalid")


@pytest.mark.parametrize(
    "host",
    [
        "127.1",
        "0177.0.0.1",  # octal
        "2130706433",
        "0x7f.0.0.1",
        "0X7F.0.0.1",
        "127.0.0.1.",  # trailing dot
        "8.8.8.8.",
        "010.8.8.8",
        "134744072",  # 8.8.8.8
        "256.1.1.1",
        "1.2.3.4.5",
        f"{full_width('127')}.1",
    ],
)
def test_an_ipv4_address_not_in_dotted_decimal_form_is_refused_whatever_the_policy(
    host: str,
) -> None:
    """aiohttp refuses to connect to these forms (or resolves the hexadecimal ones to an
    address the check at saving never saw), so an endpoint with one could never be
    delivered to as saved."""
    for policy in (UrlPolicy(allow_internal=False), UrlPolicy(allow_internal=True)):
        with pytest.raises(RemitError, match="dotted-decimal form") as refused:
            validate_endpoint_url(f"https://{host}:8443/hook", policy)
        assert (refused.value.param, refused.value.code) == ("url", "url_invalid")


@pytest.mark.parametrize(
    "url",
    ["https://example.com./hook", "https://8.8.8.8/hook", "https://0x7f.example/hook",
     "https://1.2.3.example/hook", "https://123.example./hook"],
)  # fmt: skip
def test_names_and_dotted_decimal_addresses_are_not_numeric_forms(url: str) -> None:
    assert validate_endpoint_url(url, UrlPolicy(allow_internal=False)) == url


def test_a_loopback_name_spelt_in_unicode_is_refused_outside_development() -> None:
    with pytest.raises(RemitError, match="private or loopback"):
        validate_endpoint_url(
            f"https://{full_width('localhost')}/hook", UrlPolicy(allow_internal=False)
        )


def test_an_internationalised_host_name_is_kept_as_given() -> None:
    url = "https://bücher.example/hook"
    assert validate_endpoint_url(url, UrlPolicy(allow_internal=False)) == url


def test_allowed_host_names_are_compared_as_connected_to() -> None:
    policy = UrlPolicy.from_settings(development=False, allowed=["Hooks.Bücher.example."])
    assert policy.host_allowed("hooks.xn--bcher-kva.example")


@pytest.mark.parametrize(
    "address",
    [
        "100.64.0.1",  # shared address space: carrier-grade NAT, Tailscale
        "100.100.100.200",  # Alibaba Cloud's metadata service
        "::ffff:100.64.0.1",
        "192.0.0.8",  # IETF protocol assignments
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "fec0::1",  # site-local
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "127.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "224.0.0.1",
        "ff02::1",
        "0.0.0.0",
    ],
)
def test_addresses_not_reachable_from_the_internet_are_internal(address: str) -> None:
    assert is_internal(ipaddress.ip_address(address))
    url = f"https://[{address}]/hook" if ":" in address else f"https://{address}/hook"
    with pytest.raises(RemitError, match="private or loopback"):
        validate_endpoint_url(url, UrlPolicy(allow_internal=False))


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "2002:808:808::1"])
def test_global_addresses_are_not_internal(address: str) -> None:
    assert not is_internal(ipaddress.ip_address(address))


def test_the_allow_list_still_opens_shared_address_space() -> None:
    policy = UrlPolicy.from_settings(development=False, allowed=["100.64.0.0/10"])
    assert validate_endpoint_url("https://100.100.100.200/hook", policy)


def test_configuration_can_allow_named_hosts_and_networks() -> None:
    policy = UrlPolicy.from_settings(development=False, allowed=["hooks.internal", "10.0.0.0/8"])
    assert validate_endpoint_url("https://10.1.2.3/h", policy)
    with pytest.raises(RemitError):
        validate_endpoint_url("https://192.168.1.1/h", policy)
    assert policy.host_allowed("HOOKS.internal")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/h", "scheme"),
        ("https://user:pw@example.com/h", "credentials"),
        ("https:///nohost", "no host"),
        ("https://example.com:99999/h", "Invalid URL"),
    ],
)
def test_malformed_urls_are_refused_precisely(url: str, why: str) -> None:
    with pytest.raises(RemitError, match=why):
        validate_endpoint_url(url, UrlPolicy(allow_internal=True))


_LABEL_63 = "a" * 63


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("a" * 64 + ".example.com", "longer than 63"),
        ("a..b.com", "empty label"),
        (".a.com", "empty label"),
        ("a.com..", "empty label"),
        (".".join([_LABEL_63] * 4) + ".com", "longer than 253"),
    ],
)
def test_a_host_the_resolver_never_looks_up_is_refused_whatever_the_policy(
    host: str, why: str
) -> None:
    """yarl accepts these hosts; the resolver refuses them (the `idna` codec raises a
    UnicodeError), so an endpoint with one could never be delivered to."""
    for policy in (UrlPolicy(allow_internal=False), UrlPolicy(allow_internal=True)):
        with pytest.raises(RemitError, match=why) as refused:
            validate_endpoint_url(f"https://{host}/hook", policy)
        assert (refused.value.param, refused.value.code) == ("url", "url_invalid")
        assert "not a valid host name" in refused.value.message


@pytest.mark.parametrize(
    "host",
    [
        _LABEL_63 + ".example.com",
        ".".join([_LABEL_63] * 3 + ["a" * 61]),  # 253 characters
        ".".join([_LABEL_63] * 3 + ["a" * 61]) + ".",  # and the root's dot
        "example.com.",
    ],
)
def test_a_host_within_the_dns_limits_is_accepted(host: str) -> None:
    url = f"https://{host}/hook"
    assert validate_endpoint_url(url, UrlPolicy(allow_internal=False)) == url


def _event() -> Event:
    return Event(
        id="evt_1",
        account_id="acct_1",
        type="customer.updated",
        created_at=T0,
        livemode=False,
        data_object={"id": "cus_1", "object": "customer", "balance": 500, "email": None},
        previous_attributes={"balance": 0},
        request_id="req_1",
        idempotency_key=None,
        pending_webhooks=2,
    )


def test_delivered_json_matches_the_event_resource_json() -> None:
    rendered = event_json(_event(), api_version=LATEST_VERSION)
    assert to_json(event_message(rendered)) == rendered


def test_an_event_rendered_before_2017_05_25_travels_as_rendered() -> None:
    """`request` is then the request's id, which the Event message holds as `request.id`;
    the rendered JSON goes beside it unchanged."""
    rendered = versioning.render_event(event_json(_event(), api_version="x"), "2017-04-06")
    assert rendered["request"] == "req_1"
    message = event_message(rendered)
    assert (message.request.id, message.request.HasField("idempotency_key")) == ("req_1", False)
    assert json.loads(rendered_json(rendered)) == rendered


@pytest.mark.parametrize(
    ("endpoint", "recorded", "current", "rendered_at"),
    [
        ("2020-08-27", "2022-11-15", "2024-06-20", "2020-08-27"),  # the endpoint's own first
        (None, "2022-11-15", "2024-06-20", "2022-11-15"),  # then the pin of the moment
        (None, None, "2024-06-20", "2024-06-20"),  # an event older than the recorded pin
        (None, None, None, None),  # an account never pinned: the latest
    ],
)
def test_an_event_is_rendered_at_the_endpoint_version_else_the_pin_it_was_recorded_under(
    endpoint: str | None, recorded: str | None, current: str | None, rendered_at: str | None
) -> None:
    event = replace(_event(), api_version=recorded)
    assert event.rendered_version(endpoint, current) == rendered_at


@pytest.mark.anyio
async def test_without_a_renderer_a_charge_event_leaves_out_the_fields_kept_off_the_wire() -> None:
    charge: JsonObject = {
        "id": "ch_1",
        "object": "charge",
        "amount": 500,
        "authorization_released": False,
    }
    event = replace(_event(), type="charge.succeeded", data_object=charge)
    rendered = await render_event(event, None, None)
    data = rendered["data"]
    assert isinstance(data, dict)
    assert data["object"] == {"id": "ch_1", "object": "charge", "amount": 500}
    # The stored event, shared by every rendering, keeps the field.
    assert event.data_object["authorization_released"] is False


@pytest.mark.anyio
async def test_without_a_renderer_events_say_they_are_at_the_latest_version() -> None:
    assert (await render_event(_event(), None, "2019-02-19"))["api_version"] == LATEST_VERSION
    calls: list[tuple[str, str]] = []

    async def downgrade(event: Event, payload: JsonObject, version: str) -> JsonObject:
        calls.append((event.id, version))
        return {**payload, "marker": version}

    rendered = await render_event(_event(), downgrade, "2019-02-19")
    assert rendered["api_version"] == "2019-02-19"
    assert rendered["marker"] == "2019-02-19"
    assert calls == [(_event().id, "2019-02-19")]

"""Where a cardholder may be sent back to: absolute URLs of any scheme (apps have their own),
never one that runs code where it is opened."""

import pytest

from remit.core.errors import RemitError
from remit.core.return_urls import (
    csp_source_of,
    may_send_cardholder_to,
    refuse_invalid_return_url,
    return_to,
)


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/return",
        "http://localhost:3000/done?order=12",
        "https://shop.example/return#top",
        "myapp://payments/done",
        "com.example.shop://stripe-redirect",
        "https://[::1]:8443/return",
        "http://shop.example:/return",
        None,
    ],
)
def test_absolute_urls_of_any_sending_scheme_are_accepted(url: str | None) -> None:
    refuse_invalid_return_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("javascript:alert(document.cookie)", "javascript scheme is not allowed"),
        ("JavaScript:alert(1)", "javascript scheme is not allowed"),
        ("data:text/html;base64,PHNjcmlwdD4=", "data scheme is not allowed"),
        ("vbscript:msgbox", "vbscript scheme is not allowed"),
        ("file:///etc/passwd", "file scheme is not allowed"),
        ("shop.example/return", "explicit scheme"),
        ("/return", "explicit scheme"),
        ("", "explicit scheme"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("https://shop.example/a b", "spaces or control characters"),
        ("https://shop.example/\r\nSet-Cookie: a=b", "spaces or control characters"),
        ("https://shop.example/" + "a" * 2048, "longer than 2048"),
        ("https://[::1", "host is not a valid name or IP address"),
        ("http://[zz]/", "host is not a valid name or IP address"),
        ("http://shop]example/", "host is not a valid name or IP address"),
        ("myapp://[::1", "host is not a valid name or IP address"),
        ("https://shop.example:99999/", "port is not a number from 1 to 65535"),
        ("http://shop.example:abc/", "port is not a number from 1 to 65535"),
        ("http://shop.example:-1/", "port is not a number from 1 to 65535"),
        ("https://shop.example:0/", "port is not a number from 1 to 65535"),
        ("https://shop.example:00/return", "port is not a number from 1 to 65535"),
    ],
)
def test_other_urls_are_refused_as_url_invalid(url: str, why: str) -> None:
    with pytest.raises(RemitError) as raised:
        refuse_invalid_return_url(url)
    assert (raised.value.code, raised.value.param) == ("url_invalid", "return_url")
    assert why in raised.value.message


def test_the_3d_secure_page_neither_links_nor_redirects_to_a_url_that_runs_code() -> None:
    """An intent stored before return_urls were checked may hold one: checked again at use,
    where a return_url with the intent's parameters appended may pass 2048 characters."""
    from remit.rest.three_d_secure import _return_link
    from remit_api.payments.v1 import payments_pb2 as pb

    assert may_send_cardholder_to("https://shop.example/r?payment_intent=pi_1" + "x" * 2100)
    assert not may_send_cardholder_to("javascript:alert(1)//?payment_intent=pi_1")
    stored = pb.ThreeDSecureChallenge(return_url="javascript:alert(document.cookie)")
    assert _return_link(stored) == ""
    good = pb.ThreeDSecureChallenge(return_url="https://shop.example/back")
    assert "href='https://shop.example/back'" in _return_link(good)


@pytest.mark.parametrize(
    ("url", "source"),
    [
        ("https://Shop.Example/return?x=1", "https://shop.example"),
        ("http://localhost:3000/done", "http://localhost:3000"),
        ("https://[2001:db8::1]:8443/r", "https://[2001:db8::1]:8443"),
        ("myapp://payments/done", "myapp:"),
        ("https://shop_example.test/r", None),
        ("https://shop.example:99999/r", None),
        ("https://shop.example:0/r", None),
        ("javascript:alert(1)", None),
        ("https://shöp.example/r", None),
    ],
)
def test_a_return_urls_origin_is_written_as_a_csp_source_only_when_it_is_safe(
    url: str, source: str | None
) -> None:
    assert csp_source_of(url) == source


@pytest.mark.parametrize(
    ("return_url", "back"),
    [
        ("https://shop.example/return", "https://shop.example/return?{added}"),
        ("https://shop.example/return?x=1", "https://shop.example/return?x=1&{added}"),
        ("https://shop.example/return#frag", "https://shop.example/return?{added}#frag"),
        (
            "https://shop.example/r?x=1&y=%20#a?b#c",
            "https://shop.example/r?x=1&y=%20&{added}#a?b#c",
        ),
        ("https://shop.example/return?#frag", "https://shop.example/return?{added}#frag"),
        ("https://shop.example/return?x=1#", "https://shop.example/return?x=1&{added}#"),
        # An app's link, written as the app expects it (`urlunsplit` would drop two slashes).
        ("myapp:///done", "myapp:///done?{added}"),
        # The merchant's own parameters of these names give way to the intent's.
        (
            "https://shop.example/r?payment_intent=pi_old&x=1&payment%5Fintent_client_secret=s",
            "https://shop.example/r?x=1&{added}",
        ),
    ],
)
def test_the_way_back_adds_the_intent_to_the_query_before_any_fragment(
    return_url: str, back: str
) -> None:
    added = "payment_intent=pi_1&payment_intent_client_secret=pi_1_secret_2"
    assert return_to(return_url, "pi_1", "pi_1_secret_2") == back.format(added=added)

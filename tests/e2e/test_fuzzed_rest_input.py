"""Property: whatever bad parameters a client sends, the facade refuses them as Stripe does (a
4xx with the error object, never a 5xx), echoes no card number, stores no idempotency key for
them and changes no data.

Every generated request carries at least one thing the endpoint must refuse (a wrong-typed or
out-of-range value, an unknown or repeated name, brackets nested too deep, bytes that are no
text, metadata over its limits...), mixed with parameters it would accept. So every one of them
is refused, and the objects made before the fuzzing (an intent waiting for its payment, a paid
one, the account's balance) must come out of it exactly as they went in.
"""

import json
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote_from_bytes, unquote_to_bytes

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from remit.core.currency import SUPPORTED_CURRENCIES
from remit.rest.resources.payment_methods import LISTABLE_TYPES
from tests.support.bad_input import (
    TEST_CARD_NUMBERS,
    Merchant,
    form_pair,
    holdings,
    make_merchant,
    send,
    stored_idempotency_keys,
    stripe_refusal,
)
from tests.support.platform import RunningPlatform
from tests.support.postgres import WorkerDatabases

FUZZ: Final = settings(
    max_examples=80,
    deadline=None,
    # The same examples on every run, so that the suite's verdict depends on the code alone;
    # REMIT_FUZZ_EXPLORE=1 draws new ones, to look for more (then add what fails as an example).
    derandomize=os.environ.get("REMIT_FUZZ_EXPLORE") != "1",
    # The platform is one per module, started by a fixture: examples share it by design.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

Item = list[bytes]
"""One thing in a request: the encoded `name=value` pairs that make it up."""


# --- Values -------------------------------------------------------------------------------

_NOT_INTEGERS: Final = (
    "", "10.5", "1e3", "1E3", "0.0", "-0.5", " 100", "100 ", "+5", "0x10", "--1", "1_000",
    "1,000", "NaN", "Infinity", "-inf", "true", "null",
    # Digits other than ASCII's, which Python's int() reads.
    "\u0661\u0660\u0660", "\uff11\uff10\uff10", "\u0663",
)  # fmt: skip
_NOT_UTF8: Final = (b"\xff", b"\xed\xa0\x80", b"\xc0\x80", b"\xe2\x82", b"a\xfe\xffb")
_LONE_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
# Text a string field accepts: anything but NUL and lone surrogates, which are no text.
_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)


def not_an_integer() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(_NOT_INTEGERS),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.text(max_size=20).filter(lambda text: not re.fullmatch(r"-?[0-9]+", text)),
    )


def integer_outside(low: int | None, high: int | None) -> st.SearchStrategy[str]:
    """Integers the field refuses: beyond int64 always, and beyond its own bounds."""
    beyond = [
        st.integers(min_value=2**63, max_value=2**100),
        st.integers(min_value=-(2**100), max_value=-(2**63) - 1),
        st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30]),
    ]
    if low is not None:
        beyond.append(st.integers(min_value=-(2**63), max_value=low - 1))
    if high is not None:
        beyond.append(st.integers(min_value=high + 1, max_value=2**63 - 1))
    return st.one_of(*beyond).map(str)


def longer_than(length: int) -> st.SearchStrategy[str]:
    return st.builds(
        lambda char, extra: char * (length + extra),
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
        st.integers(min_value=1, max_value=50),
    )


def not_text() -> st.SearchStrategy[str | bytes]:
    """A value no text field takes: NUL, a lone surrogate, bytes that are not UTF-8."""
    return st.one_of(
        st.builds(lambda a, b: f"{a}\x00{b}", _TEXT, _TEXT),
        st.builds(lambda a, s: a + s, _TEXT, _LONE_SURROGATES),
        st.sampled_from(_NOT_UTF8),
    )


# --- Parameters -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A parameter of an endpoint: a value it accepts (None: none to mix in), and values it
    refuses."""

    name: str
    accepted: str | None
    refused: st.SearchStrategy[str | bytes]


def integer(name: str, low: int | None, high: int | None, accepted: str | None) -> Param:
    return Param(name, accepted, st.one_of(not_an_integer(), integer_outside(low, high)))


def text(name: str, max_length: int, accepted: str | None = "fuzz") -> Param:
    return Param(name, accepted, st.one_of(longer_than(max_length), not_text()))


def identifier(name: str, accepted: str | None = None) -> Param:
    """An object id: any text is well formed, so only the too long and the not-text are bad."""
    return Param(name, accepted, st.one_of(longer_than(5000), not_text()))


def choice(name: str, *values: str) -> Param:
    # Never "": on an update that unsets a field, which is no mistake.
    refused = st.one_of(st.text(min_size=1, max_size=30), not_text()).filter(
        lambda value: value not in values
    )
    return Param(name, values[0], refused)


def boolean(name: str) -> Param:
    return choice(name, "false", "true")


def currency(name: str = "currency") -> Param:
    refused = st.one_of(
        st.sampled_from(
            ["", "xyz", "us", "usdd", "u$d", "\uff35\uff33\uff24", "usd\u0130", "eu r"]
        ),
        st.text(max_size=8).filter(lambda code: code.lower() not in SUPPORTED_CURRENCIES),
        not_text(),
    )
    return Param(name, "usd", refused)


def email(name: str, max_length: int) -> Param:
    refused = st.one_of(
        st.sampled_from(["jenny", "jenny@", "@example.com", "a@b", "a b@example.com", "a@@b.c"]),
        st.text(min_size=1, max_size=30).filter(lambda address: "@" not in address),
        st.just("j@" + "e" * max_length + ".com"),
        not_text(),
    )
    return Param(name, "jenny@example.com", refused)


def param_items(param: Param) -> st.SearchStrategy[Item]:
    """`param` with a value it refuses, or given as an array or object where it is a single
    value."""
    wrong_value = param.refused.map(lambda value: [form_pair(param.name, value)])
    accepted = param.accepted or "x"
    wrong_shape = st.sampled_from(
        [
            [form_pair(f"{param.name}[0]", accepted)],
            [form_pair(f"{param.name}[]", accepted)],
            [form_pair(f"{param.name}[a]", accepted)],
            [form_pair(f"{param.name}[0]", accepted), form_pair(f"{param.name}[1]", accepted)],
        ]
    )
    return st.one_of(wrong_value, wrong_shape)


def metadata_items(name: str = "metadata") -> st.SearchStrategy[Item]:
    """Metadata over Stripe's limits (50 keys, 40-character keys, 500-character values) or
    of the wrong shape."""
    key_char = st.characters(exclude_categories=["Cs"], exclude_characters="\x00[]")
    return st.one_of(
        st.integers(51, 60).map(lambda n: [form_pair(f"{name}[k{i}]", "v") for i in range(n)]),
        st.builds(lambda c, n: [form_pair(f"{name}[{c * n}]", "v")], key_char, st.integers(41, 80)),
        longer_than(500).map(lambda value: [form_pair(f"{name}[k]", value)]),
        not_text().map(lambda value: [form_pair(f"{name}[k]", value)]),
        st.sampled_from(
            [
                [form_pair(f"{name}[a][b]", "v")],
                [form_pair(f"{name}[]", "v")],
                [form_pair(name, "not a hash")],
                [form_pair(f"{name}[a]", "v"), form_pair(f"{name}[a]", "w")],
                [form_pair(f"{name}[a]", "v"), form_pair(f"{name}[a][b]", "w")],
            ]
        ),
    )


def raw_card(prefix: str, number: str) -> Item:
    card = {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"}
    return [form_pair(f"{prefix}[{name}]", value) for name, value in card.items()]


def raw_card_items(parent: str, *, typed: bool) -> st.SearchStrategy[Item]:
    """Raw card numbers, which a secret key without raw card access may not send: as
    `card[...]`, or under `parent` (`payment_method_data[card][...]`) with or without its
    type."""
    prefix = f"{parent}[card]" if typed else parent
    return st.builds(
        lambda number, with_type: (
            ([form_pair(f"{parent}[type]", "card")] if typed and with_type else [])
            + raw_card(prefix, number)
        ),
        st.sampled_from(TEST_CARD_NUMBERS),
        st.booleans(),
    )


def shipping_items(name: str = "shipping") -> st.SearchStrategy[Item]:
    return st.sampled_from(
        [
            [form_pair(f"{name}[name]", "Jenny Rosen")],
            [form_pair(name, "2 Rue Royale")],
            [form_pair(f"{name}[name]", "J"), form_pair(f"{name}[address]", "Paris")],
            [form_pair(f"{name}[name]", "J"), form_pair(f"{name}[address][planet]", "Mars")],
        ]
    )


def _name_chars() -> st.SearchStrategy[str]:
    return st.characters(exclude_categories=["Cs"], exclude_characters="\x00[]=&%+")


def anywhere_items() -> st.SearchStrategy[Item]:
    """What every endpoint refuses, whatever its parameters: unknown names, names nested too
    deep or with misplaced brackets, broken percent-escapes, names that are not UTF-8."""
    unknown_name = st.one_of(
        st.from_regex(r"zz_[a-z0-9_]{1,30}", fullmatch=True),
        st.text(_name_chars(), min_size=1, max_size=20).map(lambda name: "zz" + name),
    )
    malformed_names = ["amount[", "amount]", "[amount]", "a[b]c", "a[[b]]", "a]b[", "[]", ""]
    broken_escapes = [b"description=%zz", b"description=%", b"%ZZ=1", b"description=%4"]
    return st.one_of(
        unknown_name.map(lambda name: [form_pair(name, "1")]),
        st.integers(6, 40).map(lambda depth: [form_pair("metadata" + "[a]" * depth, "v")]),
        st.integers(6, 40).map(lambda depth: [form_pair("x" + "[a]" * depth, "v")]),
        st.sampled_from(malformed_names).map(lambda name: [form_pair(name, "1")]),
        st.sampled_from(broken_escapes).map(lambda chunk: [chunk]),
        st.sampled_from(_NOT_UTF8).map(lambda raw: [quote_from_bytes(raw).encode() + b"=1"]),
    )


# --- Endpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    params: Sequence[Param]
    objects: Sequence[st.SearchStrategy[Item]] = ()
    """Items for the endpoint's object parameters (metadata, shipping, card...)."""

    def refused_items(self) -> st.SearchStrategy[Item]:
        return st.one_of(
            *(param_items(param) for param in self.params), *self.objects, anywhere_items()
        )

    def fillers(self) -> list[Item]:
        return [
            [form_pair(param.name, param.accepted)]
            for param in self.params
            if param.accepted is not None
        ]


def _top_name(chunk: bytes) -> str:
    name = unquote_to_bytes(chunk.partition(b"=")[0]).decode("utf-8", "replace")
    return name.partition("[")[0]


@st.composite
def refused_request(draw: st.DrawFn, endpoint: Endpoint) -> bytes:
    """The encoded parameters of a request `endpoint` must refuse: one to three things it
    refuses, mixed in any order with parameters it accepts (other than those refused)."""
    refused = draw(st.lists(endpoint.refused_items(), min_size=1, max_size=3))
    chunks = [chunk for item in refused for chunk in item]
    taken = {_top_name(chunk) for chunk in chunks}
    fillers = [item for item in endpoint.fillers() if _top_name(item[0]) not in taken]
    if fillers:
        chosen = draw(st.lists(st.sampled_from(range(len(fillers))), unique=True))
        chunks += [chunk for index in chosen for chunk in fillers[index]]
    return b"&".join(draw(st.permutations(chunks)))


def descriptor(name: str, *, needs_letter: bool = True) -> Param:
    refused = st.one_of(longer_than(22), not_text())
    if needs_letter:
        refused = st.one_of(refused, st.from_regex(r"[0-9 .\-]{1,22}", fullmatch=True))
    return Param(name, "Remit fuzz" if needs_letter else "6735", refused)


def billing_details_items(name: str = "billing_details") -> st.SearchStrategy[Item]:
    return st.one_of(
        param_items(email(f"{name}[email]", 800)),
        param_items(text(f"{name}[name]", 5000)),
        st.sampled_from(
            [
                [form_pair(name, "Jenny")],
                [form_pair(f"{name}[address]", "Paris")],
                [form_pair(f"{name}[address][planet]", "Mars")],
            ]
        ),
    )


def _intent_params() -> list[Param]:
    return [
        integer("amount", 1, 99_999_999, "1000"),
        currency(),
        text("description", 1000, "Tea & cake ☕"),
        choice("capture_method", "manual", "automatic", "automatic_async"),
        identifier("customer"),
        identifier("payment_method"),
        email("receipt_email", 800),
        descriptor("statement_descriptor"),
        descriptor("statement_descriptor_suffix", needs_letter=False),
        choice("setup_future_usage", "off_session", "on_session"),
    ]


CREATE_INTENT: Final = Endpoint(
    "POST",
    "/v1/payment_intents",
    [
        *_intent_params(),
        boolean("confirm"),
        choice("confirmation_method", "automatic", "manual"),
        boolean("off_session"),
        text("return_url", 5000, "https://shop.example/return"),
    ],
    [metadata_items(), shipping_items(), raw_card_items("payment_method_data", typed=True)],
)


def intent_changes(intent_id: str) -> list[Endpoint]:
    """What a client may ask of an intent that waits for its payment method."""
    path = f"/v1/payment_intents/{intent_id}"
    return [
        Endpoint("POST", path, _intent_params(), [metadata_items(), shipping_items()]),
        Endpoint(
            "POST",
            f"{path}/confirm",
            [
                choice("capture_method", "manual", "automatic"),
                identifier("client_secret"),
                boolean("error_on_requires_action"),
                boolean("off_session"),
                identifier("payment_method", "pm_card_visa"),
                email("receipt_email", 800),
                text("return_url", 5000, "https://shop.example/return"),
                choice("setup_future_usage", "off_session", "on_session"),
            ],
            [shipping_items(), raw_card_items("payment_method_data", typed=True)],
        ),
        Endpoint(
            "POST",
            f"{path}/capture",
            [
                integer("amount_to_capture", 1, 99_999_999, "500"),
                boolean("final_capture"),
                descriptor("statement_descriptor"),
                descriptor("statement_descriptor_suffix", needs_letter=False),
            ],
            [metadata_items()],
        ),
        Endpoint(
            "POST",
            f"{path}/cancel",
            [
                choice(
                    "cancellation_reason",
                    "requested_by_customer",
                    "duplicate",
                    "fraudulent",
                    "abandoned",
                )
            ],
        ),
    ]


def refunds(paid_intent_id: str) -> Endpoint:
    return Endpoint(
        "POST",
        "/v1/refunds",
        [
            identifier("payment_intent", paid_intent_id),
            identifier("charge"),
            integer("amount", 1, None, "100"),
            choice("reason", "requested_by_customer", "duplicate", "fraudulent"),
        ],
        [metadata_items()],
    )


CREATE_CUSTOMER: Final = Endpoint(
    "POST",
    "/v1/customers",
    [
        email("email", 512),
        text("name", 256, "Jenny Rosen"),
        text("description", 5000, "A regular"),
        text("phone", 20, "+33 1 23 45 67 89"),
        text("business_name", 150, "Rosen & Co"),
        text("individual_name", 150, "Jenny"),
        choice("tax_exempt", "none", "exempt", "reverse"),
        identifier("payment_method"),
    ],
    [
        metadata_items(),
        shipping_items(),
        st.sampled_from(
            [
                [form_pair("address", "Paris")],
                [form_pair("address[planet]", "Mars")],
                [form_pair("invoice_settings[footer]", "Thanks")],
                [form_pair(f"preferred_locales[{i}]", "fr") for i in range(11)],
            ]
        ),
    ],
)

CREATE_PAYMENT_METHOD: Final = Endpoint(
    "POST",
    "/v1/payment_methods",
    [
        choice("type", "card"),
        identifier("payment_method"),
        choice("allow_redisplay", "always", "limited", "unspecified"),
    ],
    [
        metadata_items(),
        billing_details_items(),
        raw_card_items("card", typed=False),
        st.sampled_from(
            [[form_pair("card[token]", "tok_visa"), form_pair("card[number]", "4242424242424242")]]
        ),
    ],
)


def list_endpoint(path: str, *filters: Param, created: bool = True) -> Endpoint:
    """A list endpoint, with its query string's refusals: cursors both given, `created`
    bounds that are no int64, `expand` paths that are no paths."""
    bad_path = st.one_of(
        st.text(max_size=30).filter(
            lambda p: not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", p)
        ),
        st.just("data.a.b.c.d"),
    )
    bound = st.sampled_from(["gt", "gte", "lt", "lte"])
    bad_integer = st.one_of(not_an_integer(), integer_outside(None, None))
    objects = [
        st.just([form_pair("starting_after", "x"), form_pair("ending_before", "y")]),
        bad_path.map(lambda p: [form_pair("expand[]", p)]),
        st.just([form_pair(f"expand[{i}]", f"data.f{i}") for i in range(21)]),
        st.just([form_pair("expand", "data.customer")]),
    ]
    if created:
        objects += [
            bad_integer.map(lambda value: [form_pair("created", value)]),
            st.builds(lambda b, v: [form_pair(f"created[{b}]", v)], bound, bad_integer),
            st.sampled_from(
                [
                    [form_pair("created[after]", "1")],
                    [form_pair("created[gt][a]", "1")],
                    [form_pair("created[]", "1")],
                ]
            ),
        ]
    return Endpoint(
        "GET",
        path,
        [
            integer("limit", 1, 100, "3"),
            identifier("starting_after"),
            identifier("ending_before"),
            *filters,
        ],
        objects,
    )


LISTS: Final = [
    list_endpoint("/v1/payment_intents", identifier("customer")),
    list_endpoint("/v1/refunds", identifier("charge"), identifier("payment_intent")),
    list_endpoint("/v1/customers", text("email", 512, "jenny@example.com")),
    list_endpoint(
        "/v1/payment_methods",
        identifier("customer"),
        choice("type", *LISTABLE_TYPES),
        created=False,
    ),
    list_endpoint(
        "/v1/charges",
        identifier("customer"),
        identifier("payment_intent"),
        text("transfer_group", 5000),
    ),
]


# --- What must not change ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def merchant(platform: RunningPlatform) -> Merchant:
    return make_merchant(platform)


@dataclass
class Refusals:
    """Sends requests that must be refused, checking each answer; remembers the idempotency
    keys sent with those that failed validation, which the core must not keep."""

    platform: RunningPlatform
    merchant: Merchant
    core_url: str
    before: dict[str, Any]
    validation_keys: list[str] = field(default_factory=list)

    def send(
        self,
        endpoint: Endpoint,
        params: bytes,
        *,
        key: str | None = None,
        idempotency_key: bytes | None = None,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> dict[str, Any]:
        secret = key or self.merchant.account.secret_key
        if endpoint.method == "GET":
            answer = send(
                self.platform.api_base, "GET", f"{endpoint.path}?{params.decode()}", key=secret
            )
            return stripe_refusal(answer)
        sent_key = idempotency_key or str(uuid.uuid4()).encode()
        answer = send(
            self.platform.api_base,
            endpoint.method,
            endpoint.path,
            key=secret,
            body=params,
            headers=[("Idempotency-Key", sent_key)],
            content_type=content_type,
        )
        error = stripe_refusal(answer)
        if answer.status in (400, 404) and idempotency_key is None:
            self.validation_keys.append(sent_key.decode())
        return error

    def assert_nothing_changed(self) -> None:
        """The account holds what it held before, and the core kept no key of a request that
        failed validation (Stripe keeps none: the client may fix the request and retry)."""
        assert holdings(self.platform, self.merchant) == self.before
        kept = stored_idempotency_keys(
            self.core_url, self.merchant.account.id, self.validation_keys
        )
        assert kept == []


@pytest.fixture
def refusals(platform: RunningPlatform, merchant: Merchant, databases: WorkerDatabases) -> Refusals:
    return Refusals(platform, merchant, databases.core_url, holdings(platform, merchant))


# --- Properties -------------------------------------------------------------------------------


def test_bad_payment_intent_creations_are_refused(refusals: Refusals) -> None:
    @FUZZ
    @given(params=refused_request(CREATE_INTENT))
    def refused(params: bytes) -> None:
        refusals.send(CREATE_INTENT, params)

    refused()
    refusals.assert_nothing_changed()


def test_bad_changes_to_an_intent_are_refused_and_leave_it_as_it_was(
    refusals: Refusals, merchant: Merchant
) -> None:
    changes = intent_changes(merchant.waiting_intent)

    @FUZZ
    @given(
        request=st.sampled_from(changes).flatmap(
            lambda endpoint: refused_request(endpoint).map(lambda params: (endpoint, params))
        )
    )
    def refused(request: tuple[Endpoint, bytes]) -> None:
        refusals.send(*request)

    refused()
    refusals.assert_nothing_changed()


def test_bad_refunds_are_refused_and_move_no_money(refusals: Refusals, merchant: Merchant) -> None:
    endpoint = refunds(merchant.paid_intent)

    @FUZZ
    @given(params=refused_request(endpoint))
    def refused(params: bytes) -> None:
        refusals.send(endpoint, params)

    refused()
    refusals.assert_nothing_changed()


def test_bad_customers_are_refused(refusals: Refusals) -> None:
    @FUZZ
    @given(params=refused_request(CREATE_CUSTOMER))
    def refused(params: bytes) -> None:
        refusals.send(CREATE_CUSTOMER, params)

    refused()
    refusals.assert_nothing_changed()


def test_bad_payment_methods_are_refused_and_raw_card_numbers_never_echoed(
    refusals: Refusals,
) -> None:
    @FUZZ
    @given(params=refused_request(CREATE_PAYMENT_METHOD))
    def refused(params: bytes) -> None:
        refusals.send(CREATE_PAYMENT_METHOD, params)

    refused()
    refusals.assert_nothing_changed()


def bad_card_fields() -> st.SearchStrategy[dict[str, str | bytes]]:
    """A card a payment page may send (publishable keys tokenize raw cards) with one field
    that no card has."""
    month = st.one_of(not_an_integer(), integer_outside(1, 12))
    year = st.one_of(
        not_an_integer(),
        integer_outside(None, None),
        st.integers(min_value=2**31 - 1, max_value=2**63 - 1).map(str),
        st.integers(min_value=-(2**63), max_value=-1).map(str),
        st.integers(min_value=100, max_value=2025).map(str),
    )
    number = st.one_of(
        st.from_regex(r"[0-9]{1,11}", fullmatch=True),
        st.sampled_from(["4242424242424241", "4242 4242 4242 424x", "\uff14\uff12" * 8]),
        longer_than(32),
        not_text(),
    )
    cvc = st.one_of(st.sampled_from(["12a", "1 2", "-12"]), longer_than(32), not_text())
    return st.one_of(
        month.map(lambda v: {"exp_month": v}),
        year.map(lambda v: {"exp_year": v}),
        number.map(lambda v: {"number": v}),
        cvc.map(lambda v: {"cvc": v}),
    )


def test_bad_cards_from_a_payment_page_are_refused_and_never_echoed(
    refusals: Refusals, merchant: Merchant
) -> None:
    @FUZZ
    # Expiries past 32 bits, which failed where the request to the vault was built: a 500.
    @example(number=TEST_CARD_NUMBERS[0], wrong={"exp_month": "2147483648"}, billing=[])
    @example(number=TEST_CARD_NUMBERS[0], wrong={"exp_year": "99999999999"}, billing=[])
    @given(
        number=st.sampled_from(TEST_CARD_NUMBERS),
        wrong=bad_card_fields(),
        billing=st.sampled_from([[], [form_pair("billing_details[name]", "Jenny Rosen")]]),
    )
    def refused(number: str, wrong: dict[str, str | bytes], billing: Item) -> None:
        card = {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123", **wrong}
        chunks = [form_pair("type", "card"), *billing]
        chunks += [form_pair(f"card[{name}]", value) for name, value in card.items()]
        refusals.send(
            CREATE_PAYMENT_METHOD, b"&".join(chunks), key=merchant.account.publishable_key
        )

    refused()
    refusals.assert_nothing_changed()


def test_bad_list_queries_are_refused(refusals: Refusals) -> None:
    @FUZZ
    @given(
        request=st.sampled_from(LISTS).flatmap(
            lambda endpoint: refused_request(endpoint).map(lambda params: (endpoint, params))
        )
    )
    def refused(request: tuple[Endpoint, bytes]) -> None:
        refusals.send(*request)

    refused()
    refusals.assert_nothing_changed()


_CONTROL = st.sampled_from(
    [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)]
)


def test_bad_idempotency_keys_are_refused_before_anything_is_made(refusals: Refusals) -> None:
    """Too long, or holding what no header may (control characters) or what gRPC metadata
    cannot carry (anything beyond printable ASCII)."""
    printable = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
    bad_key = st.one_of(
        st.builds(lambda c, n: (c * n).encode(), printable, st.integers(256, 400)),
        st.builds(
            lambda a, c, b: f"{a}{c}{b}".encode("latin-1"),
            st.text(printable, min_size=1, max_size=10),
            _CONTROL,
            st.text(printable, min_size=1, max_size=10),
        ),
        st.builds(
            lambda a, c: a.encode() + bytes([c]),
            st.text(printable, min_size=1, max_size=10),
            st.integers(0x80, 0xFF),
        ),
    )

    @FUZZ
    # Control characters, which the HTTP parser refuses before the app sees the request: it
    # answered in plain text, which no Stripe client reads as an error.
    @example(key=b"0\x000")
    @example(key=b"k\x1bx")
    @given(key=bad_key)
    def refused(key: bytes) -> None:
        refusals.send(CREATE_CUSTOMER, b"description=valid", idempotency_key=key)

    refused()
    refusals.assert_nothing_changed()


def unknown_ids() -> st.SearchStrategy[str]:
    """Ids that name nothing: any text (NUL, lone surrogates, slashes and dots included), card
    numbers, and ids long enough that echoing them twice outgrows what one header may carry."""
    return st.one_of(
        st.text(min_size=1, max_size=40),
        st.sampled_from(TEST_CARD_NUMBERS),
        st.builds(lambda text, s: text + s, st.text(max_size=5), _LONE_SURROGATES),
        st.builds(
            lambda prefix, char, length: prefix + char * length,
            st.sampled_from(["pi_", "cus_", "pm_", "re_", "ch_", ""]),
            st.characters(min_codepoint=ord("a"), max_codepoint=ord("z")),
            st.integers(100, 9000),
        ),
    )


# Each with parameters that would be accepted: only the id is wrong.
_BY_ID: Final = [
    ("GET", "/v1/payment_intents/{}", b""),
    ("POST", "/v1/payment_intents/{}", b"description=changed"),
    ("POST", "/v1/payment_intents/{}/confirm", b"payment_method=pm_card_visa"),
    ("POST", "/v1/payment_intents/{}/capture", b""),
    ("POST", "/v1/payment_intents/{}/cancel", b""),
    ("GET", "/v1/customers/{}", b""),
    ("POST", "/v1/customers/{}", b"name=Jenny"),
    ("GET", "/v1/payment_methods/{}", b""),
    ("POST", "/v1/payment_methods/{}/detach", b""),
    ("GET", "/v1/charges/{}", b""),
    ("GET", "/v1/refunds/{}", b""),
    ("POST", "/v1/refunds/{}", b"metadata[a]=b"),
]


def test_unknown_ids_anywhere_are_missing_objects(refusals: Refusals) -> None:
    """In the path of every kind of object, and in the parameters that name one."""
    named_by_params = [
        ("POST", "/v1/refunds", "payment_intent"),
        ("POST", "/v1/payment_intents", "customer"),
        ("POST", "/v1/payment_intents", "payment_method"),
        ("POST", "/v1/customers", "payment_method"),
    ]

    @FUZZ
    # Ids whose echo, in the message and again in the rich status, outgrew what the facade
    # accepted in a reply's trailers: a 429 (gRPC's RESOURCE_EXHAUSTED, carrying the refusal
    # it garbled) between 8 and 16 KiB, a 500 past 16 KiB.
    @example(object_id="pi_" + "a" * 3601, where=("path", "GET", "/v1/payment_intents/{}", b""))
    @example(
        object_id="pi_" + "a" * 9000,
        where=("path", "POST", "/v1/payment_intents/{}/confirm", b"payment_method=pm_card_visa"),
    )
    @given(
        object_id=unknown_ids(),
        where=st.one_of(
            st.sampled_from(_BY_ID).map(lambda e: ("path", *e)),
            st.sampled_from(named_by_params).map(lambda e: ("param", *e)),
        ),
    )
    def refused(object_id: str, where: tuple[str, str, str, bytes | str]) -> None:
        kind, method, path, rest = where
        if kind == "path":
            assert isinstance(rest, bytes)
            encoded = quote_from_bytes(object_id.encode("utf-8", "surrogatepass"), safe="")
            target, params = path.format(encoded), rest
        else:
            assert isinstance(rest, str)
            target, params = path, form_pair(rest, object_id)
            if path == "/v1/payment_intents":
                params += b"&amount=1000&currency=usd"
        refusals.send(Endpoint(method, target, ()), params)

    refused()
    refusals.assert_nothing_changed()


# --- JSON bodies ------------------------------------------------------------------------------

TOKENS: Final = Endpoint("POST", "/v1/tokens", [])
# Text holding half of a surrogate pair alone, which `json.dumps` escapes (`\ud800`) and
# which decodes to no text: UTF-8 cannot encode it.
_WITH_LONE_SURROGATE = st.builds(lambda a, s, b: a + s + b, _TEXT, _LONE_SURROGATES, _TEXT)


def _with_lone_surrogate_in(value: str) -> st.SearchStrategy[str]:
    return st.builds(
        lambda s, at: value[:at] + s + value[at:],
        _LONE_SURROGATES,
        st.integers(0, len(value)),
    )


@st.composite
def json_with_a_lone_surrogate(draw: st.DrawFn, endpoint: Endpoint) -> bytes:
    """A JSON body of parameters `endpoint` accepts, but for one string holding a lone
    surrogate: a value or a name, at the top or nested in metadata, or a raw card's field
    (the number, the CVC), which the body's decoding refuses before any name is checked."""
    body: dict[str, Any] = {
        param.name: param.accepted
        for param in endpoint.params
        if param.accepted is not None and "[" not in param.name
    }
    place = draw(st.sampled_from(["value", "name", "metadata value", "metadata name", "card"]))
    if place == "value" and body:
        body[draw(st.sampled_from(sorted(body)))] = draw(_WITH_LONE_SURROGATE)
    elif place in ("value", "name"):
        body[draw(_WITH_LONE_SURROGATE)] = "x"
    elif place == "metadata value":
        body["metadata"] = {"order": draw(_WITH_LONE_SURROGATE)}
    elif place == "metadata name":
        body["metadata"] = {draw(_WITH_LONE_SURROGATE): "6735"}
    else:
        card = {"number": draw(st.sampled_from(TEST_CARD_NUMBERS)), "exp_month": "12",
                "exp_year": "2034", "cvc": "123"}  # fmt: skip
        field_name = draw(st.sampled_from(sorted(card)))
        card[field_name] = draw(_with_lone_surrogate_in(card[field_name]))
        body["card"] = card
    return json.dumps(body).encode()


_RAW_CARD_JSON: Final = (
    b'{"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}'
)


def test_lone_surrogates_escaped_in_json_bodies_are_refused_as_invalid_utf8(
    refusals: Refusals, merchant: Merchant
) -> None:
    """As the bytes that would encode them are in a form body: they once reached the building
    of the request to the core, a 500 whose logged traceback quoted the whole value."""
    endpoints = [
        CREATE_INTENT, CREATE_CUSTOMER, CREATE_PAYMENT_METHOD, TOKENS,
        refunds(merchant.paid_intent), *intent_changes(merchant.waiting_intent),
    ]  # fmt: skip

    @FUZZ
    @example(request=(TOKENS, _RAW_CARD_JSON.replace(b'4242"', b'4242\\ud800"')))
    @example(request=(TOKENS, _RAW_CARD_JSON.replace(b'"123"', b'"12\\ud800"')))
    @example(request=(CREATE_CUSTOMER, b'{"description": "a\\udc80"}'))
    @given(
        request=st.sampled_from(endpoints).flatmap(
            lambda endpoint: json_with_a_lone_surrogate(endpoint).map(lambda body: (endpoint, body))
        )
    )
    def refused(request: tuple[Endpoint, bytes]) -> None:
        endpoint, body = request
        # A payment page's key, where one may send a raw card.
        publishable = endpoint in (TOKENS, CREATE_PAYMENT_METHOD) and b'"card"' in body
        key = merchant.account.publishable_key if publishable else None
        error = refusals.send(endpoint, body, key=key, content_type="application/json")
        assert error["message"].startswith("Invalid UTF-8"), error

    refused()
    refusals.assert_nothing_changed()


# --- Regressions ------------------------------------------------------------------------------


def test_a_decline_of_an_intent_holding_all_the_metadata_stripe_allows_is_a_card_error(
    platform: RunningPlatform, merchant: Merchant
) -> None:
    """A declined payment's refusal embeds its PaymentIntent; with 50 metadata values of 500
    characters it outgrew what the facade accepted in a reply's trailers, and a valid request
    met a 500 (which stripe-python retries, to meet the same 500 replayed)."""
    metadata = {f"metadata[key{i:02}]": "v" * 500 for i in range(50)}
    answer = httpx.post(
        f"{platform.api_base}/v1/payment_intents",
        data={"amount": "1000", "currency": "usd", "payment_method": "pm_card_visa_chargeDeclined",
              "confirm": "true", "return_url": "https://shop.example/return",
              "description": "d" * 1000, **metadata},
        headers={"Authorization": f"Bearer {merchant.account.secret_key}"},
        timeout=30,
    )  # fmt: skip
    assert answer.status_code == 402, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("card_error", "card_declined")
    assert len(error["payment_intent"]["metadata"]) == 50


def test_an_expiry_past_32_bits_on_a_card_update_is_refused_by_name(
    platform: RunningPlatform, merchant: Merchant
) -> None:
    """It failed where the request to the core was built: a 500."""
    for name in ("exp_month", "exp_year"):
        answer = send(
            platform.api_base,
            "POST",
            "/v1/payment_methods/pm_anything",
            key=merchant.account.secret_key,
            body=form_pair(f"card[{name}]", "2147483648"),
        )
        error = stripe_refusal(answer)
        assert (answer.status, error["param"]) == (400, f"card[{name}]")

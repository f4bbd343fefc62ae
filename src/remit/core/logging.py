"""Process-wide logging with a filter that masks card numbers and secrets.

Card numbers must never reach a log line, whatever code wrote it: the filter rewrites every
record's final message, its traceback and its stack, masking each card number (typed whole, or
in groups with spaces or dashes between them, as the vault accepts one) and the CVC and expiry
typed right after it, keeping only the number's last four digits (`mask_card_numbers`): after
spaces, dashes or slashes (`12/30 123`, `12/30/123`, `/1230/123`, `123/12/30`), masked with
the card, or as the fields after it of a CSV line, a log format or a repr (`,12,30,123`,
`|12/2030|123`, `\t"123"\t"12/30"`), each masked in its place so that the columns after it
keep theirs (`[card ****4242],[expiry],[expiry],[cvc],usd`).
Each security code written after its name is masked wherever it stands, in a text with a card
number or without one (`cvc=123`, `"cvc": "123"`, `cvc is 123`), and an expiry written after
its name at most a few words from a card number, before or after it, with the CVC typed right
after it (`exp 12/30 123 4242424242424242`, `4242424242424242 for J Doe, exp 12/30`).
A number with no name is taken for a CVC or an expiry only where one is typed: right after
the card number (or after its CVC or expiry so typed), or right after an expiry written after
its name near the card. Elsewhere in a text holding a card number it is kept, before the card
(`retry 123 of 4242424242424242`) or with words or other numbers between them
(`4242424242424242 declined, 123 retries left`): masking every 3-digit number in a line
with a card would corrupt the order ids, amounts and counts quoted with it, and nothing tells
a CVC typed away from its card, with no name, apart from them.
Secrets that would let a reader act as someone are masked too: secret and restricted API keys
(`sk_live_`, `sk_test_`, `rk_...`), webhook signing secrets (`whsec_`), PaymentIntent client
secrets (`pi_..._secret_...`, whose intent id stays readable) and the user and password of a
connection URL (`postgresql://***@host/db`), which a database driver's error may quote.
Publishable keys are public and stay as they are.
"""

import contextlib
import itertools
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Final, NamedTuple

_CARD_LENGTHS: Final = range(13, 20)
# What most cards have, Visa, Mastercard and Discover among them.
_MOST_CARDS_LENGTH: Final = 16
# Digits with any spaces or dashes between them, as `vault.cards.normalize_number` accepts a
# number typed; ASCII digits only, as the vault takes no others. The lookahead passes over the
# runs too short to hold a card (most numbers in a log line) without a call for each. Digits
# and separators never overlap, so matching takes time linear in the run, however long.
_DIGIT_RUN: Final = re.compile(
    r"(?<![0-9])(?=[0-9][0-9 -]{12})[0-9]+(?:[ -]+[0-9]+)*"
    r"(?:(?P<expiry>(?:(?<=[ -][1-9])|(?<=[ -]0[1-9]|[ -]1[0-2])) */ *(?:20)?[0-9]{2}"
    r"|(?P<slash_before_expiry>/)(?:0?[1-9]|1[0-2]) */ *(?:20)?[0-9]{2}"
    r"(?= */ *[0-9]{3,4}(?![0-9])))"
    r"(?: */ *(?P<cvc_after_expiry>[0-9]{3,4})(?![0-9])|(?![0-9/])(?:[ -]+[0-9]+)*))?"
    r"(?:/(?P<after_slash>[0-9]{3,4})(?![0-9]| */ *[0-9]))?"
)
# The run goes on past one slash only where a group of 1 or 2 digits that is a month (after
# a separator, so after a card number's groups) has a year after it: an expiry typed MM/YY,
# M/YY or MM/YYYY after a card (`4242424242424242 12/30 123`), whose year and the CVC after
# it must be masked with the card. Past a second slash only to 3 or 4 digits after such an
# expiry, its CVC typed after a slash (`4242424242424242 12/30/123`, or
# `4242424242424242/12/30/123` with a slash before the month too), where the run then ends
# (nothing more is typed after a card with both), and only when the card takes them as its
# CVC (`_masked_run`). A slash is no separator otherwise: dates (2026/12/01) and ratios
# (1234/5678) never join into a run, and `12/30/2026` after a Visa is a date, not an expiry.
# The run takes 3 or 4 digits after a slash at its end too (`4242424242424242/123`, a CVC so
# typed), only ever as what was typed after a card, never as part of one (`_masked_groups`).
_GROUP: Final = re.compile(r"[0-9]+(?: */ *[0-9]+)?")
_SLASH: Final = re.compile(r" */ *")
# A date written with slashes after a card (`4242424242424242 12/30/2026`): the run stops
# before the slash after the date's first part (or its second, `12 / 30` read as an
# expiry), which would be masked with the card as its expiry or CVC. Those parts are kept as
# they are, never taken as typed after a card nor as part of one, when they really start a
# date: a day or month (1 or 2 digits, 1-31) with a slash, a day or month and a year of 2 or
# 4 digits after it (MM/DD/YYYY, DD/MM/YY), or a year (19YY, 20YY) with a slash, a month and
# a day after it (YYYY/MM/DD). Anything else before a slash is read as ever: after a card,
# `123/1` and `123/12/2026` start with its CVC and `1230/1` with its expiry, all masked.
_DAY_OR_MONTH_WRITTEN: Final = re.compile(r"0?[1-9]|[12][0-9]|3[01]")
_YEAR_WRITTEN: Final = re.compile(r"(?:19|20)[0-9]{2}")
_SLASH_AND_YEAR: Final = r" */ *(?:[0-9]{4}|[0-9]{2})(?![0-9])"
_YEAR_GOES_ON: Final = re.compile(_SLASH_AND_YEAR)
_DAY_OR_MONTH_AND_YEAR_GO_ON: Final = re.compile(
    rf" */ *(?:{_DAY_OR_MONTH_WRITTEN.pattern}){_SLASH_AND_YEAR}"
)
_MONTH_AND_DAY_GO_ON: Final = re.compile(
    rf" */ *(?:0?[1-9]|1[0-2]) */ *(?:{_DAY_OR_MONTH_WRITTEN.pattern})(?![0-9])"
)
_DIGITS: Final = "0123456789"
# A date written with dashes, year first or last (2026-12-01, 01-12-2026). Its groups are
# never taken for a card's, so that its year does not join the number before or after it
# into a stretch that may pass the Luhn check by chance (no card is typed with a date's
# shape: its groups of 2 would not be joined anyway).
_DAY_OR_MONTH: Final = r"(?:0[1-9]|[12][0-9]|3[01])"
_YEAR: Final = r"(?:19|20)[0-9]{2}"
_DATE: Final = re.compile(
    rf"(?<![0-9])(?:{_YEAR}-{_DAY_OR_MONTH}-{_DAY_OR_MONTH}"
    rf"|{_DAY_OR_MONTH}-{_DAY_OR_MONTH}-{_YEAR})(?![0-9])"
)
# What it takes for groups of digits with separators between them to read as one card
# number typed: at most 5 groups (4-4-4-4-3 for 19 digits, 4-6-5 for an Amex, 8-8 or 4-12 as
# some forms split it) of 3 to 16 digits, the last maybe fewer, 13-19 digits in all. Times,
# sort codes (12-34-56), phone numbers and lists of small numbers have groups of 1 or 2
# digits, and lists run on past 5 groups:
# joined, they would give stretches of 13-19 digits, one in ten passing the Luhn check. A
# longer group after others is taken for a card's last group with its CVC typed on
# (`4242 4242 4242 4242123`), never for a whole one: the last four digits shown would be the
# CVC's.
_MOST_GROUPS_IN_A_CARD: Final = 5
# A CVC and an expiry typed after a card number take at most 3 groups (`12 30 123`).
_MOST_GROUPS_TYPED_AFTER: Final = 3
_DIGITS_IN_A_GROUP_OF_SEVERAL: Final = range(3, 17)
# The lengths a card number has, by its first digit (`vault.cards.BRAND_RULES`, coarsened): 2
# and 5 Mastercard, 3 Amex, Diners and JCB, 4 Visa, 6 Discover and UnionPay, 8 UnionPay.
_LENGTHS_BY_FIRST_DIGIT: Final = {
    "2": (16,),
    "3": (14, 15, 16, 17, 18, 19),
    "4": (13, 16, 19),
    "5": (16,),
    "6": (16, 17, 18, 19),
    "8": (16, 17, 18, 19),
}
_NO_LENGTHS: Final[tuple[int, ...]] = ()
# An American Express number (15 digits starting so) has a 4-digit CVC, every other brand a
# 3-digit one (`vault.cards.BRAND_RULES`).
_FOUR_DIGIT_CVC_PREFIXES: Final = ("34", "37")
_LUHN_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def mask_card_numbers(text: str) -> str:
    """`text` with each card number in it replaced by `[card ****4242]`, the CVC and expiry
    typed right after it (either or both, in either order, the CVC maybe after a slash) with
    it (`_cards_in` says which digits are one), and those typed after it as fields (after
    commas, semicolons, pipes or tabs, maybe quoted) or with slashes between
    (`_typed_after_masked`); each security code written
    after its name masked (`mask_labelled_security_codes`), and an expiry written after its
    name near a card number, with the CVC after it (`mask_labelled_expiries_near_cards`); the
    rest of the text, digits next to a card number included, is kept (the module's docstring
    says which numbers with no name are taken for a CVC).

    The masking chooses between two harms. This text is not only logged: gRPC and REST
    refusals, webhook response snippets shown to merchants and network messages stored on
    charges are masked with it. A card number missed leaks card data; an ordinary number
    masked corrupts a merchant's data (an order id quoted in an error, dates in a snippet).
    Wherever the text holds a Luhn-valid number of 13-19 digits formed as a card is typed
    (whole, in a few groups, with its CVC or expiry after it) it is masked, though one in ten
    ids of those lengths passes the Luhn check by chance. Longer numbers and longer lists of
    numbers are only tried for a card number at the few places one would be typed: each other
    stretch tried would be one more chance in ten that an ordinary number passes. About 1% of
    ids of 20-32 digits are masked so (those of 20-23 digits whose start reads as a card with
    a CVC or expiry typed on), against 23% when every start of every group was tried. What
    this leaves unmasked is a card number typed as no one types one: in groups of 1 or 2
    digits or in more than 5 groups, joined to digits before it with no space, or followed
    with no space by digits that are neither its CVC nor an expiry."""

    masked = _masked_digit_runs(text)
    masked, read = _labelled_security_codes_masked(masked, _as_labels_read(masked))
    return _labelled_expiries_masked(masked, read)


def _masked_digit_runs(text: str) -> str:
    """`text` with the card numbers in each run of `_DIGIT_RUN` masked, and what a card ending
    a run takes of the groups typed after it with other separators (`_typed_after_masked`)."""
    pieces, kept_from = [], 0
    while (match := _DIGIT_RUN.search(text, kept_from)) is not None:
        masked, card = _masked_run(match)
        pieces += [text[kept_from : match.start()], masked]
        kept_from = match.end()
        if card is not None:
            kept_from, fields = _typed_after_masked(text, kept_from, card)
            pieces.append(fields)
    pieces.append(text[kept_from:])
    return "".join(pieces)


def _masked_run(match: re.Match[str]) -> tuple[str, "_Card | None"]:
    """A run of `_DIGIT_RUN` with its card numbers masked, and the card whose mask ends it
    (`_masked_groups`). Where an expiry with a slash has 3 or 4 digits after another slash
    (`12/30/123`), they are read as the card's CVC only if the card takes them as one (a Visa
    takes no 4 digits: `12/30/2026` is a date after it); otherwise the run is read as though
    it stopped before the expiry, as it would without them, and the rest is kept."""
    text, after_slash = match.string, match.group("after_slash") or ""
    if match.group("cvc_after_expiry") is None:
        return _masked_span(text, match.start(), match.end(), after_slash)
    masked, card = _masked_span(
        text, match.start(), match.end(), after_slash, match.start("slash_before_expiry")
    )
    # Were they taken, the text would end with a card's mask, not with them (and what follows).
    if not masked.endswith(text[match.start("cvc_after_expiry") : match.end()]):
        return masked, card
    expiry = max(match.start("expiry"), match.start("slash_before_expiry"))
    before, _ = _masked_span(text, match.start(), expiry, "")
    return before + text[expiry : match.end()], None


# One group typed after a card as a field: after a comma, semicolon, pipe or tab, as CSV files,
# log formats and reprs put them (`4242424242424242,12,30,123`, `4242424242424242|12/2030|123`,
# `"4242424242424242","12","2030","123"`, `('4242424242424242', 12, 2030, '123')`), with
# spaces after the separator or, after a comma, semicolon or pipe, tabs (`4242424242424242,\t123`),
# each field maybe quoted (the quote before the separator closing the field before, the one after it
# opening this one, which must close right after its digits), or after a slash
# (`4242424242424242/1230/123`, `4242424242424242 123/12/30`); then an expiry written with a
# slash (M/YY, MM/YY, MM/YYYY) or 2 to 4 digits, and no more: a field that goes on as a date,
# time, decimal or word (`2026-12-07`, `12:30`, `12.50`, `30d`) is none. Separators, quotes and
# digits share no character, and at most 3 steps are tried after a card: constant time.
_TYPED_AFTER_STEP: Final = re.compile(
    r"""(?:(?P<closing>["'])? *(?P<separator>[,;|\t])(?:(?<=\t) *|(?<!\t)[ \t]*)"""
    r"""(?P<opening>["'])?| *(?P<slash>/) *)"""
    r"(?P<field>(?P<month>0?[1-9]|1[0-2]) */ *(?P<year>(?:20)?[0-9]{2})|(?P<group>[0-9]{2,4}))"
    r"(?(opening)(?=(?P=opening))|(?![0-9a-zA-Z_]|[.:-][0-9]))"
)
_SLASH_AND_DIGIT: Final = re.compile(r" */ *[0-9]")
# What a CVC or an expiry typed after a card is masked as where it stands as a field of its
# own, as `mask_labelled_security_codes` and `mask_labelled_expiries_near_cards` mask one.
_CVC_MASK: Final = "[cvc]"
_EXPIRY_MASK: Final = "[expiry]"


def _typed_after_masked(text: str, end: int, card: "_Card") -> tuple[int, str]:
    """Where what `card`, whose mask ends a run at `end` in `text`, takes of the groups typed
    after it with other separators (`_TYPED_AFTER_STEP`) ends, and what stands in their place.
    It takes the most of them that are, with what it took in the run, its CVC and expiry
    (`_cvc_and_expiry_read`), and after which no slash and digit go on (a date or a ratio:
    `12/30/2026`, `12/30/456`). Groups after a slash are taken only with the CVC among what the
    card took (an expiry alone after a slash may start a date: `4242424242424242/12/30` is
    kept, as `4242424242424242 12/30/2026` is) and when they do not end with a month and a
    4-digit year after a slash, written as a date's are (`4242424242424242 123/12/2026`: the
    CVC is masked, `/12/2026` kept).
    A field keeps its separator and quotes, its digits replaced by `[cvc]` or `[expiry]`, so
    that a CSV line or a log format keeps its columns (`[card ****4242],[expiry],[expiry],
    [cvc],usd`); a group after a slash goes with the slash, as in a run. A field of 4 digits
    alone (no month field before it) is read as an expiry only with a CVC next to it: 20YY
    or MMYY before one (`,1230,123`, `,2030,123`), or MMYY after one (`,123,1230`); else it
    is an amount, a year or an id (`4242424242424242,2000,usd`, `|2024|2025|2026`) and kept."""
    steps: list[re.Match[str]] = []
    for _ in range(_MOST_GROUPS_TYPED_AFTER):
        step = _TYPED_AFTER_STEP.match(text, steps[-1].end() if steps else end)
        if step is None:
            break
        steps.append(step)
    first = len(card.typed_after)  # the index in what the card took of the first step's group
    slashed = {first + at for at, step in enumerate(steps) if step.group("month") is not None}
    alone = {
        first + at
        for at, step in enumerate(steps)
        if step.group("separator") is not None and len(step.group("group") or "") == 4
    }
    for count in range(len(steps), 0, -1):
        taken = steps[:count]
        typed = [*card.typed_after, *(_typed_after_step(step) for step in taken)]
        read = _cvc_and_expiry_read(card.number, typed, slashed=slashed, alone=alone)
        if len(typed) > len(read) or _SLASH_AND_DIGIT.match(text, taken[-1].end()):
            continue
        if any(step.group("slash") is not None for step in taken) and (
            len(_cvc_and_expiry_read(card.number, typed, cvc=False, slashed=slashed, alone=alone))
            == len(typed)
            or (taken[-1].group("slash") is not None and len(taken[-1].group("year") or "") == 4)
        ):
            continue
        fields = [
            ""
            if step.group("slash") is not None
            else text[step.start() : step.start("field")] + mask
            for step, mask in zip(taken, read[first:], strict=True)
        ]
        return taken[-1].end(), "".join(fields)
    return end, ""


def _typed_after_step(step: re.Match[str]) -> str:
    """The group of a `_TYPED_AFTER_STEP`, an expiry with a slash read as `_masked_groups`
    reads one (`1/30` as `0130`)."""
    if step.group("group") is not None:
        return step.group("group")
    return step.group("month").zfill(2) + step.group("year")[-2:]


def _masked_span(
    text: str, start: int, end: int, after_slash: str, slash_before_expiry: int = -1
) -> tuple[str, "_Card | None"]:
    """`text[start:end]`, a run of `_DIGIT_RUN`, with its card numbers masked, and the card
    whose mask ends it; `after_slash` its digits after a slash at its end,
    `slash_before_expiry` where a slash stands between a card and its expiry (read as a
    space: the expiry is the group after it)."""
    run = text[start:end]
    if len(run) - run.count(" ") - run.count("-") - run.count("/") < _CARD_LENGTHS.start:
        return run, None
    if slash_before_expiry >= 0:
        at = slash_before_expiry - start
        run = f"{run[:at]} {run[at + 1 :]}"
    date_start = ""
    if after_slash:
        run = run[: -len(after_slash) - 1]
    else:
        date_start = _date_started_at_end(run, text, end)
        run = run[: len(run) - len(date_start)]
    pieces, kept_from = [], 0
    for date in _DATE.finditer(run):
        pieces += [_masked_groups(run[kept_from : date.start()])[0], date.group(0)]
        kept_from = date.end()
    last, card = _masked_groups(run[kept_from:], after_slash)
    pieces += [last, date_start]
    return "".join(pieces), None if date_start else card


def _date_started_at_end(run: str, text: str, end: int) -> str:
    """The end of `run` (which ends at `end` in `text`) that starts a date written with
    slashes going on after it (`_DAY_OR_MONTH_WRITTEN`): its first part (`12`, `2026`), or
    its first two when the run took them for an expiry (`12 / 30`); else nothing. In time
    linear in the run's last group and the separators before it."""
    last = run[len(run.rstrip(_DIGITS)) :]
    before_last = run[: len(run) - len(last)].rstrip(" ")
    if before_last.endswith("/"):
        before_slash = before_last[:-1].rstrip(" ")
        first = before_slash[len(before_slash.rstrip(_DIGITS)) :]
        if (
            _DAY_OR_MONTH_WRITTEN.fullmatch(first)
            and _DAY_OR_MONTH_WRITTEN.fullmatch(last)
            and _YEAR_GOES_ON.match(text, end)
        ):
            return run[len(before_slash) - len(first) :]
        return ""
    if _DAY_OR_MONTH_WRITTEN.fullmatch(last):
        goes_on = _DAY_OR_MONTH_AND_YEAR_GO_ON
    elif _YEAR_WRITTEN.fullmatch(last):
        goes_on = _MONTH_AND_DAY_GO_ON
    else:
        return ""
    return last if goes_on.match(text, end) else ""


def _masked_groups(run: str, after_slash: str = "") -> tuple[str, "_Card | None"]:
    """`run` (digits, spaces and dashes) with the groups of each card number in it replaced,
    and the card whose mask ends it, if one does and it is the card the mask shows (then what
    is typed after the run may be its CVC or expiry). Cards found from different groups that
    overlap are masked as one (`_merged`). `after_slash`: digits written after the run with a
    slash (`4242424242424242/123`), masked with a card before them when they are what was
    typed after it."""
    text = f"{run}/{after_slash}" if after_slash else run
    groups = [(group.start(), group.end()) for group in _GROUP.finditer(run)]
    # An expiry with a slash (`12/30`, `12/2030`, `1/30`) is one group, read as its month of 2
    # digits and the year's last two (`1230`, `0130`, an expiry typed without one); it is never
    # part of a card, nor are the digits after a slash at the run's end.
    texts = [_SLASH.split(run[start:end]) for start, end in groups]
    slashed = {index for index, parts in enumerate(texts) if len(parts) == 2}
    typed = [parts[0].zfill(2) + parts[1][-2:] if len(parts) == 2 else parts[0] for parts in texts]
    if after_slash:
        slashed.add(len(typed))
        groups.append((len(run) + 1, len(text)))
        typed.append(after_slash)
    digits = "".join(typed)
    if len(digits) < _CARD_LENGTHS.start:
        return text, None
    sizes = [len(group) for group in typed]
    pieces, kept_from, ending = [], 0, None
    for first, last, shown in _merged(_cards_in(digits, sizes, slashed)):
        pieces += [text[kept_from : groups[first][0]], f"[card ****{shown.last4}]"]
        kept_from = groups[last][1]
        ending = shown if last == shown.last else None
    pieces.append(text[kept_from:])
    return "".join(pieces), ending if kept_from == len(text) else None


class _Card(NamedTuple):
    first: int  # the group the card number starts in
    last: int  # the last group it or what was typed after it takes
    number: str
    typed_after: tuple[str, ...]  # the CVC and expiry typed after it that it took, as typed

    @property
    def last4(self) -> str:
        return self.number[-4:]


def _merged(cards: Iterable[_Card]) -> list[tuple[int, int, _Card]]:
    """`cards` (in the order of the groups they start in) with those that overlap masked as
    one: its first group, last group and the card whose last four it shows. Of two overlapping,
    one passes the Luhn check by chance; the one ending last shows its last four (the other
    may be digits typed before the card: `1234 4242 4242 4242 4242`), unless the one before
    took a CVC or expiry typed after it: the later one's digits run through it and are no
    card's, and its last four may be the CVC's or the expiry's own."""
    masked: list[tuple[int, int, _Card]] = []
    open_to_later = False  # whether the last masked shows a card that took nothing after it
    for card in cards:
        if masked and card.first <= masked[-1][1]:
            first, last, shown = masked[-1]
            if card.last > last:
                if open_to_later:
                    shown, open_to_later = card, not card.typed_after
                masked[-1] = (first, card.last, shown)
        else:
            masked.append((card.first, card.last, card))
            open_to_later = not card.typed_after
    return masked


def _cards_in(digits: str, sizes: list[int], expiries: set[int]) -> Iterator[_Card]:
    """Each card number in a run of groups of digits (`digits` the groups joined, `sizes`
    their lengths), in the order of the groups they start in (`_Card`). A card number is
    13-19 digits passing the Luhn check that start a group and are either
    - whole groups, typed as a card is (`4242424242424242`, `4242 4242 4242 4242`), followed
      maybe by up to 3 groups that are its CVC, its expiry or both in either order
      (`4242424242424242 123`, `4242424242424242 12 30 123`), or
    - whole groups and the start of one more, that group going on by its CVC or expiry: the
      CVC typed on with no space (`42424242424242421234`), maybe followed by groups that are
      the rest of its CVC and expiry (`4242424242424242123 1230`). Only the lengths a card
      starting so has are tried, and only where the rest of the group is a CVC or expiry: a
      20-32 digit id has a stretch passing the Luhn check at its start at one of the 13-19
      lengths more often than not.
    Whole groups are read first, so that the number shown is the one typed, not a stretch of
    it that passes by chance; but 17-19 digits that may be a card of at most 16 (what most
    cards have) with its CVC typed on are read so, as the last four digits shown must never be
    a CVC's. From each group at most 5 groups and 19 digits are tried, each stretch checked in
    constant time: time linear in the run. The groups `expiries` (expiries written with a
    slash) may only be typed after a card, never be part of one."""
    ends = list(itertools.accumulate(sizes))
    passes_luhn = _luhn_check_of_stretches(digits)
    for first, start in enumerate([0, *ends[:-1]]):
        if first in expiries:
            continue
        reach = []  # the groups a card starting at `first` may end in
        for last in range(first, min(first + _MOST_GROUPS_IN_A_CARD, len(sizes))):
            if ends[last] - sizes[last] >= start + _CARD_LENGTHS.stop - 1 or last in expiries:
                break
            reach.append(last)
            if sizes[last] not in _DIGITS_IN_A_GROUP_OF_SEVERAL:
                break
        whole = [
            last for last in reach if last == first or sizes[last] in _DIGITS_IN_A_GROUP_OF_SEVERAL
        ]
        as_whole = _card_of_whole_groups(digits, ends, start, whole, passes_luhn)
        typed_on = _card_typed_on(digits, ends, sizes, start, reach, passes_luhn)
        # The whole groups, unless they make 17-19 digits that may be fewer with a CVC on.
        found = typed_on
        if as_whole is not None and (typed_on is None or as_whole[1] - start <= _MOST_CARDS_LENGTH):
            found = as_whole
        if found is not None:
            last, end, typed_after = found
            yield _Card(first, last, digits[start:end], typed_after)


def _card_of_whole_groups(
    digits: str,
    ends: list[int],
    start: int,
    reach: list[int],
    passes_luhn: Callable[[int, int], bool],
) -> tuple[int, int, tuple[str, ...]] | None:
    """The last group taken by a card number that starts at `start` and ends with one of
    `reach` (the groups after it too, when they are its CVC and expiry), where it ends, and
    the groups it took after it."""
    for last in reach:
        end = ends[last]
        if end - start in _CARD_LENGTHS and passes_luhn(start, end):
            typed = _groups_after(digits, ends, last)
            taken = _cvc_and_expiry_taken(digits[start:end], typed)
            return last + taken, end, tuple(typed[:taken])
    return None


def _card_typed_on(
    digits: str,
    ends: list[int],
    sizes: list[int],
    start: int,
    reach: list[int],
    passes_luhn: Callable[[int, int], bool],
) -> tuple[int, int, tuple[str, ...]] | None:
    """The last group taken by a card number starting at `start` that ends inside a group of
    `reach`, its CVC or expiry going on to that group's end (and the groups after it too, when
    they are the rest of its CVC and expiry), where the card ends, and what it took after it
    (the rest of its last group first)."""
    lengths = _LENGTHS_BY_FIRST_DIGIT.get(digits[start], _NO_LENGTHS)
    for last in reach:
        for length in lengths:
            end = start + length
            if ends[last] - sizes[last] < end < ends[last] and passes_luhn(start, end):
                typed = [digits[end : ends[last]], *_groups_after(digits, ends, last)]
                taken = _cvc_and_expiry_taken(digits[start:end], typed[:_MOST_GROUPS_TYPED_AFTER])
                if taken:
                    return last + taken - 1, end, tuple(typed[:taken])
    return None


def _groups_after(digits: str, ends: list[int], last: int) -> list[str]:
    """The groups (at most `_MOST_GROUPS_TYPED_AFTER`) that follow group `last`."""
    return [
        digits[ends[group - 1] : ends[group]]
        for group in range(last + 1, min(last + 1 + _MOST_GROUPS_TYPED_AFTER, len(ends)))
    ]


def _cvc_and_expiry_taken(number: str, typed: list[str], *, cvc: bool = True) -> int:
    """How many of the groups `typed` right after the card number `number` are its CVC and
    expiry (`_cvc_and_expiry_read`)."""
    return len(_cvc_and_expiry_read(number, typed, cvc=cvc))


def _cvc_and_expiry_read(
    number: str,
    typed: list[str],
    *,
    cvc: bool = True,
    slashed: Collection[int] = (),
    alone: Collection[int] = (),
) -> tuple[str, ...]:
    """What each of the most groups `typed` right after the card number `number` that follow
    each other from the first are: its CVC (3 digits, 4 for an Amex; none when not `cvc`) or
    its expiry (`[cvc]`, `[expiry]`), in either order, each at most once. The expiry is the
    month (01-12) alone, with the year in the same group (its last two digits) or the next
    (its last two, or 20YY), or a year 20YY. (`4242424242424242 5000` reads as a card number,
    then something else.) The groups `slashed` were written with a slash (an expiry, never a
    CVC); those `alone`, fields of 4 digits, are an expiry only next to a CVC: before it, or
    after it when they read MMYY (`_typed_after_masked`). Where two readings take as many
    groups, the expiry is read first, as forms ask for it. At most 3 groups (of at most 6),
    so constant time."""
    amex = len(number) == 15 and number.startswith(_FOUR_DIGIT_CVC_PREFIXES)

    def is_cvc(at: int) -> bool:
        return at not in slashed and (len(typed[at]) == 3 or (amex and len(typed[at]) == 4))

    def expiry_sizes(at: int, cvc_left: bool, after_cvc: bool) -> tuple[int, ...]:
        group = typed[at]  # (how many groups an expiry at `at` takes)
        if len(group) == 2 and "01" <= group <= "12":
            year = typed[at + 1] if at + 1 < len(typed) else ""
            return (1, 2) if len(year) == 2 or (len(year) == 4 and year[:2] == "20") else (1,)
        month = "01" <= group[:2] <= "12"
        if len(group) != 4 or not (month or group[:2] == "20"):
            return ()
        if at in alone and not (
            (cvc_left and at + 1 < len(typed) and is_cvc(at + 1)) or (after_cvc and month)
        ):
            return ()
        return (1,)

    def most_from(at: int, cvc_left: bool, expiry_left: bool, after_cvc: bool) -> tuple[str, ...]:
        if at == len(typed):
            return ()
        most: tuple[str, ...] = ()
        for size in expiry_sizes(at, cvc_left, after_cvc) if expiry_left else ():
            read = (_EXPIRY_MASK,) * size + most_from(at + size, cvc_left, False, False)
            most = max(most, read, key=len)
        if cvc_left and is_cvc(at):
            read = (_CVC_MASK, *most_from(at + 1, False, expiry_left, True))
            most = max(most, read, key=len)
        return most

    return most_from(0, cvc, True, False)


def _luhn_check_of_stretches(digits: str) -> Callable[[int, int], bool]:
    """Whether the stretch `digits[start:end]` passes the Luhn check, in constant time, from
    prefix sums: which digits a stretch doubles (every other one, leftwards from its
    next-to-last) depends only on the parity of where it ends, so one sum for each parity
    serves every stretch."""
    values = [ord(char) - 48 for char in digits]
    doubled = [_LUHN_DOUBLED[value] for value in values]
    # A stretch ending before an even index (its last digit at an odd one) doubles the digits
    # at even indexes, and one ending before an odd index those at odd indexes.
    doubling_even = [values[i] if i % 2 else doubled[i] for i in range(len(values))]
    doubling_odd = [doubled[i] if i % 2 else values[i] for i in range(len(values))]
    by_parity = (
        [0, *itertools.accumulate(doubling_even)],
        [0, *itertools.accumulate(doubling_odd)],
    )

    def passes(start: int, end: int) -> bool:
        sums = by_parity[end % 2]
        return (sums[end] - sums[start]) % 10 == 0

    return passes


# A security code written after its name, as a form body, JSON, a repr or a sentence gives it:
# `cvc=123`, `card[cvc]=123`, `card%5Bcvc%5D=123`, `"cvc": "123"`, `CVV2: 1234`, `security code
# 123`, `cvc #123`, `cvc-123`, `cvc(123)`. The name must start a word or follow an escape (`%5B`, an
# encoded `[`), so that `acid 123` keeps its number; what follows it is separators (`cvc_check:
# pass`, `cvc_check=1` are no codes) and at most two of a few words that say the code comes next
# (`cvc is 123`, `security code was 1234`, `cvc number: 123`; not any word: `the cvc was wrong; 123
# retries` keeps its count), then the code, 3 or 4 digits and no more (`cvc 12345` is something
# else). Every name starts with `c` or `s`, matched first, and the letter after it is checked next,
# before the lookbehinds that check it starts a word: a pattern opening with a set of characters is
# scanned for in C, and most `c`s and `s`s in a text fail at the next letter: nearly three times as
# fast on a log text as a pattern opening with the lookbehinds. Separators, those words and digits
# share no character, so a match is tried in time linear in the separators, whatever the text.
_SECURITY_CODE_NAME: Final = (
    r"[cs](?=[aveis])(?:(?<![a-z0-9_].)|(?<=%[0-9a-f]{2}.))"
    r"(?:(?<=c)(?:ard[ _-]?(?:cvc2?|cvv2?|csc|cid)|vc2?|vv2?|sc|id)"
    r"|(?<=s)ecurity(?:[ _+-]|%20)?code)"
)
_SECURITY_CODE_SEPARATOR: Final = r"""(?:[\s=:"'\\\]#(-]|%(?:2[02378]|3[ad]|5d))"""
_SECURITY_CODE_FOLLOWS: Final = (
    rf"(?:(?:is|was|number|num|no|code|value|entered|provided|given){_SECURITY_CODE_SEPARATOR}+)"
    r"{0,2}"
)
_LABELLED_SECURITY_CODE: Final = re.compile(
    rf"({_SECURITY_CODE_NAME}{_SECURITY_CODE_SEPARATOR}+{_SECURITY_CODE_FOLLOWS})"
    r"[0-9]{3,4}(?![0-9])",
    re.IGNORECASE | re.ASCII,
)


def mask_labelled_security_codes(text: str) -> str:
    """`text` with each security code written after its name replaced, the name kept:
    `cvc=[cvc]`, with or without a card number near it (`mask_card_numbers` masks one typed
    right after a card number with it)."""
    return _labelled_security_codes_masked(text, _as_labels_read(text))[0]


def _labelled_security_codes_masked(text: str, read: str) -> tuple[str, str]:
    """`text` and `read` (`_as_labels_read`) with the security codes that `read` has after
    their names masked."""
    # Every name holds one of these: a text with none (most log lines) is told apart by
    # substring searches, many times faster than the regex's scan.
    lowered = read.lower()
    if not ("cv" in lowered or "csc" in lowered or "cid" in lowered or "security" in lowered):
        return text, read
    edits = [
        (code.end(1), code.end(), _CVC_MASK) for code in _LABELLED_SECURITY_CODE.finditer(read)
    ]
    return _edited(text, edits), _edited(read, edits)


# A CVC or expiry typed after a card as a field is masked `[cvc]` or `[expiry]` in its place
# (`_typed_after_masked`), right after a separator (any spaces and tabs, then maybe a quote,
# between) and before the next: that mask is no name for the field after it
# (`[card ****4242]\t  [cvc]\t  1999`, `[card ****4242],[expiry],[expiry],1230` keep their
# amounts), as `card[cvc]=123`, `{'[cvc]': '123'}` or `fields: [cvc]\t123` are. Told by the text
# before and after it, not by which pass wrote it, so that a text masked twice (a refusal
# masked, then logged) comes out as it did the first time. What stands before it has no bound
# on its length, which no lookbehind can check (`_stands_as_a_field` does).
_FIELDS_MASK: Final = re.compile(r"\[(?:cvc|expiry)\](?=[\"']? *[,;|\t])", re.IGNORECASE)


def _as_labels_read(text: str) -> str:
    """`text` as the passes that mask a CVC or an expiry after its name read it: each mask of
    a field (`_FIELDS_MASK`) with its name's letters replaced by `x`s, so that it is a word but
    no name (`[card ****4242],  [xxxxxx],  [xxxxxx],  1230`). Of the same length as `text`,
    for what those passes find in it to be masked at the same places in `text`."""
    if "[" not in text:
        return text

    def unnamed(mask: re.Match[str]) -> str:
        if not _stands_as_a_field(text, mask.start()):
            return mask.group(0)
        return f"[{'x' * (len(mask.group(0)) - 2)}]"

    return _FIELDS_MASK.sub(unnamed, text)


def _stands_as_a_field(text: str, at: int) -> bool:
    """Whether a separator stands before `at` in `text`, with only spaces and tabs and maybe a
    quote between. In time linear in those spaces and tabs (which stand before no other
    mask)."""
    before = at - 1 if at > 0 and text[at - 1] in "\"'" else at
    padded = before
    while before > 0 and text[before - 1] in " \t":
        before -= 1
    return (before > 0 and text[before - 1] in ",;|") or "\t" in text[before:padded]


def _edited(text: str, edits: Iterable[tuple[int, int, str]]) -> str:
    """`text` with each of `edits` (start, end, what replaces what stands there), in order
    and apart from each other, made."""
    pieces, kept_from = [], 0
    for start, end, replacement in edits:
        pieces += [text[kept_from:start], replacement]
        kept_from = end
    pieces.append(text[kept_from:])
    return "".join(pieces)


# An expiry written after its name near a card number, as a sentence or a form gives it:
# `4242424242424242 exp 12/2030`, `card 4242424242424242, expiry: 12/30`, `... expires on
# 1230`, `exp 12/30 4242424242424242`, with a few words between them too (`exp 12/30 cvc 123
# card 4242424242424242`, `4242424242424242 for J Doe, exp 12/30`), and 3 or 4 digits typed
# right after it, the card's CVC (`exp 12/30 123`, `exp 12/30/123`). Found after the card's
# mask (`mask_card_numbers` masks the card first), so that an expiry with no card near it is
# kept (`exp 12/30` alone, `card[exp_month]=12`): it is no secret on its own, and an
# ordinary date may be written so. Between the card and the expiry stand at most 4 words
# (letters only, or a security code's name with its masked code) and separators, never a
# number nor another card's mask: `4242424242424242 then 12/30/2026 exp 12/30` has a date
# between them, which the expiry may be about as well. The name must be a word of its own
# (`expected 12/30` is none), and starts with `e` or `v`, matched first, as
# `_SECURITY_CODE_NAME` is. Words are taken whole (`++`) and separators share no character
# with them, so a match is tried in time linear in the separators.
_CARD_MASK: Final = r"\[card \*{4}[0-9]{4}\]"
_BETWEEN_CARD_AND_NAME: Final = r"""[\s,;:|&()\[\]{}"'=/-]*"""
_MOST_WORDS_BETWEEN_CARD_AND_EXPIRY: Final = 4
_WORDS_BETWEEN_CARD_AND_EXPIRY: Final = (
    rf"(?:{_BETWEEN_CARD_AND_NAME}"
    rf"(?:{_SECURITY_CODE_NAME}{_SECURITY_CODE_SEPARATOR}+{_SECURITY_CODE_FOLLOWS}\[cvc\]"
    rf"|[a-z]++(?![0-9_])))"
    rf"{{0,{_MOST_WORDS_BETWEEN_CARD_AND_EXPIRY}}}{_BETWEEN_CARD_AND_NAME}"
)
_EXPIRY_NAME: Final = (
    r"[ev](?<![a-z0-9_].)"
    r"(?:(?<=e)xp(?:iry|ires|iration)?\.?(?:[ _-]?date)?|(?<=v)alid[ _-]?(?:thru|through))"
    r"(?![a-z])"
)
_LABELLED_EXPIRY: Final = (
    rf"(?P<name>{_EXPIRY_NAME}"
    rf"(?:{_SECURITY_CODE_SEPARATOR}|[,.])*"
    rf"(?:(?:is|was|on){_SECURITY_CODE_SEPARATOR}+)?)"
    r"(?:(?:0?[1-9]|1[0-2])(?: */ *| *- *| +)(?:20)?[0-9]{2}|(?:0[1-9]|1[0-2])(?:20)?[0-9]{2})"
    r"(?![0-9])"
    r"(?:(?P<before_cvc> *[/,-] *| +)(?P<cvc>[0-9]{3,4})(?![0-9]))?"
)
_LABELLED_EXPIRY_AFTER_CARD: Final = re.compile(
    rf"(?P<card>{_CARD_MASK}{_WORDS_BETWEEN_CARD_AND_EXPIRY}){_LABELLED_EXPIRY}",
    re.IGNORECASE | re.ASCII,
)
_LABELLED_EXPIRY_BEFORE_CARD: Final = re.compile(
    rf"(?P<card>){_LABELLED_EXPIRY}(?={_WORDS_BETWEEN_CARD_AND_EXPIRY}{_CARD_MASK})",
    re.IGNORECASE | re.ASCII,
)


def mask_labelled_expiries_near_cards(text: str) -> str:
    """`text` with each expiry written after its name near a masked card number (`[card
    ****4242] exp 12/30`, `exp 12/30 [card ****4242]`) replaced, the name kept (`exp
    [expiry]`), and the CVC typed right after it too (`exp [expiry] [cvc]`)."""
    return _labelled_expiries_masked(text, _as_labels_read(text))


def _labelled_expiries_masked(text: str, read: str) -> str:
    """`text` with the expiries that `read` (`_as_labels_read`) has after their names near a
    masked card number masked, with the CVC typed right after them."""
    if "[card ****" not in read:
        return text
    lowered = read.lower()
    if "exp" not in lowered and "valid" not in lowered:
        return text
    for labelled in (_LABELLED_EXPIRY_AFTER_CARD, _LABELLED_EXPIRY_BEFORE_CARD):
        edits = list(itertools.chain.from_iterable(map(_expiry_edits, labelled.finditer(read))))
        text, read = _edited(text, edits), _edited(read, edits)
    return text


def _expiry_edits(match: re.Match[str]) -> list[tuple[int, int, str]]:
    """Where an expiry after its name (`_LABELLED_EXPIRY`), and the CVC after it, stand in the
    text, and their masks."""
    if match.group("cvc") is None:
        return [(match.end("name"), match.end(), _EXPIRY_MASK)]
    return [
        (match.end("name"), match.start("before_cvc"), _EXPIRY_MASK),
        (match.start("cvc"), match.end("cvc"), _CVC_MASK),
    ]


_MASK: Final = "********"
_BOUNDARY: Final = r"(?<![A-Za-z0-9_])"
_API_KEY: Final = re.compile(_BOUNDARY + r"((?:sk|rk)_(?:live|test)_)([A-Za-z0-9]+)")
_SIGNING_SECRET: Final = re.compile(_BOUNDARY + r"(whsec_)[A-Za-z0-9+/=]+")
_CLIENT_SECRET: Final = re.compile(_BOUNDARY + r"((?:pi|seti)_[A-Za-z0-9]+_secret_)[A-Za-z0-9]+")


def mask_secrets(text: str) -> str:
    """`text` with its API keys (but publishable ones), webhook signing secrets and client
    secrets masked. Keys keep their last four characters, as Stripe echoes a key."""
    text = _API_KEY.sub(lambda m: f"{m.group(1)}{_MASK}{m.group(2)[-4:]}", text)
    text = _SIGNING_SECRET.sub(lambda m: f"{m.group(1)}{_MASK}", text)
    return _CLIENT_SECRET.sub(lambda m: f"{m.group(1)}{_MASK}", text)


# user:password@ (or user@) after a URL's scheme.
_URL_CREDENTIALS: Final = re.compile(r"(?<=://)[^/@\s]+@")
# A database URL's, up to the last `@` before the next space: its password may hold `/` or `#`
# unencoded, which SQLAlchemy accepts (and masking to the last `@` errs on the safe side).
_DATABASE_URL_CREDENTIALS: Final = re.compile(r"\b(postgres(?:ql)?(?:\+psycopg)?://)\S*@")


def mask_url_credentials(text: str) -> str:
    """`text` with the credentials of each URL in it masked: `postgresql://***@db/remit`."""
    text = _DATABASE_URL_CREDENTIALS.sub(r"\1***@", text)
    return _URL_CREDENTIALS.sub("***@", text)


def mask_sensitive(text: str) -> str:
    """`text` with card numbers, secrets and URL credentials masked: what the log filter
    applies."""
    return mask_url_credentials(mask_secrets(mask_card_numbers(text)))


class SensitiveDataMaskingFilter(logging.Filter):
    """Masks card numbers and secrets in a record's message, traceback and stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_sensitive(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_sensitive(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_sensitive(record.stack_info)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_masked_excepthook() -> None:
    """Print an exception nothing caught (in the main thread or another) masked as the log
    is: Python's own hooks write its traceback, whose message and locals' reprs may quote a
    card number or a secret, straight to stderr, past the log's filter."""
    import threading

    def masked_excepthook(
        kind: type[BaseException], error: BaseException, trace: TracebackType | None
    ) -> None:
        _write_masked(traceback.format_exception(kind, error, trace))

    def masked_thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return  # as Python's own hook: a thread's SystemExit is no failure
        name = args.thread.name if args.thread is not None else "a thread"
        lines = traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)
        _write_masked([f"Exception in thread {name}:\n", *lines])

    sys.excepthook = masked_excepthook
    threading.excepthook = masked_thread_excepthook


def _write_masked(lines: list[str]) -> None:
    stream = sys.stderr
    if stream is None:  # (no stderr at all: nothing to write to)
        return
    stream.write(mask_sensitive("".join(lines)))
    stream.flush()


def level_from_env(environ: Mapping[str, str]) -> int:
    """REMIT_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR), INFO when unset or not a level."""
    level = logging.getLevelName(environ.get("REMIT_LOG_LEVEL", "INFO").strip().upper())
    return level if isinstance(level, int) else logging.INFO


def configure_logging(process: str, level: int | None = None) -> None:
    """Send every record of this process to stderr, tagged with the process name, masked;
    records from `level` up (by default REMIT_LOG_LEVEL's)."""
    if level is None:
        level = level_from_env(os.environ)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(SensitiveDataMaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


# Loggers whose records below WARNING are left out of a process's log.
_NOISY: Final = ("uvicorn.access", "alembic", "pgserver")


@contextlib.contextmanager
def configuration_kept() -> Iterator[None]:
    """Put back, on leaving, whatever `configure_logging` changed inside: the root logger's
    handlers and level, and the noisy loggers' levels. For `remit.cli.main` run in a process
    that goes on after it (a test, a program embedding it): the handler it installs writes to
    the `sys.stderr` of the moment, which may be closed once it returns (pytest closes each
    test's captured stream), and every record logged afterwards would fail to write to it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in _NOISY}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, kept in levels.items():
            logging.getLogger(name).setLevel(kept)

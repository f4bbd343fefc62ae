"""Stripe Radar's rule language: parsing when a rule is saved, and compiled evaluation.

    Block if :risk_score: > 85
    Request 3D Secure if :amount_in_usd: > 500
    Allow if :card_fingerprint: in @trusted
    Review if :card_country: != :ip_country: and not :is_3d_secure_authenticated:

A predicate is conditions joined by `and`, `or`, `not` and parentheses. A condition compares
an attribute with a literal or another attribute (`=`, `!=`, `<`, `<=`, `>`, `>=`), tests
membership (`in` / `not in`) of a literal set `('US', 'CA')` or a value list `@alias`, or is
a boolean attribute alone. Keywords are case-insensitive; strings compare case-insensitively
(except against a case-sensitive value list). An IP address compared with `:ip_address:` is
compared in its canonical spelling, as the attribute holds it (`remit.radar.ip_addresses`).

Everything that can be wrong with a rule is found by `parse_rule` / `parse_predicate`: unknown
attributes, type mismatches, syntax. The compiled predicate never raises, and a list it is not
given is empty (a stored rule naming a list that is gone, or of the wrong item type, is not run
at all: remit.radar.validity).

A condition on an attribute with no value is unknown, not false, and stays unknown under `not`:
`not :ip_country: in @risky` is no more true of a payment without an IP country than
`:ip_country: not in @risky` is (else an allow rule written so would allow every such payment,
overriding the block rules). `and` and `or` follow three-valued logic (unknown `or` true is
true, unknown `and` false is false), and a predicate matches only when it is known to be true.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Final

from remit.radar.attributes import ATTRIBUTES, Kind
from remit.radar.ip_addresses import ZONE_REFUSED, canonical_ip, zoned

Signals = Mapping[str, object]


@dataclass(frozen=True)
class ListValues:
    values: frozenset[str]
    case_sensitive: bool = False

    def contains(self, value: str) -> bool:
        return (value if self.case_sensitive else value.casefold()) in self.values


Lists = Mapping[str, ListValues]
CompiledPredicate = Callable[[Signals, Lists], bool]
# A part of a predicate: True, False, or None when it is unknown (it names a missing value).
_Part = Callable[[Signals, Lists], bool | None]

ACTIONS: Final = {
    "allow": "allow",
    "block": "block",
    "review": "review",
    "request 3d secure": "request_three_d_secure",
}
MAX_PREDICATE_LENGTH: Final = 1000
# Parentheses and `not`s inside one another. The parser and the compiled predicate recurse once
# per level: a short rule of a few hundred nested parentheses would exhaust Python's stack.
MAX_NESTING: Final = 32


class RuleSyntaxError(ValueError):
    """A rule that cannot run; the message says where and why."""


@dataclass(frozen=True)
class ParsedPredicate:
    text: str
    run: CompiledPredicate
    # @aliases it refers to, so saving can check they exist and deleting a list can refuse.
    lists: frozenset[str]
    attributes: frozenset[str]
    # For each @alias, the attributes tested against it (`:email: in @vips`), so saving can
    # check that the list holds that kind of value.
    list_attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedRule:
    action: str
    predicate: ParsedPredicate


_RULE = re.compile(r"^\s*(allow|block|review|request\s+3d\s+secure)\s+if\s+(.+)$", re.I | re.S)
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<attr>:[a-z0-9_]+:)
      | (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<list>@[A-Za-z0-9_\-]+)
      | (?P<op>!=|>=|<=|=|>|<)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z]+)
    )""",
    re.X,
)
_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "true", "false"})


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    at: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    stripped_end = len(text.rstrip())
    while position < stripped_end:
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise RuleSyntaxError(f"Unexpected character {text[position:].strip()[:1]!r}.")
        kind = match.lastgroup
        assert kind is not None
        value = match.group(kind)
        if kind == "word" and value.lower() not in _KEYWORDS:
            raise RuleSyntaxError(
                f"Unexpected word {value!r}; attributes are written :name: and strings 'so'."
            )
        tokens.append(_Token(kind, value.lower() if kind == "word" else value, match.start(kind)))
        position = match.end()
    return tokens


@dataclass(frozen=True)
class Operand:
    """How to read an operand's value from the signals, its kind, and the attribute it names
    (None for a literal, whose `read` ignores the signals)."""

    read: Callable[[Signals], object]
    kind: Kind
    attribute: str | None = None
    # The token of a string literal, where the text spells it (`replace_compared_strings`).
    string: _Token | None = None


# Attributes whose values have one spelling (remit.radar.ip_addresses): a literal compared with
# one is given that spelling when the rule is parsed, or `'::ffff:203.0.113.5'` would never
# equal the payment's 203.0.113.5 (and its `!=` would match it). Parsing is also how a stored
# rule is compiled for a payment, so rules saved before need no rewriting.
_CANONICAL: Final[dict[str, Callable[[str], str | None]]] = {"ip_address": canonical_ip}


def _compared(side: Operand, other: Operand) -> Callable[[Signals], object]:
    """How to read `side` when it is compared with `other`."""
    canonical = None if other.attribute is None else _CANONICAL.get(other.attribute)
    if canonical is None or side.attribute is not None or side.kind is not Kind.STRING:
        return side.read
    written = side.read({})
    assert isinstance(written, str)
    spelled = canonical(written)
    if spelled is None:
        why = f" ({ZONE_REFUSED})" if zoned(written) else ""
        raise RuleSyntaxError(
            f"{written!r} is not an IP address{why}; :{other.attribute}: is compared with "
            "addresses such as '203.0.113.5' or '2001:db8::1'."
        )
    return lambda _s: spelled


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _normal(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def _number(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise RuleSyntaxError(f"{text!r} is not a number.") from None


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0
        self.lists: set[str] = set()
        self.attributes: set[str] = set()
        self.list_attributes: dict[str, set[str]] = {}
        # Each string literal compared with an attribute (by =, != or in a set), with it.
        self.compared_strings: list[tuple[str, _Token]] = []
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise RuleSyntaxError("The rule ends too early.")
        self.index += 1
        return token

    def accept_word(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text == word:
            self.index += 1
            return True
        return False

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise RuleSyntaxError(f"Expected {text!r} but found {token.text!r}.")

    def parse(self) -> CompiledPredicate:
        if not self.tokens:
            raise RuleSyntaxError("The predicate is empty.")
        run = self.disjunction()
        leftover = self.peek()
        if leftover is not None:
            raise RuleSyntaxError(f"Unexpected {leftover.text!r} after a complete condition.")
        return lambda s, lists: run(s, lists) is True

    def disjunction(self) -> _Part:
        parts = [self.conjunction()]
        while self.accept_word("or"):
            parts.append(self.conjunction())
        if len(parts) == 1:
            return parts[0]
        return lambda s, lists: _any(parts, s, lists)

    def conjunction(self) -> _Part:
        parts = [self.negation()]
        while self.accept_word("and"):
            parts.append(self.negation())
        if len(parts) == 1:
            return parts[0]
        return lambda s, lists: _all(parts, s, lists)

    def negation(self) -> _Part:
        if self.accept_word("not"):
            self.enter()
            inner = self.negation()
            self.depth -= 1
            return lambda s, lists: _not(inner(s, lists))
        token = self.peek()
        if token is not None and token.text == "(":
            self.take()
            self.enter()
            inner = self.disjunction()
            self.expect(")")
            self.depth -= 1
            return inner
        return self.condition()

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise RuleSyntaxError(
                f"The rule nests parentheses and nots more than {MAX_NESTING} deep."
            )

    def operand(self) -> Operand:
        token = self.take()
        if token.kind == "attr":
            name = token.text[1:-1]
            kind = ATTRIBUTES.get(name)
            if kind is None:
                raise RuleSyntaxError(f"Unknown attribute :{name}:.")
            self.attributes.add(name)
            return Operand(lambda s: s.get(name), kind, name)
        if token.kind == "string":
            text = _unquote(token.text)
            return Operand(lambda _s: text, Kind.STRING, string=token)
        if token.kind == "number":
            number = _number(token.text)
            return Operand(lambda _s: number, Kind.NUMBER)
        if token.kind == "word" and token.text in ("true", "false"):
            flag = token.text == "true"
            return Operand(lambda _s: flag, Kind.BOOLEAN)
        raise RuleSyntaxError(f"Expected an attribute or a value but found {token.text!r}.")

    def condition(self) -> _Part:
        left = self.operand()
        kind, name = left.kind, left.attribute
        token = self.peek()
        if token is not None and token.kind == "op":
            self.take()
            return self.comparison(left, token.text)
        negated = False
        if token is not None and token.text == "not":
            after = self.tokens[self.index + 1] if self.index + 1 < len(self.tokens) else None
            if after is not None and after.text == "in":
                self.take()
                negated = True
        if self.accept_word("in"):
            member = self.membership(left)
            if negated:
                return lambda s, lists: _not(member(s, lists))
            return member
        if kind is not Kind.BOOLEAN or name is None:
            raise RuleSyntaxError(
                "A condition needs a comparison (=, !=, <, >, <=, >=, in) unless it is a "
                "boolean attribute."
            )
        return lambda s, _lists: _known(s.get(name), lambda value: value is True)

    def comparison(self, left_operand: Operand, op: str) -> _Part:
        right_operand = self.operand()
        kind, right_kind = left_operand.kind, right_operand.kind
        if right_kind is not kind:
            raise RuleSyntaxError(f"Cannot compare a {kind.value} with a {right_kind.value}.")
        if kind is not Kind.NUMBER and op not in ("=", "!="):
            raise RuleSyntaxError(f"{op} compares numbers only; use = or != for a {kind.value}.")
        test = _COMPARE[op]
        self.compare_string(left_operand, right_operand)
        self.compare_string(right_operand, left_operand)
        left = _compared(left_operand, right_operand)
        right = _compared(right_operand, left_operand)

        def run(s: Signals, _lists: Lists) -> bool | None:
            a, b = left(s), right(s)
            if a is None or b is None:
                return None
            return test(_normal(a), _normal(b))

        return run

    def membership(self, tested: Operand) -> _Part:
        read, kind, name = tested.read, tested.kind, tested.attribute
        if kind is Kind.BOOLEAN:
            raise RuleSyntaxError("A boolean cannot be tested with in.")
        token = self.take()
        if token.kind == "list":
            if kind is not Kind.STRING:
                # Value lists hold strings; a number is never looked up in one, so `in` would
                # never match and `not in` would match every payment.
                raise RuleSyntaxError(
                    f"A {kind.value} cannot be tested against a value list; value lists hold "
                    "strings (a number can be tested with in against a set such as (1, 2))."
                )
            alias = token.text[1:]
            self.lists.add(alias)
            if name is not None:
                self.list_attributes.setdefault(alias, set()).add(name)

            def in_list(s: Signals, lists: Lists) -> bool | None:
                value, values = read(s), lists.get(alias)
                if value is None:
                    return None
                return values is not None and values.contains(str(value))

            return in_list
        if token.text != "(":
            raise RuleSyntaxError("in takes a value list (@alias) or a set ('a', 'b').")
        members: set[object] = set()
        while True:
            item = self.operand()
            if item.attribute is not None or item.kind is not kind:
                raise RuleSyntaxError(f"A set of {kind.value} values holds {kind.value} literals.")
            members.add(_normal(_compared(item, tested)({})))
            self.compare_string(tested, item)
            closing = self.take()
            if closing.text == ")":
                break
            if closing.text != ",":
                raise RuleSyntaxError(f"Expected ',' or ')' but found {closing.text!r}.")
        frozen = frozenset(members)

        def in_set(s: Signals, _lists: Lists) -> bool | None:
            return _known(read(s), lambda value: _normal(value) in frozen)

        return in_set

    def compare_string(self, tested: Operand, literal: Operand) -> None:
        if tested.attribute is not None and literal.string is not None:
            self.compared_strings.append((tested.attribute, literal.string))


def _known(value: object, test: Callable[[object], bool]) -> bool | None:
    """`test` of a value, unknown when there is none."""
    return None if value is None else test(value)


def _not(truth: bool | None) -> bool | None:
    # Unknown stays unknown: a payment without an IP country is not "not in" a list either.
    return None if truth is None else not truth


def _any(parts: list[_Part], s: Signals, lists: Lists) -> bool | None:
    unknown = False
    for part in parts:
        truth = part(s, lists)
        if truth is True:
            return True
        unknown = unknown or truth is None
    return None if unknown else False


def _all(parts: list[_Part], s: Signals, lists: Lists) -> bool | None:
    unknown = False
    for part in parts:
        truth = part(s, lists)
        if truth is False:
            return False
        unknown = unknown or truth is None
    return None if unknown else True


_COMPARE: Final[dict[str, Callable[[object, object], bool]]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,  # type: ignore[operator]
    "<": lambda a, b: a < b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
}


def parse_predicate(text: str) -> ParsedPredicate:
    stripped = text.strip()
    if len(stripped) > MAX_PREDICATE_LENGTH:
        raise RuleSyntaxError(f"A predicate can be at most {MAX_PREDICATE_LENGTH} characters.")
    parser = _Parser(stripped)
    run = parser.parse()
    return ParsedPredicate(
        stripped,
        run,
        frozenset(parser.lists),
        frozenset(parser.attributes),
        {alias: frozenset(names) for alias, names in parser.list_attributes.items()},
    )


def _quoted(value: str) -> str:
    return "'" + re.sub(r"(['\\])", r"\\\1", value) + "'"


def replace_compared_strings(text: str, attribute: str, replaced: Mapping[str, str]) -> str:
    """The predicate `text` with each string literal compared with `:attribute:` (by `=`, `!=`
    or in a set tested with `in`) that `replaced` maps (old to new, matched as the rule compares
    them: casefolded) written as the new value instead; every other character as it was. The
    same string elsewhere (compared with another attribute, a list's alias) is left as it is.
    A predicate that does not parse raises RuleSyntaxError."""
    stripped = text.strip()
    parser = _Parser(stripped)
    parser.parse()
    wanted = {old.casefold(): new for old, new in replaced.items()}
    pieces: list[str] = []
    kept = 0
    for name, token in sorted(parser.compared_strings, key=lambda pair: pair[1].at):
        new = wanted.get(_unquote(token.text).casefold())
        if name != attribute or new is None:
            continue
        pieces += [stripped[kept : token.at], _quoted(new)]
        kept = token.at + len(token.text)
    return "".join(pieces) + stripped[kept:]


def parse_rule(text: str) -> ParsedRule:
    """`Block if :risk_score: > 85` into its action and compiled predicate."""
    match = _RULE.match(text)
    if match is None:
        raise RuleSyntaxError(
            "A rule reads '<Allow|Block|Review|Request 3D Secure> if <condition>'."
        )
    action = ACTIONS[" ".join(match.group(1).lower().split())]
    return ParsedRule(action, parse_predicate(match.group(2)))

"""A response's snippet is masked before it is cut: a card number straddling the cut is
recognised whole, and what a cut leaves of a longer number is masked too."""

from remit.webhooks.sender import SNIPPET_BYTES, SNIPPET_LOOKAHEAD_BYTES, masked_snippet

CARD = "4111111111111111"  # Luhn-valid


def read(body: str) -> tuple[bytes, bool]:
    """What the sender reads of `body`, and whether the body may go on."""
    wanted = SNIPPET_BYTES + SNIPPET_LOOKAHEAD_BYTES
    raw = body.encode("utf-8")[:wanted]
    return raw, len(raw) == wanted


def test_a_card_number_straddling_the_cut_is_masked_whole() -> None:
    raw, more = read("x" * (SNIPPET_BYTES - 7) + CARD + "y" * 200)
    snippet = masked_snippet(raw, SNIPPET_BYTES, more=more)
    assert len(snippet.encode("utf-8")) == SNIPPET_BYTES
    assert "1111111" not in snippet
    assert snippet.startswith("x" * (SNIPPET_BYTES - 7) + "[card *")


def test_a_card_number_with_separators_straddling_the_cut_is_masked_whole() -> None:
    spaced = "4111 1111 1111 1111"
    raw, more = read("x" * (SNIPPET_BYTES - 10) + spaced + "y" * 200)
    snippet = masked_snippet(raw, SNIPPET_BYTES, more=more)
    assert "1111 1111" not in snippet
    assert "[card *" in snippet


def test_what_the_cut_leaves_of_a_longer_digit_run_is_masked() -> None:
    """A run the card check cannot recognise (too long, or not Luhn-valid), cut mid-way."""
    raw, more = read("x" * (SNIPPET_BYTES - 9) + "1234567890123456789012345" + "y" * 200)
    snippet = masked_snippet(raw, SNIPPET_BYTES, more=more)
    assert snippet == "x" * (SNIPPET_BYTES - 9) + "[cut ****]"


def test_the_end_of_a_read_brought_into_the_snippet_by_masking_is_masked() -> None:
    """A long secret masked shortens the text below the limit: the end of what was read, maybe
    the start of a card number, is then the snippet's end."""
    secret = "sk_live_" + "a" * 300
    body = secret + " " + "x" * (SNIPPET_BYTES + SNIPPET_LOOKAHEAD_BYTES - len(secret) - 9)
    raw, more = read(body + CARD + "y" * 200)
    assert more
    snippet = masked_snippet(raw, SNIPPET_BYTES, more=more)
    assert len(snippet.encode("utf-8")) < SNIPPET_BYTES
    assert "41111111" not in snippet
    assert snippet.endswith("x[cut ****]")


def test_a_short_body_is_kept_as_it_is_but_masked() -> None:
    assert masked_snippet(b"order 12345678 ok", SNIPPET_BYTES, more=False) == "order 12345678 ok"
    assert masked_snippet(CARD.encode(), SNIPPET_BYTES, more=False) == "[card ****1111]"


def test_the_cut_falls_on_a_character_boundary() -> None:
    raw, more = read("x" * (SNIPPET_BYTES - 1) + "\u00e9" * 100)
    snippet = masked_snippet(raw, SNIPPET_BYTES, more=more)
    assert snippet == "x" * (SNIPPET_BYTES - 1)


def test_a_read_that_ended_before_the_body_did_has_its_trailing_digits_masked() -> None:
    """One read hands back what has come so far, maybe less than the limit."""
    snippet = masked_snippet(b"x" * 100 + b"41111111", SNIPPET_BYTES, more=True)
    assert snippet == "x" * 100 + "[cut ****]"


def test_a_nul_in_the_body_reads_as_the_replacement_character() -> None:
    """No stored text may hold a NUL, and every gzip stream has some."""
    assert masked_snippet(b"ok\x00done", SNIPPET_BYTES, more=False) == "ok\ufffddone"


def test_a_nul_is_replaced_before_the_snippet_is_cut() -> None:
    """Each NUL's replacement takes three bytes: the snippet still ends within the limit."""
    raw, more = read("\x00" * (SNIPPET_BYTES + 50))
    snippet = masked_snippet(raw, SNIPPET_BYTES, more=more)
    assert "\x00" not in snippet
    assert len(snippet.encode("utf-8")) <= SNIPPET_BYTES
    assert set(snippet) == {"\ufffd"}


def test_what_the_cut_leaves_of_a_longer_run_spaced_out_is_masked() -> None:
    """However many spaces or dashes stand between its groups, as the vault accepts a number
    typed. (Ones: no stretch of the run is a card the masking would recognise first.)"""
    for spaced in ("1111  1111  1111  1111  1111", "1111 - 1111 - 1111 - 1111 - 1111"):
        raw, more = read("x" * (SNIPPET_BYTES - 14) + spaced + "y" * 200)
        snippet = masked_snippet(raw, SNIPPET_BYTES, more=more)
        assert snippet == "x" * (SNIPPET_BYTES - 14) + "[cut ****]", spaced


def test_a_short_run_of_digits_at_the_cut_is_kept() -> None:
    raw, more = read("x" * (SNIPPET_BYTES - 8) + "12  3456 and more" + "y" * 200)
    assert masked_snippet(raw, SNIPPET_BYTES, more=more) == "x" * (SNIPPET_BYTES - 8) + "12  3456"


def test_long_numbers_and_dates_in_a_response_are_kept_as_they_are() -> None:
    """Only card numbers are masked: a merchant reads the rest of the snippet as sent."""
    body = (
        b'{"order":"45678901234567890123","slots":"2026-12-01 2026-12-02 2026-12-03 '
        b'2026-12-04 2026-12-05 2026-12-06 2026-12-07"}'
    )
    assert masked_snippet(body, SNIPPET_BYTES, more=False) == body.decode()

"""Text from outside is stored whatever characters it holds: those PostgreSQL's text cannot
hold read as U+FFFD."""

from remit.core.stored_text import storable_text


def test_a_nul_reads_as_the_replacement_character() -> None:
    assert storable_text("ok\x00done\x00") == "ok\ufffddone\ufffd"


def test_a_lone_surrogate_reads_as_the_replacement_character() -> None:
    assert storable_text("a\udcffb\ud800") == "a\ufffdb\ufffd"


def test_any_other_text_is_kept_as_it_is() -> None:
    text = "caf\u00e9 \U0001f600 \t\r\n\x01\x7f \ufffd"
    assert storable_text(text) == text


def test_every_byte_decoded_leaves_text_utf_8_can_encode_without_a_nul() -> None:
    decoded = bytes(range(256)).decode("utf-8", errors="surrogateescape")
    stored = storable_text(decoded)
    assert "\x00" not in stored
    stored.encode("utf-8")

from __future__ import annotations

import pytest

from reprise.ingress.delay import MAX_DELAY_MS, parse_delay_ms


@pytest.mark.parametrize("text,ms", [
    ("PT10S", 10_000), ("PT1.5S", 1_500), ("P1D", 86_400_000), ("PT1H30M", 5_400_000),
    ("10s", 10_000), ("500ms", 500), ("1m30s", 90_000), ("2h", 7_200_000), ("1500", 1_500), ("0", 0),
])
def test_accepted(text: str, ms: int) -> None:
    assert parse_delay_ms(text) == ms


@pytest.mark.parametrize("text", ["", "abc", "10x", "PT", "P", "-5", "s", "10s garbage"])
def test_rejected_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match="bad delay"):
        parse_delay_ms(text)


@pytest.mark.parametrize("text", [
    "10000000000000000000", "9" * 26, "P366D", "PT8785H", "366d", "1" + "0" * 400 + "s",
    "P" + "9" * 400 + "D", str(MAX_DELAY_MS + 1),
])
def test_a_delay_past_the_maximum_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="longer than the maximum of 365 days"):
        parse_delay_ms(text)


def test_the_maximum_itself_is_accepted() -> None:
    assert parse_delay_ms(str(MAX_DELAY_MS)) == parse_delay_ms("365d") == parse_delay_ms("P365D") == MAX_DELAY_MS


@pytest.mark.parametrize("text", ["\u00b2", "\u0663", "\u0663s", "PT\u0663S", "\uff11\uff10s", "1e3", "-1s", "+5"])
def test_only_ascii_digits_count(text: str) -> None:
    with pytest.raises(ValueError, match="bad delay"):
        parse_delay_ms(text)

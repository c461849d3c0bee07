from __future__ import annotations

import pytest

from ingress.delay import parse_delay_ms


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

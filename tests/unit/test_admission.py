"""The ingress's in-flight bound: a slot per request, given back however the request ends."""

from __future__ import annotations

import pytest

from reprise.ingress.errors import IngressError
from reprise.ingress.server import Admission


def test_past_the_limit_429_and_every_slot_comes_back() -> None:
    admission = Admission(limit=2)
    with admission, admission:
        with pytest.raises(IngressError) as refused, admission:
            pass
        assert refused.value.code == 429 and refused.value.headers == {"retry-after": "1"}
        assert admission.inflight == 2
    assert admission.inflight == 0
    with pytest.raises(RuntimeError), admission:
        raise RuntimeError("the request failed")
    assert admission.inflight == 0

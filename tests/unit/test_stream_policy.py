"""StreamPolicy: which handlers stream their attempts and which run request/response."""

from __future__ import annotations

from reprise.partitions.invoker.stream_policy import StreamPolicy

ENDED: dict = {"outcome": {}}
SUSPENDED: dict = {"outcome": {"completions": [3], "signals": [], "named_signals": []}}
FAILED: dict = {"outcome": {"code": 500, "message": "boom", "retryable": True}}
GREET, STEPS = ("dp_1", "Greeter", "greet"), ("dp_1", "Steps", "three")


def test_a_handler_that_never_waits_goes_request_response_after_calm_attempts() -> None:
    policy = StreamPolicy(calm=3)
    for _ in range(3):
        assert policy.streams(GREET)
        policy.observe(GREET, waited=False, effects=ENDED)
    assert not policy.streams(GREET)
    assert policy.streams(STEPS), "each handler on its own"
    policy.observe(GREET, waited=None, effects=ENDED)
    assert not policy.streams(GREET), "request/response attempts that end keep it there"


def test_a_request_response_attempt_that_suspends_brings_streaming_back() -> None:
    policy = StreamPolicy(calm=2)
    for _ in range(2):
        policy.observe(GREET, waited=False, effects=ENDED)
    assert not policy.streams(GREET)
    policy.observe(GREET, waited=None, effects=SUSPENDED)
    assert policy.streams(GREET)
    policy.observe(GREET, waited=False, effects=ENDED)
    assert policy.streams(GREET), "the calm count starts over"


def test_waiting_suspending_failing_and_aborted_attempts() -> None:
    policy = StreamPolicy(calm=2)
    policy.observe(STEPS, waited=False, effects=ENDED)
    policy.observe(STEPS, waited=True, effects=ENDED)  # a step's result was streamed
    policy.observe(STEPS, waited=False, effects=ENDED)
    assert policy.streams(STEPS), "a wait resets the count"
    policy.observe(STEPS, waited=False, effects=SUSPENDED)  # idle, told to suspend
    policy.observe(STEPS, waited=False, effects=ENDED)
    assert policy.streams(STEPS)
    policy.observe(STEPS, waited=False, effects=FAILED)  # says nothing either way
    policy.observe(STEPS, waited=False, effects=None)  # aborted
    assert policy.streams(STEPS)
    policy.observe(STEPS, waited=False, effects=ENDED)
    assert not policy.streams(STEPS)


def test_calm_zero_always_streams() -> None:
    policy = StreamPolicy(calm=0)
    for _ in range(20):
        policy.observe(GREET, waited=False, effects=ENDED)
    assert policy.streams(GREET)

"""Per handler: stream its attempts (BIDI_STREAM) or run them request/response.

Streaming pays when a handler waits for the runtime in the middle of an attempt (a run's result, a
call's, a promise's, a sleep): the result is streamed to it instead of a suspension and a replay.
A handler that never waits (a greeting, a state update with its state sent eagerly) gains nothing,
and costs the service more: its request body stays open until the engine ends it, and the SDK waits
for that end as one more event before it ends its response. With restate-sdk under hypercorn that
was 9% of the service's CPU per one-way send, on average over five alternating pairs
(docs/benchmarks.md, "Request/response for handlers that never wait").

So a handler streams until its attempts have ended ``calm`` times in a row without waiting for
anything, then runs request/response until one of its attempts suspends (it waited for something
after all), then streams again. Either mode gives the same journal and the same results (a
request/response attempt that needs a result suspends and the next one replays), so a wrong guess
costs one attempt, never correctness. Event-loop thread only.
"""

from __future__ import annotations

from typing import Any

HandlerKey = tuple[str, str, str]  # deployment id, service, handler
_MAX_HANDLERS = 10_000  # remembered handlers; past it the table starts over (all stream again)


class StreamPolicy:
    def __init__(self, calm: int) -> None:
        self.calm = calm  # 0: always stream
        self._calm_runs: dict[HandlerKey, int] = {}

    def streams(self, key: HandlerKey) -> bool:
        return self.calm <= 0 or self._calm_runs.get(key, 0) < self.calm

    def observe(self, key: HandlerKey, waited: bool | None, effects: dict[str, Any] | None) -> None:
        """An attempt ended with ``effects`` (None: aborted). ``waited``: None for a request/response
        attempt; for a streamed one, whether notifications were streamed to it or it sent steps to the
        log before its end."""
        if effects is None or self.calm <= 0:
            return
        outcome = effects["outcome"]
        if "retryable" in outcome:
            return  # a failure says nothing about what the handler waits for
        suspended = "completions" in outcome
        if suspended or waited:
            self._calm_runs[key] = 0
        elif waited is not None:  # streamed, and it never waited
            if len(self._calm_runs) >= _MAX_HANDLERS and key not in self._calm_runs:
                self._calm_runs.clear()
            self._calm_runs[key] = min(self.calm, self._calm_runs.get(key, 0) + 1)

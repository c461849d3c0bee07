"""The inactivity and abort timeouts of an attempt (partitions/invoker/attempt_timeouts.py), with a
fake clock: what a sweep does to a silent streaming attempt, a request/response one, and which
timeouts a handler gets."""

from __future__ import annotations

import asyncio

from reprise.partitions.invoker.attempt_timeouts import AbortTimeoutFired, AttemptTimeouts, RequestWatch, TimeoutSweeper
from reprise.partitions.invoker.streaming import LONGEST_RUN_WAIT_S, LiveAttempt

ENGINE = AttemptTimeouts(inactivity_s=60.0, abort_s=600.0)


class FakeStream:
    url, status = "http://svc/invoke/S/h", 200

    def __init__(self) -> None:
        self.ended = False
        self.was_reset = False
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def end(self) -> None:
        self.ended = True

    def reset(self) -> None:
        self.ended = self.was_reset = True

    async def read(self, timeout_s: float | None) -> bytes | None:
        raise AssertionError("not read here")


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def live_attempt(timeouts: AttemptTimeouts) -> tuple[LiveAttempt, FakeStream, Clock]:
    clock = Clock()
    live = LiveAttempt(0, timeouts, TimeoutSweeper(0.25, clock))
    stream = live.stream = FakeStream()
    live.tick(clock.t)  # the first look starts the silence
    return live, stream, clock


def test_a_handlers_own_timeouts_override_the_engines_one_by_one() -> None:
    assert AttemptTimeouts.of({}, ENGINE) is ENGINE
    assert AttemptTimeouts.of({"inactivityTimeout": 2000}, ENGINE) == AttemptTimeouts(2.0, 600.0)
    assert AttemptTimeouts.of({"abortTimeout": 1500, "inactivityTimeout": 0}, ENGINE) == AttemptTimeouts(0.0, 1.5)
    assert "'abort timeout' (1s 500ms)" in AttemptTimeouts(0.0, 1.5).abort_message()


def test_a_silent_streaming_attempt_is_asked_to_suspend_then_aborted() -> None:
    live, stream, clock = live_attempt(AttemptTimeouts(2.0, 5.0))
    clock.t += 1.9
    live.tick(clock.t)
    assert not stream.ended
    clock.t += 0.2  # 2.1 s of silence: the request body is closed, the handler may suspend
    live.tick(clock.t)
    assert stream.ended and not stream.was_reset
    clock.t += 4.9  # the abort timeout counts from the request to suspend
    live.tick(clock.t)
    assert not stream.was_reset
    clock.t += 0.2
    live.tick(clock.t)
    assert stream.was_reset and live.abort_fired


def test_messages_either_way_keep_a_streaming_attempt_alive() -> None:
    live, stream, clock = live_attempt(AttemptTimeouts(2.0, 5.0))
    for step in range(1, 61):  # a look every 0.25 s and a message every 1.5 s, alternately each way
        clock.t += 0.25
        if step % 12 == 0:
            live.messages += 1  # a chunk read from the service
        elif step % 6 == 0:
            live.deliver(step, b"notification")  # a notification sent to it
        live.tick(clock.t)
    assert not stream.ended, "never 2 s of silence"
    clock.t += 2.0
    live.tick(clock.t)
    assert stream.ended


def test_a_run_result_on_its_way_holds_the_request_to_suspend_off() -> None:
    live, stream, clock = live_attempt(AttemptTimeouts(1.0, 5.0))
    live._awaited_runs.add(1)
    clock.t += LONGEST_RUN_WAIT_S - 1
    live.tick(clock.t)
    assert not stream.ended
    clock.t += 1.5
    live.tick(clock.t)
    assert stream.ended


def test_a_request_response_attempt_is_aborted_after_its_abort_timeout_of_silence() -> None:
    async def scenario() -> None:
        clock, stopped, received = Clock(), [], [0]
        sweeper = TimeoutSweeper(0.25, clock)
        watch = RequestWatch(AttemptTimeouts(0.0, 3.0), sweeper)
        watch.attach(lambda: received[0], stopped.append)
        for _ in range(5):  # bytes arriving every 2 s keep it going
            clock.t += 2.0
            received[0] += 10
            sweeper.sweep_now()
        assert not stopped
        clock.t += 2.0
        sweeper.sweep_now()
        clock.t += 1.5  # 3.5 s since the bytes were last seen to move
        sweeper.sweep_now()
        assert len(stopped) == 1 and isinstance(stopped[0], AbortTimeoutFired)
        assert "(3s)" in str(stopped[0])
        sweeper.sweep_now()
        assert len(stopped) == 1, "stopped once, and no longer watched"
        sweeper.close()

    asyncio.run(scenario())


def test_the_sweep_runs_a_few_times_per_timeout_and_only_while_attempts_are_watched() -> None:
    assert TimeoutSweeper.interval_for(AttemptTimeouts(1.0, 600.0)) == 0.25
    assert TimeoutSweeper.interval_for(AttemptTimeouts(60.0, 600.0)) == 1.0
    assert TimeoutSweeper.interval_for(AttemptTimeouts(0.0, 0.1)) == 0.05

    async def scenario() -> None:
        sweeper = TimeoutSweeper(0.01)
        ticks: list[float] = []

        class Probe:
            def tick(self, now: float) -> None:
                ticks.append(now)
                if len(ticks) == 3:
                    sweeper.unwatch(self)

        sweeper.watch(Probe())
        await asyncio.sleep(0.2)
        assert len(ticks) == 3 and sweeper._timer is None, "no timer once nothing is watched"

    asyncio.run(scenario())


def test_the_engines_timeouts_come_from_the_environment_the_former_name_too(monkeypatch) -> None:  # noqa: ANN001
    from reprise.engine.config import Config

    assert (Config().inactivity_timeout_ms, Config().abort_timeout_ms) == (1_000, 600_000)
    monkeypatch.setenv("REPRISE_STREAM_IDLE_MS", "2500")
    assert Config.from_env().inactivity_timeout_ms == 2500
    monkeypatch.setenv("REPRISE_INACTIVITY_TIMEOUT_MS", "60000")
    monkeypatch.setenv("REPRISE_ABORT_TIMEOUT_MS", "3000")
    cfg = Config.from_env()
    assert (cfg.inactivity_timeout_ms, cfg.abort_timeout_ms) == (60_000, 3_000)

"""The replay check's verdicts (partitions/invoker/replay.py), against replay_v2 embedded in-process.

Crafted journals cover what a live recording makes hard to catch: an invocation in flight whose
recording stops inside a step (the engine died while its closure ran). Replaying it must not run the
new code's closure, which a plain replay of the journal would (the SDK runs a step it has no result
for): the end marker stops the SDK first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reprise.engine.ids import InvocationId
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_message
from reprise.partitions.invoker.replay import ReplayResult, ReplayTarget, command_position, judge, pending_runs

V2 = "embedded://tests.services.replay_v2:app"


def _run(name: str, completion: int) -> bytes:
    return encode_message(pb.RunCommandMessage(name=name, result_completion_id=completion))


def _run_done(completion: int, value: bytes) -> bytes:
    proposal = pb.ProposeRunCompletionMessage(result_completion_id=completion, value=value)
    return pj.run_completion_from_proposal(proposal.SerializeToString())


def _replay(journal: list[bytes], handler: str, status: str) -> ReplayResult:
    async def go() -> ReplayResult:
        deployment = ReplayTarget(V2)
        try:
            return await deployment.replay(str(InvocationId.random()), "Steps", handler, None, status, journal)
        finally:
            await deployment.close()

    return asyncio.run(go())


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REPRISE_TEST_EFFECTS", str(tmp_path))
    return tmp_path


INPUT = pj.input_command([], b'"ada"')


def test_a_recording_that_stops_inside_a_step_replays_clean_without_running_it(effects: Path) -> None:
    journal = [INPUT, _run("fetch", 1)]
    assert pending_runs(journal) == [1]
    result = _replay(journal, "napping", "BACKING_OFF")
    assert result.verdict == "ok", result
    assert not list(effects.glob("replay-v2-*")), "the replay ran the step's closure"


def test_a_completed_journal_whose_steps_swapped_diverges_at_the_first(effects: Path) -> None:
    journal = [INPUT, _run("fetch", 1), _run_done(1, b'"fetched ada"'), _run("store", 2), _run_done(2, b'"stored"'),
               encode_message(pb.OutputCommandMessage(value=pb.Value(content=b'"fetched ada, stored"')))]
    result = _replay(journal, "swapped", "COMPLETED")
    assert (result.verdict, result.entry, result.command_index) == ("diverged", 1, 1)
    assert _replay(journal, "unchanged", "COMPLETED").verdict == "ok"
    assert not list(effects.glob("replay-v2-*"))


def test_command_positions_count_commands_only() -> None:
    journal = [INPUT, _run("a", 1), _run_done(1, b"1"), _run("b", 2), _run_done(2, b"2")]
    assert [command_position(journal, i) for i in range(4)] == [0, 1, 3, None]
    assert pending_runs(journal) == []


def test_an_error_other_than_a_mismatch_is_no_verdict_on_determinism() -> None:
    err = encode_message(pb.ErrorMessage(code=500, message="boom"))
    result = judge("inv", "S/h", "COMPLETED", [INPUT], err)
    assert result.verdict == "error" and "boom" in result.message
    assert judge("inv", "S/h", "COMPLETED", [INPUT], encode_message(pb.EndMessage())).verdict == "ok"
    assert judge("inv", "S/h", "COMPLETED", [INPUT], b"").verdict == "error"

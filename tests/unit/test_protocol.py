"""The protocol codec: framing, journal helpers, and a real restate-sdk endpoint driven in-process."""

from __future__ import annotations

import asyncio
import json

import pytest
import restate

from reprise.engine.ids import InvocationId
from reprise.engine.protocol import journal as pj
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import FrameReader, ProtocolError, decode_frame, encode_message, iter_frames
from reprise.engine.protocol.messages import MessageType, is_command, is_notification, type_name
from tests.asgi_driver import call_asgi

V6 = "application/vnd.restate.invocation.v6"


@pytest.mark.parametrize("headers,body", [
    ([], b""), ([], b'"ada"'), ([("content-type", "application/json")], b"{}"),
    ([("", "v"), ("k", ""), ("", "")], b"x"),  # proto3 leaves empty strings out
    ([("x-näme", "wert ü €"), ("a" * 200, "b" * 20_000)], b"\x00" * 130),  # multi-byte lengths, UTF-8
    ([(f"h{i}", str(i)) for i in range(40)], bytes(range(256)) * 600),
])
def test_the_input_command_is_the_bytes_protobuf_writes(headers: list[tuple[str, str]], body: bytes) -> None:
    by_protobuf = encode_message(pb.InputCommandMessage(headers=[pb.Header(key=k, value=v) for k, v in headers],
                                                        value=pb.Value(content=body)))
    assert pj.input_command(headers, body) == by_protobuf
    assert pj.input_command(headers, body) == by_protobuf  # again, from the cached header fields
    decoded = pj.decode(by_protobuf)
    assert [(h.key, h.value) for h in decoded.headers] == headers and decoded.value.content == body


def test_frames_round_trip_and_stream_in_pieces() -> None:
    data = encode_message(pb.RunCommandMessage(result_completion_id=1, name="a")) + \
        encode_message(pb.EndMessage())
    frames = list(iter_frames(data))
    assert [f.type for f in frames] == [MessageType.RUN_COMMAND, MessageType.END]
    assert decode_frame(frames[0]).name == "a" and b"".join(f.raw for f in frames) == data
    reader = FrameReader()
    got = [f for i in range(len(data)) for f in reader.feed(data[i:i + 1])]
    assert [f.raw for f in got] == [f.raw for f in frames] and reader.pending == 0


@pytest.mark.parametrize("cut", [3, 9])
def test_truncated_input_is_a_protocol_error(cut: int) -> None:
    data = encode_message(pb.RunCommandMessage(result_completion_id=1, name="abc"))
    with pytest.raises(ProtocolError, match="truncated"):
        list(iter_frames(data[:cut]))


def test_type_ranges_and_names() -> None:
    assert is_command(0x0411) and is_command(0xFC01) and not is_command(0x8011)
    assert is_notification(0x8011) and is_notification(0xFBFF) and not is_notification(0x0003)
    assert type_name(0xFC01) == "CUSTOM_0xFC01" and type_name(0x0005) == "PROPOSE_RUN_COMPLETION"


def test_run_proposal_becomes_run_completion() -> None:
    prop = pb.ProposeRunCompletionMessage(result_completion_id=3, value=b'"v"').SerializeToString()
    frame = pj.run_completion_from_proposal(prop)
    assert pj.frame_type(frame) == MessageType.RUN_COMPLETION
    assert pj.notification_id(frame) == ("completion", 3) and pj.decode(frame).value.content == b'"v"'
    failed = pb.ProposeRunCompletionMessage(result_completion_id=4, failure=pb.Failure(code=500, message="x"))
    assert pj.decode(pj.run_completion_from_proposal(failed.SerializeToString())).failure.message == "x"


def test_notification_builders() -> None:
    assert pj.describe(pj.call_invocation_id_completion(1, "inv_1x"))["invocation_id"] == "inv_1x"
    assert pj.notification_id(pj.signal_notification(17, b"1")) == ("signal", 17)
    assert pj.notification_id(pj.signal_notification("go")) == ("named", "go")
    assert pj.decode(pj.call_completion(2, None, (409, "killed"))).failure.code == 409


# ---- against the real SDK ----------------------------------------------------------------------
svc = restate.Service("Probe")


@svc.handler()
async def step(ctx: restate.Context, name: str) -> str:
    return await ctx.run_typed("upper", lambda: name.upper(), restate.RunOptions())


APP = restate.app(services=[svc])


def _start(iid: InvocationId, known: int) -> bytes:
    return pj.start_message(id=iid.to_bytes(), debug_id=str(iid), known_entries=known, state_map=[],
                            partial_state=False, key="", random_seed=iid.random_seed(),
                            retry_count_since_last_stored_entry=0, duration_since_last_stored_entry=0)


def test_discovery_manifest_of_the_real_sdk() -> None:
    status, headers, body = asyncio.run(call_asgi(APP, "GET", "/discover", {
        "accept": "application/vnd.restate.endpointmanifest.v3+json"}))
    manifest = json.loads(body)
    assert status == 200 and manifest["protocolMode"] == "REQUEST_RESPONSE"
    assert manifest["minProtocolVersion"] <= 6 <= manifest["maxProtocolVersion"]
    assert manifest["services"][0]["name"] == "Probe"


def test_real_sdk_run_then_replay_in_request_response_mode() -> None:
    iid = InvocationId.new("x")
    journal = [pj.input_command([], b'"ada"')]
    status, headers, body = asyncio.run(call_asgi(APP, "POST", "/invoke/Probe/step", {
        "content-type": V6, "accept": V6}, _start(iid, 1) + b"".join(journal)))
    assert status == 200 and headers["content-type"] == V6
    frames = list(iter_frames(body))
    assert [f.type for f in frames] == [MessageType.RUN_COMMAND, MessageType.PROPOSE_RUN_COMPLETION,
                                        MessageType.SUSPENSION]
    suspension = decode_frame(frames[2])
    assert list(suspension.waiting_completions) == [1] and 1 in suspension.waiting_signals
    journal += [frames[0].raw, pj.run_completion_from_proposal(frames[1].payload)]
    status, _, body = asyncio.run(call_asgi(APP, "POST", "/invoke/Probe/step", {
        "content-type": V6, "accept": V6}, _start(iid, len(journal)) + b"".join(journal)))
    frames = list(iter_frames(body))
    assert [f.type for f in frames] == [MessageType.OUTPUT_COMMAND, MessageType.END]
    assert decode_frame(frames[0]).value.content == b'"ADA"'

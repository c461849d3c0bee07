"""A deployment that speaks the invocation protocol by hand, for what no SDK sends: a command whose
payload does not decode. ``Raw/put`` answers a SetState whose payload is garbage until the file
``fixed`` exists in the effects directory (the deployment was fixed), then a valid SetState, the
output and End. Every attempt it serves adds a line to ``attempts``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reprise.engine.discovery import PROTOCOL_VERSION
from reprise.engine.protocol import reprise_protocol_pb2 as pb
from reprise.engine.protocol.framing import encode_frame, encode_message
from reprise.engine.protocol.messages import MessageType

EFFECTS = Path(os.environ.get("REPRISE_TEST_EFFECTS", "/tmp/reprise-effects"))
MANIFEST = {"protocolMode": "REQUEST_RESPONSE", "minProtocolVersion": PROTOCOL_VERSION,
            "maxProtocolVersion": PROTOCOL_VERSION,
            "services": [{"name": "Raw", "ty": "VIRTUAL_OBJECT", "handlers": [{"name": "put", "ty": "EXCLUSIVE"}]}]}
GARBAGE = b"\x0a\xff\xff\xff\xff\x0f"  # a length prefix past the end: no protobuf decoder accepts it


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/discover":
        body = json.dumps(MANIFEST).encode()
        content_type = b"application/vnd.restate.endpointmanifest.v2+json"
    else:
        with (EFFECTS / "attempts").open("a") as f:
            f.write("x\n")
        if (EFFECTS / "fixed").exists():
            body = (encode_message(pb.SetStateCommandMessage(key=b"k", value=pb.Value(content=b'"v"')))
                    + encode_message(pb.OutputCommandMessage(value=pb.Value(content=b'"done"')))
                    + encode_message(pb.EndMessage()))
        else:
            body = encode_frame(MessageType.SET_STATE_COMMAND, GARBAGE) + encode_message(pb.EndMessage())
        content_type = f"application/vnd.restate.invocation.v{PROTOCOL_VERSION}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})

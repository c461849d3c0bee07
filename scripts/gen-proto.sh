#!/usr/bin/env bash
# Regenerates engine/reprise_protocol.reprise_protocol_pb2.py from engine/protocol/protocol.proto (needs grpcio-tools).
set -euo pipefail
cd "$(dirname "$0")/../engine/protocol"
"${PYTHON:-../../.venv/bin/python}" -m grpc_tools.protoc -I. --python_out=. reprise_protocol.proto

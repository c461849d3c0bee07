#!/usr/bin/env bash
# Regenerates engine/protocol/reprise_protocol_pb2.py and its type stub (.pyi) from engine/protocol/reprise_protocol.proto (needs grpcio-tools).
set -euo pipefail
cd "$(dirname "$0")/../engine/protocol"
"${PYTHON:-../../.venv/bin/python}" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. reprise_protocol.proto

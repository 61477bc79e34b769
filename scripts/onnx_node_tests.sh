#!/usr/bin/env bash
# Write the ONNX backend node test cases to target/onnx-node-tests/ (or "$1") for
# crates/engine/tests/it/conformance.rs. Uses the same pinned venv as make_fixtures.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/scripts/requirements-fixtures.txt"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" || { echo "python3 -m venv failed: install python3-venv" >&2; exit 1; }
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
"$VENV/bin/python" "$ROOT/scripts/onnx_node_tests.py" "$@"

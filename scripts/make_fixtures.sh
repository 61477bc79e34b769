#!/usr/bin/env bash
# Regenerate fixtures/ (ONNX models + onnxruntime reference outputs).
# Makes .venv/ at the repository root if missing, installs the pinned packages, runs the generator.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/scripts/requirements-fixtures.txt"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "python3 -m venv failed; installing python3-venv" >&2
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            ver="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
            apt-get install -y -qq "python${ver}-venv" || apt-get install -y -qq python3-venv
            "$PY" -m venv "$VENV"
        else
            echo "python3 -m venv failed: install python3-venv (as root: apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
fi

"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
"$VENV/bin/python" "$ROOT/scripts/make_fixtures.py"
"$VENV/bin/python" "$ROOT/scripts/make_arch_fixtures.py"

#!/usr/bin/env bash
# Regenerate fixtures/copies/ (the copy-detection suite) with the pinned fixtures venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
    # make_fixtures.sh knows how to create the venv; it also regenerates fixtures/ identically.
    bash "$ROOT/scripts/make_fixtures.sh"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/scripts/requirements-fixtures.txt"
"$VENV/bin/python" "$ROOT/scripts/copy_suite.py"

#!/usr/bin/env bash
# The store's S3 backend against a local S3-compatible server (moto, from PyPI).
# Builds deed-store with --features s3, starts moto_server on 127.0.0.1, creates a
# bucket, runs the `s3` test, stops the server. Separate from scripts/test.sh because
# the feature's cold build takes minutes on a 2-core machine (see docs/ARCHITECTURE.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-s3"
PORT="${DEED_S3_PORT:-9317}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/moto_server" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/scripts/requirements-s3.txt"
fi
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"${TMPDIR:-/tmp}/deed-moto.log" 2>&1 &
MOTO=$!
trap 'kill "$MOTO" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
    if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/')" 2>/dev/null; then break; fi
    sleep 0.2
done
"$VENV/bin/python" - "$PORT" <<'PY'
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/deed", method="PUT")
urllib.request.urlopen(req).read()
PY
export DEED_S3_ENDPOINT="http://127.0.0.1:$PORT" DEED_S3_BUCKET=deed AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
cd "$ROOT"
cargo test -p deed-store --features s3 --test s3 -- --nocapture

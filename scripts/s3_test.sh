#!/usr/bin/env bash
# The store's S3 backend against a local S3-compatible server (moto, from PyPI).
# Makes a venv (.venv-s3) with scripts/requirements-s3.txt once, starts moto_server on
# 127.0.0.1 on a free port, creates a bucket, runs deed-store's `s3` integration test
# (cargo --features s3) against it, and stops the server.
#
# Cost measured 2026-11-26 on the 2-core machine (load 8-13 from other builds): pip
# install 33 s once; a cold build of deed-store's `s3` test ~17 min (object_store,
# reqwest, rustls, ring, tokio, hyper...), 4 min when only the s3-specific crates are
# left; the test itself 0.2 s. scripts/test.sh (and so CI) runs it last.
# Exit status: 0 passed, non-zero failed, 3 skipped (python3 with venv/pip unavailable).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-s3"
PY="${PYTHON:-python3}"
log="${TMPDIR:-/tmp}/deed-moto.$$.log"

if [ ! -x "$VENV/bin/moto_server" ]; then
    if ! command -v "$PY" >/dev/null 2>&1; then
        echo "s3_test: $PY not found: skipping the S3 backend test" >&2
        exit 3
    fi
    if ! "$PY" -m venv "$VENV" >/dev/null 2>&1 || [ ! -x "$VENV/bin/python" ]; then
        rm -rf "$VENV"
        echo "s3_test: '$PY -m venv' failed (install python3-venv): skipping the S3 backend test" >&2
        exit 3
    fi
    if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/scripts/requirements-s3.txt"; then
        rm -rf "$VENV"
        echo "s3_test: pip install of scripts/requirements-s3.txt failed (offline?): skipping" >&2
        exit 3
    fi
fi

# A free port: bind port 0, read what the kernel chose, release it for moto.
PORT="${DEED_S3_PORT:-$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$log" 2>&1 &
MOTO=$!
trap 'kill "$MOTO" 2>/dev/null || true; wait "$MOTO" 2>/dev/null || true; rm -f "$log"' EXIT

up=0
for _ in $(seq 1 100); do
    if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/', timeout=1)" 2>/dev/null; then
        up=1
        break
    fi
    if ! kill -0 "$MOTO" 2>/dev/null; then break; fi
    sleep 0.2
done
if [ "$up" != 1 ]; then
    echo "s3_test: moto_server did not come up on 127.0.0.1:$PORT:" >&2
    cat "$log" >&2
    exit 1
fi

BUCKET=deed-test
"$VENV/bin/python" - "$PORT" "$BUCKET" <<'PY'
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/{sys.argv[2]}", method="PUT")
urllib.request.urlopen(req, timeout=10).read()
PY
echo "s3_test: moto on 127.0.0.1:$PORT, bucket $BUCKET"

export DEED_S3_ENDPOINT="http://127.0.0.1:$PORT" DEED_S3_BUCKET="$BUCKET" DEED_S3_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
cd "$ROOT"
cargo test --locked -p deed-store --features s3 --test s3 -- --nocapture

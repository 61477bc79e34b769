#!/usr/bin/env bash
# deed's main job on its embedded default: start a dev node, publish the bundled
# sample model, pay for a run through the network, and verify the receipt.
# Needs only the Rust toolchain. Leaves nothing running; the home is a temp folder
# unless DEED_DEMO_HOME is set. DEED_BIN=path runs that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${DEED_BIN:-}" ]; then
  # The test suite runs this script with the binary its own build made.
  DEED="$DEED_BIN"
else
  echo "==> building deed (release)"
  cargo build --release --locked --quiet -p deed
  DEED="${CARGO_TARGET_DIR:-$PWD/target}/release/deed"
fi

HOME_DIR="${DEED_DEMO_HOME:-$(mktemp -d)}"
WORK="$(mktemp -d)"
NODE_PID=""
cleanup() {
  if [ -n "$NODE_PID" ]; then kill "$NODE_PID" 2>/dev/null || true; wait "$NODE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
  [ -n "${DEED_DEMO_HOME:-}" ] || rm -rf "$HOME_DIR"
}
trap cleanup EXIT

echo "==> deed init"
"$DEED" --home "$HOME_DIR" init

echo "==> deed node --dev (on a free loopback port)"
"$DEED" --home "$HOME_DIR" node --dev --listen 127.0.0.1:0 --json > "$WORK/node.out" 2> "$WORK/node.log" &
NODE_PID=$!
for _ in $(seq 1 200); do
  if [ -s "$WORK/node.out" ]; then break; fi
  if ! kill -0 "$NODE_PID" 2>/dev/null; then cat "$WORK/node.log"; echo "node failed to start"; exit 1; fi
  sleep 0.05
done
LISTEN="$(sed -n 's/.*"listen":"\([^"]*\)".*/\1/p' "$WORK/node.out")"
NODE="http://$LISTEN"
echo "    node at $NODE"

echo "==> deed publish fixtures/mlp.onnx --name demo-mlp --price 1000"
"$DEED" --home "$HOME_DIR" --node "$NODE" publish fixtures/mlp.onnx --name demo-mlp --price 1000 | tee "$WORK/publish.txt"
MODEL="$(sed -n 's/^model id: *//p' "$WORK/publish.txt")"

echo "==> deed run $MODEL --input fixtures/mlp.input.json (paid by dev1)"
"$DEED" --home "$HOME_DIR" --node "$NODE" --key dev1 run "$MODEL" --input fixtures/mlp.input.json --out "$WORK/out"

echo "==> deed verify receipt.json"
"$DEED" --home "$HOME_DIR" --node "$NODE" verify "$WORK/out/receipt.json"

echo "==> deed model $MODEL"
"$DEED" --home "$HOME_DIR" --node "$NODE" model "$MODEL"

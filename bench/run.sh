#!/usr/bin/env bash
# Benchmarks. Usage: bench/run.sh <subcommand> [args]
#   ledger [--quick]   ledger throughput on one core (transfers/s, settlements/s, commit latency)
#   engine [--quick]   deed's engine vs onnxruntime and tract: latency, load, memory, tracing
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

cmd="${1:-}"
[ -n "$cmd" ] || usage
shift

case "$cmd" in
    ledger)
        cargo build --release -p deed-ledger --example ledger_bench
        pin=()
        if command -v taskset >/dev/null; then pin=(taskset -c 0); fi
        echo "# $(date -u +%Y-%m-%d) $(uname -m), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs), one core"
        "${pin[@]}" target/release/examples/ledger_bench "$@"
        ;;
    engine)
        # Python venv with the pinned onnx/onnxruntime (as scripts/make_fixtures.sh does).
        VENV="$PWD/.venv"
        if [ ! -x "$VENV/bin/python" ]; then
            "${PYTHON:-python3}" -m venv "$VENV" || { echo "python3 -m venv failed: install python3-venv" >&2; exit 1; }
        fi
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-fixtures.txt
        BERT_LAYERS="${BERT_LAYERS:-12}" "$VENV/bin/python" bench/make_models.py
        cargo build --release -p deed-engine --example engine_bench
        # tract is its own cargo project (not a workspace member): only this benchmark builds it.
        cargo build --release --manifest-path bench/tract-bench/Cargo.toml --target-dir bench/target
        DEED_BENCH_BIN="${CARGO_TARGET_DIR:-target}/release/examples/engine_bench" \
            TRACT_BENCH_BIN="bench/target/release/tract-bench" \
            "$VENV/bin/python" bench/engine_bench.py "$@"
        ;;
    *) usage ;;
esac

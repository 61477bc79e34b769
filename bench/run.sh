#!/usr/bin/env bash
# Benchmarks. Usage: bench/run.sh <subcommand> [args]
#   ledger [--quick]   ledger throughput on one core (transfers/s, settlements/s, commit latency)
#   engine [--quick]   deed's engine vs onnxruntime and tract: latency, load, memory, tracing
#   store [MiB]        blob store: ingest / verified read of a 1 GiB model vs cp and b3sum; dedup ratio
#   network [--txs M]  finalized transfers/s, time to finality p50/p99: solo, 1 and 4 validators on loopback
#   verify             receipts: check without re-execution, re-execution, fraud-proof replay, size
#   blobs [--mib M]    p2p blob replication: a validator fetches an M MiB blob (default 1024) from 1, then 3 peers
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

cmd="${1:-}"
[ -n "$cmd" ] || usage
shift

# The pinned Python venv (as scripts/make_fixtures.sh makes it) and the benchmark models
# in bench/models/ (MLP, ResNet-50, BERT-base encoder, tree ensemble), made once.
VENV="$PWD/.venv"
bench_models() {
    if [ ! -x "$VENV/bin/python" ]; then
        "${PYTHON:-python3}" -m venv "$VENV" || { echo "python3 -m venv failed: install python3-venv" >&2; exit 1; }
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-fixtures.txt
    BERT_LAYERS="${BERT_LAYERS:-12}" "$VENV/bin/python" bench/make_models.py
}

case "$cmd" in
    verify)
        bench_models
        cargo build --release -p deed-node --example verify_bench
        echo "# $(date -u +%Y-%m-%d) $(uname -m), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs), one thread"
        "${CARGO_TARGET_DIR:-target}/release/examples/verify_bench" --runs "${RUNS:-3}" \
            fixtures/mlp.onnx fixtures/cnn.onnx bench/models/resnet50_b1.onnx "bench/models/bert_l${BERT_LAYERS:-12}_s128.onnx"
        ;;
    ledger)
        cargo build --release -p deed-ledger --example ledger_bench
        pin=()
        if command -v taskset >/dev/null; then pin=(taskset -c 0); fi
        echo "# $(date -u +%Y-%m-%d) $(uname -m), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs), one core"
        "${pin[@]}" target/release/examples/ledger_bench "$@"
        ;;
    engine)
        bench_models
        cargo build --release -p deed-engine --example engine_bench
        # tract is its own cargo project (not a workspace member): only this benchmark builds it.
        cargo build --release --manifest-path bench/tract-bench/Cargo.toml --target-dir bench/target
        DEED_BENCH_BIN="${CARGO_TARGET_DIR:-target}/release/examples/engine_bench" \
            TRACT_BENCH_BIN="bench/target/release/tract-bench" \
            "$VENV/bin/python" bench/engine_bench.py "$@"
        ;;
    store)
        mib="${1:-1024}"
        work="${DEED_BENCH_DIR:-${TMPDIR:-/tmp}/deed-store-bench}"
        cargo build --release -p deed-store --example store_bench
        # b3sum, the BLAKE3 reference tool, built once into bench/target/tools.
        if ! command -v b3sum >/dev/null && [ ! -x bench/target/tools/bin/b3sum ]; then
            cargo install --quiet --locked b3sum --root bench/target/tools
        fi
        B3SUM="$(command -v b3sum || echo bench/target/tools/bin/b3sum)"
        rm -rf "$work" && mkdir -p "$work"
        echo "# $(date -u +%Y-%m-%d) $(uname -m), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs), $(nproc) cores, ${mib} MiB model, load $(cut -d' ' -f1 /proc/loadavg 2>/dev/null)"
        out="$("${CARGO_TARGET_DIR:-target}"/release/examples/store_bench "$work" "$mib")"
        f="$work/model-v1.onnx"
        bytes=$(stat -c %s "$f")
        # Wall and CPU (user + system) seconds of a command, children included.
        t() { local TIMEFORMAT='%R %U %S' r; r=$( { time "$@" >/dev/null 2>&1; } 2>&1 ); echo "$r"; }
        row() {
            local w u s
            read -r w u s <<<"$2"
            printf '| %s | %.2f s | %.2f GB/s | %.2f s |\n' "$1" "$w" "$(awk "BEGIN { print $bytes / $w / 1e9 }")" \
                "$(awk "BEGIN { print $u + $s }")"
        }
        sync
        echo "| what | time | throughput | CPU |"
        echo "|---|---|---|---|"
        row "cp (page cache, no fsync)" "$(t cp "$f" "$work/copy1")"
        row "cp + fsync" "$(t sh -c "cp '$f' '$work/copy2' && sync '$work/copy2'")"
        row "dd bs=4M oflag=direct conv=fsync (durable, no page cache)" \
            "$(t dd if="$f" of="$work/copy3" bs=4M oflag=direct conv=fsync)"
        rm -f "$work/copy1" "$work/copy2" "$work/copy3"
        row "b3sum (BLAKE3, $( "$B3SUM" --version | cut -d' ' -f2), all cores)" "$(t "$B3SUM" "$f")"
        row "b3sum --num-threads 1" "$(t "$B3SUM" --num-threads 1 "$f")"
        echo "$out"
        rm -rf "$work"
        ;;
    network)
        cargo build --release -p deed-node --example net_bench
        echo "# $(date -u +%Y-%m-%d) $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs)"
        for mode in "--solo" "--validators 1" "--validators 4"; do
            # shellcheck disable=SC2086
            "${CARGO_TARGET_DIR:-target}/release/examples/net_bench" $mode "$@"
        done
        ;;
    blobs)
        cargo build --release -p deed-node --example blob_bench
        echo "# $(date -u +%Y-%m-%d) $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs)"
        for holders in 1 3; do
            "${CARGO_TARGET_DIR:-target}/release/examples/blob_bench" "$@" --holders "$holders"
        done
        ;;
    *) usage ;;
esac

#!/usr/bin/env bash
# Benchmarks. Usage: bench/run.sh <subcommand> [args]
#   ledger [--quick]   ledger throughput on one core (transfers/s, settlements/s, commit latency)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//'
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
    *) usage ;;
esac

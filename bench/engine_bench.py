"""Driver of `bench/run.sh engine`: runs every bench model through deed's engine, onnxruntime and
tract at 1 and 2 threads, prints the table and writes it, with machine and date, into bench/README.md.

Each measurement is its own process (so peak RSS is per runtime and model). Runners print one JSON
line; a runner that refuses a model is reported as "unsupported" with its reason, never faked.
"""

import datetime
import json
import os
import platform
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = os.path.join(HERE, "models")
DEED = os.environ.get("DEED_BENCH_BIN", os.path.join(ROOT, "target", "release", "examples", "engine_bench"))
TRACT = os.environ.get("TRACT_BENCH_BIN", os.path.join(HERE, "target", "release", "tract-bench"))
PY = sys.executable

# (model file stem, kind, runs per measurement)
CASES = [
    ("mlp_b1", "GEMM", 200),
    ("mlp_b64", "GEMM", 20),
    ("resnet50_b1", "conv", 10),
    (None, "GEMM", 3),  # the BERT encoder, whatever layer count make_models.py wrote
    ("trees_b512", "trees", 50),
]


def run(cmd, timeout=1800):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    except OSError as e:
        return {"error": f"not run: {e}", "not_run": True}
    line = next((l for l in reversed(p.stdout.splitlines()) if l.startswith("{")), None)
    if p.returncode != 0 or line is None:
        lines = p.stderr.strip().splitlines() or ["exit %d" % p.returncode]
        err = next((l for l in lines if l.startswith("Error")), lines[-1])
        return {"error": err[:200]}
    return json.loads(line)


def fmt(x, unit=""):
    return "—" if x is None else (f"{x:.3f}{unit}" if x < 10 else f"{x:.1f}{unit}")


def ratio(a, b):
    return "—" if a is None or b is None else f"{a / b:.2f}×"


def merge_rounds(rs):
    """One result from several processes' results: the first error, else each number's median."""
    errs = [r for r in rs if "error" in r]
    if errs:
        return errs[0]
    out = dict(rs[0])
    for k, v in rs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals = sorted(r[k] for r in rs if isinstance(r.get(k), (int, float)))
            out[k] = vals[len(vals) // 2]
    return out


def main():
    quick = "--quick" in sys.argv
    bert = sorted(f[:-5] for f in os.listdir(MODELS) if f.startswith("bert_"))
    cases = [(c or bert[0], k, max(2, r // 4) if quick else r) for c, k, r in CASES]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    date = datetime.date.today().isoformat()
    # Every measurement is ROUNDS processes per tool, the tools interleaved round by round
    # (so a busy spell hits all of them); a number is the median over the rounds.
    rounds = int(os.environ.get("ROUNDS", "1" if quick else "3"))
    res = {}
    for stem, _, runs in cases:
        path = os.path.join(MODELS, stem + ".onnx")
        for t in (1, 2):
            got = {}
            for _ in range(rounds):
                for name, cmd in [("deed", [DEED, path, str(t), str(runs)]),
                                  ("ort", [PY, os.path.join(HERE, "ort_bench.py"), path, str(t), str(runs)]),
                                  ("tract", [TRACT, path, str(t), str(runs)])]:
                    r = run(cmd)
                    got.setdefault(name, []).append(r)
                    print(f"{stem} threads={t} {name}: {json.dumps(r)}", file=sys.stderr, flush=True)
            for name, rs in got.items():
                res[(stem, t, name)] = merge_rounds(rs)

    def get(stem, t, name, key):
        r = res.get((stem, t, name), {})
        return r.get(key)

    def cell(stem, t, name):
        r = res.get((stem, t, name), {})
        if "error" in r:
            if r.get("not_run") or r["error"] == "timeout":
                return "not run"
            return "unsupported" if name != "ort" else "error"
        return fmt(r.get("median_ms"))

    load = open("/proc/loadavg").read().split()[:3]
    lines = [f"Measured {date}, {cpu} ({platform.machine()}, {os.cpu_count()} vCPU, load average at the end "
             f"{' '.join(load)}), "
             f"deed kernels: {get(cases[0][0], 1, 'deed', 'kernels') or '?'}. Median latency in ms, "
             f"median of {rounds} process(es) per cell. deed runs with its trace on (what a receipt needs) "
             f"and off (inference alone, as the peers run).", "",
             "| model | threads | deed, trace on | deed, trace off | onnxruntime | tract | on/ort | off/ort | on/tract | off/tract |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for stem, kind, _ in cases:
        for t in (1, 2):
            d, o, tr = (get(stem, t, n, "median_ms") for n in ("deed", "ort", "tract"))
            off = get(stem, t, "deed", "median_ms_notrace")
            lines.append(f"| {stem} ({kind}) | {t} | {cell(stem, t, 'deed')} | {fmt(off)} | {cell(stem, t, 'ort')} | "
                         f"{cell(stem, t, 'tract')} | {ratio(d, o)} | {ratio(off, o)} | {ratio(d, tr)} | {ratio(off, tr)} |")
    lines += ["", "Load, memory and tracing (threads = 1):", "",
              "| model | deed load ms | ort session ms | load deed/ort | deed peak RSS MiB | ort peak RSS MiB "
              "(of which Python+ort before load) | memory deed/ort | tract peak RSS MiB | deed trace on / off ms | tracing cost |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for stem, _, _ in cases:
        dl, ol = get(stem, 1, "deed", "load_ms"), get(stem, 1, "ort", "load_ms")
        dm, om, ob = get(stem, 1, "deed", "peak_rss_kib"), get(stem, 1, "ort", "peak_rss_kib"), get(stem, 1, "ort", "base_rss_kib")
        tm = get(stem, 1, "tract", "peak_rss_kib")
        on, off = get(stem, 1, "deed", "median_ms"), get(stem, 1, "deed", "median_ms_notrace")
        mib = lambda k: None if k is None else k / 1024
        cost = "—" if on is None or off is None else f"{(on / off - 1) * 100:+.1f}%"
        lines.append(f"| {stem} | {fmt(dl)} | {fmt(ol)} | {ratio(dl, ol)} | {fmt(mib(dm))} | {fmt(mib(om))} ({fmt(mib(ob))}) | "
                     f"{ratio(dm, om)} | {fmt(mib(tm))} | {fmt(on)} / {fmt(off)} | {cost} |")
    errs = [f"- {n} on {s} (threads {t}): {r['error']}" for (s, t, n), r in res.items() if "error" in r and t == 1]
    if errs:
        lines += ["", "Refused or failed:", ""] + errs
    table = "\n".join(lines)
    print(table)
    readme = os.path.join(HERE, "README.md")
    text = open(readme).read()
    block = f"<!-- engine:begin -->\n{table}\n<!-- engine:end -->"
    if "<!-- engine:begin -->" in text:
        text = re.sub(r"<!-- engine:begin -->.*<!-- engine:end -->", lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n## `bench/run.sh engine`\n\n" + block + "\n"
    if not quick:
        open(readme, "w").write(text)


if __name__ == "__main__":
    main()

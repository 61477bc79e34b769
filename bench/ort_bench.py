"""Times one ONNX model under onnxruntime: `ort_bench.py MODEL THREADS RUNS` prints one JSON
line: load_ms (InferenceSession creation, default graph optimizations), median_ms over RUNS
runs, peak RSS (VmHWM) and the RSS before the session was created (the Python baseline)."""

import json
import sys
import time

import numpy as np
import onnxruntime as ort


def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def main():
    path, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    base = status("VmRSS")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    t0 = time.perf_counter()
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t0) * 1e3
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        n = int(np.prod(shape))
        j = np.arange(n, dtype=np.int64)
        feeds[i.name] = (((j * 7919) % 1013).astype(np.float32) / 1013.0 - 0.5).reshape(shape)
    sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    print(json.dumps({"load_ms": load_ms, "median_ms": times[len(times) // 2], "peak_rss_kib": status("VmHWM"),
                      "base_rss_kib": base}))


if __name__ == "__main__":
    main()

//! Store benchmark (bench/run.sh store): ingest and verified-read throughput on a 1 GiB
//! ONNX-framed model file, and the dedup ratio of a second version with one changed
//! tensor. Prints markdown table rows; the peers (cp, b3sum) are timed by run.sh.
//!
//! Usage: store_bench <work dir> [size MiB]

use deed_store::Store;
use std::{
    fs::File,
    io::{BufWriter, Read, Write},
    path::Path,
    time::Instant,
};

fn put_varint(v: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        v.push((x as u8) | 0x80);
        x >>= 7;
    }
    v.push(x as u8);
}

fn key(v: &mut Vec<u8>, field: u64, wt: u64) {
    put_varint(v, field << 3 | wt);
}

/// Writes an ONNX ModelProto whose graph holds `n` f32 initializers of `elems` each;
/// tensor `changed` (if any) gets different data.
fn write_model(p: &Path, n: usize, elems: usize, changed: Option<usize>) -> u64 {
    let tensor_head = |i: usize| {
        let mut t = Vec::new();
        key(&mut t, 1, 0);
        put_varint(&mut t, elems as u64);
        key(&mut t, 2, 0);
        put_varint(&mut t, 1);
        key(&mut t, 8, 2);
        let name = format!("layer{i}.weight");
        put_varint(&mut t, name.len() as u64);
        t.extend_from_slice(name.as_bytes());
        key(&mut t, 9, 2);
        put_varint(&mut t, (elems * 4) as u64);
        t
    };
    let mut graph_len = 0u64;
    let mut heads = Vec::new();
    for i in 0..n {
        let h = tensor_head(i);
        let tlen = (h.len() + elems * 4) as u64;
        let mut outer = Vec::new();
        key(&mut outer, 5, 2);
        put_varint(&mut outer, tlen);
        graph_len += outer.len() as u64 + tlen;
        heads.push((outer, h));
    }
    let mut f = BufWriter::with_capacity(1 << 20, File::create(p).unwrap());
    let mut top = Vec::new();
    key(&mut top, 1, 0);
    put_varint(&mut top, 8);
    key(&mut top, 7, 2);
    put_varint(&mut top, graph_len);
    f.write_all(&top).unwrap();
    let mut buf = vec![0u8; elems * 4];
    for (i, (outer, h)) in heads.iter().enumerate() {
        f.write_all(outer).unwrap();
        f.write_all(h).unwrap();
        // Weights-like bytes: small floats from a cheap generator.
        let mut s = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ if changed == Some(i) { 0xdead } else { 0 };
        for c in buf.chunks_exact_mut(4) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let x = ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1;
            c.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
    f.into_inner().unwrap().sync_all().unwrap();
    std::fs::metadata(p).unwrap().len()
}

/// CPU seconds (user + system) of this process so far, all threads; 0 off Linux.
fn cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(1).map(String::as_str).unwrap_or("/tmp/deed-store-bench"));
    let mib: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
    std::fs::create_dir_all(dir).unwrap();
    let n = 64;
    let elems = mib * (1 << 20) / 4 / n;
    let v1 = dir.join("model-v1.onnx");
    let v2 = dir.join("model-v2.onnx");
    let size = write_model(&v1, n, elems, None);
    write_model(&v2, n, elems, Some(n / 2));
    let store_dir = dir.join("store");
    let _ = std::fs::remove_dir_all(&store_dir);
    let s = Store::open(&store_dir).unwrap();
    let gb = size as f64 / 1e9;
    let (t, c) = (Instant::now(), cpu_s());
    let info = s.ingest(File::open(&v1).unwrap(), u64::MAX).unwrap();
    let (ingest, ingest_cpu) = (t.elapsed().as_secs_f64(), cpu_s() - c);
    let stored1 = s.stats_full().unwrap().stored_bytes;
    // Chunks were written with O_DIRECT, so the first read comes from the disk, the
    // second from the page cache.
    let read_all = || {
        let (t, c) = (Instant::now(), cpu_s());
        let mut r = s.reader(&info.cid, 0, None).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let k = r.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            total += k as u64;
        }
        assert_eq!(total, size);
        (t.elapsed().as_secs_f64(), cpu_s() - c)
    };
    let (read, read_cpu) = read_all();
    let (read_warm, read_warm_cpu) = read_all();
    let t = Instant::now();
    let mut ranges = 0u64;
    for i in 0..1000u64 {
        let start = (i * 7_919 * 65_537) % (size - 4096);
        ranges += s.get_range(&info.cid, start, Some(start + 4096)).unwrap().len() as u64;
    }
    let range_ms = t.elapsed().as_secs_f64() * 1000.0 / 1000.0;
    assert_eq!(ranges, 4_096_000);
    let (t, c) = (Instant::now(), cpu_s());
    s.ingest(File::open(&v2).unwrap(), u64::MAX).unwrap();
    let (ingest2, ingest2_cpu) = (t.elapsed().as_secs_f64(), cpu_s() - c);
    let st = s.stats_full().unwrap();
    let added = st.stored_bytes - stored1;
    let (t, c) = (Instant::now(), cpu_s());
    let fp = s.fingerprint(&info.cid).unwrap().unwrap();
    let (fp_s, fp_cpu) = (t.elapsed().as_secs_f64(), cpu_s() - c);
    let row = |what: &str, secs: f64, cpu: f64| {
        println!("| {what} | {secs:.2} s | {:.2} GB/s | {cpu:.2} s |", gb / secs);
    };
    row("deed ingest (hash + chunk + outboard, durable: fsync before the manifest)", ingest, ingest_cpu);
    row("deed verified read (whole file, from disk)", read, read_cpu);
    row("deed verified read (whole file, again: page cache)", read_warm, read_warm_cpu);
    println!("| deed verified 4 KiB range read (mean of 1000) | {:.1} µs | | |", range_ms * 1000.0);
    row("deed ingest of v2 (one tensor changed)", ingest2, ingest2_cpu);
    row(&format!("deed fingerprint ({} tensors)", fp.tensors.len()), fp_s, fp_cpu);
    println!();
    println!(
        "dedup: two versions, {} logical bytes, {} stored ({:.2}x); v2 added {} bytes = {:.2}% of its size (one tensor of {} bytes)",
        st.logical_bytes,
        st.stored_bytes,
        st.logical_bytes as f64 / st.stored_bytes as f64,
        added,
        added as f64 * 100.0 / size as f64,
        elems * 4
    );
}

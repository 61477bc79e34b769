//! Fuzz targets for the model parsers, run briefly under `cargo test` (proptest, as the
//! engine does): ONNX initializer extraction, safetensors headers, the streaming region
//! scanner and the chunker. Seeds include header bombs, overflowing dims, zero-size and
//! overlapping offsets, path traversal in external data and deeply nested messages.
//! Properties: no panic; no allocation beyond what the input holds (the parsers borrow;
//! checked by a size cap on what they return); bounded time (each case is a single pass).

use deed_store::{
    chunker::Chunker,
    fingerprint,
    formats::{self, FormatLimits, RegionScanner},
};
use proptest::prelude::*;
use std::collections::VecDeque;

fn put_varint(v: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        v.push((x as u8) | 0x80);
        x >>= 7;
    }
    v.push(x as u8);
}
fn ld(field: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    put_varint(&mut v, field << 3 | 2);
    put_varint(&mut v, payload.len() as u64);
    v.extend_from_slice(payload);
    v
}
fn vi(field: u64, x: u64) -> Vec<u8> {
    let mut v = Vec::new();
    put_varint(&mut v, field << 3);
    put_varint(&mut v, x);
    v
}

/// Seeds: valid and hostile ONNX files.
fn onnx_seeds() -> Vec<Vec<u8>> {
    let tensor = |dims: &[u64], dtype: u64, raw: &[u8]| {
        let mut t = Vec::new();
        for d in dims {
            t.extend(vi(1, *d));
        }
        t.extend(vi(2, dtype));
        t.extend(ld(8, b"w"));
        t.extend(ld(9, raw));
        t
    };
    let model = |ts: Vec<Vec<u8>>| {
        let g: Vec<u8> = ts.iter().flat_map(|t| ld(5, t)).collect();
        [vi(1, 8), ld(7, &g)].concat()
    };
    let kv = |k: &str, v: &str| ld(13, &[ld(1, k.as_bytes()), ld(2, v.as_bytes())].concat());
    let mut deep = vec![];
    for _ in 0..2000 {
        deep = ld(7, &deep);
    }
    let mut bomb_len = vec![];
    put_varint(&mut bomb_len, 7 << 3 | 2);
    put_varint(&mut bomb_len, u64::MAX >> 1);
    vec![
        model(vec![tensor(&[4, 4], 1, &[0u8; 64])]),
        model(vec![tensor(&[u64::MAX, u64::MAX], 1, &[0u8; 8])]),
        model(vec![tensor(&[1 << 40, 1 << 40], 1, &[])]),
        model(vec![tensor(&[0], 1, &[])]),
        model(vec![tensor(&[1; 40], 1, &[0u8; 4])]),
        model(vec![[vi(1, 1 << 30), vi(2, 1), ld(4, &[0u8; 12])].concat()]),
        model(vec![[vi(1, 2), vi(2, 1), kv("location", "../../etc/passwd"), kv("length", "8"), vi(14, 1)].concat()]),
        model(vec![[vi(1, 2), vi(2, 1), kv("location", "/etc/passwd"), kv("offset", "99999999999999999999")].concat()]),
        model(vec![
            [
                vi(1, 2),
                vi(2, 1),
                kv("location", "w.bin"),
                kv("offset", "18446744073709551615"),
                kv("length", "8"),
                vi(14, 1),
            ]
            .concat(),
        ]),
        deep,
        bomb_len,
        vec![0xff; 64],
    ]
}

fn safetensors_seeds() -> Vec<Vec<u8>> {
    let file = |hdr: &str, data: usize| {
        let mut v = (hdr.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(hdr.as_bytes());
        v.extend(std::iter::repeat_n(0u8, data));
        v
    };
    let mut bomb = (u64::MAX).to_le_bytes().to_vec();
    bomb.push(b'{');
    vec![
        file(r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#, 16),
        file(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            12,
        ),
        file(
            r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#,
            0,
        ),
        file(r#"{"a":{"dtype":"F32","shape":[18446744073709551615,2],"data_offsets":[0,8]}}"#, 8),
        file(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, 8),
        file(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}}"#, 8),
        file(r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"X9","shape":[1],"data_offsets":[0,1]}}"#, 1),
        file(&format!("{{\"a\":{}}}", "[".repeat(10_000)), 0),
        bomb,
    ]
}

fn mutate(mut b: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    for &(i, x) in edits {
        if !b.is_empty() {
            let n = b.len();
            b[i % n] ^= x;
        }
    }
    let keep = b.len().saturating_sub(cut % 8);
    b.truncate(keep);
    b
}

fn limits() -> FormatLimits {
    FormatLimits { tensor_elements_max: 1 << 28, ..FormatLimits::default() }
}

/// Everything a parser returns borrows from the input or is bounded by it.
fn check_onnx(b: &[u8]) {
    if let Ok(ts) = formats::onnx_tensors(b, &limits()) {
        assert!(ts.len() <= b.len());
        for t in &ts {
            assert!(t.dims.len() <= 16);
        }
    }
    let _ = fingerprint::of_model(b, &limits(), &|_| None);
    let mut s = RegionScanner::new(limits());
    for c in b.chunks(37) {
        s.feed(c);
    }
    assert!(s.regions.iter().all(|&(a, e)| a < e && e <= b.len() as u64));
}

fn check_safetensors(b: &[u8]) {
    if let Ok(ts) = formats::safetensors_tensors(b, &limits()) {
        let total: usize = ts
            .iter()
            .map(|t| match t.data {
                formats::TensorData::Raw(r) => r.len(),
                _ => 0,
            })
            .sum();
        assert!(total <= b.len(), "tensors never overlap, so their data fits the file");
    }
    let _ = fingerprint::of_model(b, &limits(), &|_| None);
    let mut s = RegionScanner::new(limits());
    s.feed(b);
}

#[test]
fn seeds_do_not_panic() {
    for s in onnx_seeds() {
        check_onnx(&s);
    }
    for s in safetensors_seeds() {
        check_safetensors(&s);
    }
    // external path traversal is refused, not followed
    let e = formats::onnx_tensors(&onnx_seeds()[6], &limits()).unwrap_err();
    assert!(e.to_string().contains("bare file name"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn onnx_mutations(seed in 0usize..12, edits in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6), cut in any::<usize>()) {
        let seeds = onnx_seeds();
        check_onnx(&mutate(seeds[seed % seeds.len()].clone(), &edits, cut));
    }

    #[test]
    fn safetensors_mutations(seed in 0usize..9, edits in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6), cut in any::<usize>()) {
        let seeds = safetensors_seeds();
        check_safetensors(&mutate(seeds[seed % seeds.len()].clone(), &edits, cut));
    }

    #[test]
    fn arbitrary_bytes(b in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_onnx(&b);
        check_safetensors(&b);
    }

    /// The chunker reproduces its input exactly whatever the regions and read sizes.
    #[test]
    fn chunker_reassembles(
        len in 0usize..3_000_000,
        regions in prop::collection::vec((any::<u32>(), any::<u32>()), 0..8),
        piece in 1usize..300_000,
    ) {
        let data: Vec<u8> = (0..len).map(|i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) as u8).collect();
        let mut rs: Vec<(u64, u64)> = regions.iter().map(|&(a, b)| {
            let a = u64::from(a) % (len as u64 + 1);
            (a, a + u64::from(b) % 2_000_000)
        }).collect();
        rs.sort();
        let mut q: VecDeque<(u64, u64)> = rs.into_iter().collect();
        let mut out = Vec::new();
        let mut c = Chunker::default();
        let mut emit = |b: &[u8]| -> Result<(), ()> { out.extend_from_slice(b); Ok(()) };
        for p in data.chunks(piece) {
            c.feed(p, &mut q, &mut emit).unwrap();
        }
        c.finish(&mut emit).unwrap();
        prop_assert_eq!(out, data);
    }
}

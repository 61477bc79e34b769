//! The store over an S3-compatible server (feature `s3`): run by scripts/s3_test.sh,
//! which starts a local moto server and sets `DEED_S3_ENDPOINT`. Without it the test
//! says so and passes.

use deed_store::{
    Store, StoreError,
    backend::Backend,
    s3::{S3Backend, S3Config},
};
use deed_types::Cid;
use std::sync::Arc;

#[test]
fn store_over_s3() {
    let Some(mut cfg) = S3Config::from_env() else {
        eprintln!("DEED_S3_ENDPOINT not set: skipping (scripts/s3_test.sh runs this against moto)");
        return;
    };
    cfg.prefix = format!("test-{}", std::process::id());
    let backend = Arc::new(S3Backend::new(cfg).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let s = Store::with_backend(dir.path(), backend.clone()).unwrap();
    // xorshift bytes: no repeats, so every chunk is distinct (a periodic pattern would
    // deduplicate chunks, and corrupting one would corrupt them all)
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..3_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    let cid = s.put(&data).unwrap();
    assert_eq!(cid, Cid::of(&data));
    assert!(s.has(&cid));
    assert_eq!(s.get(&cid).unwrap(), data);
    assert_eq!(s.get_range(&cid, 1_000_000, Some(1_500_000)).unwrap(), &data[1_000_000..1_500_000]);
    assert_eq!(s.size(&cid).unwrap(), 3_000_000);
    let st = s.stats_full().unwrap();
    assert_eq!((st.blobs, st.logical_bytes), (1, 3_000_000));
    assert!(st.backend.starts_with("s3 "), "{}", st.backend);
    // corrupt a chunk in the bucket: never served
    let m = s.manifest(&cid).unwrap();
    let (h, off, _) = m.chunks[1];
    assert!(m.chunks.iter().filter(|c| c.0 == h).count() == 1 && off >= 16384);
    let k = format!("chunks/{}/{}", &hex::encode(h.0)[..2], hex::encode(h.0));
    let mut b = backend.get(&k).unwrap().unwrap();
    b[10] ^= 1;
    backend.put(&k, &b).unwrap();
    assert!(matches!(s.get_range(&cid, off + 10, Some(off + 11)), Err(StoreError::Corrupt { .. })));
    assert_eq!(s.get_range(&cid, 0, Some(16384)).unwrap(), &data[..16384]);
    // GC removes everything when nothing is kept
    let r = s.gc(|_| false, 0).unwrap();
    assert_eq!(r.blobs_removed, 1);
    assert!(!s.has(&cid));
    assert_eq!(s.stats_full().unwrap().chunks, 0);
}

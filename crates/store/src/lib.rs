//! Content-addressed blobs: ingest, validate, verify on read, serve.
//!
//! Blobs live in a folder, one file per blob, named by the hex BLAKE3 digest of the
//! content under a two-character fan-out directory (`blobs/ab/abcd…`). Ingest streams
//! into a temporary file while hashing, syncs it, and renames it into place, so a blob
//! either exists whole or not at all. Every read re-hashes the content and refuses to
//! return bytes that do not match their id (hash on write, verify on read).

use deed_types::{Cid, Hash32};
use std::{
    fs::{self, File},
    io::{self, Read, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

/// Size of the buffer used when streaming a blob in or out.
const IO_CHUNK_BYTES: usize = 256 * 1024;

/// Errors from the blob store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No blob with this id is stored.
    #[error("blob {0} is not in the store")]
    NotFound(Cid),
    /// The stored bytes no longer hash to their id (disk corruption or tampering).
    #[error("blob {cid} is corrupt: its bytes hash to {actual}; it will not be served")]
    Corrupt {
        /// The id asked for.
        cid: Cid,
        /// What the bytes on disk hash to.
        actual: Hash32,
    },
    /// The content is larger than the caller's limit.
    #[error("blob is larger than the limit of {max_bytes} bytes")]
    TooLarge {
        /// The limit.
        max_bytes: u64,
    },
    /// The content is in a format deed refuses.
    #[error("{0}")]
    Refused(String),
    /// An I/O error.
    #[error("store I/O error: {0}")]
    Io(#[from] io::Error),
}

/// What [`Store::ingest`] stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// The content id.
    pub cid: Cid,
    /// Size in bytes.
    pub size: u64,
}

/// A content-addressed blob folder.
#[derive(Debug)]
pub struct Store {
    blobs: PathBuf,
    tmp: PathBuf,
    tmp_seq: AtomicU64,
}

impl Store {
    /// Opens (creating if needed) a store rooted at `dir`. Leftover temporary files from
    /// an interrupted ingest are removed.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let blobs = dir.join("blobs");
        let tmp = dir.join("tmp");
        fs::create_dir_all(&blobs)?;
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        Ok(Store { blobs, tmp, tmp_seq: AtomicU64::new(0) })
    }

    fn path_of(&self, cid: &Cid) -> PathBuf {
        let h = hex::encode(cid.digest().0);
        self.blobs.join(&h[..2]).join(h)
    }

    /// Streams `reader` into the store, hashing as it writes, in constant memory.
    /// Refuses content over `max_bytes`. Idempotent: storing existing content is a no-op.
    pub fn ingest(&self, reader: impl Read, max_bytes: u64) -> Result<BlobInfo, StoreError> {
        self.ingest_checked(reader, max_bytes, |_| Ok(()))
    }

    /// Like [`Store::ingest`], but `check` sees the first bytes of the content (up to
    /// 64 KiB) and may refuse it before anything more is written.
    pub fn ingest_checked(
        &self,
        mut reader: impl Read,
        max_bytes: u64,
        check: impl FnOnce(&[u8]) -> Result<(), StoreError>,
    ) -> Result<BlobInfo, StoreError> {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp_path = self.tmp.join(format!("ingest-{}-{seq}", std::process::id()));
        let result = (|| {
            let mut file = File::create(&tmp_path)?;
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; IO_CHUNK_BYTES];
            let mut size = 0u64;
            let mut check = Some(check);
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                };
                size += n as u64;
                if size > max_bytes {
                    return Err(StoreError::TooLarge { max_bytes });
                }
                if let Some(c) = check.take() {
                    c(&buf[..n])?;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])?;
            }
            if let Some(c) = check.take() {
                c(&[])?;
            }
            file.sync_all()?;
            Ok((Cid(hasher.finalize().into()), size))
        })();
        let (cid, size) = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp_path);
                return Err(e);
            }
        };
        let dest = self.path_of(&cid);
        if dest.exists() {
            fs::remove_file(&tmp_path)?;
        } else {
            let dir = dest.parent().expect("blob paths have a parent");
            fs::create_dir_all(dir)?;
            fs::rename(&tmp_path, &dest)?;
            File::open(dir)?.sync_all()?;
        }
        Ok(BlobInfo { cid, size })
    }

    /// Stores `bytes` and returns their id.
    pub fn put(&self, bytes: &[u8]) -> Result<Cid, StoreError> {
        Ok(self.ingest(bytes, u64::MAX)?.cid)
    }

    /// True when a blob with this id is stored (its content is checked on read).
    pub fn has(&self, cid: &Cid) -> bool {
        self.path_of(cid).is_file()
    }

    /// Size of a stored blob.
    pub fn size(&self, cid: &Cid) -> Result<u64, StoreError> {
        match fs::metadata(self.path_of(cid)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound(*cid)),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a whole blob and verifies it against its id.
    pub fn get(&self, cid: &Cid) -> Result<Vec<u8>, StoreError> {
        let bytes = match fs::read(self.path_of(cid)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NotFound(*cid)),
            Err(e) => return Err(e.into()),
        };
        let actual = Hash32::of(&bytes);
        if &actual != cid.digest() {
            return Err(StoreError::Corrupt { cid: *cid, actual });
        }
        Ok(bytes)
    }

    /// Number of stored blobs and their total size in bytes.
    pub fn stats(&self) -> Result<(u64, u64), StoreError> {
        let (mut n, mut bytes) = (0, 0);
        for fan in fs::read_dir(&self.blobs)? {
            for f in fs::read_dir(fan?.path())? {
                n += 1;
                bytes += f?.metadata()?.len();
            }
        }
        Ok((n, bytes))
    }
}

/// Formats deed recognises by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// A Python pickle stream (what `torch.save` and many `.bin` files are).
    Pickle,
    /// A ZIP archive (PyTorch's `.pt` format wraps pickles in one).
    Zip,
    /// Anything else (ONNX has no magic number; it is validated by parsing).
    Other,
}

/// Recognises formats that must be refused before a byte of them is parsed.
pub fn sniff(head: &[u8]) -> Sniffed {
    match head {
        [0x80, 2..=5, ..] => Sniffed::Pickle,
        [b'P', b'K', 3, 4, ..] => Sniffed::Zip,
        _ => Sniffed::Other,
    }
}

/// Refuses pickle-based model formats with a message that says why; for
/// [`Store::ingest_checked`].
pub fn refuse_pickle(head: &[u8]) -> Result<(), StoreError> {
    match sniff(head) {
        Sniffed::Pickle | Sniffed::Zip => Err(StoreError::Refused(
            "refused: this looks like a PyTorch/pickle file (.pt, .pth, .bin); pickle can run arbitrary code when \
             loaded, so deed only accepts ONNX. Export with torch.onnx.export and publish the .onnx file"
                .into(),
        )),
        Sniffed::Other => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_get_and_corruption_detected() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let data = vec![7u8; 1_000_000];
        let info = s.ingest(&data[..], 2_000_000).unwrap();
        assert_eq!(info.cid, Cid::of(&data));
        assert_eq!(info.size, 1_000_000);
        assert_eq!(s.get(&info.cid).unwrap(), data);
        assert_eq!(s.ingest(&data[..], 2_000_000).unwrap(), info, "idempotent");
        assert!(matches!(s.ingest(&data[..], 10), Err(StoreError::TooLarge { .. })));
        // flip one byte on disk: the blob must not be served
        let p = s.path_of(&info.cid);
        let mut b = fs::read(&p).unwrap();
        b[500] ^= 1;
        fs::write(&p, b).unwrap();
        assert!(matches!(s.get(&info.cid), Err(StoreError::Corrupt { .. })));
        assert!(matches!(s.get(&Cid::of(b"nope")), Err(StoreError::NotFound(_))));
        assert_eq!(s.stats().unwrap().0, 1);
    }

    #[test]
    fn pickle_refused_before_storing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let err = s.ingest_checked(&b"\x80\x04\x95rest"[..], 100, refuse_pickle).unwrap_err();
        assert!(err.to_string().contains("pickle"), "{err}");
        assert_eq!(s.stats().unwrap().0, 0);
        assert!(fs::read_dir(dir.path().join("tmp")).unwrap().next().is_none(), "no temp file left behind");
    }
}

//! Where chunks and manifests are kept: one trait, a local folder (the default) and,
//! behind the `s3` feature, S3-compatible object storage.
//!
//! Keys are `/`-separated relative paths such as `chunks/ab/abcd…`. Objects are
//! immutable once written (they are named by content), so the trait needs no update.

use std::{
    fs::{self, File},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::SystemTime,
};

/// One stored object, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, milliseconds since the Unix epoch (0 when unknown).
    pub modified_ms: u64,
}

/// Object storage for chunks and manifests.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Writes an object whole (atomically: readers see all of it or nothing). It need
    /// not be durable until [`Backend::sync`] is called with its key.
    fn put(&self, key: &str, data: &[u8]) -> io::Result<()>;
    /// Makes earlier puts of these keys durable.
    fn sync(&self, keys: &[String]) -> io::Result<()>;
    /// Reads a whole object; `None` when absent.
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Reads `len` bytes at `offset` of an object (exactly, or an error).
    fn get_range(&self, key: &str, offset: u64, len: u64) -> io::Result<Vec<u8>>;
    /// True when the object exists.
    fn has(&self, key: &str) -> io::Result<bool>;
    /// Deletes an object (absent is fine).
    fn delete(&self, key: &str) -> io::Result<()>;
    /// Every object whose key starts with `prefix`.
    fn list(&self, prefix: &str) -> io::Result<Vec<ObjectInfo>>;
    /// A short description for status output ("local /path", "s3 bucket/prefix").
    fn describe(&self) -> String;
}

/// Objects as files under a folder.
#[derive(Debug)]
pub struct LocalBackend {
    root: PathBuf,
    tmp: PathBuf,
    seq: AtomicU64,
}

impl LocalBackend {
    /// Opens (creating) a folder backend; removes leftovers of interrupted writes.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        Ok(LocalBackend { root: root.to_path_buf(), tmp, seq: AtomicU64::new(0) })
    }

    fn path(&self, key: &str) -> PathBuf {
        debug_assert!(!key.contains("..") && !key.starts_with('/'), "keys are made by the store");
        self.root.join(key)
    }
}

fn modified_ms(m: &fs::Metadata) -> u64 {
    m.modified().ok().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as u64)
}

impl Backend for LocalBackend {
    fn put(&self, key: &str, data: &[u8]) -> io::Result<()> {
        let dest = self.path(key);
        let tmp = self.tmp.join(format!("put-{}-{}", std::process::id(), self.seq.fetch_add(1, Ordering::Relaxed)));
        let r = (|| {
            File::create(&tmp)?.write_all(data)?;
            if let Some(dir) = dest.parent() {
                fs::create_dir_all(dir)?;
            }
            fs::rename(&tmp, &dest)
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }

    fn sync(&self, keys: &[String]) -> io::Result<()> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for k in keys {
            let p = self.path(k);
            File::open(&p)?.sync_all()?;
            if let Some(d) = p.parent() {
                dirs.push(d.to_path_buf());
            }
        }
        dirs.sort();
        dirs.dedup();
        for d in dirs {
            File::open(d)?.sync_all()?;
        }
        Ok(())
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.path(key)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let mut f = File::open(self.path(key))?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
        f.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn has(&self, key: &str) -> io::Result<bool> {
        Ok(self.path(key).is_file())
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        match fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<ObjectInfo>> {
        // Keys are `<kind>/<fan>/<name>`: walk two levels under the prefix's folder.
        let mut out = Vec::new();
        let dir = self.path(prefix.trim_end_matches('/'));
        let Ok(fans) = fs::read_dir(&dir) else { return Ok(out) };
        for fan in fans {
            let fan = fan?;
            if !fan.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(fan.path())? {
                let f = f?;
                let m = f.metadata()?;
                if !m.is_file() {
                    continue;
                }
                out.push(ObjectInfo {
                    key: format!(
                        "{}/{}/{}",
                        prefix.trim_end_matches('/'),
                        fan.file_name().to_string_lossy(),
                        f.file_name().to_string_lossy()
                    ),
                    size: m.len(),
                    modified_ms: modified_ms(&m),
                });
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("local {}", self.root.display())
    }
}

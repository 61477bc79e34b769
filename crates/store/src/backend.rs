//! Where chunks and manifests are kept: one trait, a local folder (the default) and,
//! behind the `s3` feature, S3-compatible object storage.
//!
//! Keys are `/`-separated relative paths such as `chunks/ab/abcd…`. Objects are
//! immutable once written (they are named by content), so the trait needs no update.

use std::{
    collections::{HashMap, HashSet},
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
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
    /// Makes earlier puts of these keys durable (waiting for any still being written);
    /// an error when one of them could not be.
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
///
/// A put copies the bytes into a buffer and hands them to a background flusher thread,
/// which writes a temporary file, makes it durable (`fdatasync`) and renames it into
/// place; [`Backend::sync`] waits for the keys it names and then syncs, once each, the
/// folders that gained names. So a file under an object's name is always whole and
/// durable (a crash never leaves a torn chunk that a later ingest would deduplicate
/// against), the disk works while the caller goes on hashing and chunking, and a 1 GiB
/// ingest costs one folder sync per fan-out folder touched rather than one per chunk.
/// Objects in flight count for [`Backend::has`], and reads of them wait until they land.
/// At most [`IN_FLIGHT_MAX_BYTES`] are queued: a put beyond that waits, so memory stays
/// bounded.
///
/// On Linux (x86_64, aarch64) files are written with `O_DIRECT`: the bytes go from the
/// buffer to the disk without a copy into the page cache (which on the benchmark machine
/// cost more CPU than hashing them), and the writer falls back to ordinary writes on a
/// file system that refuses it (tmpfs).
#[derive(Debug)]
pub struct LocalBackend {
    root: PathBuf,
    flush: Arc<Flush>,
    jobs: Mutex<Option<mpsc::Sender<FlushJob>>>,
}

/// Most bytes put but not yet written.
pub const IN_FLIGHT_MAX_BYTES: usize = 32 << 20;
/// Most files the flusher writes before it syncs their folders at once.
const FLUSH_BATCH: usize = 64;
/// Alignment of memory, offset and length for `O_DIRECT`.
const DIRECT_ALIGN: usize = 4096;
/// Threads that sync folders at the end of a sync.
const DIR_SYNC_THREADS: usize = 4;
/// Free write buffers kept for reuse.
const FREE_BUFFERS_MAX: usize = 8;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const O_DIRECT: Option<i32> = Some(0o40000);
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
const O_DIRECT: Option<i32> = Some(0o200000);
#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
const O_DIRECT: Option<i32> = None;
/// `EINVAL`: what Linux answers an `O_DIRECT` open or write the file system cannot do.
const EINVAL: i32 = 22;

/// Objects written but not yet durable, shared with the flusher thread.
#[derive(Debug)]
struct Flush {
    state: Mutex<FlushState>,
    done: Condvar,
    tmp: PathBuf,
    seq: AtomicU64,
    direct: AtomicBool,
    /// Held while folders are synced, so a sync never returns while another one is
    /// still syncing folders that hold its objects.
    dir_sync: Mutex<()>,
}

#[derive(Debug, Default)]
struct FlushState {
    /// Key → puts of it not yet flushed.
    in_flight: HashMap<String, usize>,
    /// Keys whose last flush failed (until a later put of the same key lands).
    failed: HashMap<String, io::Error>,
    /// Bytes queued.
    queued: usize,
    /// Buffers to reuse (fresh memory is slow to touch on some VMs).
    free: Vec<Vec<u8>>,
    /// Folders that gained a name since they were last synced.
    dirty_dirs: HashSet<PathBuf>,
}

#[derive(Debug)]
struct FlushJob {
    key: String,
    /// The bytes are `buf[at..at + len]`; `at` is aligned to [`DIRECT_ALIGN`], and the
    /// buffer holds zeros up to the next multiple of it.
    buf: Vec<u8>,
    at: usize,
    len: usize,
    dest: PathBuf,
}

impl Flush {
    fn lock(&self) -> MutexGuard<'_, FlushState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until none of `keys` is in flight.
    fn wait<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> MutexGuard<'_, FlushState> {
        let mut st = self.lock();
        for k in keys {
            while st.in_flight.contains_key(k) {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        st
    }

    /// The flusher thread: a batch at a time.
    fn run(&self, jobs: mpsc::Receiver<FlushJob>) {
        while let Ok(first) = jobs.recv() {
            let mut batch = vec![first];
            while batch.len() < FLUSH_BATCH {
                match jobs.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
    }

    /// Writes each job's file durably and renames it into place. The folders that got
    /// new names are synced later, once, by [`Flush::sync_dirs`].
    fn process(&self, batch: Vec<FlushJob>) {
        let mut results: Vec<(String, io::Result<()>)> = Vec::with_capacity(batch.len());
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut done_bytes = 0;
        let mut bufs = Vec::new();
        for j in batch {
            let r = self.write_one(&j);
            if r.is_ok()
                && let Some(d) = j.dest.parent()
            {
                dirs.push(d.to_path_buf());
            }
            done_bytes += j.len;
            bufs.push(j.buf);
            results.push((j.key, r));
        }
        let mut st = self.lock();
        st.queued -= done_bytes;
        st.dirty_dirs.extend(dirs);
        for b in bufs {
            if st.free.len() < FREE_BUFFERS_MAX {
                st.free.push(b);
            }
        }
        for (key, r) in results {
            match r {
                Ok(()) => st.failed.remove(&key),
                Err(e) => st.failed.insert(key.clone(), e),
            };
            if let Some(n) = st.in_flight.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    st.in_flight.remove(&key);
                }
            }
        }
        drop(st);
        self.done.notify_all();
    }

    /// Syncs every folder that gained a name: then every object that has landed is durable.
    fn sync_dirs(&self) -> io::Result<()> {
        let _g = self.dir_sync.lock().unwrap_or_else(|e| e.into_inner());
        let dirs: Vec<PathBuf> = self.lock().dirty_dirs.drain().collect();
        if dirs.is_empty() {
            return Ok(());
        }
        // A few at a time: each is a small metadata write plus a device flush.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed: Mutex<Vec<PathBuf>> = Mutex::default();
        let err: Mutex<Option<io::Error>> = Mutex::default();
        std::thread::scope(|sc| {
            for _ in 0..DIR_SYNC_THREADS.min(dirs.len()) {
                sc.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(d) = dirs.get(i) else { break };
                        if let Err(e) = File::open(d).and_then(|f| f.sync_all()) {
                            failed.lock().unwrap_or_else(|e| e.into_inner()).push(d.clone());
                            *err.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                        }
                    }
                });
            }
        });
        let failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
        self.lock().dirty_dirs.extend(failed);
        match err.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Writes a temporary file durably and renames it to the job's destination.
    fn write_one(&self, j: &FlushJob) -> io::Result<()> {
        let tmp = self.tmp.join(format!("put-{}-{}", std::process::id(), self.seq.fetch_add(1, Ordering::Relaxed)));
        let r = (|| {
            self.write_file(&tmp, j)?;
            if let Some(dir) = j.dest.parent() {
                fs::create_dir_all(dir)?;
            }
            fs::rename(&tmp, &j.dest)
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }

    fn write_file(&self, tmp: &Path, j: &FlushJob) -> io::Result<()> {
        if let Some(flag) = O_DIRECT.filter(|_| self.direct.load(Ordering::Relaxed)) {
            let padded = j.len.next_multiple_of(DIRECT_ALIGN);
            let r = open_direct(tmp, flag).and_then(|mut f| {
                f.write_all(&j.buf[j.at..j.at + padded])?;
                if padded != j.len {
                    f.set_len(j.len as u64)?;
                }
                f.sync_data()
            });
            match r {
                Err(e) if e.raw_os_error() == Some(EINVAL) => self.direct.store(false, Ordering::Relaxed),
                r => return r,
            }
        }
        let mut f = File::create(tmp)?;
        f.write_all(&j.buf[j.at..j.at + j.len])?;
        f.sync_data()
    }
}

#[cfg(unix)]
fn open_direct(path: &Path, flag: i32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().write(true).create(true).truncate(true).custom_flags(flag).open(path)
}

#[cfg(not(unix))]
fn open_direct(_path: &Path, _flag: i32) -> io::Result<File> {
    Err(io::Error::from_raw_os_error(EINVAL))
}

impl LocalBackend {
    /// Opens (creating) a folder backend; removes leftovers of interrupted writes.
    pub fn open(root: &Path) -> io::Result<Self> {
        Self::open_with(root, true)
    }

    /// Like [`LocalBackend::open`]; `direct: false` never uses `O_DIRECT`.
    pub fn open_with(root: &Path, direct: bool) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        let flush = Arc::new(Flush {
            state: Mutex::default(),
            done: Condvar::new(),
            tmp,
            seq: AtomicU64::new(0),
            direct: AtomicBool::new(direct && O_DIRECT.is_some()),
            dir_sync: Mutex::new(()),
        });
        let (tx, rx) = mpsc::channel();
        let f = flush.clone();
        std::thread::Builder::new().name("deed-store-flush".into()).spawn(move || f.run(rx))?;
        Ok(LocalBackend { root: root.to_path_buf(), flush, jobs: Mutex::new(Some(tx)) })
    }

    /// True while files are written with `O_DIRECT`.
    pub fn direct_io(&self) -> bool {
        self.flush.direct.load(Ordering::Relaxed)
    }

    fn path(&self, key: &str) -> PathBuf {
        debug_assert!(!key.contains("..") && !key.starts_with('/'), "keys are made by the store");
        self.root.join(key)
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        // Closing the channel stops the flusher once it has drained what is queued;
        // wait for that, so everything put is in place when the backend is gone.
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(jobs);
        let mut st = self.flush.lock();
        while !st.in_flight.is_empty() {
            st = self.flush.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn modified_ms(m: &fs::Metadata) -> u64 {
    m.modified().ok().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as u64)
}

impl Backend for LocalBackend {
    fn put(&self, key: &str, data: &[u8]) -> io::Result<()> {
        let len = data.len();
        let mut st = self.flush.lock();
        while st.queued > 0 && st.queued + len > IN_FLIGHT_MAX_BYTES {
            st = self.flush.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.queued += len;
        *st.in_flight.entry(key.to_string()).or_default() += 1;
        let need = len.next_multiple_of(DIRECT_ALIGN) + DIRECT_ALIGN;
        let mut buf = match st.free.iter().position(|b| b.len() >= need) {
            Some(i) => st.free.swap_remove(i),
            None => st.free.pop().unwrap_or_default(),
        };
        drop(st);
        if buf.len() < need {
            buf.resize(need, 0);
        }
        let at = buf.as_ptr().align_offset(DIRECT_ALIGN);
        buf[at..at + len].copy_from_slice(data);
        let padded = len.next_multiple_of(DIRECT_ALIGN);
        buf[at + len..at + padded].fill(0);
        let job = FlushJob { key: key.to_string(), buf, at, len, dest: self.path(key) };
        let sent = match &*self.jobs.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        };
        if let Err(job) = sent {
            // No flusher (it is gone): write here.
            self.flush.process(vec![job]);
        }
        Ok(())
    }

    fn sync(&self, keys: &[String]) -> io::Result<()> {
        let st = self.flush.wait(keys.iter().map(String::as_str));
        if let Some(e) = keys.iter().find_map(|k| st.failed.get(k)) {
            return Err(io::Error::new(e.kind(), format!("writing an object failed: {e}")));
        }
        drop(st);
        self.flush.sync_dirs()
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        drop(self.flush.wait([key]));
        match fs::read(self.path(key)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        drop(self.flush.wait([key]));
        let mut f = File::open(self.path(key))?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
        f.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn has(&self, key: &str) -> io::Result<bool> {
        if self.flush.lock().in_flight.contains_key(key) {
            return Ok(true);
        }
        Ok(self.path(key).is_file())
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        drop(self.flush.wait([key]));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n as u64).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect()
    }

    #[test]
    fn puts_land_whole_direct_or_not() {
        for direct in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let b = LocalBackend::open_with(dir.path(), direct).unwrap();
            let sizes = [0usize, 1, 4095, 4096, 4097, 100_000, 5 << 20, (40 << 20) + 3];
            let keys: Vec<String> = sizes.iter().map(|n| format!("chunks/{:02x}/obj{n}", n % 256)).collect();
            for (k, n) in keys.iter().zip(sizes) {
                b.put(k, &bytes(n)).unwrap();
                assert!(b.has(k).unwrap(), "visible while in flight");
            }
            b.sync(&keys).unwrap();
            for (k, n) in keys.iter().zip(sizes) {
                assert_eq!(b.get(k).unwrap().unwrap(), bytes(n), "{k} direct={direct}");
                assert_eq!(fs::metadata(dir.path().join(k)).unwrap().len(), n as u64);
            }
            assert_eq!(b.get_range(&keys[6], 4093, 10).unwrap(), &bytes(5 << 20)[4093..4103]);
            assert!(fs::read_dir(dir.path().join("tmp")).unwrap().next().is_none(), "no temporary file left");
            assert_eq!(b.list("chunks").unwrap().len(), sizes.len());
            // overwrite (a manifest refreshed by a second ingest)
            b.put(&keys[2], b"new").unwrap();
            assert_eq!(b.get(&keys[2]).unwrap().unwrap(), b"new");
        }
    }

    #[test]
    fn a_failed_write_is_reported_by_sync_and_not_seen() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(dir.path()).unwrap();
        // `chunks` is a file, so its fan-out folder cannot be made
        fs::write(dir.path().join("chunks"), b"in the way").unwrap();
        let k = "chunks/ab/abcd".to_string();
        b.put(&k, b"data").unwrap();
        assert!(b.sync(std::slice::from_ref(&k)).is_err());
        assert!(!b.has(&k).unwrap(), "a chunk that did not land is not deduplicated against");
        assert!(fs::read_dir(dir.path().join("tmp")).unwrap().next().is_none());
        // once the obstacle is gone, putting it again heals the key
        fs::remove_file(dir.path().join("chunks")).unwrap();
        b.put(&k, b"data").unwrap();
        b.sync(std::slice::from_ref(&k)).unwrap();
        assert_eq!(b.get(&k).unwrap().unwrap(), b"data");
    }
}

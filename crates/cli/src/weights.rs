//! Loading a model that may be a bundle (an ONNX graph whose initializers live in a
//! safetensors file named `<weights CID>.safetensors`, docs/PROTOCOL.md *Model files*):
//! from a local file, with the weights beside it, or from a node, by content id.

use crate::Fail;
use crate::client::Client;
use deed_engine::{ExternalData, Limits, LoadError, Model};
use deed_types::Cid;
use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// External data read from files in one folder (the graph file's). A file named
/// `<cid>.safetensors` must hash to that CID — the graph's id commits to it — and is
/// hashed once, on first use.
struct DirWeights {
    dir: PathBuf,
    checked: Mutex<HashSet<String>>,
}

impl ExternalData for DirWeights {
    fn read(&self, location: &str, offset: u64, length: usize) -> Result<Vec<u8>, String> {
        if !deed_engine::is_bare_file_name(location) {
            return Err("the location must be a bare file name".into());
        }
        let path = self.dir.join(location);
        let open = || std::fs::File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()));
        let mut checked = self.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !checked.contains(location) {
            if let Some(cid) = Cid::from_location(location) {
                let mut h = blake3::Hasher::new();
                h.update_reader(open()?).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if Cid(deed_types::Hash32(*h.finalize().as_bytes())) != cid {
                    return Err(format!("{} does not hash to the CID in its name", path.display()));
                }
            }
            checked.insert(location.to_string());
        }
        drop(checked);
        let mut f = open()?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| format!("cannot seek in {}: {e}", path.display()))?;
        let mut out = Vec::new();
        f.take(length as u64).read_to_end(&mut out).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if out.len() != length {
            return Err(format!("{} ends before byte {}", path.display(), offset + length as u64));
        }
        Ok(out)
    }
}

/// Loads model `bytes` read from `file`: a self-contained ONNX file, or a bundle graph
/// whose weights file sits in the same folder.
pub fn load_file(file: &Path, bytes: &[u8]) -> Result<Model, LoadError> {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    Model::load_external(bytes, &Limits::default(), &DirWeights { dir, checked: Mutex::new(HashSet::new()) })
}

/// A node's blobs, fetched by content id (and checked against it).
struct NodeBlobs<'a>(&'a Client);

impl deed_ledger::BlobSource for NodeBlobs<'_> {
    fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        self.0.get_bytes(&format!("/v1/blobs/{cid}")).ok()
    }
}

/// Loads model `bytes` (already checked against their id) whose bundle weights, if
/// any, are fetched from the node `c` by content id and verified.
pub fn load_remote(c: &Client, bytes: &[u8]) -> Result<Model, Fail> {
    let blobs = NodeBlobs(c);
    deed_ledger::load_model(&deed_ledger::CachedBlobs::new(&blobs), bytes)
        .map_err(|e| Fail::new(1, format!("model does not load: {e}")))
}

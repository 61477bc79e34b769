//! The home folder: keys, config, genesis and data of one user or node.
//!
//! Layout: `config.toml`, `keys/<name>.key` (hex seed, mode 0600), `node.key` (the
//! node's own identity: block signing and receipts), `genesis.json`, `data/chain.redb`,
//! `data/store/`.

use deed_types::{Address, Keypair};
use serde::{Deserialize, Serialize};
use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

/// The default listen and client address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// The name of the key `deed init` creates.
pub const DEFAULT_KEY: &str = "default";

/// Errors about the home folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    /// The home has not been initialised.
    #[error("no deed home at {0}: run `deed init` first (or pass --home)")]
    Missing(PathBuf),
    /// A key name is unknown.
    #[error("no key named '{name}' in {dir}: see `deed key list`, or create it with `deed key new {name}`")]
    NoKey {
        /// The name asked for.
        name: String,
        /// The keys folder.
        dir: PathBuf,
    },
    /// A key already exists.
    #[error("a key named '{0}' already exists")]
    KeyExists(String),
    /// A key name has characters other than letters, digits, '-' and '_'.
    #[error("key names may hold only letters, digits, '-' and '_': '{0}'")]
    BadKeyName(String),
    /// A file is malformed.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// `config.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Config {
    /// The node client commands talk to.
    pub node_url: String,
    /// Where `deed node` listens.
    pub listen: String,
    /// The key used to sign when `--key` is not given.
    pub default_key: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_url: format!("http://{DEFAULT_LISTEN}"),
            listen: DEFAULT_LISTEN.into(),
            default_key: DEFAULT_KEY.into(),
        }
    }
}

/// A home folder.
#[derive(Clone, Debug)]
pub struct Home {
    /// Its path.
    pub dir: PathBuf,
}

fn write_secret(path: &Path, contents: &str) -> Result<(), HomeError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

impl Home {
    /// The home at `dir` (not checked).
    pub fn at(dir: impl Into<PathBuf>) -> Home {
        Home { dir: dir.into() }
    }

    /// `$DEED_HOME`, else `~/.deed`.
    pub fn default_dir() -> PathBuf {
        if let Some(h) = std::env::var_os("DEED_HOME") {
            return h.into();
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        home.join(".deed")
    }

    /// Creates the home with a default key, a node key and a config. Existing files are
    /// kept (init is safe to repeat). Returns the default key's address.
    pub fn init(&self) -> Result<Address, HomeError> {
        fs::create_dir_all(self.keys_dir())?;
        fs::create_dir_all(self.data_dir())?;
        if !self.config_path().exists() {
            self.save_config(&Config::default())?;
        }
        if !self.node_key_path().exists() {
            write_secret(&self.node_key_path(), &hex::encode(Keypair::generate().seed()))?;
        }
        let key = match self.key(DEFAULT_KEY) {
            Ok(k) => k,
            Err(HomeError::NoKey { .. }) => self.new_key(DEFAULT_KEY)?,
            Err(e) => return Err(e),
        };
        Ok(key.address())
    }

    /// Fails unless `init` has run.
    pub fn require(&self) -> Result<(), HomeError> {
        if self.config_path().is_file() { Ok(()) } else { Err(HomeError::Missing(self.dir.clone())) }
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    /// `keys/`.
    pub fn keys_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }
    /// `node.key`.
    pub fn node_key_path(&self) -> PathBuf {
        self.dir.join("node.key")
    }
    /// `genesis.json`.
    pub fn genesis_path(&self) -> PathBuf {
        self.dir.join("genesis.json")
    }
    /// `data/`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Reads the config.
    pub fn config(&self) -> Result<Config, HomeError> {
        self.require()?;
        let p = self.config_path();
        let s = fs::read_to_string(&p)?;
        toml::from_str(&s).map_err(|e| HomeError::Malformed { path: p, reason: e.to_string() })
    }

    /// Writes the config.
    pub fn save_config(&self, c: &Config) -> Result<(), HomeError> {
        fs::create_dir_all(&self.dir)?;
        let s = toml::to_string(c).expect("config serializes");
        fs::write(self.config_path(), s)?;
        Ok(())
    }

    fn read_key(path: &Path) -> Result<Keypair, HomeError> {
        let s = fs::read_to_string(path)?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut seed)
            .map_err(|_| HomeError::Malformed { path: path.into(), reason: "expected 64 hex characters".into() })?;
        Ok(Keypair::from_seed(seed))
    }

    fn check_name(name: &str) -> Result<(), HomeError> {
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(HomeError::BadKeyName(name.into()));
        }
        Ok(())
    }

    /// The key named `name`.
    pub fn key(&self, name: &str) -> Result<Keypair, HomeError> {
        Self::check_name(name)?;
        let p = self.keys_dir().join(format!("{name}.key"));
        if !p.is_file() {
            return Err(HomeError::NoKey { name: name.into(), dir: self.keys_dir() });
        }
        Self::read_key(&p)
    }

    /// Creates a new random key named `name`.
    pub fn new_key(&self, name: &str) -> Result<Keypair, HomeError> {
        self.import_key(name, Keypair::generate())
    }

    /// Stores `key` under `name`.
    pub fn import_key(&self, name: &str, key: Keypair) -> Result<Keypair, HomeError> {
        Self::check_name(name)?;
        fs::create_dir_all(self.keys_dir())?;
        let p = self.keys_dir().join(format!("{name}.key"));
        if p.exists() {
            return Err(HomeError::KeyExists(name.into()));
        }
        write_secret(&p, &hex::encode(key.seed()))?;
        Ok(key)
    }

    /// All keys, sorted by name.
    pub fn keys(&self) -> Result<Vec<(String, Keypair)>, HomeError> {
        let mut out = Vec::new();
        let dir = match fs::read_dir(self.keys_dir()) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for ent in dir {
            let p = ent?.path();
            if let (Some(stem), Some("key")) =
                (p.file_stem().and_then(|s| s.to_str()), p.extension().and_then(|s| s.to_str()))
            {
                out.push((stem.to_string(), Self::read_key(&p)?));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The node's own key.
    pub fn node_key(&self) -> Result<Keypair, HomeError> {
        self.require()?;
        Self::read_key(&self.node_key_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_idempotent_and_keys_are_private() {
        let d = tempfile::tempdir().unwrap();
        let h = Home::at(d.path());
        let a = h.init().unwrap();
        assert_eq!(h.init().unwrap(), a);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = fs::metadata(h.keys_dir().join("default.key")).unwrap().permissions().mode();
            assert_eq!(m & 0o777, 0o600);
        }
        h.new_key("bob").unwrap();
        assert!(matches!(h.new_key("bob"), Err(HomeError::KeyExists(_))));
        assert!(matches!(h.key("../x"), Err(HomeError::BadKeyName(_))));
        assert_eq!(h.keys().unwrap().len(), 2);
        assert_eq!(h.config().unwrap(), Config::default());
    }
}

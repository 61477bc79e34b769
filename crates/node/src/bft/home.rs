//! A node home's network settings (`network.toml`), written by `deed testnet init`: the
//! p2p address, the validators and the full nodes to connect to. A home with this file
//! runs the BFT producer — as a validator when its node key is a genesis validator's,
//! else as a full node (which must be listed under `full_nodes`, in every home, for the
//! others to accept it); one without runs the solo producer.

use super::BftConfig;
use crate::home::{Home, HomeError};
use deed_types::PublicKey;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The file name in a home.
pub const NETWORK_FILE: &str = "network.toml";

/// One peer: its node key and p2p address.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Peer {
    /// Node key (hex).
    pub key: PublicKey,
    /// p2p address.
    pub addr: SocketAddr,
}

/// `network.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkFile {
    /// Where p2p listens.
    pub p2p_listen: SocketAddr,
    /// Every validator (this node included when it is one).
    pub peers: Vec<Peer>,
    /// Every full node (this node included when it is one).
    #[serde(default)]
    pub full_nodes: Vec<Peer>,
    /// Least time between blocks with transactions, in ms.
    #[serde(default = "default_block_interval_ms")]
    pub block_interval_ms: u64,
    /// Empty blocks at most this often, in ms.
    #[serde(default = "default_idle_block_ms")]
    pub idle_block_ms: u64,
    /// Worker threads of the p2p/consensus runtime ([`BftConfig::runtime_threads`]).
    #[serde(default = "default_runtime_threads")]
    pub runtime_threads: usize,
}

fn default_runtime_threads() -> usize {
    2
}

fn default_block_interval_ms() -> u64 {
    super::actor::Timing::default().block_interval_ms
}

fn default_idle_block_ms() -> u64 {
    super::actor::Timing::default().idle_block_ms
}

/// Path of the network file in `home`.
pub fn path(home: &Home) -> PathBuf {
    home.dir.join(NETWORK_FILE)
}

/// Reads the home's network file, if any.
pub fn load(home: &Home) -> Result<Option<NetworkFile>, HomeError> {
    let p = path(home);
    if !p.is_file() {
        return Ok(None);
    }
    let s = std::fs::read_to_string(&p)?;
    toml::from_str(&s).map(Some).map_err(|e| HomeError::Malformed { path: p, reason: e.to_string() })
}

/// Writes the home's network file.
pub fn save(home: &Home, n: &NetworkFile) -> Result<(), HomeError> {
    std::fs::write(path(home), toml::to_string(n).expect("network file serializes"))?;
    Ok(())
}

impl NetworkFile {
    /// The producer settings for a home whose data lives in `data_dir`.
    pub fn bft_config(&self, data_dir: PathBuf) -> BftConfig {
        let mut c = BftConfig::new(
            self.p2p_listen,
            self.peers.iter().map(|p| (p.key, p.addr)).collect(),
            data_dir.join("consensus"),
        );
        c.full_nodes = self.full_nodes.iter().map(|p| (p.key, p.addr)).collect();
        c.timing.block_interval_ms = self.block_interval_ms;
        c.timing.idle_block_ms = self.idle_block_ms;
        c.runtime_threads = self.runtime_threads;
        c
    }
}

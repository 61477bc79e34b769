//! Wiring: mempool, block production, executor worker, blob replication, HTTP API.
//!
//! [`start`] opens a home's chain database and blob store, starts the block producer
//! chosen for this node (the solo producer for the embedded default), the executor
//! worker and the HTTP API, and returns a handle that shuts them down cleanly.

pub mod api;
pub mod app;
pub mod bft;
pub mod blobs;
pub mod home;
pub mod mempool;
pub mod producer;
pub mod worker;

pub use app::App;
pub use home::{Config, Home};

use deed_types::{Amount, Genesis, GenesisAccount, GenesisExecutor, Keypair, Params};
use producer::{BlockProducer, SoloProducer};
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};
use tokio::sync::watch;

/// Balance of each funded account in a dev genesis.
pub const DEV_BALANCE: Amount = 1_000_000_000_000;
/// Stake of the node's executor in a dev genesis.
pub const DEV_EXECUTOR_STAKE: Amount = 10_000_000;
/// Names of the extra funded dev keys written into a dev home.
pub const DEV_KEYS: [&str; 3] = ["dev1", "dev2", "dev3"];
/// The chain id of dev networks.
pub const DEV_CHAIN_ID: &str = "deed-dev";

/// Node errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Chain database.
    #[error(transparent)]
    Db(#[from] deed_ledger::db::DbError),
    /// Blob store.
    #[error(transparent)]
    Store(#[from] deed_store::StoreError),
    /// Home folder.
    #[error(transparent)]
    Home(#[from] home::HomeError),
    /// A model failed to load.
    #[error("model: {0}")]
    Model(String),
    /// No genesis.
    #[error("no genesis in {0}: start with --dev for a local dev chain, or put a genesis.json in the home")]
    NoGenesis(PathBuf),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// I/O.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A bug or a panic in a task.
    #[error("internal: {0}")]
    Internal(String),
}

/// Node settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where the chain database and blobs live.
    pub data_dir: PathBuf,
    /// HTTP listen address.
    pub listen: String,
    /// Least time between blocks.
    pub block_interval_ms: u64,
    /// Longest time without a block (empty blocks keep the ledger's schedule moving).
    pub idle_block_interval_ms: u64,
    /// Smallest executor fee this node's executor works for.
    pub executor_fee_min: Amount,
    /// Threads the engine may use per job (0 = all cores).
    pub threads: usize,
    /// Largest model accepted for upload (or fetched from peers).
    pub model_bytes_max: u64,
    /// A blob fetched from peers fails when no new part of it arrives for this long.
    pub blob_fetch_timeout_ms: u64,
    /// Every this many blocks a BFT node writes a snapshot of its state as a blob, which
    /// peers far behind install instead of re-executing every block (0 = never).
    pub snapshot_interval: u64,
    /// Name of the block producer (for status).
    pub producer_name: &'static str,
    /// Run the executor worker.
    pub executor: bool,
    /// Share of answered jobs this node re-executes to catch lies (0 = none).
    pub audit_rate: f64,
    /// Make the embedded executor lie (feature `adversary` of the `deed` package).
    pub misbehave: Option<worker::Misbehave>,
    /// Peers and consensus counters of a BFT node (for `/v1/status`).
    pub net: Option<Arc<bft::NetInfo>>,
}

impl NodeConfig {
    /// Defaults for a node whose data lives in `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        NodeConfig {
            data_dir,
            listen: home::DEFAULT_LISTEN.into(),
            block_interval_ms: 250,
            idle_block_interval_ms: 5_000,
            executor_fee_min: 100,
            threads: 1,
            model_bytes_max: 2 << 30,
            blob_fetch_timeout_ms: 30_000,
            snapshot_interval: 1_024,
            producer_name: "solo",
            executor: true,
            audit_rate: 0.0,
            misbehave: None,
            net: None,
        }
    }
}

/// The dev genesis: funds `funded` and the dev keys, stakes and funds the node key.
pub fn dev_genesis(node: &Keypair, funded: &[deed_types::Address], time_ms: u64) -> Genesis {
    let mut accounts: Vec<GenesisAccount> =
        funded.iter().map(|a| GenesisAccount { address: *a, balance: DEV_BALANCE }).collect();
    for name in DEV_KEYS {
        accounts.push(GenesisAccount { address: Keypair::dev(name).address(), balance: DEV_BALANCE });
    }
    accounts.push(GenesisAccount { address: node.address(), balance: DEV_BALANCE });
    accounts.sort_by_key(|a| a.address);
    accounts.dedup_by_key(|a| a.address);
    Genesis {
        chain_id: DEV_CHAIN_ID.into(),
        time_ms,
        accounts,
        executors: vec![GenesisExecutor { key: node.public(), stake: DEV_EXECUTOR_STAKE }],
        validators: vec![node.public()],
        params: Params::default(),
    }
}

/// Loads the home's genesis, writing a dev genesis first when `dev` and none exists.
/// A dev genesis also stores the dev keys in the home so `--key dev1` works.
pub fn load_or_create_genesis(home: &Home, dev: bool) -> Result<Genesis, NodeError> {
    let p = home.genesis_path();
    if p.is_file() {
        let s = std::fs::read_to_string(&p)?;
        return serde_json::from_str(&s)
            .map_err(|e| home::HomeError::Malformed { path: p, reason: e.to_string() }.into());
    }
    if !dev {
        return Err(NodeError::NoGenesis(home.dir.clone()));
    }
    let node = home.node_key()?;
    let mut funded = Vec::new();
    for (_, k) in home.keys()? {
        funded.push(k.address());
    }
    for name in DEV_KEYS {
        match home.import_key(name, Keypair::dev(name)) {
            Ok(_) | Err(home::HomeError::KeyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let g = dev_genesis(&node, &funded, app::now_ms());
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&g).expect("genesis serializes"))?;
    std::fs::rename(&tmp, &p)?;
    Ok(g)
}

/// A running node.
pub struct NodeHandle {
    /// The application state.
    pub app: Arc<App>,
    /// The bound HTTP address.
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), NodeError>>>,
}

impl NodeHandle {
    /// Signals shutdown and waits for every task to stop.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let _ = self.shutdown.send(true);
        let mut first_err = None;
        for t in self.tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(NodeError::Internal(e.to_string()));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Waits until any task stops by itself (an error) or `signal` completes, then
    /// shuts down.
    pub async fn run_until(mut self, signal: impl std::future::Future<Output = ()>) -> Result<(), NodeError> {
        let tasks = std::mem::take(&mut self.tasks);
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Result<(), NodeError>>(tasks.len().max(1));
        let mut waiters = Vec::new();
        for t in tasks {
            let d = done_tx.clone();
            waiters.push(tokio::spawn(async move {
                let r = match t.await {
                    Ok(r) => r,
                    Err(e) => Err(NodeError::Internal(e.to_string())),
                };
                let _ = d.send(r).await;
            }));
        }
        drop(done_tx);
        let early = tokio::select! {
            _ = signal => None,
            r = done_rx.recv() => r,
        };
        let _ = self.shutdown.send(true);
        for w in waiters {
            let _ = w.await;
        }
        let mut result = early.unwrap_or(Ok(()));
        while let Some(r) = done_rx.recv().await {
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

/// Starts a node with the given producer.
pub async fn start(
    config: NodeConfig,
    key: Keypair,
    genesis: Genesis,
    producer: Box<dyn BlockProducer>,
) -> Result<NodeHandle, NodeError> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|source| NodeError::Bind { addr: config.listen.clone(), source })?;
    let addr = listener.local_addr()?;
    let worker_cfg = worker::WorkerConfig {
        execute: config.executor,
        audit_rate: config.audit_rate,
        executor_fee_min: config.executor_fee_min,
        threads: config.threads,
        misbehave: config.misbehave,
    };
    let app = Arc::new(
        tokio::task::spawn_blocking(move || App::open(config, key, genesis))
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))??,
    );
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(producer.run(app.clone(), rx.clone())));
    tasks.push(tokio::spawn(blobs::gc_loop(app.clone(), rx.clone())));
    if worker_cfg.execute || worker_cfg.audit_rate > 0.0 {
        let thread = worker::spawn(
            Arc::new(worker::Embedded(app.clone())),
            Keypair::from_seed(app.key.seed()),
            worker_cfg,
            rx.clone(),
        );
        tasks.push(tokio::task::spawn_blocking(move || {
            thread.join().map_err(|_| NodeError::Internal("the worker thread panicked".into()))
        }));
    }
    let router = api::router(app.clone());
    let mut r = rx.clone();
    tasks.push(tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = r.wait_for(|v| *v).await;
            })
            .await
            .map_err(NodeError::Io)
    }));
    tracing::info!(%addr, "deed node listening");
    Ok(NodeHandle { app, addr, shutdown, tasks })
}

/// Starts the node a home describes: the BFT producer when the home has a
/// `network.toml` (written by `deed testnet init`), else the embedded default, the solo
/// producer (dev genesis when `dev`).
pub async fn start_home(home: &Home, listen: Option<String>, dev: bool) -> Result<NodeHandle, NodeError> {
    start_home_with(home, listen, dev, |_| {}).await
}

/// [`start_home`], letting the caller adjust the node's settings (audit rate,
/// misbehaviour) before it starts.
pub async fn start_home_with(
    home: &Home,
    listen: Option<String>,
    dev: bool,
    adjust: impl FnOnce(&mut NodeConfig),
) -> Result<NodeHandle, NodeError> {
    let cfg = home.config()?;
    let genesis = load_or_create_genesis(home, dev)?;
    let key = home.node_key()?;
    let mut config = NodeConfig::new(home.data_dir());
    config.listen = listen.unwrap_or(cfg.listen);
    adjust(&mut config);
    if let Some(net) = bft::home::load(home)? {
        // A home written by `deed testnet init`: a validator of a BFT network, or a full
        // node (a key that is not a validator's), which executes no jobs: its key has no
        // stake to answer for them.
        let producer = bft::BftProducer::new(net.bft_config(home.data_dir()));
        config.producer_name = "simplex";
        if !genesis.validators.contains(&key.public()) {
            config.executor = false;
        }
        config.net = Some(Arc::new(bft::NetInfo {
            peers: producer.config.peers.clone(),
            full_nodes: producer.config.full_nodes.clone(),
            stats: producer.stats.clone(),
        }));
        return start(config, key, genesis, Box::new(producer)).await;
    }
    let producer = SoloProducer {
        interval: Duration::from_millis(config.block_interval_ms),
        idle: Duration::from_millis(config.idle_block_interval_ms),
    };
    start(config, key, genesis, Box::new(producer)).await
}

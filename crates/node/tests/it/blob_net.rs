//! Blob replication between validators on loopback (real sockets, the tokio runtime): a
//! model uploaded to one validator only is registered and run by another, which fetched
//! it piece by verified piece; the worker and `GET /v1/blobs/{cid}` fetch what they lack;
//! a peer serving corrupted pieces is refused and avoided, and the blob still arrives from
//! an honest peer.

use crate::free_port;
use deed_node::bft::actor::{Adversary, Stats};
use deed_node::bft::fetch::{FetchStatus, PIECE_BYTES};
use deed_node::bft::{BftConfig, BftProducer};
use deed_node::{NodeConfig, NodeHandle};
use deed_types::{Cid, DType, Hash32, JobMode, Keypair, SignedTx, Tensor, TensorSet, Tx, TxBody};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const N: usize = 4;
const CHAIN: &str = "deed-blob-test";

struct Net {
    keys: Vec<Keypair>,
    genesis: deed_types::Genesis,
    p2p: Vec<SocketAddr>,
    dirs: Vec<PathBuf>,
}

impl Net {
    fn new(tmp: &std::path::Path, name: &str) -> Net {
        let keys: Vec<Keypair> = (0..N).map(|i| Keypair::dev(&format!("{name}-validator-{i}"))).collect();
        let vals: Vec<_> = keys.iter().map(|k| k.public()).collect();
        let genesis = deed_node::bft::testnet_genesis(CHAIN, &vals, &[], deed_node::app::now_ms());
        Net {
            keys,
            genesis,
            p2p: (0..N).map(|_| free_port()).collect(),
            dirs: (0..N).map(|i| tmp.join(format!("node{i}"))).collect(),
        }
    }

    /// Starts validator `i`; returns its handle and its consensus counters.
    async fn start(&self, i: usize, executor: bool, adversary: Option<Adversary>) -> (NodeHandle, Arc<Mutex<Stats>>) {
        let mut c = NodeConfig::new(self.dirs[i].clone());
        c.executor = executor;
        self.start_with(i, c, adversary).await
    }

    /// Starts validator `i` with node settings `c` (its listen address and producer are
    /// set here).
    async fn start_with(
        &self,
        i: usize,
        mut c: NodeConfig,
        adversary: Option<Adversary>,
    ) -> (NodeHandle, Arc<Mutex<Stats>>) {
        c.listen = "127.0.0.1:0".into();
        c.producer_name = "simplex";
        c.blob_fetch_timeout_ms = 10_000;
        let peers = self.keys.iter().zip(&self.p2p).map(|(k, a)| (k.public(), *a)).collect();
        let mut b = BftConfig::new(self.p2p[i], peers, self.dirs[i].join("consensus"));
        b.timing.idle_block_ms = 300;
        b.leader_timeout_ms = 1_000;
        b.certification_timeout_ms = 1_500;
        b.adversary = adversary;
        let producer = BftProducer::new(b);
        let stats = producer.stats.clone();
        let key = Keypair::from_seed(self.keys[i].seed());
        (deed_node::start(c, key, self.genesis.clone(), Box::new(producer)).await.unwrap(), stats)
    }
}

/// Ends the test process when a test panics: its nodes' consensus threads would otherwise
/// keep the runtime (and the test binary) alive forever. The panic message goes straight
/// to stderr first, since the test harness captures what the print macros write.
struct ExitOnPanic;

impl Drop for ExitOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "blob_net: a test failed with its nodes running; exiting");
            std::process::exit(101);
        }
    }
}

/// Installs a panic hook that writes the message to stderr uncaptured, once per process.
fn exit_on_panic() -> ExitOnPanic {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{info}");
            prev(info);
        }));
    });
    ExitOnPanic
}

async fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the cluster has finalized a few blocks (so every node is connected).
async fn wait_live(nodes: &[NodeHandle]) {
    wait_for("the cluster to finalize blocks", 60, || nodes.iter().all(|n| n.app.db.height().unwrap() >= 2)).await;
}

fn final_everywhere(nodes: &[NodeHandle], h: &Hash32) -> bool {
    nodes.iter().all(|n| n.app.db.tx_status(h).unwrap().is_some_and(|s| s.ok && s.height.is_some()))
}

fn tx(from: &Keypair, nonce: u64, body: TxBody) -> SignedTx {
    Tx { chain_id: CHAIN.into(), sender: from.public(), nonce, fee: 10, body }.sign(from)
}

/// `y = x · W` with `W` a `k × k` float matrix: a model of about 4 k² bytes.
fn matmul_model(k: usize) -> Vec<u8> {
    use deed_engine::onnx::*;
    use prost::Message;
    let vi = |name: &str| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: DType::F32.code() as i32,
                shape: Some(TensorShapeProto {
                    dim: [1, k as i64].iter().map(|d| Dimension { dim_value: Some(*d), dim_param: None }).collect(),
                }),
            }),
        }),
    };
    let w: Vec<u8> = (0..k * k).flat_map(|i| (((i * 37) % 101) as f32 / 101.0 - 0.5).to_le_bytes()).collect();
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
        producer_name: "deed blob tests".into(),
        graph: Some(GraphProto {
            node: vec![NodeProto {
                input: vec!["x".into(), "w".into()],
                output: vec!["y".into()],
                name: "matmul".into(),
                op_type: "MatMul".into(),
                domain: String::new(),
                attribute: vec![],
            }],
            name: "g".into(),
            initializer: vec![TensorProto {
                name: "w".into(),
                dims: vec![k as i64, k as i64],
                data_type: DType::F32.code() as i32,
                raw_data: w,
                ..Default::default()
            }],
            input: vec![vi("x")],
            output: vec![vi("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Splits a model with inline float32 initializers into a bundle: the graph (weights as
/// external data in `<cid>.safetensors`) and that safetensors file.
fn bundle_of(model: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use deed_engine::onnx::*;
    use prost::Message;
    let mut m = ModelProto::decode(model).unwrap();
    let g = m.graph.as_mut().unwrap();
    let mut header = String::from("{");
    let mut data = Vec::new();
    let mut spans = Vec::new();
    for (i, t) in g.initializer.iter().enumerate() {
        let (b, e) = (data.len(), data.len() + t.raw_data.len());
        let dims: Vec<String> = t.dims.iter().map(|d| d.to_string()).collect();
        let sep = if i == 0 { "" } else { "," };
        header +=
            &format!(r#"{sep}"{}":{{"dtype":"F32","shape":[{}],"data_offsets":[{b},{e}]}}"#, t.name, dims.join(","));
        data.extend_from_slice(&t.raw_data);
        spans.push((b, e));
    }
    header.push('}');
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header.as_bytes());
    file.extend(&data);
    let cid = Cid::of(&file);
    for (t, (b, e)) in g.initializer.iter_mut().zip(spans) {
        t.raw_data.clear();
        t.data_location = 1;
        let entry = |k: &str, v: String| StringStringEntryProto { key: k.into(), value: v };
        t.external_data = vec![
            entry("location", cid.weights_location()),
            entry("offset", (8 + header.len() + b).to_string()),
            entry("length", (e - b).to_string()),
        ];
    }
    (m.encode_to_vec(), file)
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// A plain HTTP/1.1 GET: status and body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut b = Vec::new();
    s.read_to_end(&mut b).await.unwrap();
    let split = b.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer");
    let head = String::from_utf8_lossy(&b[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, b[split + 4..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_uploaded_to_one_validator_runs_on_another() {
    let _guard = exit_on_panic();
    let tmp = tempfile::tempdir().unwrap();
    let net = Net::new(tmp.path(), "blob");
    let mut nodes = Vec::new();
    for i in 0..N {
        // Only validator 2 executes jobs.
        nodes.push(net.start(i, i == 2, None).await.0);
    }
    wait_live(&nodes).await;

    // A model of five pieces, uploaded to validator 0 only.
    let model = matmul_model(1024);
    assert!(model.len() as u64 > 4 * PIECE_BYTES, "{}", model.len());
    let id = nodes[0].app.store.put(&model).unwrap();
    for n in &nodes[1..] {
        assert!(!n.app.store.has(&id));
    }

    // Commit, then register it through validator 0. The others refuse nothing: they
    // fetch the model when the registration is gossiped to them, then admit it.
    let alice = Keypair::dev("dev1");
    let salt = Hash32([9; 32]);
    let commitment = deed_types::tx::model_commitment(&id, &alice.address(), &salt);
    let c = nodes[0].app.admit(tx(&alice, 0, TxBody::CommitModel { commitment })).unwrap();
    wait_for("the commitment to be final", 60, || final_everywhere(&nodes, &c)).await;
    let reg = TxBody::RegisterModel { model: id, name: "big-matmul".into(), salt, price: 0, parents: vec![] };
    let r = nodes[0].app.admit(tx(&alice, 1, reg)).unwrap();
    wait_for("the registration to be final", 60, || final_everywhere(&nodes, &r)).await;
    // Replication is on demand: a validator fetches the model when the registration
    // reaches it by gossip before it is final, or when it must run the model (below).
    // Whoever holds it holds the very bytes (a verified read).
    for n in &nodes {
        if n.app.store.has(&id) {
            assert_eq!(n.app.store.get(&id).unwrap(), model);
        }
    }

    // Run it: the input is uploaded to validator 0 only, the executor is validator 2.
    let x = Tensor::f32(vec![1, 1024], (0..1024).map(|i| i as f32 / 1024.0).collect());
    let input = TensorSet([("x".to_string(), x)].into_iter().collect());
    let input_id = nodes[0].app.store.put(&input.encode()).unwrap();
    let req =
        TxBody::RequestInference { model: id, input: input_id, price: 0, executor_fee: 100, mode: JobMode::Single };
    let job = nodes[0].app.admit(tx(&alice, 2, req)).unwrap();
    let executor = net.keys[2].public();
    wait_for("validator 2 to answer the job", 90, || {
        let snap = nodes[0].app.db.snapshot().unwrap();
        deed_ledger::query::job(&snap, &job).is_some_and(|j| j.receipts.iter().any(|r| r.executor == executor))
    })
    .await;
    assert!(nodes[2].app.store.has(&input_id));
    assert_eq!(nodes[2].app.store.get(&id).unwrap(), model, "the executor fetched the model to run it");

    // A bundle (graph + safetensors weights, the weights of the model above, so it names
    // that model as its parent) uploaded to validator 0 only: the others fetch the graph
    // when the registration is gossiped, learn from it which weights it needs, fetch
    // those too, and admit it.
    let (graph, weights) = bundle_of(&model);
    let weights_id = nodes[0].app.store.put(&weights).unwrap();
    let graph_id = nodes[0].app.store.put(&graph).unwrap();
    let salt2 = Hash32([10; 32]);
    let commitment = deed_types::tx::model_commitment(&graph_id, &alice.address(), &salt2);
    let c = nodes[0].app.admit(tx(&alice, 3, TxBody::CommitModel { commitment })).unwrap();
    wait_for("the bundle's commitment to be final", 60, || final_everywhere(&nodes, &c)).await;
    let parents = vec![deed_types::Parent { model: id, royalty_bps: 100 }];
    let reg = TxBody::RegisterModel { model: graph_id, name: "big-bundle".into(), salt: salt2, price: 0, parents };
    let r = nodes[0].app.admit(tx(&alice, 4, reg)).unwrap();
    wait_for("the bundle's registration to be final", 60, || final_everywhere(&nodes, &r)).await;
    // A validator that fetched the graph (the registration reached it by gossip before
    // it was final) learns from it which weights it names and fetches those too.
    wait_for("each validator holding the graph to fetch its weights too", 60, || {
        nodes.iter().all(|n| !n.app.store.has(&graph_id) || n.app.store.has(&weights_id))
    })
    .await;
    let opts = deed_engine::RunOptions { threads: 1, trace: true };
    let whole = nodes[0].app.model(&id).unwrap().run(&input, &opts).unwrap().output_hash();
    for n in nodes[1..].iter().filter(|n| n.app.store.has(&graph_id)) {
        // It loads there, from the fetched weights, and computes what the whole model does.
        let m = n.app.model(&graph_id).unwrap();
        assert_eq!(m.run(&input, &opts).unwrap().output_hash(), whole);
    }
    let st = nodes[2].app.fetcher.stats();
    assert!(st.fetched >= 2 && st.bytes_fetched >= model.len() as u64, "{st:?}");
    assert_eq!(st.refused, 0, "{st:?}");
    assert!(nodes[0].app.fetcher.stats().served > 0);

    // The worker fetches what it lacks by itself.
    use deed_node::worker::Chain;
    let raw = noise(2 * PIECE_BYTES as usize + 77, 1);
    let raw_id = nodes[0].app.store.put(&raw).unwrap();
    let embedded = deed_node::worker::Embedded(nodes[3].app.clone());
    let got = tokio::task::spawn_blocking(move || embedded.blob(&raw_id)).await.unwrap().unwrap();
    assert_eq!(got, raw);

    // So does GET /v1/blobs/{cid} on a node that lacks the blob.
    let small = noise(5_000, 2);
    let small_id = nodes[0].app.store.put(&small).unwrap();
    let (status, body) = http_get(nodes[1].addr, &format!("/v1/blobs/{small_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body, small);
    // A blob nobody has: a clear 404 once the fetch gives up.
    let nowhere = Cid::of(b"a blob no peer has");
    let (status, body) = http_get(nodes[1].addr, &format!("/v1/blobs/{nowhere}")).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no peer served it within 10 s"), "{body}");

    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

/// Registers `model` (already in `nodes[0]`'s store) for `owner` through validator 0,
/// starting at `nonce`; returns its id once the registration is final everywhere.
async fn register(nodes: &[NodeHandle], owner: &Keypair, nonce: u64, model: &[u8], name: &str) -> Cid {
    let id = Cid::of(model);
    let salt = Hash32([9; 32]);
    let commitment = deed_types::tx::model_commitment(&id, &owner.address(), &salt);
    let c = nodes[0].app.admit(tx(owner, nonce, TxBody::CommitModel { commitment })).unwrap();
    wait_for("the commitment to be final", 60, || final_everywhere(nodes, &c)).await;
    let reg = TxBody::RegisterModel { model: id, name: name.into(), salt, price: 0, parents: vec![] };
    let r = nodes[0].app.admit(tx(owner, nonce + 1, reg)).unwrap();
    wait_for("the registration to be final", 60, || final_everywhere(nodes, &r)).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_raised_on_one_validator_is_decided_by_all() {
    let _guard = exit_on_panic();
    let tmp = tempfile::tempdir().unwrap();
    let mut net = Net::new(tmp.path(), "fraud");
    net.genesis.params.jobs.challenge_window_blocks = 2_000;
    let config = |i: usize| {
        // Validator 2 executes jobs and lies about their outputs (its trace is honest);
        // validator 3 only audits, every job.
        let mut c = NodeConfig::new(net.dirs[i].clone());
        c.executor = i == 2;
        if i == 2 {
            c.misbehave = Some(deed_node::worker::Misbehave::WrongOutput);
        }
        if i == 3 {
            c.audit_rate = 1.0;
        }
        c
    };
    let mut nodes = Vec::new();
    for i in 0..N {
        nodes.push(net.start_with(i, config(i), None).await.0);
    }
    wait_live(&nodes).await;

    let alice = Keypair::dev("dev1");
    let model = matmul_model(64);
    nodes[0].app.store.put(&model).unwrap();
    let id = register(&nodes, &alice, 0, &model, "small-matmul").await;
    let x = Tensor::f32(vec![1, 64], (0..64).map(|i| i as f32 / 64.0).collect());
    let input = TensorSet([("x".to_string(), x)].into_iter().collect());
    let input_id = nodes[0].app.store.put(&input.encode()).unwrap();
    let req =
        TxBody::RequestInference { model: id, input: input_id, price: 0, executor_fee: 100, mode: JobMode::Single };
    // Validator 1 is down while the job is run and challenged.
    let down = nodes.remove(1);
    down.shutdown().await.unwrap();
    let job = nodes[0].app.admit(tx(&alice, 2, req)).unwrap();
    let liar = net.keys[2].public();
    let stake = |n: &NodeHandle| deed_ledger::query::executor(&n.app.db.snapshot().unwrap(), &liar).unwrap().stake;
    let staked = stake(&nodes[0]);

    // The auditor re-runs the job, finds the output differs, and challenges with the
    // output's producer blob, which only it holds: every other validator fetches that
    // blob before it admits the challenge or accepts a block carrying it.
    wait_for("the job to be refunded on every validator", 90, || {
        nodes.iter().all(|n| {
            let snap = n.app.db.snapshot().unwrap();
            deed_ledger::query::job(&snap, &job).is_some_and(|j| j.status.name() == "refunded")
        })
    })
    .await;
    for n in &nodes {
        assert!(stake(n) < staked, "the liar is slashed on every validator");
    }
    // The proof's blob: the output's producer, bound by the liar's own trace.
    let snap = nodes[0].app.db.snapshot().unwrap();
    let receipt = deed_ledger::query::job_receipt(&snap, &job, &liar).unwrap().receipt;
    let proof_blob = Cid(receipt.trace[0]);
    for n in &nodes {
        assert!(n.app.store.has(&proof_blob), "every validator holds the proof's blob");
    }

    // Back up, validator 1 catches up: the finalized block carrying the challenge reads
    // blobs it never saw gossiped, so it fetches them before it executes that block
    // (instead of stopping at a block it cannot execute).
    let h = nodes[0].app.db.height().unwrap();
    nodes.insert(1, net.start_with(1, config(1), None).await.0);
    wait_for("validator 1 to catch up past the challenge", 90, || nodes[1].app.db.height().unwrap() >= h).await;
    assert!(nodes[1].app.store.has(&proof_blob));
    assert!(stake(&nodes[1]) < staked);
    let h = nodes.iter().map(|n| n.app.db.height().unwrap()).min().unwrap();
    let roots: Vec<_> = nodes.iter().map(|n| n.app.db.block(h).unwrap().unwrap().header.state_root).collect();
    assert!(roots.windows(2).all(|w| w[0] == w[1]), "{roots:?}");

    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_far_behind_catches_up_from_a_state_snapshot() {
    let _guard = exit_on_panic();
    let tmp = tempfile::tempdir().unwrap();
    let net = Net::new(tmp.path(), "snap");
    let config = |i: usize| {
        let mut c = NodeConfig::new(net.dirs[i].clone());
        c.executor = false;
        c.snapshot_interval = 8;
        c
    };
    let mut nodes = Vec::new();
    for i in 0..N {
        nodes.push(net.start_with(i, config(i), None).await.0);
    }
    wait_live(&nodes).await;

    // Validator 3 goes down; the others move the state on by transfers and a few
    // snapshot intervals of blocks.
    let down = nodes.remove(3);
    let behind = down.app.db.height().unwrap();
    down.shutdown().await.unwrap();
    let (alice, bob) = (Keypair::dev("dev1"), Keypair::dev("dev2"));
    let mut last = Hash32::ZERO;
    for n in 0..20 {
        last =
            nodes[0].app.admit(tx(&alice, n, TxBody::Transfer { to: bob.address(), amount: 1 + n as u128 })).unwrap();
    }
    wait_for("the transfers to be final", 60, || final_everywhere(&nodes, &last)).await;
    wait_for("four snapshot intervals", 60, || nodes[0].app.db.height().unwrap() >= behind + 32).await;
    let tip = nodes[0].app.db.height().unwrap();

    // Back up, it installs a peer's snapshot (checked against the finalized chain) and
    // follows block by block from there, instead of re-executing everything it missed.
    let (back, stats) = net.start_with(3, config(3), None).await;
    nodes.push(back);
    wait_for("validator 3 to catch up", 90, || nodes[3].app.db.height().unwrap() >= tip).await;
    let installed = stats.lock().unwrap().snapshot_installed.expect("caught up from a snapshot");
    assert!(installed > behind + 8, "snapshot at {installed}, the node was at {behind}");
    assert_eq!(nodes[3].app.db.synced_from().unwrap(), Some(installed));
    assert!(nodes[3].app.db.block(behind + 1).unwrap().is_none(), "the skipped blocks were not replayed");
    let h = nodes.iter().map(|n| n.app.db.height().unwrap()).min().unwrap();
    let roots: Vec<_> = nodes.iter().map(|n| n.app.db.block(h).unwrap().unwrap().header.state_root).collect();
    assert!(roots.windows(2).all(|w| w[0] == w[1]), "{roots:?}");
    let bal = |n: &NodeHandle| deed_ledger::query::account(&n.app.db.snapshot().unwrap(), &bob.address()).balance;
    assert_eq!(bal(&nodes[3]), bal(&nodes[0]));
    // And it keeps following: a new transfer is final on it too.
    let t = nodes[3].app.admit(tx(&alice, 20, TxBody::Transfer { to: bob.address(), amount: 1 })).unwrap();
    wait_for("a transfer submitted to the synced node to be final", 60, || final_everywhere(&nodes, &t)).await;

    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serving_corrupt_pieces_is_refused_and_avoided() {
    let _guard = exit_on_panic();
    let tmp = tempfile::tempdir().unwrap();
    let net = Net::new(tmp.path(), "liar");
    let (mut nodes, mut stats) = (Vec::new(), Vec::new());
    for i in 0..N {
        // Validator 1 flips a byte in every piece it serves (its headers are honest).
        let (n, s) = net.start(i, false, (i == 1).then_some(Adversary::CorruptBlobs)).await;
        nodes.push(n);
        stats.push(s);
    }
    wait_live(&nodes).await;

    // A blob of four pieces, at first only on the liar.
    let blob = noise(3 * PIECE_BYTES as usize + 5, 3);
    let id = nodes[1].app.store.put(&blob).unwrap();
    let victim = nodes[3].app.clone();
    assert!(!victim.fetcher.start(&victim.store, &id, u64::MAX).unwrap());

    // The victim gets the (honest) header from the liar, then refuses its pieces and
    // stops asking it.
    let liar = net.keys[1].public();
    wait_for("the liar to be avoided", 60, || {
        let s = victim.fetcher.stats();
        s.refused > 0 && s.avoided == vec![liar]
    })
    .await;
    assert_eq!(victim.fetcher.status(&victim.store, &id), FetchStatus::Fetching);

    // An honest peer gets the blob: the victim completes it from there.
    nodes[2].app.store.put(&blob).unwrap();
    let v = victim.clone();
    tokio::task::spawn_blocking(move || v.fetcher.wait(&v.store, &id)).await.unwrap().unwrap();
    assert_eq!(victim.store.get(&id).unwrap(), blob);
    let s = victim.fetcher.stats();
    assert_eq!(s.avoided, vec![liar], "{s:?}");
    assert_eq!(s.fetched, 1, "{s:?}");
    assert!(nodes[2].app.fetcher.stats().served >= 3, "the honest peer served the pieces");
    assert!(nodes[1].app.fetcher.stats().served >= 2, "the liar served the header and a piece");
    // Avoided for blobs only, not disconnected: the victim still hears the liar (its
    // relayed proposals), and blocks keep coming.
    let since = deed_node::app::now_ms();
    let h = nodes[3].app.db.height().unwrap();
    wait_for("the victim to hear from the liar again", 30, || {
        stats[3].lock().unwrap().peers_seen.get(&liar).is_some_and(|t| *t > since)
    })
    .await;
    wait_for("more blocks", 30, || nodes[3].app.db.height().unwrap() >= h + 3).await;

    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

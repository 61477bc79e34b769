//! Full nodes: four validators and two non-voting full nodes on loopback (real sockets,
//! the tokio runtime) — a transaction submitted to a full node is forwarded and
//! finalized; a model uploaded to a full node only is registered (the validators fetch it
//! from the full node); full nodes reach the validators' height and state root; one
//! started late catches up, one restarted catches up from where it stopped, and one
//! started while finality is stalled still reaches the last finalized block; one far
//! behind installs a state snapshot. And, in the
//! deterministic runtime, a full node fed finalized blocks directly: it commits only a
//! block whose finalization certificate verifies, and stops loudly on a certified block
//! it cannot execute.

use crate::free_port;
use commonware_codec::DecodeExt;
use commonware_cryptography::ed25519;
use commonware_p2p::simulated::{Config as NetConfig, Link, Network};
use commonware_p2p::{Recipients, Sender as _};
use commonware_runtime::{Clock, Quota, Runner, Supervisor, deterministic};
use commonware_utils::{NZU32, NZUsize, probability};
use deed_node::bft::actor::{Stats, Timing, to_consensus_key};
use deed_node::bft::engine::{self, Channels, FullNodeConfig};
use deed_node::bft::wire::{self, Wire};
use deed_node::bft::{BftConfig, BftProducer, NetInfo};
use deed_node::{App, NodeConfig, NodeHandle};
use deed_types::{Block, Hash32, Keypair, SignedTx, Tx, TxBody};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const N: usize = 4;
const CHAIN: &str = "deed-full-test";

/// Ends the whole test process when a test panics while nodes run: their consensus
/// threads would otherwise keep the test binary alive forever. libtest captures what the
/// panic hook prints, so the message is written to stderr directly first.
struct ExitOnPanic;

impl ExitOnPanic {
    fn arm() -> ExitOnPanic {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let prev = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let _ = writeln!(std::io::stderr(), "test panicked: {info}");
                prev(info);
            }));
        });
        ExitOnPanic
    }
}

impl Drop for ExitOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ =
                writeln!(std::io::stderr(), "a full-node test failed; exiting so running nodes cannot hang the run");
            std::process::exit(101);
        }
    }
}

struct Net {
    validators: Vec<Keypair>,
    full: Vec<Keypair>,
    genesis: deed_types::Genesis,
    p2p: Vec<SocketAddr>,
    full_p2p: Vec<SocketAddr>,
    dir: PathBuf,
    /// Every node's `snapshot_interval`.
    snapshot_interval: u64,
}

impl Net {
    fn new(dir: PathBuf, full: usize) -> Net {
        let validators: Vec<Keypair> = (0..N).map(|i| Keypair::dev(&format!("full-test-validator-{i}"))).collect();
        let vals: Vec<_> = validators.iter().map(|k| k.public()).collect();
        Net {
            genesis: deed_node::bft::testnet_genesis(CHAIN, &vals, &[], deed_node::app::now_ms()),
            validators,
            full: (0..full).map(|i| Keypair::dev(&format!("full-test-full-node-{i}"))).collect(),
            p2p: (0..N).map(|_| free_port()).collect(),
            full_p2p: (0..full).map(|_| free_port()).collect(),
            dir,
            snapshot_interval: NodeConfig::new(PathBuf::new()).snapshot_interval,
        }
    }

    async fn start_node(&self, key: &Keypair, listen: SocketAddr, dir: PathBuf) -> (NodeHandle, Arc<Mutex<Stats>>) {
        let mut c = NodeConfig::new(dir.clone());
        c.listen = "127.0.0.1:0".into();
        c.executor = false;
        c.producer_name = "simplex";
        c.snapshot_interval = self.snapshot_interval;
        let peers = self.validators.iter().zip(&self.p2p).map(|(k, a)| (k.public(), *a)).collect();
        let mut b = BftConfig::new(listen, peers, dir.join("consensus"));
        b.full_nodes = self.full.iter().zip(&self.full_p2p).map(|(k, a)| (k.public(), *a)).collect();
        b.timing.idle_block_ms = 300;
        b.leader_timeout_ms = 1_000;
        b.certification_timeout_ms = 1_500;
        let producer = BftProducer::new(b);
        let stats = producer.stats.clone();
        c.net = Some(Arc::new(NetInfo {
            peers: producer.config.peers.clone(),
            full_nodes: producer.config.full_nodes.clone(),
            stats: stats.clone(),
        }));
        let node = deed_node::start(c, Keypair::from_seed(key.seed()), self.genesis.clone(), Box::new(producer));
        (node.await.unwrap(), stats)
    }

    async fn validator(&self, i: usize) -> NodeHandle {
        self.start_node(&self.validators[i], self.p2p[i], self.dir.join(format!("node{i}"))).await.0
    }

    async fn full_node(&self, j: usize) -> (NodeHandle, Arc<Mutex<Stats>>) {
        self.start_node(&self.full[j], self.full_p2p[j], self.dir.join(format!("full{j}"))).await
    }
}

fn height(n: &NodeHandle) -> u64 {
    n.app.db.height().unwrap()
}

async fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn transfer(nonce: u64) -> SignedTx {
    let alice = Keypair::dev("dev1");
    let bob = Keypair::dev("dev2");
    Tx {
        chain_id: CHAIN.into(),
        sender: alice.public(),
        nonce,
        fee: 10,
        body: TxBody::Transfer { to: bob.address(), amount: 5 },
    }
    .sign(&alice)
}

fn is_final(n: &NodeHandle, h: &Hash32) -> bool {
    n.app.db.tx_status(h).unwrap().is_some_and(|s| s.ok && s.height.is_some())
}

/// The same block (hash and state root) at height `h` on both nodes.
fn same_block(a: &NodeHandle, b: &NodeHandle, h: u64) {
    let x = a.app.db.block(h).unwrap().unwrap();
    let y = b.app.db.block(h).unwrap().unwrap();
    assert_eq!(x.header.hash(), y.header.hash(), "block {h}");
    assert_eq!(x.header.state_root, y.header.state_root, "state root at {h}");
}

/// `GET path` on a node's HTTP API, parsed as JSON.
fn http_get(addr: SocketAddr, path: &str) -> serde_json::Value {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_nodes_follow_verify_forward_and_catch_up() {
    let _guard = ExitOnPanic::arm();
    let tmp = tempfile::tempdir().unwrap();
    let net = Net::new(tmp.path().to_path_buf(), 3);
    let mut vals = Vec::new();
    for i in 0..N {
        vals.push(net.validator(i).await);
    }
    let (full0, stats0) = net.full_node(0).await;
    wait_for("blocks on the full node", 40, || height(&full0) >= 2).await;

    // A transaction submitted to the full node is forwarded to the validators and finalized.
    let t0 = full0.app.admit(transfer(0)).unwrap();
    wait_for("the full node's transaction to be final everywhere", 40, || {
        vals.iter().all(|v| is_final(v, &t0)) && is_final(&full0, &t0)
    })
    .await;
    let h = height(&full0);
    wait_for("validators at the full node's height", 20, || vals.iter().all(|v| height(v) >= h)).await;
    for v in &vals {
        same_block(v, &full0, h);
    }
    {
        let st = stats0.lock().unwrap();
        assert_eq!((st.proposed, st.verified, st.certificates_rejected), (0, 0, 0), "{st:?}");
    }
    let status = tokio::task::spawn_blocking({
        let addr = full0.addr;
        move || http_get(addr, "/v1/status")
    })
    .await
    .unwrap();
    assert_eq!(status["role"], "full node", "{status}");
    assert!(status["height"].as_u64().unwrap() >= h, "{status}");
    let peers = status["peers"].as_array().unwrap();
    assert_eq!(peers.iter().filter(|p| p["role"] == "validator").count(), N, "{status}");

    // A model uploaded to the full node only is registered through it: the validators
    // fetch it from the full node when the registration reaches them.
    let model = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/mlp.onnx")).unwrap();
    let id = full0.app.store.put(&model).unwrap();
    let carol = Keypair::dev("dev3");
    let salt = Hash32([5; 32]);
    let commitment = deed_types::tx::model_commitment(&id, &carol.address(), &salt);
    let signed = |nonce, body| Tx { chain_id: CHAIN.into(), sender: carol.public(), nonce, fee: 10, body }.sign(&carol);
    let c = full0.app.admit(signed(0, TxBody::CommitModel { commitment })).unwrap();
    wait_for("the commitment to be final on the full node", 40, || is_final(&full0, &c)).await;
    let reg = TxBody::RegisterModel { model: id, name: "mlp".into(), salt, price: 0, parents: vec![] };
    let r = full0.app.admit(signed(1, reg)).unwrap();
    wait_for("the registration to be final everywhere", 40, || {
        vals.iter().all(|v| is_final(v, &r)) && is_final(&full0, &r)
    })
    .await;
    // The proposer fetched it (from the full node, its only holder) before admitting the
    // registration; the others' checks of the block do not need the bytes, and they fetch
    // them only if the registration reached them by gossip before it was final.
    let holder = vals.iter().find(|v| v.app.store.has(&id)).expect("the proposer holds the model");
    assert_eq!(holder.app.store.get(&id).unwrap(), model);
    assert!(full0.app.fetcher.stats().served > 0, "the model did not come from the full node");

    // A full node started after blocks were finalized catches up from genesis.
    let target = height(&vals[0]);
    let (full1, _) = net.full_node(1).await;
    wait_for("the late full node to catch up", 40, || height(&full1) >= target).await;
    same_block(&vals[0], &full1, target);

    // A full node stopped and restarted catches up from its last committed height,
    // while transactions go through the other full node.
    let stopped_at = height(&full0);
    full0.shutdown().await.unwrap();
    let t1 = full1.app.admit(transfer(1)).unwrap();
    wait_for("the second transaction to be final on the validators", 40, || vals.iter().all(|v| is_final(v, &t1)))
        .await;
    let target = height(&vals[0]);
    assert!(target > stopped_at);
    let (full0, _) = net.full_node(0).await;
    assert!(height(&full0) >= stopped_at, "the restarted full node lost its chain");
    wait_for("the restarted full node to catch up", 40, || height(&full0) >= target && is_final(&full0, &t1)).await;
    same_block(&vals[0], &full0, target);
    same_block(&full1, &full0, target);

    // Finality stalls (two of four validators down): a full node started now still
    // learns the last finalized block, by asking the validators for it.
    for _ in 0..2 {
        vals.pop().unwrap().shutdown().await.unwrap();
    }
    let mut stalled = height(&vals[0]);
    loop {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let h = height(&vals[0]);
        if h == stalled {
            break;
        }
        stalled = h;
    }
    let (full2, _) = net.full_node(2).await;
    wait_for("the new full node to reach the stalled head", 20, || height(&full2) >= stalled).await;
    same_block(&vals[0], &full2, stalled);

    for n in vals.into_iter().chain([full0, full1, full2]) {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_far_behind_installs_a_state_snapshot() {
    let _guard = ExitOnPanic::arm();
    let tmp = tempfile::tempdir().unwrap();
    let mut net = Net::new(tmp.path().to_path_buf(), 1);
    net.snapshot_interval = 8;
    let mut vals = Vec::new();
    for i in 0..N {
        vals.push(net.validator(i).await);
    }
    // A few snapshot intervals of blocks, some with transfers.
    let mut last = Hash32::ZERO;
    for n in 0..20 {
        last = vals[0].app.admit(transfer(n)).unwrap();
    }
    wait_for("the transfers to be final", 40, || vals.iter().all(|v| is_final(v, &last))).await;
    wait_for("four snapshot intervals", 40, || height(&vals[0]) >= 32).await;
    let tip = height(&vals[0]);

    // The full node installs a snapshot the certified chain vouches for, then follows.
    let (full, stats) = net.full_node(0).await;
    wait_for("the full node to catch up", 40, || height(&full) >= tip).await;
    let installed = stats.lock().unwrap().snapshot_installed.expect("caught up from a snapshot");
    assert!(installed >= 8, "{installed}");
    assert!(full.app.db.block(1).unwrap().is_none(), "the blocks under the snapshot were replayed");
    // The chain moves on while the full node starts, so the snapshot it installs may lie
    // above `tip` (the blocks under it are not stored): compare at the full node's head.
    let head = height(&full);
    wait_for("the validator at the full node's head", 20, || height(&vals[0]) >= head).await;
    same_block(&vals[0], &full, head);
    let t = full.app.admit(transfer(20)).unwrap();
    wait_for("a transfer through the full node to be final", 40, || {
        vals.iter().all(|v| is_final(v, &t)) && is_final(&full, &t)
    })
    .await;
    for n in vals.into_iter().chain([full]) {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_neither_validator_nor_listed_full_node_says_so() {
    let _guard = ExitOnPanic::arm();
    let tmp = tempfile::tempdir().unwrap();
    let net = Net::new(tmp.path().to_path_buf(), 0);
    let stranger = Keypair::dev("full-test-stranger");
    let (node, _) = net.start_node(&stranger, free_port(), tmp.path().join("stranger")).await;
    let e = node.shutdown().await.expect_err("an unlisted node must not run");
    assert!(e.to_string().contains("neither a genesis validator nor listed under full_nodes"), "{e}");
}

/// A validator app on its own disk, to build real blocks for the full node to receive.
fn open_app(dir: &std::path::Path, key: &Keypair, g: &deed_types::Genesis) -> Arc<App> {
    let mut c = NodeConfig::new(dir.to_path_buf());
    c.executor = false;
    Arc::new(App::open(c, Keypair::from_seed(key.seed()), g.clone()).unwrap())
}

/// A finalization certificate over `block` by the validators `signers`, in `chain`'s
/// namespace (a quorum of four is three; fewer are cut from a quorum's certificate).
fn certify(chain: &str, keys: &[Keypair], signers: &[usize], block: &Block, view: u64) -> Vec<u8> {
    use commonware_consensus::simplex::scheme::ed25519::Scheme;
    use commonware_consensus::simplex::types::{Finalize, Proposal};
    use commonware_consensus::types::{Epoch, Round, View};
    use commonware_cryptography::certificate::Signers;
    use commonware_cryptography::sha256::Digest;
    use commonware_utils::ordered::Set;
    let set: Set<ed25519::PublicKey> = Set::from_iter_dedup(keys.iter().map(|k| to_consensus_key(&k.public())));
    let ns = engine::namespace(chain);
    let digest = Digest(block.header.hash().0);
    let proposal = Proposal::new(Round::new(Epoch::zero(), View::new(view)), View::new(view - 1), digest);
    let short = signers.len() < 3;
    let signing: Vec<usize> = if short { vec![0, 1, 2] } else { signers.to_vec() };
    let mut votes = signing.iter().map(|i| {
        let sk = ed25519::PrivateKey::decode(keys[*i].seed().to_vec()).unwrap();
        Finalize::<Scheme, Digest>::sign(&Scheme::signer(&ns, set.clone(), sk).unwrap(), proposal.clone()).unwrap()
    });
    let first = votes.next().unwrap();
    let any = Scheme::verifier(&ns, set.clone());
    let mut c = deed_node::bft::finality::Certificate::from_owned_finalizes(
        &any,
        commonware_utils::iter::NonEmpty::new(first, votes),
        &commonware_parallel::Sequential,
    )
    .unwrap();
    if short {
        let who = (0..signers.len() as u32).map(commonware_utils::Participant::new);
        c.certificate.signers = Signers::try_from((&set, who)).unwrap();
        c.certificate.signatures.truncate(signers.len());
    }
    deed_node::bft::finality::encode(&c)
}

#[test]
fn a_full_node_commits_only_certified_blocks() {
    let _guard = ExitOnPanic::arm();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let runner = deterministic::Runner::new(
        deterministic::Config::new().with_seed(7).with_timeout(Some(Duration::from_secs(120))),
    );
    runner.start(|context| async move {
        let keys: Vec<Keypair> = (0..N).map(|i| Keypair::dev(&format!("cert-validator-{i}"))).collect();
        let me = Keypair::dev("cert-full-node");
        let vals: Vec<_> = keys.iter().map(|k| k.public()).collect();
        let g = deed_node::bft::testnet_genesis("deed-cert", &vals, &[], 0);
        let vpk = to_consensus_key(&keys[0].public());
        let fpk = to_consensus_key(&me.public());
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            NetConfig {
                max_size: wire::MESSAGE_BYTES_MAX,
                disconnect_on_block: false,
                tracked_peer_sets: NZUsize!(1),
                max_peers_per_set: NZUsize!(4),
            },
            vec![vpk.clone(), fpk.clone()],
        )
        .await;
        network.start();
        let link = Link { latency: Duration::from_millis(5), jitter: Duration::ZERO, success_rate: probability!(1.0) };
        oracle.add_link(vpk.clone(), fpk.clone(), link.clone()).await.unwrap();
        oracle.add_link(fpk.clone(), vpk.clone(), link).await.unwrap();

        // The full node, on its simulated channels.
        let quota = Quota::per_second(NZU32!(100_000));
        let control = oracle.control(fpk.clone());
        let mut reg = Vec::new();
        for ch in [
            wire::CHANNEL_VOTES,
            wire::CHANNEL_CERTS,
            wire::CHANNEL_RESOLVER,
            wire::CHANNEL_BLOCKS,
            wire::CHANNEL_TXS,
            wire::CHANNEL_BLOBS,
        ] {
            reg.push(control.register(ch, quota).await.unwrap());
        }
        let mut it = reg.into_iter();
        let channels = Channels {
            votes: it.next().unwrap(),
            certs: it.next().unwrap(),
            resolver: it.next().unwrap(),
            blocks: it.next().unwrap(),
            txs: it.next().unwrap(),
            blobs: it.next().unwrap(),
        };
        let full = open_app(&root.join("full"), &me, &g);
        let stats: Arc<Mutex<Stats>> = Arc::default();
        let cfg = FullNodeConfig { me: fpk.clone(), full_nodes: vec![fpk.clone()], timing: Timing::default() };
        let running =
            engine::start_full_node(context.child("full"), full.clone(), cfg, channels, stats.clone()).expect("start");

        // A validator (just its application, to build blocks) and its block channel.
        let v = open_app(&root.join("v0"), &keys[0], &g);
        let (mut to_full, _from_full) =
            oracle.control(vpk.clone()).register(wire::CHANNEL_BLOCKS, quota).await.unwrap();
        let (b1, p1) = v.propose(1_000, true).unwrap().unwrap();
        let send = |block: &Block, certificate: Vec<u8>| {
            Wire::Finalized { block: Box::new(block.clone()), certificate }.encode()
        };

        // Not enough signatures, another chain's namespace, another block's certificate,
        // strangers' signatures, garbage: nothing is committed.
        let mut other = b1.clone();
        other.header.time_ms += 1;
        let strangers: Vec<Keypair> = (0..N).map(|i| Keypair::dev(&format!("stranger-{i}"))).collect();
        let bad = [
            certify("deed-cert", &keys, &[0, 1], &b1, 1),
            certify("deed-other", &keys, &[0, 1, 2], &b1, 1),
            certify("deed-cert", &keys, &[0, 1, 2], &other, 1),
            certify("deed-cert", &strangers, &[0, 1, 2], &b1, 1),
            vec![0xab; 100],
        ];
        for c in &bad {
            to_full.send(Recipients::One(fpk.clone()), send(&b1, c.clone()), false);
        }
        context.sleep(Duration::from_secs(2)).await;
        assert_eq!(full.db.height().unwrap(), 0, "a block without a valid certificate was committed");
        assert_eq!(stats.lock().unwrap().certificates_rejected, bad.len() as u64);

        // A quorum's certificate: committed, with the validator's state root.
        v.finalize(b1.clone(), &p1).unwrap();
        to_full.send(Recipients::One(fpk.clone()), send(&b1, certify("deed-cert", &keys, &[1, 2, 3], &b1, 1)), false);
        for _ in 0..200 {
            if full.db.height().unwrap() == 1 {
                break;
            }
            context.sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(full.db.height().unwrap(), 1);
        assert_eq!(full.db.state_root().unwrap(), v.db.state_root().unwrap());

        // A certified block that does not execute here (a state root the ledger does not
        // give): the full node stops loudly rather than follow it.
        let (b2, _) = v.propose(2_000, true).unwrap().unwrap();
        let mut header = b2.header.clone();
        header.state_root = Hash32([9; 32]);
        let forged = Block::seal(header, b2.txs.clone(), &keys[0]);
        to_full.send(
            Recipients::One(fpk.clone()),
            send(&forged, certify("deed-cert", &keys, &[0, 1, 2], &forged, 2)),
            false,
        );
        let r = running.app.await.expect("the full node's actor ended");
        let e = r.expect_err("a full node must stop on a certified block it cannot execute");
        assert!(e.0.contains("STATE DIVERGENCE"), "{}", e.0);
        assert_eq!(full.db.height().unwrap(), 1);
        running.consensus.abort();
        running.blobs.resolver.abort();
        running.blobs.ticker.abort();
    });
}

//! A deterministic simulation of a 4-validator cluster and a full node (commonware's
//! deterministic runtime and simulated p2p): crashes and restarts, a partition, message
//! loss and jitter, with transfers flowing (some submitted to the full node). Checks that
//! no two nodes ever commit different blocks at the same height, that the full node
//! follows, and that a seed replays exactly.
//!
//! `DEED_SIM_SEEDS=N` runs N seeds (default 2); `DEED_SIM_SEED=S` runs only seed S.

use commonware_codec::DecodeExt;
use commonware_cryptography::ed25519;
use commonware_p2p::simulated::{Config as NetConfig, Link, Network, Oracle};
use commonware_runtime::{Clock, Quota, Runner, Supervisor, deterministic};
use commonware_utils::{NZU32, NZUsize, probability};
use deed_node::bft::actor::{Adversary, Stats, Timing, to_consensus_key};
use deed_node::bft::engine::{self, Channels, EngineConfig, Running};
use deed_node::bft::wire;
use deed_node::{App, NodeConfig};
use deed_types::{Hash32, Keypair, SignedTx, Tx, TxBody};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const N: usize = 4;

/// A small deterministic generator for the test's own choices (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn range(&mut self, r: std::ops::Range<u64>) -> u64 {
        r.start + self.next() % (r.end - r.start)
    }
}

fn keys() -> Vec<Keypair> {
    (0..N).map(|i| Keypair::dev(&format!("sim-validator-{i}"))).collect()
}

/// The full node of the cluster simulation.
fn full_key() -> Keypair {
    Keypair::dev("sim-full-node")
}

fn genesis(keys: &[Keypair]) -> deed_types::Genesis {
    let vals: Vec<_> = keys.iter().map(|k| k.public()).collect();
    deed_node::bft::testnet_genesis("deed-sim", &vals, &[], 0)
}

fn open_app(dir: &std::path::Path, key: &Keypair, g: &deed_types::Genesis) -> Arc<App> {
    let mut c = NodeConfig::new(dir.to_path_buf());
    c.executor = false;
    Arc::new(App::open(c, Keypair::from_seed(key.seed()), g.clone()).unwrap())
}

/// How a simulated validator differs from an honest one alone.
#[derive(Default)]
struct Opts {
    /// Misbehaviour.
    adversary: Option<Adversary>,
    /// The full nodes it sends finalized blocks to.
    full_nodes: Vec<ed25519::PublicKey>,
}

async fn start_node(
    context: &deterministic::Context,
    oracle: &Oracle<ed25519::PublicKey, deterministic::Context>,
    i: usize,
    app: Arc<App>,
    keys: &[Keypair],
    opts: Opts,
    stats: Arc<Mutex<Stats>>,
) -> Running {
    let Opts { adversary, full_nodes } = opts;
    let pk = to_consensus_key(&keys[i].public());
    let channels = channels(oracle, pk.clone()).await;
    let cfg = EngineConfig {
        participants: keys.iter().map(|k| to_consensus_key(&k.public())).collect(),
        signer: ed25519::PrivateKey::decode(keys[i].seed().to_vec()).unwrap(),
        timing: Timing { block_interval_ms: 50, idle_block_ms: 500, tick_ms: 10 },
        leader_timeout: Duration::from_secs(1),
        certification_timeout: Duration::from_millis(1500),
        partition: format!("simplex-{i}"),
        adversary,
        full_nodes,
    };
    let context = context.child("validator").with_attribute("index", i);
    engine::start(context, app, cfg, oracle.control(pk), channels, stats).expect("start")
}

/// Simulated p2p channel halves.
type SimChannels = Channels<
    commonware_p2p::simulated::Sender<ed25519::PublicKey, deterministic::Context>,
    commonware_p2p::simulated::Receiver<ed25519::PublicKey>,
>;

/// The six channels of peer `pk` on the simulated network.
async fn channels(oracle: &Oracle<ed25519::PublicKey, deterministic::Context>, pk: ed25519::PublicKey) -> SimChannels {
    let control = oracle.control(pk);
    let quota = Quota::per_second(NZU32!(100_000));
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
    Channels {
        votes: it.next().unwrap(),
        certs: it.next().unwrap(),
        resolver: it.next().unwrap(),
        blocks: it.next().unwrap(),
        txs: it.next().unwrap(),
        blobs: it.next().unwrap(),
    }
}

async fn link_all(
    oracle: &Oracle<ed25519::PublicKey, deterministic::Context>,
    pks: &[ed25519::PublicKey],
    link: &Link,
    up: &[bool],
) {
    for (a, pa) in pks.iter().enumerate() {
        for (b, pb) in pks.iter().enumerate() {
            if a != b && up[a] == up[b] {
                let _ = oracle.add_link(pa.clone(), pb.clone(), link.clone()).await;
            }
        }
    }
}

async fn unlink_all(oracle: &Oracle<ed25519::PublicKey, deterministic::Context>, pks: &[ed25519::PublicKey]) {
    for (a, pa) in pks.iter().enumerate() {
        for (b, pb) in pks.iter().enumerate() {
            if a != b {
                let _ = oracle.remove_link(pa.clone(), pb.clone()).await;
            }
        }
    }
}

/// What one seed ends with: every node's (height, head hash), and the per-height hashes.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    heads: Vec<(u64, Hash32)>,
}

fn transfer(from: &Keypair, to: &Keypair, nonce: u64) -> SignedTx {
    Tx {
        chain_id: "deed-sim".into(),
        sender: from.public(),
        nonce,
        fee: 10,
        body: TxBody::Transfer { to: to.address(), amount: 1 },
    }
    .sign(from)
}

/// Runs `phases` phases of ~4 virtual seconds (crash at phase 2, partition 3, heal 4,
/// restart 5; 8 phases see them all), then lets the cluster settle.
fn run_seed(seed: u64, phases: u32) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let cfg = deterministic::Config::new().with_seed(seed).with_timeout(Some(Duration::from_secs(600)));
    let runner = deterministic::Runner::new(cfg);
    runner.start(|context| async move {
        let keys = keys();
        let g = genesis(&keys);
        let pks: Vec<ed25519::PublicKey> = keys.iter().map(|k| to_consensus_key(&k.public())).collect();
        let fpk = to_consensus_key(&full_key().public());
        let full = [fpk.clone()];
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            NetConfig {
                max_size: wire::MESSAGE_BYTES_MAX,
                disconnect_on_block: false,
                tracked_peer_sets: NZUsize!(1),
                max_peers_per_set: NZUsize!(N + 2),
            },
            pks.iter().chain(&full).cloned().collect::<Vec<_>>(),
        )
        .await;
        network.start();
        let mut rng = Rng(seed);
        let lossy = Link {
            latency: Duration::from_millis(rng.range(5..60)),
            jitter: Duration::from_millis(rng.range(1..30)),
            success_rate: probability!(0.9),
        };
        link_all(&oracle, &pks, &lossy, &[true; N]).await;
        // The full node stays linked to every validator throughout (partitions split validators).
        for v in &pks {
            let _ = oracle.add_link(v.clone(), fpk.clone(), lossy.clone()).await;
            let _ = oracle.add_link(fpk.clone(), v.clone(), lossy.clone()).await;
        }
        let full_app = open_app(&root.join("full"), &full_key(), &g);
        let fcfg = engine::FullNodeConfig {
            me: fpk.clone(),
            full_nodes: full.to_vec(),
            timing: Timing { block_interval_ms: 50, idle_block_ms: 500, tick_ms: 10 },
        };
        let full_node = engine::start_full_node(
            context.child("full_node"),
            full_app.clone(),
            fcfg,
            channels(&oracle, fpk.clone()).await,
            Arc::default(),
        )
        .expect("start the full node");
        let dirs: Vec<PathBuf> = (0..N).map(|i| root.join(format!("n{i}"))).collect();
        let mut apps: Vec<Option<Arc<App>>> = (0..N).map(|i| Some(open_app(&dirs[i], &keys[i], &g))).collect();
        let mut nodes: Vec<Option<Running>> = Vec::new();
        for (i, app) in apps.iter().enumerate() {
            let app = app.clone().unwrap();
            nodes.push(Some(
                start_node(
                    &context,
                    &oracle,
                    i,
                    app,
                    &keys,
                    Opts { full_nodes: full.to_vec(), ..Opts::default() },
                    Arc::default(),
                )
                .await,
            ));
        }
        let users: Vec<Keypair> = deed_node::DEV_KEYS.iter().map(|n| Keypair::dev(n)).collect();
        let mut nonces = vec![0u64; users.len()];
        let crash = rng.range(0..N as u64) as usize;
        let mut up = [true; N];
        // Phases of ~4 virtual seconds each.
        for phase in 0..phases {
            match phase {
                2 => {
                    // Crash one validator (its process dies; its disk stays).
                    nodes[crash].take().unwrap().abort();
                    apps[crash] = None;
                    up[crash] = false;
                }
                3 => {
                    // Partition 2|2 (the crashed one included on one side): no quorum anywhere.
                    unlink_all(&oracle, &pks).await;
                    let mut side = [false; N];
                    side[0] = true;
                    side[1] = true;
                    link_all(&oracle, &pks, &lossy, &side).await;
                }
                4 => {
                    unlink_all(&oracle, &pks).await;
                    link_all(&oracle, &pks, &lossy, &[true; N]).await;
                }
                5 => {
                    // Restart the crashed validator from its disk.
                    let a = open_app(&dirs[crash], &keys[crash], &g);
                    apps[crash] = Some(a.clone());
                    nodes[crash] = Some(
                        start_node(
                            &context,
                            &oracle,
                            crash,
                            a,
                            &keys,
                            Opts { full_nodes: full.to_vec(), ..Opts::default() },
                            Arc::default(),
                        )
                        .await,
                    );
                    up[crash] = true;
                }
                _ => {}
            }
            // Submit a few transfers to random live nodes (index N: the full node).
            for _ in 0..20 {
                let u = rng.range(0..users.len() as u64) as usize;
                let i = rng.range(0..N as u64 + 1) as usize;
                let app = if i == N { Some(&full_app) } else { apps[i].as_ref() };
                if let Some(app) = app {
                    let tx = transfer(&users[u], &users[(u + 1) % users.len()], nonces[u]);
                    if app.admit(tx).is_ok() {
                        nonces[u] += 1;
                    }
                }
            }
            context.sleep(Duration::from_secs(4)).await;
        }
        // Let the restarted node catch up.
        context.sleep(Duration::from_secs(10)).await;
        let top = apps.iter().flatten().map(|a| a.db.height().unwrap()).max().unwrap();
        let followed = full_app.db.height().unwrap();
        assert!(followed + 3 >= top, "the full node did not follow: at {followed}, validators at {top}");
        let apps: Vec<Arc<App>> = apps.into_iter().flatten().chain([full_app]).collect();
        check_agreement(&apps);
        let heads = apps
            .iter()
            .map(|a| {
                let h = a.db.head().unwrap();
                (h.as_ref().map_or(0, |h| h.height), h.map_or(Hash32::ZERO, |h| h.hash()))
            })
            .collect();
        for n in nodes.into_iter().flatten() {
            n.abort();
        }
        full_node.abort();
        let _ = up;
        Outcome { heads }
    })
}

/// No two nodes committed different blocks at the same height.
fn check_agreement(apps: &[Arc<App>]) {
    let top = apps.iter().map(|a| a.db.height().unwrap()).max().unwrap();
    assert!(top > 3, "the cluster made no progress (top height {top})");
    for h in 1..=top {
        let mut seen: Option<Hash32> = None;
        for (i, a) in apps.iter().enumerate() {
            if let Some(b) = a.db.block(h).unwrap() {
                let x = b.header.hash();
                match seen {
                    None => seen = Some(x),
                    Some(s) => assert_eq!(s, x, "node {i} committed a different block at height {h}"),
                }
            }
        }
    }
    let roots: Vec<_> = apps.iter().map(|a| (a.db.height().unwrap(), a.db.state_root().unwrap())).collect();
    for (h, r) in &roots {
        if *h == top {
            assert_eq!(*r, roots.iter().find(|(x, _)| *x == top).unwrap().1);
        }
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("DEED_SIM_SEED") {
        return vec![s.parse().expect("DEED_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("DEED_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    (0..n).collect()
}

#[test]
fn simulated_cluster_never_forks() {
    for seed in seeds() {
        eprintln!("simulation seed {seed} (replay with DEED_SIM_SEED={seed})");
        let o = run_seed(seed, 8);
        eprintln!("  heads: {:?}", o.heads.iter().map(|(h, _)| h).collect::<Vec<_>>());
    }
}

#[test]
fn a_seed_replays_exactly() {
    let a = run_seed(7, 3);
    let b = run_seed(7, 3);
    assert_eq!(a, b, "the same seed must give the same chain");
}

/// Runs 4 validators for 20 virtual seconds with validator 0 proposing invalid blocks;
/// returns the apps and each validator's counters.
fn run_adversary(seed: u64, adversary: Adversary) -> (Vec<Arc<App>>, Vec<Stats>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let runner = deterministic::Runner::new(
        deterministic::Config::new().with_seed(seed).with_timeout(Some(Duration::from_secs(600))),
    );
    runner.start(|context| async move {
        let keys = keys();
        let g = genesis(&keys);
        let pks: Vec<ed25519::PublicKey> = keys.iter().map(|k| to_consensus_key(&k.public())).collect();
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            NetConfig {
                max_size: wire::MESSAGE_BYTES_MAX,
                disconnect_on_block: false,
                tracked_peer_sets: NZUsize!(1),
                max_peers_per_set: NZUsize!(N + 1),
            },
            pks.clone(),
        )
        .await;
        network.start();
        let link = Link {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(3),
            success_rate: probability!(1.0),
        };
        link_all(&oracle, &pks, &link, &[true; N]).await;
        let mut apps = Vec::new();
        let mut stats = Vec::new();
        let mut nodes = Vec::new();
        for i in 0..N {
            let app = open_app(&root.join(format!("n{i}")), &keys[i], &g);
            let st: Arc<Mutex<Stats>> = Arc::default();
            let adv = if i == 0 { Some(adversary) } else { None };
            nodes.push(
                start_node(
                    &context,
                    &oracle,
                    i,
                    app.clone(),
                    &keys,
                    Opts { adversary: adv, ..Opts::default() },
                    st.clone(),
                )
                .await,
            );
            apps.push(app);
            stats.push(st);
        }
        let users: Vec<Keypair> = deed_node::DEV_KEYS.iter().map(|n| Keypair::dev(n)).collect();
        for n in 0..5 {
            let _ = apps[1].admit(transfer(&users[0], &users[1], n));
        }
        context.sleep(Duration::from_secs(20)).await;
        for n in nodes {
            n.abort();
        }
        let stats = stats.iter().map(|s| s.lock().unwrap().clone()).collect();
        (apps, stats)
    })
}

fn check_rejected(adversary: Adversary, reason: &str) {
    let (apps, stats) = run_adversary(11, adversary);
    check_agreement(&apps);
    let rejected: u64 = stats[1..].iter().map(|s| s.rejected).sum();
    assert!(rejected > 0, "the honest validators never rejected the invalid proposals: {stats:?}");
    for s in &stats[1..] {
        if let Some(r) = &s.last_rejection {
            assert!(r.contains(reason), "unexpected rejection reason: {r}");
        }
    }
    // Every committed block is valid: the chain replays from genesis.
    for a in &apps {
        deed_ledger::db::replay(&a.db).expect("the committed chain replays");
        for h in 1..=a.db.height().unwrap() {
            let b = a.db.block(h).unwrap().unwrap();
            assert_ne!(b.header.proposer, apps[0].key.public(), "a block of the adversary was committed at {h}");
        }
    }
}

#[test]
fn a_block_with_a_bad_signature_is_rejected() {
    check_rejected(Adversary::BadSignature, "signature");
}

#[test]
fn a_block_with_an_overdraft_is_rejected() {
    check_rejected(Adversary::Overdraft, "insufficient");
}

/// A byzantine validator (index 0) that answers every notarize vote it sees with two
/// conflicting notarize votes of its own: the others detect it, put the evidence on the
/// ledger, and its stake is slashed.
#[test]
fn an_equivocating_validator_is_slashed() {
    use commonware_codec::{DecodeExt, Encode};
    use commonware_consensus::simplex::scheme::ed25519::Scheme;
    use commonware_consensus::simplex::types::{Notarize, Proposal, Vote};
    use commonware_cryptography::sha256::Digest;
    use commonware_p2p::{Receiver as _, Recipients, Sender as _};
    use commonware_runtime::Spawner;
    use commonware_utils::ordered::Set;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let runner = deterministic::Runner::new(
        deterministic::Config::new().with_seed(5).with_timeout(Some(Duration::from_secs(600))),
    );
    let (apps, byz) = runner.start(|context| async move {
        let keys = keys();
        let g = genesis(&keys);
        let pks: Vec<ed25519::PublicKey> = keys.iter().map(|k| to_consensus_key(&k.public())).collect();
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            NetConfig {
                max_size: wire::MESSAGE_BYTES_MAX,
                disconnect_on_block: false,
                tracked_peer_sets: NZUsize!(1),
                max_peers_per_set: NZUsize!(N + 1),
            },
            pks.clone(),
        )
        .await;
        network.start();
        let link = Link {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(3),
            success_rate: probability!(1.0),
        };
        link_all(&oracle, &pks, &link, &[true; N]).await;
        // The byzantine validator: only a vote channel and a conflicting signer.
        let control = oracle.control(pks[0].clone());
        let (mut tx, mut rx) = control.register(wire::CHANNEL_VOTES, Quota::per_second(NZU32!(100_000))).await.unwrap();
        let ns = deed_node::bft::engine::namespace("deed-sim");
        let participants: Set<ed25519::PublicKey> = Set::from_iter_dedup(pks.iter().cloned());
        let scheme =
            Scheme::signer(&ns, participants, ed25519::PrivateKey::decode(keys[0].seed().to_vec()).unwrap()).unwrap();
        context.child("byzantine").spawn(move |_| async move {
            let mut n: u8 = 0;
            while let Ok((_, msg)) = rx.recv().await {
                let Ok(Vote::Notarize(v)) = Vote::<Scheme, Digest>::decode(msg) else { continue };
                n = n.wrapping_add(1);
                let fake = Proposal::new(v.proposal.round, v.proposal.parent, Digest([n; 32]));
                for p in [fake, v.proposal.clone()] {
                    let vote = Notarize::<Scheme, Digest>::sign(&scheme, p).unwrap();
                    let _ = tx.send(Recipients::All, Vote::Notarize(vote).encode(), true);
                }
            }
        });
        let mut apps = Vec::new();
        let mut nodes = Vec::new();
        for i in 1..N {
            let app = open_app(&root.join(format!("n{i}")), &keys[i], &g);
            nodes.push(start_node(&context, &oracle, i, app.clone(), &keys, Opts::default(), Arc::default()).await);
            apps.push(app);
        }
        context.sleep(Duration::from_secs(20)).await;
        for n in nodes {
            n.abort();
        }
        (apps, keys[0].public())
    });
    check_agreement(&apps);
    for a in &apps {
        let snap = a.db.snapshot().unwrap();
        let stake = deed_ledger::query::executor(&snap, &byz).map_or(0, |e| e.stake);
        assert_eq!(stake, 0, "the equivocating validator still has stake {stake}");
    }
}

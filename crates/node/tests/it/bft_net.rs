//! Four validators on loopback, real sockets and the tokio runtime: blocks finalize;
//! one validator down does not stop them; two down stops finality; bringing one back
//! resumes it; the last one back catches up to the same state root.

use crate::free_port;
use deed_node::bft::{BftConfig, BftProducer};
use deed_node::{NodeConfig, NodeHandle};
use deed_types::{Hash32, Keypair, Tx, TxBody};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const N: usize = 4;

struct Net {
    keys: Vec<Keypair>,
    genesis: deed_types::Genesis,
    p2p: Vec<SocketAddr>,
    dirs: Vec<PathBuf>,
}

impl Net {
    async fn start(&self, i: usize) -> NodeHandle {
        let mut c = NodeConfig::new(self.dirs[i].clone());
        c.listen = "127.0.0.1:0".into();
        c.executor = false;
        c.producer_name = "simplex";
        let peers = self.keys.iter().zip(&self.p2p).map(|(k, a)| (k.public(), *a)).collect();
        let mut b = BftConfig::new(self.p2p[i], peers, self.dirs[i].join("consensus"));
        b.timing.idle_block_ms = 300;
        b.leader_timeout_ms = 1_000;
        b.certification_timeout_ms = 1_500;
        deed_node::start(
            c,
            Keypair::from_seed(self.keys[i].seed()),
            self.genesis.clone(),
            Box::new(BftProducer::new(b)),
        )
        .await
        .unwrap()
    }
}

fn height(h: &NodeHandle) -> u64 {
    h.app.db.height().unwrap()
}

async fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_on_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let keys: Vec<Keypair> = (0..N).map(|i| Keypair::dev(&format!("net-validator-{i}"))).collect();
    let vals: Vec<_> = keys.iter().map(|k| k.public()).collect();
    let genesis = deed_node::bft::testnet_genesis("deed-net-test", &vals, &[], deed_node::app::now_ms());
    let net = Net {
        keys,
        genesis,
        p2p: (0..N).map(|_| free_port()).collect(),
        dirs: (0..N).map(|i| tmp.path().join(format!("node{i}"))).collect(),
    };
    let mut nodes: Vec<Option<NodeHandle>> = Vec::new();
    for i in 0..N {
        nodes.push(Some(net.start(i).await));
    }
    let h = |n: &Vec<Option<NodeHandle>>, i: usize| height(n[i].as_ref().unwrap());

    // Blocks finalize, and a transaction sent to one node ends up in a block everywhere.
    let alice = Keypair::dev("dev1");
    let bob = Keypair::dev("dev2");
    let tx = Tx {
        chain_id: "deed-net-test".into(),
        sender: alice.public(),
        nonce: 0,
        fee: 10,
        body: TxBody::Transfer { to: bob.address(), amount: 5 },
    }
    .sign(&alice);
    let txh: Hash32 = nodes[3].as_ref().unwrap().app.admit(tx).unwrap();
    wait_for("the transfer to be final on every node", 60, || {
        nodes.iter().all(|n| {
            n.as_ref().unwrap().app.db.tx_status(&txh).unwrap().is_some_and(|s| s.height.is_some_and(|h| h > 0))
        })
    })
    .await;

    // One validator down: the other three keep finalizing.
    nodes[3].take().unwrap().shutdown().await.unwrap();
    let before = h(&nodes, 0);
    wait_for("progress with 3 of 4", 30, || h(&nodes, 0) >= before + 3).await;

    // Two down: no quorum, finality stops.
    nodes[2].take().unwrap().shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled = h(&nodes, 0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(h(&nodes, 0) <= stalled + 1, "finality went on without a quorum");

    // One back: finality resumes.
    nodes[2] = Some(net.start(2).await);
    wait_for("progress after a restart", 60, || h(&nodes, 0) >= stalled + 3).await;

    // The last one back catches up to the same state root.
    nodes[3] = Some(net.start(3).await);
    let target = h(&nodes, 0);
    wait_for("the restarted node to catch up", 90, || h(&nodes, 3) >= target).await;
    let b0 = nodes[0].as_ref().unwrap().app.db.block(target).unwrap().unwrap();
    let b3 = nodes[3].as_ref().unwrap().app.db.block(target).unwrap().unwrap();
    assert_eq!(b0.header.hash(), b3.header.hash());
    assert_eq!(b0.header.state_root, b3.header.state_root);
    for n in nodes.into_iter().flatten() {
        n.shutdown().await.unwrap();
    }
}

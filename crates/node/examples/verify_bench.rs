//! Verification costs (a benchmark, not a test): `bench/run.sh verify` runs it.
//!
//! For each model given: the time to check a receipt without re-executing it — what
//! `deed verify` checks before it re-runs: the executor's signature and trace root, the
//! node's genesis against the pinned one, the block's finality evidence against the
//! genesis (a finalization certificate of 3 of 4 validators, `finality::verify_evidence`),
//! the block's header against the final one, its 1,000 transactions against the header's
//! transaction root, and the receipt among them — with the certificate check alone shown
//! apart; re-execution time relative to the original
//! inference (the same engine run again), the cost of deciding a fraud proof (load the
//! model, replay one trace segment) as a fraction of a full inference — for the median
//! segment and the most expensive one, with the model load a validator also pays shown apart —
//! and the receipt's size.
//!
//! Usage: `verify_bench [--runs N] MODEL.onnx...` (release build). Inputs are generated
//! from each model's declared inputs: dynamic dims are 1 for the first (batch) and 128
//! otherwise; integer inputs hold small ids.

use deed_engine::{Model, RunOptions, Source};
use deed_node::bft::finality::{self, Evidence, Proof};
use deed_types::{
    Block, BlockHeader, DType, Hash32, Keypair, Receipt, SignedTx, Tensor, TensorData, TensorSet, Tx, TxBody, merkle,
};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut ts = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        last = Some(f());
        ts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    (median(ts), last.expect("ran"))
}

fn inputs_for(m: &Model) -> TensorSet {
    let mut set = TensorSet::default();
    for (i, info) in m.inputs().iter().enumerate() {
        let shape: Vec<usize> =
            info.shape.iter().enumerate().map(|(k, d)| d.unwrap_or(if k == 0 { 1 } else { 128 })).collect();
        let n: usize = shape.iter().product();
        let data = match info.dtype {
            DType::I64 => TensorData::I64((0..n).map(|j| ((j * 7 + i) % 100) as i64).collect()),
            DType::I32 => TensorData::I32((0..n).map(|j| ((j * 7 + i) % 100) as i32).collect()),
            DType::Bool => TensorData::Bool((0..n).map(|j| j % 3 != 0).collect()),
            _ => TensorData::F32((0..n).map(|j| ((j * 37 + i) % 101) as f32 / 101.0 - 0.5).collect()),
        };
        set.0.insert(info.name.clone(), Tensor::new(shape, data).expect("consistent"));
    }
    set
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 5;
    if let Some(i) = args.iter().position(|a| a == "--runs") {
        runs = args.get(i + 1).and_then(|r| r.parse().ok()).expect("--runs N");
        args.drain(i..=i + 1);
    }
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        eprintln!("usage: verify_bench [--runs N] MODEL.onnx...");
        std::process::exit(2);
    }
    // A BFT chain of four validators; blocks are certified by three of them.
    let validators: Vec<Keypair> = (0..4).map(|i| Keypair::dev(&format!("bench-validator-{i}"))).collect();
    let genesis = deed_node::bft::testnet_genesis(
        "deed-bench",
        &validators.iter().map(|k| k.public()).collect::<Vec<_>>(),
        &[],
        0,
    );
    let pinned = genesis.hash();
    println!(
        "| model | trace entries | receipt bytes | check w/o re-exec (µs) | of which certificate (µs) | inference (ms) | \
         re-exec / inference | replay, median segment (ms / fraction) | replay, costliest segment (ms / fraction) | \
         model load (ms) | load + costliest replay / inference |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for path in &args {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let model = Model::load(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        let inputs = inputs_for(&model);
        let opts = RunOptions { threads: 1, trace: true };
        let (infer_ms, out) = time(runs, || model.run(&inputs, &opts).expect("runs"));
        let (reexec_ms, again) = time(runs, || model.run(&inputs, &opts).expect("runs"));
        assert_eq!(again.trace, out.trace, "re-execution gives the same bits");

        // The receipt and a block that carries it among 999 other transactions.
        let exec = Keypair::dev("bench-executor");
        let producer = Keypair::dev("bench-producer");
        let sr = Receipt {
            version: 1,
            chain_id: "deed-bench".into(),
            job: Hash32::of(b"job"),
            model: deed_types::Cid::of(&bytes),
            engine: deed_engine::SPEC_VERSION.into(),
            input_hash: inputs.hash(),
            output_hash: out.output_hash(),
            trace_root: out.trace_root(),
            trace: out.trace.clone(),
            executor: exec.public(),
            price: 1000,
            executor_fee: 100,
        }
        .sign(&exec);
        let receipt_bytes = borsh::to_vec(&sr).expect("encodes").len();
        let mut txs: Vec<SignedTx> = (0..999u64)
            .map(|n| {
                Tx {
                    chain_id: "deed-bench".into(),
                    sender: producer.public(),
                    nonce: n,
                    fee: 10,
                    body: TxBody::Transfer { to: exec.address(), amount: 1 },
                }
                .sign(&producer)
            })
            .collect();
        txs.push(
            Tx {
                chain_id: "deed-bench".into(),
                sender: exec.public(),
                nonce: 0,
                fee: 10,
                body: TxBody::SubmitReceipt { receipt: sr.clone() },
            }
            .sign(&exec),
        );
        let ids: Vec<Hash32> = txs.iter().map(|t| t.hash()).collect();
        let header = BlockHeader {
            chain_id: "deed-bench".into(),
            height: 1,
            parent: Hash32::ZERO,
            time_ms: 0,
            tx_root: merkle::root(&ids),
            state_root: Hash32::ZERO,
            proposer: validators[0].public(),
        };
        let block = Block::seal(header, txs, &validators[0]);
        let signers: Vec<&Keypair> = validators[..3].iter().collect();
        let vals: Vec<_> = validators.iter().map(|k| k.public()).collect();
        let cert = finality::certify("deed-bench", &vals, &signers, &block.header, 7).expect("certifies");
        let evidence = Evidence {
            header: block.header.clone(),
            proof: Proof::Bft { certificate: hex::encode(&cert), chain: vec![] },
        };
        let (cert_ms, _) =
            time(runs * 20, || finality::verify_evidence(&genesis, &evidence).expect("the certificate verifies"));
        let (check_ms, ()) = time(runs * 20, || {
            sr.verify().expect("receipt verifies");
            assert_eq!(genesis.hash(), pinned, "the node's genesis is the pinned one");
            finality::verify_evidence(&genesis, &evidence).expect("the certificate verifies");
            assert_eq!(block.header, evidence.header, "the block is the final one");
            assert_eq!(Block::tx_root(&block.txs), block.header.tx_root, "the transactions are the header's");
            assert!(
                block.txs.iter().any(|t| matches!(&t.tx.body, TxBody::SubmitReceipt { receipt } if *receipt == sr)),
                "the receipt is in the block"
            );
        });

        // Fraud proofs: load the model and replay one segment on its committed inputs.
        let (_, (_, blobs)) = time(1, || model.run_keep_all(&inputs, &opts).expect("runs"));
        let n = model.trace_len();
        let replay = |i: usize| {
            let ins: Vec<Tensor> = model
                .entry_sources(i)
                .iter()
                .map(|s| match s {
                    Source::Input(name) => inputs.0[name].clone(),
                    Source::Entry { entry, value } => {
                        model.split_entry_values(*entry, &blobs[*entry]).expect("decodes")[*value].clone()
                    }
                    Source::Const => unreachable!("weights are not listed"),
                })
                .collect();
            let t = Instant::now();
            let h = model.replay_entry(i, &ins).expect("replays");
            assert_eq!(h, out.trace[i]);
            t.elapsed().as_secs_f64() * 1e3
        };
        let (load_ms, _) = time(runs.min(3), || Model::load(&bytes).expect("loads"));
        let per_entry: Vec<f64> = (0..n).map(|i| median((0..runs.min(3)).map(|_| replay(i)).collect())).collect();
        let mut sorted = per_entry.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let (med, worst) = (sorted[n / 2], sorted[n - 1]);
        let name = std::path::Path::new(path).file_name().and_then(|f| f.to_str()).unwrap_or(path);
        println!(
            "| {name} | {n} | {receipt_bytes} | {:.0} | {:.0} | {infer_ms:.2} | {:.2}× | {med:.3} / {:.4} | \
             {worst:.3} / {:.4} | {load_ms:.2} | {:.4} |",
            check_ms * 1e3,
            cert_ms * 1e3,
            reexec_ms / infer_ms,
            med / infer_ms,
            worst / infer_ms,
            (load_ms + worst) / infer_ms
        );
    }
}

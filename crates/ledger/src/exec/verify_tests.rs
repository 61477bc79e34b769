//! The verification protocol on the ledger: challenge windows, replicated jobs,
//! disputes, fraud proofs decided by replaying one trace segment of a real model, slashing, bonds,
//! refunds and timeouts.

use super::tests::{CHAIN, Chain, FEE, key, test_genesis};
use crate::{Job, JobStatus, TxError, query};
use deed_engine::{Model, RunOptions};
use deed_types::{
    Amount, Cid, FraudProof, GenesisAccount, GenesisExecutor, Hash32, JobMode, JobParams, Keypair, Receipt,
    SignedReceipt, Tensor, TensorSet, TxBody,
};

/// A small residual CNN: 42 nodes, two trace segments, so that a proof against the
/// second reads the first's producer blob.
const MODEL: &[u8] = include_bytes!("../../../../fixtures/arch/resnet_mini.onnx");
const OTHER_MODEL: &[u8] = include_bytes!("../../../../fixtures/cnn.onnx");
const PRICE: Amount = 100;
const EXEC_FEE: Amount = 7;
const STAKE: Amount = 1_000_000;
const BOND: Amount = 1_000;

fn input(seed: f32) -> TensorSet {
    let mut s = TensorSet::default();
    let x = (0..3 * 32 * 32).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.02 * seed).collect();
    s.0.insert("image".into(), Tensor::f32(vec![1, 3, 32, 32], x));
    s
}

/// A chain with the resnet_mini model registered by alice, two staked executors with money for
/// fees, carol as a challenger, and the given job rules.
fn setup(jobs: JobParams) -> Chain {
    let mut g = test_genesis();
    g.params.jobs = jobs;
    g.executors.push(GenesisExecutor { key: key("exec2").public(), stake: STAKE });
    g.executors.push(GenesisExecutor { key: key("exec3").public(), stake: STAKE });
    for n in ["exec", "exec2", "exec3", "payer"] {
        g.accounts.push(GenesisAccount { address: key(n).address(), balance: 1_000_000 });
    }
    let mut c = Chain::with(g);
    c.register(&key("alice"), Cid::of(MODEL), PRICE);
    c.blobs.insert(Cid::of(MODEL), MODEL.to_vec());
    c
}

fn rules() -> JobParams {
    JobParams {
        challenge_window_blocks: 3,
        dispute_window_blocks: 3,
        job_timeout_blocks: 6,
        challenge_bond: BOND,
        slash_bps: 5_000,
        challenger_reward_bps: 5_000,
        replicas_max: 4,
    }
}

/// Requests a job on `input` (uploading the input blob); returns the job.
fn request(c: &mut Chain, inp: &TensorSet, mode: JobMode) -> Job {
    let bytes = inp.encode();
    let cid = Cid::of(&bytes);
    c.blobs.insert(cid, bytes);
    let body =
        TxBody::RequestInference { model: Cid::of(MODEL), input: cid, price: PRICE, executor_fee: EXEC_FEE, mode };
    let id = c.send(&key("payer"), body).unwrap();
    query::job(&c.state, &id).unwrap()
}

/// What an honest executor computes, and the producer blobs a challenger would upload.
fn honest(job: &Job, inp: &TensorSet, model: &[u8], exec: &Keypair) -> (Receipt, Vec<Vec<u8>>) {
    let m = Model::load(model).unwrap();
    let (out, blobs) = m.run_keep_all(inp, &RunOptions::default()).unwrap();
    let r = Receipt {
        version: 1,
        chain_id: CHAIN.into(),
        job: job.id,
        model: job.model,
        engine: deed_engine::SPEC_VERSION.into(),
        input_hash: inp.hash(),
        output_hash: out.output_hash(),
        trace_root: out.trace_root(),
        trace: out.trace,
        executor: exec.public(),
        price: job.price,
        executor_fee: job.executor_fee,
    };
    (r, blobs)
}

fn submit(c: &mut Chain, exec: &Keypair, r: Receipt) -> Result<Hash32, TxError> {
    let sr: SignedReceipt = r.sign(exec);
    c.send(exec, TxBody::SubmitReceipt { receipt: sr })
}

fn upload(c: &mut Chain, blobs: &[Vec<u8>]) {
    for b in blobs {
        c.blobs.insert(Cid::of(b), b.clone());
    }
}

fn status(c: &Chain, job: &Job) -> JobStatus {
    query::job(&c.state, &job.id).unwrap().status
}

fn stake(c: &Chain, k: &Keypair) -> Amount {
    query::executor(&c.state, &k.public()).map_or(0, |e| e.stake)
}

fn challenge(c: &mut Chain, job: &Job, exec: &Keypair, proof: FraudProof) -> Result<Hash32, TxError> {
    c.send(&key("carol"), TxBody::Challenge { job: job.id, executor: exec.public(), proof })
}

#[test]
fn single_job_settles_when_its_window_closes() {
    let mut c = setup(rules());
    let exec = key("exec");
    let inp = input(1.0);
    let job = request(&mut c, &inp, JobMode::Single);
    let (r, _) = honest(&job, &inp, MODEL, &exec);
    let owner0 = c.balance(&key("alice").address());
    let exec0 = c.balance(&exec.address());
    submit(&mut c, &exec, r).unwrap();
    assert!(matches!(status(&c, &job), JobStatus::Challengeable { .. }));
    assert_eq!(c.balance(&key("alice").address()), owner0, "nothing is paid inside the window");
    let supply = c.supply();
    for _ in 0..3 {
        c.block(vec![]);
    }
    assert!(matches!(status(&c, &job), JobStatus::Settled { .. }), "{:?}", status(&c, &job));
    assert_eq!(c.balance(&key("alice").address()), owner0 + PRICE);
    assert_eq!(c.balance(&exec.address()), exec0 - FEE + EXEC_FEE);
    assert_eq!(c.supply(), supply);
}

#[test]
fn wrong_output_is_proven_the_liar_slashed_and_the_payer_refunded() {
    let mut c = setup(rules());
    let exec = key("exec");
    let inp = input(1.0);
    let job = request(&mut c, &inp, JobMode::Single);
    let (mut r, blobs) = honest(&job, &inp, MODEL, &exec);
    r.output_hash = Hash32::of(b"a different answer");
    submit(&mut c, &exec, r).unwrap();
    let supply = c.supply();
    let (payer0, carol0) = (c.balance(&job.payer), c.balance(&key("carol").address()));
    // Without the producer blobs the proof cannot be decided: refused, not judged.
    assert!(matches!(challenge(&mut c, &job, &exec, FraudProof::Output), Err(TxError::Unavailable(_))));
    upload(&mut c, &blobs);
    challenge(&mut c, &job, &exec, FraudProof::Output).unwrap();
    let slashed = STAKE / 2;
    assert_eq!(stake(&c, &exec), STAKE - slashed);
    assert!(matches!(status(&c, &job), JobStatus::Refunded { .. }));
    assert_eq!(
        c.balance(&job.payer),
        payer0 + PRICE + EXEC_FEE + (slashed - slashed / 2),
        "escrow back + compensation"
    );
    assert_eq!(c.balance(&key("carol").address()), carol0 - FEE + slashed / 2, "reward, bond returned");
    assert_eq!(c.supply(), supply, "slashing moves stake, it does not mint or burn");
    // The window is over for this job: nothing settles later.
    for _ in 0..4 {
        c.block(vec![]);
    }
    assert!(matches!(status(&c, &job), JobStatus::Refunded { .. }));
}

#[test]
fn wrong_trace_is_proven_at_the_first_differing_segment() {
    let mut c = setup(rules());
    let exec = key("exec");
    let inp = input(1.0);
    let job = request(&mut c, &inp, JobMode::Single);
    let (mut r, blobs) = honest(&job, &inp, MODEL, &exec);
    let k = r.trace.len() / 2;
    assert!(k >= 1 && !Model::load(MODEL).unwrap().entry_sources(k).is_empty());
    r.trace[k] = Hash32::of(b"made up");
    r.trace_root = deed_types::merkle::root(&r.trace);
    submit(&mut c, &exec, r.clone()).unwrap();
    // The challenger's honest run differs first at k.
    let (h, _) = honest(&job, &inp, MODEL, &exec);
    let first = h.trace.iter().zip(&r.trace).position(|(a, b)| a != b).unwrap();
    assert_eq!(first, k);
    upload(&mut c, &blobs);
    // Pointing at a segment that is right is a failed challenge: the bond goes to the executor.
    let exec0 = c.balance(&exec.address());
    challenge(&mut c, &job, &exec, FraudProof::Segment { index: (k - 1) as u32 }).unwrap();
    assert_eq!(c.balance(&exec.address()), exec0 + BOND);
    assert!(matches!(status(&c, &job), JobStatus::Challengeable { .. }));
    challenge(&mut c, &job, &exec, FraudProof::Segment { index: k as u32 }).unwrap();
    assert_eq!(stake(&c, &exec), STAKE / 2);
    assert!(matches!(status(&c, &job), JobStatus::Refunded { .. }));
}

#[test]
fn stale_output_and_substituted_model_are_proven() {
    // Stale: the trace of another input. The first segment reading the input differs.
    let mut c = setup(rules());
    let exec = key("exec");
    let inp = input(1.0);
    let job = request(&mut c, &inp, JobMode::Single);
    let (stale, _) = honest(&job, &input(2.0), MODEL, &exec);
    let stale = Receipt { input_hash: inp.hash(), ..stale };
    submit(&mut c, &exec, stale.clone()).unwrap();
    let (h, blobs) = honest(&job, &inp, MODEL, &exec);
    upload(&mut c, &blobs);
    let first = h.trace.iter().zip(&stale.trace).position(|(a, b)| a != b).unwrap();
    challenge(&mut c, &job, &exec, FraudProof::Segment { index: first as u32 }).unwrap();
    assert!(matches!(status(&c, &job), JobStatus::Refunded { .. }));

    // Substituted model: the trace of another graph has the wrong length.
    let mut c = setup(rules());
    let job = request(&mut c, &inp, JobMode::Single);
    let mut cnn_in = TensorSet::default();
    cnn_in.0.insert("image".into(), Tensor::f32(vec![1, 1, 12, 12], vec![0.5; 144]));
    let (sub, _) = honest(&job, &cnn_in, OTHER_MODEL, &exec);
    let sub = Receipt { input_hash: inp.hash(), ..sub };
    assert_ne!(sub.trace.len(), h.trace.len());
    submit(&mut c, &exec, sub).unwrap();
    // Claiming a length fraud against an honest-length trace would fail; this one holds.
    challenge(&mut c, &job, &exec, FraudProof::TraceLength).unwrap();
    assert!(matches!(status(&c, &job), JobStatus::Refunded { .. }));
    assert_eq!(stake(&c, &exec), STAKE / 2);
}

#[test]
fn honest_receipt_survives_every_challenge_and_challengers_lose_bonds() {
    let mut c = setup(rules());
    let exec = key("exec");
    let inp = input(1.0);
    let job = request(&mut c, &inp, JobMode::Single);
    let (r, blobs) = honest(&job, &inp, MODEL, &exec);
    let n = r.trace.len();
    submit(&mut c, &exec, r).unwrap();
    upload(&mut c, &blobs);
    let (exec0, carol0) = (c.balance(&exec.address()), c.balance(&key("carol").address()));
    challenge(&mut c, &job, &exec, FraudProof::Output).unwrap();
    challenge(&mut c, &job, &exec, FraudProof::TraceLength).unwrap();
    assert_eq!(c.balance(&exec.address()), exec0 + 2 * BOND);
    assert_eq!(c.balance(&key("carol").address()), carol0 - 2 * (BOND + FEE));
    assert_eq!(stake(&c, &exec), STAKE);
    // The window closes; the job settles normally.
    let _ = n;
    for _ in 0..3 {
        c.block(vec![]);
    }
    assert!(matches!(status(&c, &job), JobStatus::Settled { .. }));
    // After the window: nothing to challenge.
    assert!(matches!(challenge(&mut c, &job, &exec, FraudProof::Output), Err(TxError::NotChallengeable(_))));
}

#[test]
fn every_segment_of_an_honest_receipt_replays_to_its_trace() {
    // One challenge per block: the window must outlast them all.
    let mut c = setup(JobParams { challenge_window_blocks: 10, ..rules() });
    let exec = key("exec");
    let inp = input(0.7);
    let job = request(&mut c, &inp, JobMode::Single);
    let (r, blobs) = honest(&job, &inp, MODEL, &exec);
    let n = r.trace.len();
    submit(&mut c, &exec, r).unwrap();
    upload(&mut c, &blobs);
    assert_eq!(n, 2);
    for i in 0..n {
        let before = c.balance(&exec.address());
        challenge(&mut c, &job, &exec, FraudProof::Segment { index: i as u32 }).unwrap();
        assert_eq!(c.balance(&exec.address()), before + BOND, "segment {i} replayed differently");
    }
}

#[test]
fn replicated_jobs_settle_on_agreement_and_dispute_on_disagreement() {
    let mut c = setup(rules());
    let (e1, e2) = (key("exec"), key("exec2"));
    let inp = input(1.0);
    let job = request(&mut c, &inp, JobMode::Replicated(2));
    let (r1, _) = honest(&job, &inp, MODEL, &e1);
    let (r2, _) = honest(&job, &inp, MODEL, &e2);
    let owner0 = c.balance(&key("alice").address());
    submit(&mut c, &e1, r1.clone()).unwrap();
    assert_eq!(status(&c, &job), JobStatus::Pending);
    assert_eq!(submit(&mut c, &e1, r1), Err(TxError::AlreadySubmitted));
    submit(&mut c, &e2, r2).unwrap();
    assert!(matches!(status(&c, &job), JobStatus::Settled { .. }), "agreement settles at once");
    assert_eq!(c.balance(&key("alice").address()), owner0 + PRICE);

    // Disagreement opens a dispute by itself; the honest side proves the lie, the liar's
    // receipt is struck, and the honest receipt settles the job when the window closes.
    let job = request(&mut c, &inp, JobMode::Replicated(2));
    let (good, blobs) = honest(&job, &inp, MODEL, &e1);
    let good_id = good.hash();
    let (mut bad, _) = honest(&job, &inp, MODEL, &e2);
    bad.output_hash = Hash32::of(b"lie");
    // The liar's receipt comes first: it is the job's canonical receipt until struck.
    submit(&mut c, &e2, bad).unwrap();
    submit(&mut c, &e1, good).unwrap();
    assert!(matches!(status(&c, &job), JobStatus::Disputed { .. }));
    upload(&mut c, &blobs);
    // A challenge against the honest receipt fails; against the liar it holds.
    let e1_0 = c.balance(&e1.address());
    challenge(&mut c, &job, &e1, FraudProof::Output).unwrap();
    assert_eq!(c.balance(&e1.address()), e1_0 + BOND);
    let (payer0, owner0, carol0) =
        (c.balance(&job.payer), c.balance(&key("alice").address()), c.balance(&key("carol").address()));
    challenge(&mut c, &job, &e2, FraudProof::Output).unwrap();
    assert!(matches!(status(&c, &job), JobStatus::Disputed { .. }), "the dispute goes on");
    assert_eq!(stake(&c, &e2), STAKE / 2);
    assert_eq!(stake(&c, &e1), STAKE);
    let (slashed, reward) = (STAKE / 2, STAKE / 4);
    assert_eq!(c.balance(&job.payer), payer0 + (slashed - reward), "the payer's share of the slash, at once");
    // The struck receipt cannot be proven, nor its executor slashed, twice.
    assert!(matches!(challenge(&mut c, &job, &e2, FraudProof::Output), Err(TxError::NotChallengeable(_))));
    assert_eq!(stake(&c, &e2), STAKE / 2);
    for _ in 0..3 {
        c.block(vec![]);
    }
    match status(&c, &job) {
        JobStatus::Settled { executor, receipt, .. } => {
            assert_eq!(executor, e1.public(), "the honest receipt settles the job");
            assert_eq!(receipt, good_id);
        }
        other => panic!("the dispute did not settle on the standing receipt: {other:?}"),
    }
    assert_eq!(c.balance(&e1.address()), e1_0 + BOND + EXEC_FEE, "the honest executor is paid");
    assert_eq!(c.balance(&key("alice").address()), owner0 + PRICE, "the owner gets the price");
    assert_eq!(
        c.balance(&job.payer),
        payer0 + (slashed - reward) + EXEC_FEE,
        "the liar's executor fee goes back to the payer"
    );
    assert_eq!(c.balance(&key("carol").address()), carol0 + reward - FEE, "the challenger's reward, its bond back");
    let canonical: SignedReceipt = query::receipt(&c.state, &job.id).unwrap();
    assert_eq!(canonical.receipt.hash(), good_id, "the canonical receipt is the standing one");

    // A dispute nobody resolves refunds the payer when its window closes.
    let e3 = key("exec3");
    let job = request(&mut c, &inp, JobMode::Replicated(2));
    let (good, _) = honest(&job, &inp, MODEL, &e1);
    let (mut bad, _) = honest(&job, &inp, MODEL, &e3);
    bad.trace_root = Hash32::ZERO;
    bad.trace.clear();
    bad.trace_root = deed_types::merkle::root(&bad.trace);
    submit(&mut c, &e1, good).unwrap();
    submit(&mut c, &e3, bad).unwrap();
    let payer0 = c.balance(&job.payer);
    for _ in 0..3 {
        c.block(vec![]);
    }
    assert!(matches!(status(&c, &job), JobStatus::Refunded { .. }));
    assert_eq!(c.balance(&job.payer), payer0 + PRICE + 2 * EXEC_FEE);
}

#[test]
fn every_liar_in_a_dispute_is_slashed_and_all_struck_refunds() {
    let mut c = setup(rules());
    let (e1, e2, e3) = (key("exec"), key("exec2"), key("exec3"));
    let inp = input(2.0);
    // Two liars with different lies and one honest executor: both lies are proven, the
    // honest receipt settles.
    let job = request(&mut c, &inp, JobMode::Replicated(3));
    let (good, blobs) = honest(&job, &inp, MODEL, &e1);
    let (mut lie_a, _) = honest(&job, &inp, MODEL, &e2);
    lie_a.output_hash = Hash32::of(b"lie a");
    let (mut lie_b, _) = honest(&job, &inp, MODEL, &e3);
    lie_b.output_hash = Hash32::of(b"lie b");
    submit(&mut c, &e2, lie_a).unwrap();
    submit(&mut c, &e1, good).unwrap();
    submit(&mut c, &e3, lie_b).unwrap();
    upload(&mut c, &blobs);
    let payer0 = c.balance(&job.payer);
    challenge(&mut c, &job, &e2, FraudProof::Output).unwrap();
    challenge(&mut c, &job, &e3, FraudProof::Output).unwrap();
    assert_eq!((stake(&c, &e2), stake(&c, &e3)), (STAKE / 2, STAKE / 2), "both liars slashed");
    for _ in 0..3 {
        c.block(vec![]);
    }
    assert!(matches!(status(&c, &job), JobStatus::Settled { executor, .. } if executor == e1.public()));
    // Each slash's payer share, and the two liars' fees.
    assert_eq!(c.balance(&job.payer), payer0 + 2 * (STAKE / 4) + 2 * EXEC_FEE);

    // A dispute whose every receipt is proven wrong refunds at the last proof.
    let mut c = setup(rules());
    let inp = input(3.0);
    let job = request(&mut c, &inp, JobMode::Replicated(2));
    let (_, blobs) = honest(&job, &inp, MODEL, &e1);
    let (mut lie_a, _) = honest(&job, &inp, MODEL, &e1);
    lie_a.output_hash = Hash32::of(b"lie a");
    let (mut lie_b, _) = honest(&job, &inp, MODEL, &e2);
    lie_b.output_hash = Hash32::of(b"lie b");
    submit(&mut c, &e1, lie_a).unwrap();
    submit(&mut c, &e2, lie_b).unwrap();
    upload(&mut c, &blobs);
    let payer0 = c.balance(&job.payer);
    challenge(&mut c, &job, &e1, FraudProof::Output).unwrap();
    assert!(matches!(status(&c, &job), JobStatus::Disputed { .. }));
    challenge(&mut c, &job, &e2, FraudProof::Output).unwrap();
    assert!(matches!(status(&c, &job), JobStatus::Refunded { .. }), "no receipt stands");
    assert_eq!(c.balance(&job.payer), payer0 + 2 * (STAKE / 4) + PRICE + 2 * EXEC_FEE);
}

#[test]
fn unanswered_jobs_time_out_and_bad_modes_are_refused() {
    let mut c = setup(rules());
    let inp = input(1.0);
    let job = request(&mut c, &inp, JobMode::Single);
    let payer0 = c.balance(&job.payer);
    for _ in 0..6 {
        c.block(vec![]);
    }
    assert!(matches!(status(&c, &job), JobStatus::Refunded { .. }));
    assert_eq!(c.balance(&job.payer), payer0 + PRICE + EXEC_FEE);
    let body = |mode| TxBody::RequestInference {
        model: Cid::of(MODEL),
        input: Cid::of(&inp.encode()),
        price: PRICE,
        executor_fee: EXEC_FEE,
        mode,
    };
    assert!(matches!(c.send(&key("alice"), body(JobMode::Replicated(5))), Err(TxError::BadMode(_))));
    assert!(matches!(c.send(&key("alice"), body(JobMode::Replicated(0))), Err(TxError::BadMode(_))));
}

#[test]
fn receipts_replayed_for_another_job_or_chain_are_refused() {
    let mut c = setup(rules());
    let exec = key("exec");
    let inp = input(1.0);
    let j1 = request(&mut c, &inp, JobMode::Single);
    let j2 = request(&mut c, &input(3.0), JobMode::Single);
    let (r1, _) = honest(&j1, &inp, MODEL, &exec);
    // j1's receipt, pointed at j2: the input hash no longer matches.
    let moved = Receipt { job: j2.id, ..r1.clone() };
    assert!(matches!(submit(&mut c, &exec, moved), Err(TxError::ReceiptMismatch(_))));
    let other_chain = Receipt { chain_id: "deed-other".into(), ..r1 };
    assert!(matches!(submit(&mut c, &exec, other_chain), Err(TxError::ReceiptMismatch(_))));
}

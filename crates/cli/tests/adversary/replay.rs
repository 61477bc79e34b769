//! A receipt is bound to its job and its chain: the same signed bytes submitted again
//! for their job, or offered for another job with the same model and input, or checked
//! against another chain, are refused.

use super::*;
use deed_types::SignedReceipt;

/// A node without an executor, dev2 as the (honest) executor beside it, and one job
/// answered: (net, the job's receipt.json path, the receipt).
fn answered_job(rng: &mut Rng) -> (Net, WorkerProc, PathBuf, SignedReceipt) {
    let n = net(&["--no-executor"]);
    ok_json(&n.home, &["--node", n.url(), "--key", "dev2", "stake", &STAKE.to_string()]);
    let w = WorkerProc::start(&n.home, n.url(), "dev2", &["--execute"], &[]);
    let r = n.run(MLP, "single", rng);
    let path = PathBuf::from(r["receipt"].as_str().unwrap());
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let sr: SignedReceipt = serde_json::from_value(doc["receipt"].clone()).unwrap();
    (n, w, path, sr)
}

fn receipts(n: &Net, job: &Hash32) -> Vec<Value> {
    n.job(&job.to_string())["job"]["receipts"].as_array().unwrap().clone()
}

#[test]
fn a_receipt_replayed_for_its_job_or_for_another_job_is_refused() {
    let mut rng = seed("replay");
    let (n, worker, _, sr) = answered_job(&mut rng);
    let a = sr.receipt.job;
    let dev2 = Keypair::dev("dev2");
    assert_eq!(sr.receipt.executor, dev2.public());
    let replay = || TxBody::SubmitReceipt { receipt: sr.clone() };

    // The same bytes again, while the job is in its challenge window and once settled.
    let err = n.apply(&dev2, replay()).expect_err("a replayed receipt was accepted");
    assert!(err.contains("job already answered"), "{err}");
    assert_eq!(n.final_state(&a.to_string())["state"], "settled");
    let err = n.apply(&dev2, replay()).expect_err("a replayed receipt was accepted after settlement");
    assert!(err.contains("job already answered"), "{err}");
    assert_eq!(receipts(&n, &a).len(), 1);

    // A replicated job still waiting for its second executor: the first executor's
    // receipt, sent again, must not count twice.
    let dev1 = Keypair::dev("dev1");
    let nonce = get_json(n.url(), &format!("/v1/accounts/{}", dev1.address()))["pending_nonce"].as_u64().unwrap();
    let input = TensorSet::decode(&get_bytes(n.url(), &format!("/v1/blobs/{}", Cid(sr.receipt.input_hash)))).unwrap();
    let c = n.request(&dev1, nonce, MLP, &input, JobMode::Replicated(2));
    n.outcome(&c).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while receipts(&n, &c).is_empty() {
        assert!(Instant::now() < deadline, "dev2 never answered {c}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(worker);
    let job_c = n.job(&c.to_string());
    let sr_c: SignedReceipt = serde_json::from_value(job_c["receipt"].clone()).unwrap();
    let err = n.apply(&dev2, TxBody::SubmitReceipt { receipt: sr_c }).expect_err("a receipt counted twice");
    assert!(err.contains("already submitted a receipt for this job"), "{err}");
    assert_eq!(receipts(&n, &c).len(), 1);
    assert_eq!(n.job(&c.to_string())["job"]["status"]["state"], "pending");

    // Another job for the same model and input, which nobody answers.
    let b = n.request(&dev1, nonce + 1, MLP, &input, JobMode::Single);
    n.outcome(&b).unwrap();
    assert_ne!(a, b);
    // The receipt names job A, so the same bytes never count for B.
    let err = n.apply(&dev2, replay()).expect_err("a replayed receipt was accepted");
    assert!(err.contains("job already answered"), "{err}");
    assert!(receipts(&n, &b).is_empty(), "job B took job A's receipt");
    // Re-pointed at B under A's signature, it is not the executor's receipt any more.
    let mut forged = sr.clone();
    forged.receipt.job = b;
    let err = n.apply(&dev2, TxBody::SubmitReceipt { receipt: forged }).expect_err("a re-pointed receipt was accepted");
    assert!(err.contains("bad receipt") && err.contains("signature"), "{err}");
    assert!(receipts(&n, &b).is_empty(), "job B took a re-pointed receipt");
    // Control: the same answer, signed by the executor for B, is accepted — so the
    // refusals above are the job binding, not a malformed transaction.
    let mut fresh = sr.receipt.clone();
    fresh.job = b;
    n.apply(&dev2, TxBody::SubmitReceipt { receipt: fresh.sign(&dev2) }).unwrap();
    assert_eq!(receipts(&n, &b).len(), 1);
    assert_eq!(n.final_state(&b.to_string())["state"], "settled");
}

#[test]
fn a_receipt_from_another_chain_is_refused_by_verify_and_by_the_ledger() {
    let mut rng = seed("other-chain");
    let (n, worker, path, sr) = answered_job(&mut rng);
    drop(worker);
    let dev2 = Keypair::dev("dev2");
    let chain = get_json(n.url(), "/v1/status")["chain_id"].as_str().unwrap().to_string();
    // The same answer, validly signed by the same executor, for a chain of another id.
    let mut other = sr.receipt.clone();
    other.chain_id = format!("{chain}-other");
    let other = other.sign(&dev2);
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["receipt"] = serde_json::to_value(&other).unwrap();
    let file = path.with_file_name("other-chain.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let err = fails(&n.home, &["--node", n.url(), "verify", file.to_str().unwrap()], 3);
    // Refused against the chain the client trusts (its pinned genesis), naming both ids.
    assert!(
        err.contains(&format!("receipt is for chain '{chain}-other'")) && err.contains(&format!("'{chain}'")),
        "{err}"
    );
    // The original verifies (the refusal above is the chain id).
    let ok = ok_json(&n.home, &["--node", n.url(), "verify", path.to_str().unwrap()]);
    assert_eq!(ok["verified"], true, "{ok}");
    // The ledger refuses it too, for a job still waiting for its receipt.
    let dev1 = Keypair::dev("dev1");
    let nonce = get_json(n.url(), &format!("/v1/accounts/{}", dev1.address()))["pending_nonce"].as_u64().unwrap();
    let input = TensorSet::decode(&get_bytes(n.url(), &format!("/v1/blobs/{}", Cid(sr.receipt.input_hash)))).unwrap();
    let b = n.request(&dev1, nonce, MLP, &input, JobMode::Single);
    n.outcome(&b).unwrap();
    let mut other_b = other.receipt.clone();
    other_b.job = b;
    let err = n.apply(&dev2, TxBody::SubmitReceipt { receipt: other_b.sign(&dev2) }).expect_err("accepted");
    assert!(err.contains(&format!("the receipt is for chain '{chain}-other'")), "{err}");
    assert!(receipts(&n, &b).is_empty());
}

fn get_bytes(url: &str, path: &str) -> Vec<u8> {
    let mut resp = agent().get(format!("{url}{path}")).call().unwrap();
    assert!(resp.status().is_success());
    resp.body_mut().read_to_vec().unwrap()
}

//! `deed node --audit RATE` below 1: the node audits exactly the jobs the audit rule
//! picks from block hashes (`deed_node::worker::audit_sampled`), so a lie in a sampled job
//! is caught and one in an unsampled job settles.

use super::*;
use deed_node::worker::audit_sampled;

#[test]
fn a_node_auditing_at_half_rate_catches_exactly_the_sampled_lies() {
    const RATE: f64 = 0.5;
    const JOBS: usize = 8;
    let mut rng = seed("sampling");
    let n = net(&["--no-executor", "--audit", &RATE.to_string()]);
    // The liar: dev2, staked enough to stay staked through every slash.
    let stake = STAKE * 1_000;
    ok_json(&n.home, &["--node", n.url(), "--key", "dev2", "stake", &stake.to_string()]);
    let _liar = WorkerProc::start(&n.home, n.url(), "dev2", &["--execute", "--misbehave", "wrong-output"], &[]);
    let jobs: Vec<String> =
        (0..JOBS).map(|i| n.run(MODELS[i % 2], "single", &mut rng)["job"].as_str().unwrap().to_string()).collect();
    let mut sampled = Vec::new();
    for job in &jobs {
        let st = n.final_state(job);
        let j = n.job(job);
        let height = j["job"]["receipts"][0]["height"].as_u64().unwrap();
        let block: deed_types::Block =
            serde_json::from_value(get_json(n.url(), &format!("/v1/blocks/{height}"))).unwrap();
        let pick = audit_sampled(&block.header.hash(), &job.parse().unwrap(), RATE);
        sampled.push(pick);
        if pick {
            assert_eq!(st["state"], "refunded", "job {job} was sampled but its lie was not caught: {st}");
            assert!(st["reason"].as_str().unwrap().contains("fraud proven"), "{st}");
        } else {
            assert_eq!(st["state"], "settled", "job {job} was not sampled at rate {RATE} yet was audited: {st}");
        }
    }
    eprintln!("sampled: {sampled:?}");
    let caught = sampled.iter().filter(|&&s| s).count() as u32;
    let slash_bps = n.rules().slash_bps;
    let slashed_stake = (0..caught).fold(stake, |s, _| s - Rules::bps(s, slash_bps));
    let liar = n.executor_key(&key_addr(&n.home, "dev2"));
    assert_eq!(n.stake_of(&liar), slashed_stake, "slashed once per caught lie");
}

#[test]
fn deed_node_refuses_an_audit_rate_outside_0_to_1() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    ok_json(&home, &["init"]);
    for bad in ["1.5", "-0.1"] {
        let err = fails(&home, &["node", "--dev", "--listen", "127.0.0.1:0", &format!("--audit={bad}")], 2);
        assert!(err.contains("--audit is a rate between 0 and 1"), "{bad}: {err}");
    }
    let err = fails(&home, &["node", "--dev", "--listen", "127.0.0.1:0", "--audit", "half"], 2);
    assert!(err.contains("--audit"), "{err}");
}

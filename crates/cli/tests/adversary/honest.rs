//! An honest executor is never disputed or slashed, whatever kernel path and thread count
//! it (or its auditor) runs: random inputs on both fixture models, executors and
//! auditors at rate 1 on every kernel path this CPU has and on 1, 2 and 3 threads.

use super::*;
use deed_engine::kernels::KernelPath;

/// Jobs per model; half `replicated` over every executor, half `single` (audited).
const JOBS_PER_MODEL: usize = 6;

/// One `deed worker` of the test: its key, kernel path and threads.
struct Role {
    name: String,
    path: &'static str,
    threads: usize,
    log: PathBuf,
}

#[test]
fn honest_executors_on_every_kernel_path_and_thread_count_are_never_disputed() {
    let mut rng = seed("honest");
    let paths: Vec<&'static str> = KernelPath::available().into_iter().map(KernelPath::name).collect();
    assert!(paths.starts_with(&["reference", "scalar"]), "{paths:?}");
    let n = net_env(&[], &[("DEED_ENGINE_KERNELS", "auto")]);
    let rules = n.rules();
    let logs = n.home.parent().unwrap().to_path_buf();
    // Executor i runs path i on (i % 3) + 1 threads, auditor i on ((i + 1) % 3) + 1:
    // every path on two thread counts, every count from 1 to 3 used.
    let role = |kind: &str, path: &'static str, threads: usize| Role {
        name: format!("{kind}-{path}"),
        path,
        threads,
        log: logs.join(format!("{kind}-{path}.log")),
    };
    let executors: Vec<Role> = paths.iter().enumerate().map(|(i, p)| role("exec", p, i % 3 + 1)).collect();
    let auditors: Vec<Role> = paths.iter().enumerate().map(|(i, p)| role("audit", p, (i + 1) % 3 + 1)).collect();
    let home = deed_node::Home::at(&n.home);
    let keys: Vec<Keypair> = executors
        .iter()
        .chain(&auditors)
        .map(|r| {
            ok_json(&n.home, &["key", "new", &r.name]);
            home.key(&r.name).unwrap()
        })
        .collect();
    // Fund every worker from dev3 (auditors enough to post challenges, so a false one
    // would land and show), then stake the executors.
    let dev3 = Keypair::dev("dev3");
    let nonce = get_json(n.url(), &format!("/v1/accounts/{}", dev3.address()))["pending_nonce"].as_u64().unwrap();
    let funding: Vec<Hash32> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let amount = STAKE + 10 * rules.bond;
            n.send_at(&dev3, nonce + i as u64, TxBody::Transfer { to: k.address(), amount }).unwrap()
        })
        .collect();
    funding.iter().for_each(|t| n.outcome(t).unwrap());
    let stakes: Vec<Hash32> =
        keys[..executors.len()].iter().map(|k| n.send(k, TxBody::Stake { amount: STAKE }).unwrap()).collect();
    stakes.iter().for_each(|t| n.outcome(t).unwrap());

    let node_key = n.node_key();
    let mut workers = Vec::new();
    for r in &executors {
        let t = r.threads.to_string();
        workers.push(n.worker_logged(
            &r.name,
            &["--execute", "--threads", &t],
            &[("DEED_ENGINE_KERNELS", r.path)],
            &r.log,
        ));
    }
    for r in &auditors {
        let t = r.threads.to_string();
        workers.push(n.worker_logged(
            &r.name,
            &["--audit", "1", "--threads", &t],
            &[("DEED_ENGINE_KERNELS", r.path)],
            &r.log,
        ));
    }
    let before: Vec<u128> = keys.iter().map(|k| n.bal_addr(&k.address().to_string())).collect();
    let exec_keys: Vec<String> = keys[..executors.len()].iter().map(|k| k.public().to_string()).collect();

    // Every job at once, from dev1: `replicated` over the node and every executor, or
    // `single` (answered by whichever executor is first, re-run by every auditor).
    let k = u8::try_from(executors.len() + 1).unwrap();
    let dev1 = Keypair::dev("dev1");
    let mut nonce = get_json(n.url(), &format!("/v1/accounts/{}", dev1.address()))["pending_nonce"].as_u64().unwrap();
    let mut jobs = Vec::new();
    for f in MODELS {
        for i in 0..JOBS_PER_MODEL {
            let mode = if i % 2 == 0 { JobMode::Replicated(k) } else { JobMode::Single };
            jobs.push((f, mode, n.request(&dev1, nonce, f, &f.random_input(&mut rng), mode)));
            nonce += 1;
        }
    }

    let mut receipts_of = vec![0u128; executors.len()];
    for (f, mode, id) in &jobs {
        let st = n.final_state(&id.to_string());
        assert_eq!(st["state"], "settled", "{} job {id} ({mode}) was disputed or refunded: {st}", f.name);
        let j = n.job(&id.to_string());
        let receipts = j["job"]["receipts"].as_array().unwrap();
        assert_eq!(receipts.len(), usize::from(mode.replicas()), "{j}");
        for r in receipts {
            assert_eq!(r["output_hash"], receipts[0]["output_hash"], "{} executors disagree on {id}: {j}", f.name);
            assert_eq!(r["trace_root"], receipts[0]["trace_root"], "{} executors disagree on {id}: {j}", f.name);
            if let Some(i) = exec_keys.iter().position(|x| r["executor"] == x.as_str()) {
                receipts_of[i] += 1;
            }
        }
        if *mode != JobMode::Single {
            let mut who: Vec<&str> = receipts.iter().map(|r| r["executor"].as_str().unwrap()).collect();
            who.sort_unstable();
            who.dedup();
            assert_eq!(who.len(), usize::from(k), "every executor answered {id}: {j}");
        }
    }
    // Every auditor re-ran every single job (on its own path and threads) and agreed.
    let deadline = Instant::now() + Duration::from_secs(5);
    for a in &auditors {
        for (f, _, id) in jobs.iter().filter(|(_, m, _)| *m == JobMode::Single) {
            let id = id.to_string();
            loop {
                let log = std::fs::read_to_string(&a.log).unwrap();
                if log.lines().any(|l| l.contains("audit: receipt agrees") && l.contains(&id)) {
                    assert!(!log.contains("lie found"), "{} challenged an honest receipt:\n{log}", a.name);
                    break;
                }
                assert!(Instant::now() < deadline, "{} never audited {} job {id}:\n{log}", a.name, f.name);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    // Nobody slashed; executors paid their fee for each receipt (less its transaction
    // fee); auditors, who challenged nothing, hold what they held.
    assert_eq!(n.stake_of(&node_key), STAKE, "the node's executor was slashed");
    for (i, r) in executors.iter().enumerate() {
        assert_eq!(n.stake_of(&exec_keys[i]), STAKE, "{} was slashed", r.name);
        let expected = before[i] + receipts_of[i] * rules.executor_fee - receipts_of[i] * rules.fee;
        assert_eq!(n.bal_addr(&keys[i].address().to_string()), expected, "{} was not paid", r.name);
    }
    for (i, a) in auditors.iter().enumerate() {
        let j = executors.len() + i;
        assert_eq!(n.bal_addr(&keys[j].address().to_string()), before[j], "{} lost or spent something", a.name);
    }
    for w in &mut workers {
        assert!(w.0.try_wait().unwrap().is_none(), "a worker exited early");
    }
}

//! The verification protocol on real nodes and real models (the `mlp` and `cnn`
//! fixtures), with executors that lie on purpose (built with the `adversary` feature):
//! every misbehaviour is caught — by replication at once, by an auditor, or by a
//! challenger within the window — the liar slashed, the payer refunded and the catcher
//! paid, to the base unit; an honest executor is never slashed, whatever kernel path and
//! thread count it runs (`honest`); an auditor below rate 1 audits exactly the jobs the
//! block hashes pick (`sampling`); a frivolous challenge loses its bond; a receipt
//! replayed for its job, for another job or on another chain is refused (`replay`).
//!
//! Inputs are random; each test prints its seed, and `DEED_ADVERSARY_SEED=N` replays it.

#[path = "../common/mod.rs"]
mod common;
mod honest;
mod replay;
mod sampling;

use common::*;
use deed_types::{Cid, Hash32, JobMode, Keypair, SignedTx, Tensor, TensorSet, Tx, TxBody};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

const STAKE: u128 = deed_node::DEV_EXECUTOR_STAKE;
/// The price both fixture models are published at.
const PRICE: u128 = 1000;

/// A fixture model the tests publish and run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fixture {
    /// The file stem in fixtures/.
    pub(crate) name: &'static str,
    /// Its one input's name.
    pub(crate) input: &'static str,
    /// Its input's shape.
    pub(crate) shape: &'static [usize],
}

/// A two-layer perceptron: MatMul/Gemm, Relu.
pub(crate) const MLP: Fixture = Fixture { name: "mlp", input: "x", shape: &[1, 16] };
/// A small CNN: Conv, pooling, Gemm.
pub(crate) const CNN: Fixture = Fixture { name: "cnn", input: "image", shape: &[1, 1, 12, 12] };
/// Both.
pub(crate) const MODELS: [Fixture; 2] = [MLP, CNN];

impl Fixture {
    fn path(&self) -> PathBuf {
        fixtures().join(format!("{}.onnx", self.name))
    }

    /// A random input, values in [-2, 2).
    pub(crate) fn random_input(&self, rng: &mut Rng) -> TensorSet {
        let len: usize = self.shape.iter().product();
        let data = (0..len).map(|_| rng.unit() * 4.0 - 2.0).collect();
        TensorSet([(self.input.to_string(), Tensor::f32(self.shape.to_vec(), data))].into_iter().collect())
    }

    /// The input as the JSON `deed run --input` reads (floats printed to round-trip).
    fn input_json(&self, t: &TensorSet) -> String {
        let deed_types::TensorData::F32(v) = &t.0[self.input].data else { unreachable!("f32 inputs") };
        let data: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
        format!(r#"{{"{}": {{"shape": {:?}, "data": [{}]}}}}"#, self.input, self.shape, data.join(","))
    }
}

/// A small seeded generator (SplitMix64): the tests need reproducible, not secure, bits.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The test's seed: `DEED_ADVERSARY_SEED` or a fresh random one; printed, so a failing
/// run (whose output cargo shows) can be replayed.
pub(crate) fn seed(test: &str) -> Rng {
    let s = match std::env::var("DEED_ADVERSARY_SEED") {
        Ok(v) => v.trim().parse().expect("DEED_ADVERSARY_SEED is a u64"),
        Err(_) => {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).expect("the OS random source works");
            u64::from_le_bytes(b)
        }
    };
    eprintln!("{test}: seed {s} (replay with DEED_ADVERSARY_SEED={s})");
    Rng::new(s)
}

/// The chain's fee and fraud rules, read from its genesis and status.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    /// Every transaction's fee (all transactions here pay the minimum).
    pub(crate) fee: u128,
    /// What a challenger escrows.
    pub(crate) bond: u128,
    /// Share of a liar's stake slashed.
    pub(crate) slash_bps: u128,
    /// Share of the slashed amount paid to the challenger.
    pub(crate) reward_bps: u128,
    /// What each executor is paid per job.
    pub(crate) executor_fee: u128,
}

impl Rules {
    /// `floor(x * bps / 10_000)`, the ledger's documented rounding.
    pub(crate) fn bps(x: u128, bps: u128) -> u128 {
        x * bps / 10_000
    }
}

fn amount(v: &Value) -> u128 {
    v.as_str().unwrap_or_else(|| panic!("{v} is not an amount")).parse().unwrap()
}

/// A dev node and both fixture models published at price 1000.
pub(crate) struct Net {
    _tmp: tempfile::TempDir,
    pub(crate) home: PathBuf,
    pub(crate) node: NodeProc,
    models: Vec<(&'static str, String)>,
}

/// A dev node started with `extra` arguments.
pub(crate) fn net(extra: &[&str]) -> Net {
    net_env(extra, &[])
}

/// A dev node started with `extra` arguments and environment.
pub(crate) fn net_env(extra: &[&str], env: &[(&str, &str)]) -> Net {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    ok_json(&home, &["init"]);
    let node = NodeProc::start_args(&home, extra, env);
    let mut models = Vec::new();
    for f in MODELS {
        let p = ok_json(
            &home,
            &["--node", &node.url, "publish", f.path().to_str().unwrap(), "--name", f.name, "--price", "1000"],
        );
        models.push((f.name, p["model"].as_str().unwrap().to_string()));
    }
    Net { _tmp: tmp, home, node, models }
}

static RUNS: AtomicU64 = AtomicU64::new(0);

impl Net {
    pub(crate) fn url(&self) -> &str {
        &self.node.url
    }

    pub(crate) fn model(&self, f: Fixture) -> &str {
        &self.models.iter().find(|(n, _)| *n == f.name).unwrap().1
    }

    pub(crate) fn node_key(&self) -> String {
        get_json(self.url(), "/v1/status")["node_key"].as_str().unwrap().to_string()
    }

    pub(crate) fn rules(&self) -> Rules {
        let g = get_json(self.url(), "/v1/genesis");
        let p = &g["params"];
        let st = get_json(self.url(), "/v1/status");
        Rules {
            fee: amount(&p["min_tx_fee"]),
            bond: amount(&p["jobs"]["challenge_bond"]),
            slash_bps: p["jobs"]["slash_bps"].as_u64().unwrap().into(),
            reward_bps: p["jobs"]["challenger_reward_bps"].as_u64().unwrap().into(),
            executor_fee: amount(&st["executor"]["fee_min"]),
        }
    }

    pub(crate) fn stake_of(&self, key: &str) -> u128 {
        let v = get_json(self.url(), "/v1/executors");
        v["executors"].as_array().unwrap().iter().find(|e| e["key"] == key).map_or(0, |e| amount(&e["stake"]))
    }

    /// The executor key of a staked account.
    pub(crate) fn executor_key(&self, addr: &str) -> String {
        get_json(self.url(), "/v1/executors")["executors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["address"] == addr)
            .unwrap_or_else(|| panic!("{addr} is not staked"))["key"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The balance of a key of the home, by name.
    pub(crate) fn bal(&self, name: &str) -> u128 {
        self.bal_addr(&key_addr(&self.home, name))
    }

    pub(crate) fn bal_addr(&self, addr: &str) -> u128 {
        balance(&self.home, self.url(), addr)
    }

    pub(crate) fn supply(&self) -> u128 {
        supply(self.url())
    }

    /// `dev1` pays for a run of `f` on a random input without waiting for settlement.
    pub(crate) fn run(&self, f: Fixture, mode: &str, rng: &mut Rng) -> Value {
        ok_json(&self.home, &self.run_args(f, mode, rng).iter().map(String::as_str).collect::<Vec<_>>())
    }

    pub(crate) fn run_args(&self, f: Fixture, mode: &str, rng: &mut Rng) -> Vec<String> {
        let i = RUNS.fetch_add(1, Ordering::Relaxed);
        let dir = self.home.parent().unwrap().join(format!("out-{i}-{}", f.name));
        let input = dir.with_extension("json");
        std::fs::write(&input, f.input_json(&f.random_input(rng))).unwrap();
        let args = [
            "--node",
            self.url(),
            "--key",
            "dev1",
            "run",
            self.model(f),
            "--input",
            input.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
            "--mode",
            mode,
            "--no-settle",
        ];
        args.iter().map(|s| s.to_string()).collect()
    }

    pub(crate) fn job(&self, job: &str) -> Value {
        get_json(self.url(), &format!("/v1/jobs/{job}"))
    }

    /// Waits until the job reaches a final state; returns its status.
    pub(crate) fn final_state(&self, job: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let j = self.job(job);
            let st = &j["job"]["status"];
            if st["state"] == "refunded" || st["state"] == "settled" {
                return st.clone();
            }
            assert!(Instant::now() < deadline, "job {job} still {st}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Signs `body` with `key` at its next nonce and submits it; `Err` with the reason
    /// if the node refuses it.
    pub(crate) fn send(&self, key: &Keypair, body: TxBody) -> Result<Hash32, String> {
        let acct = get_json(self.url(), &format!("/v1/accounts/{}", key.address()));
        self.send_at(key, acct["pending_nonce"].as_u64().unwrap(), body)
    }

    /// [`Net::send`] at an explicit nonce (for batches).
    pub(crate) fn send_at(&self, key: &Keypair, nonce: u64, body: TxBody) -> Result<Hash32, String> {
        let st = get_json(self.url(), "/v1/status");
        let tx: SignedTx = Tx {
            chain_id: st["chain_id"].as_str().unwrap().to_string(),
            sender: key.public(),
            nonce,
            fee: amount(&st["min_tx_fee"]),
            body,
        }
        .sign(key);
        let mut resp = agent()
            .post(format!("{}/v1/txs", self.url()))
            .send_json(serde_json::to_value(&tx).unwrap())
            .expect("the node answers");
        let body: Value = resp.body_mut().read_json().unwrap();
        if !resp.status().is_success() {
            return Err(body["detail"].as_str().map_or_else(|| body.to_string(), str::to_string));
        }
        Ok(body["hash"].as_str().unwrap().parse().unwrap())
    }

    /// Waits until a submitted transaction is in a block: `Ok` if it applied, `Err`
    /// with the ledger's reason if it failed.
    pub(crate) fn outcome(&self, tx: &Hash32) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = get_json(self.url(), &format!("/v1/txs/{tx}"));
            match v["status"].as_str() {
                Some("included") => return Ok(()),
                Some("rejected") => return Err(v["error"].to_string()),
                _ => {}
            }
            assert!(Instant::now() < deadline, "transaction {tx} still {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`Net::send`] then [`Net::outcome`].
    pub(crate) fn apply(&self, key: &Keypair, body: TxBody) -> Result<(), String> {
        self.outcome(&self.send(key, body)?)
    }

    /// Stores a blob; returns its id.
    pub(crate) fn put_blob(&self, bytes: &[u8]) -> Cid {
        let mut resp = agent()
            .put(format!("{}/v1/blobs?kind=input", self.url()))
            .header("content-type", "application/octet-stream")
            .send(bytes)
            .expect("the node answers");
        let v: Value = resp.body_mut().read_json().unwrap();
        assert!(resp.status().is_success(), "blob refused: {v}");
        v["cid"].as_str().unwrap().parse().unwrap()
    }

    /// A paid job requested by transaction (no waiting): its id.
    pub(crate) fn request(&self, payer: &Keypair, nonce: u64, f: Fixture, input: &TensorSet, mode: JobMode) -> Hash32 {
        let cid = self.put_blob(&input.encode());
        let r = self.rules();
        let body = TxBody::RequestInference {
            model: self.model(f).parse().unwrap(),
            input: cid,
            price: PRICE,
            executor_fee: r.executor_fee,
            mode,
        };
        self.send_at(payer, nonce, body).unwrap_or_else(|e| panic!("job request refused: {e}"))
    }

    /// A `deed worker` with its stderr (its log) kept in a file.
    pub(crate) fn worker_logged(&self, key: &str, args: &[&str], env: &[(&str, &str)], log: &Path) -> WorkerProc {
        let child = Command::new(env!("CARGO_BIN_EXE_deed"))
            .arg("--home")
            .arg(&self.home)
            .args(["--node", self.url(), "--key", key, "worker"])
            .args(args)
            .env("DEED_LOG", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("worker starts");
        WorkerProc(child)
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// The parties to a caught lie, and what they held before it.
struct Books {
    liar_key: String,
    liar_addr: String,
    /// Whether the liar is the block producer (the dev node), which is paid every fee.
    liar_produces: bool,
    /// The key name of whoever proves the lie.
    catcher: &'static str,
    payer: u128,
    liar_stake: u128,
    liar_balance: u128,
    catcher_balance: u128,
    supply: u128,
}

impl Books {
    fn open(n: &Net, liar_key: &str, liar_produces: bool, catcher: &'static str) -> Books {
        let liar_addr = get_json(n.url(), "/v1/executors")["executors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == liar_key)
            .unwrap()["address"]
            .as_str()
            .unwrap()
            .to_string();
        Books {
            liar_key: liar_key.to_string(),
            liar_produces,
            catcher,
            payer: n.bal("dev1"),
            liar_stake: n.stake_of(liar_key),
            liar_balance: n.bal_addr(&liar_addr),
            liar_addr,
            catcher_balance: n.bal(catcher),
            supply: n.supply(),
        }
    }

    /// The job ends refunded by a fraud proof, and every party holds exactly what
    /// the ledger's rule says (crates/ledger/src/exec.rs `challenge`): the liar loses
    /// `slash_bps` of its stake and earns no fee; the catcher gets `challenger_reward_bps`
    /// of the slash and its bond back; the payer gets its whole escrow back plus the
    /// rest of the slash. `catcher_txs` is how many transactions the catcher sent
    /// (a challenge; plus a receipt for an honest replica). Nothing is created or lost.
    fn assert_fraud_paid(&self, n: &Net, job: &str, catcher_txs: u128) {
        let r = n.rules();
        let st = n.final_state(job);
        assert_eq!(st["state"], "refunded", "the lie was not caught: {st}");
        let slashed = Rules::bps(self.liar_stake, r.slash_bps);
        let reward = Rules::bps(slashed, r.reward_bps);
        assert!(slashed > 0 && reward > 0 && reward < slashed, "the rules pay nobody: {r:?}");
        let reason = st["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("fraud proven against executor {}: slashed {slashed}", self.liar_key)),
            "{st}"
        );
        assert_eq!(n.stake_of(&self.liar_key), self.liar_stake - slashed, "the liar loses slash_bps of its stake");
        // The payer paid one request fee; the escrow came back whole, plus the payer's
        // share of the slash.
        assert_eq!(n.bal("dev1"), self.payer - r.fee + (slashed - reward), "the payer is refunded and compensated");
        assert_eq!(
            n.bal(self.catcher),
            self.catcher_balance - catcher_txs * r.fee + reward,
            "the catcher gets its reward and its bond back"
        );
        // The liar paid its receipt's fee and earned no executor fee; as the block
        // producer it also took every fee paid meanwhile (its own, the payer's and the
        // catcher's).
        let produced = if self.liar_produces { r.fee * (1 + 1 + catcher_txs) } else { 0 };
        assert_eq!(n.bal_addr(&self.liar_addr), self.liar_balance - r.fee + produced, "the liar is not paid");
        assert_eq!(n.supply(), self.supply, "slashing moves value, it does not create or destroy it");
    }
}

fn wrong_output_by_an_auditor(f: Fixture) {
    let mut rng = seed(&format!("wrong-output/{}", f.name));
    let n = net(&["--misbehave", "wrong-output"]);
    let _auditor = WorkerProc::start(&n.home, n.url(), "dev2", &["--audit", "1"], &[]);
    let b = Books::open(&n, &n.node_key(), true, "dev2");
    let r = n.run(f, "single", &mut rng);
    b.assert_fraud_paid(&n, r["job"].as_str().unwrap(), 1);
}

fn wrong_trace_by_a_challenger(f: Fixture) {
    let mut rng = seed(&format!("wrong-trace/{}", f.name));
    let n = net(&["--misbehave", "wrong-trace"]);
    let b = Books::open(&n, &n.node_key(), true, "dev3");
    let r = n.run(f, "single", &mut rng);
    let receipt = r["receipt"].as_str().unwrap();
    // The receipt does not verify; the challenge proves it.
    let err = fails(&n.home, &["--node", n.url(), "verify", receipt], 3);
    assert!(err.contains("trace entry #"), "{err}");
    let c = ok_json(&n.home, &["--node", n.url(), "--key", "dev3", "challenge", receipt]);
    assert_eq!(c["proven"], true, "{c}");
    b.assert_fraud_paid(&n, r["job"].as_str().unwrap(), 1);
}

fn substituted_model_by_replication(f: Fixture) {
    let mut rng = seed(&format!("substitute-model/{}", f.name));
    let n = net(&["--misbehave", "substitute-model"]);
    // An honest executor beside the lying node: dev2, staked.
    ok_json(&n.home, &["--node", n.url(), "--key", "dev2", "stake", &STAKE.to_string()]);
    let honest = n.executor_key(&key_addr(&n.home, "dev2"));
    let _w = WorkerProc::start(&n.home, n.url(), "dev2", &["--execute"], &[]);
    let b = Books::open(&n, &n.node_key(), true, "dev2");
    let owner =
        get_json(n.url(), &format!("/v1/models/{}", n.model(f)))["owners"][0]["address"].as_str().unwrap().to_string();
    let owner0 = n.bal_addr(&owner);
    // The executors disagree, the dispute opens by itself, the honest executor proves the
    // lie and the liar's receipt is struck: when the dispute window closes, the honest
    // receipt settles the job, and the payer gets the right answer.
    let args = n.run_args(f, "replicated:2", &mut rng);
    let input = args[args.iter().position(|a| a == "--input").unwrap() + 1].clone();
    let r = ok_json(&n.home, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let want = ok_json(&n.home, &["exec", f.path().to_str().unwrap(), "--input", &input]);
    assert_eq!(r["output_hash"], want["output_hash"], "the payer gets the true model's answer");
    let job = r["job"].as_str().unwrap();
    let st = n.final_state(job);
    assert_eq!(st["state"], "settled", "{st}");
    assert_eq!(st["executor"], honest.as_str(), "the honest receipt settles the job: {st}");
    let rules = n.rules();
    let slashed = Rules::bps(b.liar_stake, rules.slash_bps);
    let reward = Rules::bps(slashed, rules.reward_bps);
    assert_eq!(n.stake_of(&b.liar_key), b.liar_stake - slashed, "the liar loses slash_bps of its stake");
    assert_eq!(n.stake_of(&honest), STAKE, "the honest executor keeps its stake");
    // The payer paid the request's fee, the price and the honest executor's fee; the
    // liar's fee came back, with the payer's share of the slash.
    assert_eq!(
        n.bal("dev1"),
        b.payer - rules.fee - PRICE - rules.executor_fee + (slashed - reward),
        "the payer pays for one honest answer and is compensated"
    );
    // dev2 sent its receipt and the challenge; it is paid its fee and the reward.
    assert_eq!(
        n.bal("dev2"),
        b.catcher_balance - 2 * rules.fee + rules.executor_fee + reward,
        "the honest executor is paid for its work and its proof"
    );
    // The liar (the block producer) sent one receipt and took every fee paid meanwhile
    // (the request, its receipt, dev2's two); it earned no executor fee.
    let owner_is_liar = owner == b.liar_addr;
    let liar_want = b.liar_balance - rules.fee + 4 * rules.fee + if owner_is_liar { PRICE } else { 0 };
    assert_eq!(n.bal_addr(&b.liar_addr), liar_want, "the liar is not paid for its lie");
    if !owner_is_liar {
        assert_eq!(n.bal_addr(&owner), owner0 + PRICE, "the owner gets the price");
    }
    assert_eq!(n.supply(), b.supply, "slashing moves value, it does not create or destroy it");
}

fn stale_output_by_an_auditor(f: Fixture) {
    let mut rng = seed(&format!("stale-output/{}", f.name));
    let n = net(&["--misbehave", "stale-output"]);
    let _auditor = WorkerProc::start(&n.home, n.url(), "dev2", &["--audit", "1"], &[]);
    // The first answer is honest (there is nothing stale yet); it settles.
    let first = n.run(f, "single", &mut rng);
    assert_eq!(n.final_state(first["job"].as_str().unwrap())["state"], "settled");
    let b = Books::open(&n, &n.node_key(), true, "dev2");
    let second = n.run(f, "single", &mut rng);
    assert_eq!(second["output_hash"], first["output_hash"], "the liar serves the first job's output again");
    b.assert_fraud_paid(&n, second["job"].as_str().unwrap(), 1);
}

#[test]
fn wrong_output_is_caught_by_an_auditor_on_the_mlp() {
    wrong_output_by_an_auditor(MLP);
}

#[test]
fn wrong_output_is_caught_by_an_auditor_on_the_cnn() {
    wrong_output_by_an_auditor(CNN);
}

#[test]
fn wrong_trace_is_caught_by_a_challenger_on_the_mlp() {
    wrong_trace_by_a_challenger(MLP);
}

#[test]
fn wrong_trace_is_caught_by_a_challenger_on_the_cnn() {
    wrong_trace_by_a_challenger(CNN);
}

#[test]
fn substituted_model_is_caught_by_replication_at_once_on_the_mlp() {
    substituted_model_by_replication(MLP);
}

#[test]
fn substituted_model_is_caught_by_replication_at_once_on_the_cnn() {
    substituted_model_by_replication(CNN);
}

#[test]
fn stale_output_is_caught_by_an_auditor_on_the_mlp() {
    stale_output_by_an_auditor(MLP);
}

#[test]
fn stale_output_is_caught_by_an_auditor_on_the_cnn() {
    stale_output_by_an_auditor(CNN);
}

#[test]
fn a_frivolous_challenge_loses_its_bond() {
    let mut rng = seed("frivolous");
    let n = net(&[]);
    let node_key = n.node_key();
    let r = n.run(CNN, "single", &mut rng);
    let receipt = r["receipt"].as_str().unwrap();
    let none = ok_json(&n.home, &["--node", n.url(), "--key", "dev3", "challenge", receipt]);
    assert_eq!(none["challenged"], false, "the CLI refuses to post a challenge it would lose");
    let rules = n.rules();
    let ch0 = n.bal("dev3");
    let c = ok_json(&n.home, &["--node", n.url(), "--key", "dev3", "challenge", receipt, "--force"]);
    assert_eq!(c["proven"], false);
    assert_eq!(n.bal("dev3"), ch0 - rules.fee - rules.bond);
    assert_eq!(n.final_state(r["job"].as_str().unwrap())["state"], "settled");
    assert_eq!(n.stake_of(&node_key), STAKE);
}

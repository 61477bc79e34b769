//! Rule-by-rule tests of transaction and block execution. Every block built here is
//! proposed, sealed, and re-applied with `apply_block`, so each test also checks that
//! the validator path agrees with the producer path.

use crate::{BlockEnv, BlockError, MemState, Proposal, TxError, apply_block, check_tx, genesis_writes, propose, query};
use crate::{Job, JobStatus, ModelRecord, Owner, StateRead, keys};
use deed_types::tx::model_commitment;
use deed_types::{
    Address, Amount, Block, BlockHeader, Cid, Genesis, GenesisAccount, GenesisExecutor, Hash32, Keypair, Params,
    Receipt, SignedReceipt, SignedTx, Tx, TxBody,
};

pub(crate) const CHAIN: &str = "deed-test";
pub(crate) const FEE: Amount = 10;

pub(crate) fn key(name: &str) -> Keypair {
    Keypair::dev(name)
}

pub(crate) fn test_genesis() -> Genesis {
    Genesis {
        chain_id: CHAIN.into(),
        time_ms: 1_000,
        accounts: vec![
            GenesisAccount { address: key("alice").address(), balance: 1_000_000_000 },
            GenesisAccount { address: key("bob").address(), balance: 500 },
            GenesisAccount { address: key("carol").address(), balance: 1_000_000 },
        ],
        executors: vec![
            GenesisExecutor { key: key("exec").public(), stake: 1_000_000 },
            GenesisExecutor { key: key("lazy").public(), stake: 999_999 },
        ],
        validators: vec![key("producer").public()],
        params: Params {
            min_tx_fee: FEE,
            min_executor_stake: 1_000_000,
            commit_ttl_blocks: 5,
            block_txs_max: 100,
            unbonding_blocks: 3,
            jobs: deed_types::JobParams { challenge_window_blocks: 0, ..Default::default() },
        },
    }
}

/// A chain in memory with one producer.
pub(crate) struct Chain {
    pub state: MemState,
    pub height: u64,
    pub parent: Hash32,
    pub producer: Keypair,
    pub blocks: Vec<Block>,
    /// Content for fraud proofs (models, inputs, producer blobs).
    pub blobs: std::collections::BTreeMap<Cid, Vec<u8>>,
}

impl Chain {
    pub fn new() -> Self {
        Self::with(test_genesis())
    }

    pub fn with(g: Genesis) -> Self {
        let (w, _) = genesis_writes(&g);
        let mut state = MemState::new();
        state.apply(&w);
        Chain {
            state,
            height: 0,
            parent: Hash32::ZERO,
            producer: key("producer"),
            blocks: Vec::new(),
            blobs: Default::default(),
        }
    }

    pub fn nonce(&self, k: &Keypair) -> u64 {
        query::account(&self.state, &k.address()).nonce
    }

    pub fn balance(&self, a: &Address) -> Amount {
        query::account(&self.state, a).balance
    }

    pub fn tx(&self, k: &Keypair, body: TxBody) -> SignedTx {
        Tx { chain_id: CHAIN.into(), sender: k.public(), nonce: self.nonce(k), fee: FEE, body }.sign(k)
    }

    pub fn env(&self) -> BlockEnv {
        BlockEnv {
            chain_id: CHAIN.into(),
            height: self.height + 1,
            time_ms: 1_000 + self.height + 1,
            proposer: self.producer.public(),
        }
    }

    /// Seals a block over a proposal without applying it.
    pub fn seal(&self, p: &Proposal) -> Block {
        let env = self.env();
        let header = BlockHeader {
            chain_id: CHAIN.into(),
            height: env.height,
            parent: self.parent,
            time_ms: env.time_ms,
            tx_root: Block::tx_root(&p.included),
            state_root: p.state_root,
            proposer: env.proposer,
        };
        Block::seal(header, p.included.clone(), &self.producer)
    }

    /// Proposes a block of `txs`, re-applies it as a validator, and commits it.
    pub fn block(&mut self, txs: Vec<SignedTx>) -> Proposal {
        let p = crate::propose_with_blobs(&self.state, &self.env(), txs, &self.blobs);
        let b = self.seal(&p);
        let out = crate::apply_block_with_blobs(&self.state, &b, &self.blobs).expect("a proposed block applies");
        assert_eq!(out.state_root, p.state_root);
        assert_eq!(out.writes, p.writes);
        self.state.apply(&out.writes);
        assert_eq!(crate::state_root(&self.state), p.state_root);
        self.height += 1;
        self.parent = b.header.hash();
        self.blocks.push(b);
        p
    }

    /// Sends one transaction in its own block; its error if it was rejected.
    pub fn send(&mut self, k: &Keypair, body: TxBody) -> Result<Hash32, TxError> {
        let t = self.tx(k, body);
        self.send_tx(t)
    }

    pub fn send_tx(&mut self, t: SignedTx) -> Result<Hash32, TxError> {
        let h = t.hash();
        let p = self.block(vec![t]);
        match p.rejected.into_iter().next() {
            Some((rh, e)) => {
                assert_eq!(rh, h);
                Err(e)
            }
            None => Ok(h),
        }
    }

    /// Commits and registers a model for `k` (two blocks).
    pub fn register(&mut self, k: &Keypair, model: Cid, price: Amount) {
        self.register_with(k, model, price, vec![]).unwrap();
    }

    /// Commits and registers a model named after its id, with parents; the reveal's error.
    pub fn register_with(
        &mut self,
        k: &Keypair,
        model: Cid,
        price: Amount,
        parents: Vec<deed_types::Parent>,
    ) -> Result<Hash32, TxError> {
        let salt = Hash32::of(b"salt");
        self.send(k, TxBody::CommitModel { commitment: model_commitment(&model, &k.address(), &salt) }).unwrap();
        self.send(k, TxBody::RegisterModel { model, name: model.to_string(), salt, price, parents })
    }

    /// Requests an inference; returns the job id.
    pub fn request(
        &mut self,
        k: &Keypair,
        model: Cid,
        input: Cid,
        price: Amount,
        fee: Amount,
    ) -> Result<Hash32, TxError> {
        self.send(k, TxBody::RequestInference { model, input, price, executor_fee: fee, mode: Default::default() })
    }

    pub fn supply(&self) -> Amount {
        query::total_supply(&self.state)
    }
}

/// A receipt for `job` signed by `exec`, matching the job.
pub(crate) fn receipt_for(job: &Job, exec: &Keypair) -> Receipt {
    let trace = vec![Hash32::of(b"op0"), Hash32::of(b"op1")];
    Receipt {
        version: 1,
        chain_id: CHAIN.into(),
        job: job.id,
        model: job.model,
        engine: "deed-engine/1".into(),
        input_hash: *job.input.digest(),
        output_hash: Hash32::of(b"out"),
        trace_root: deed_types::merkle::root(&trace),
        trace,
        executor: exec.public(),
        price: job.price,
        executor_fee: job.executor_fee,
    }
}

fn submit(c: &mut Chain, exec: &Keypair, r: SignedReceipt) -> Result<Hash32, TxError> {
    c.send(exec, TxBody::SubmitReceipt { receipt: r })
}

fn model_cid() -> Cid {
    Cid::of(b"model bytes")
}

fn input_cid() -> Cid {
    Cid::of(b"input bytes")
}

/// A chain with alice's model (price 1000) registered and one pending job by carol.
fn with_job() -> (Chain, Job) {
    let mut c = Chain::new();
    c.register(&key("alice"), model_cid(), 1_000);
    c.send(&key("alice"), TxBody::Transfer { to: key("exec").address(), amount: 100 }).unwrap();
    let id = c.request(&key("carol"), model_cid(), input_cid(), 1_000, 50).unwrap();
    let job = query::job(&c.state, &id).unwrap();
    (c, job)
}

// ---------------------------------------------------------------------------------------

#[test]
fn genesis_state() {
    let c = Chain::new();
    assert_eq!(query::chain_id(&c.state).as_deref(), Some(CHAIN));
    assert_eq!(query::params(&c.state), Some(test_genesis().params));
    assert_eq!(c.balance(&key("alice").address()), 1_000_000_000);
    assert_eq!(query::executors(&c.state).len(), 2);
    assert_eq!(query::validators(&c.state), vec![key("producer").public()]);
    assert_eq!(c.supply(), 1_000_000_000 + 500 + 1_000_000 + 1_000_000 + 999_999);
    let (_, root) = genesis_writes(&test_genesis());
    assert_eq!(root, crate::state_root(&c.state));
}

#[test]
fn check_genesis_refuses_duplicates_and_overflow() {
    let mut g = test_genesis();
    g.accounts.push(g.accounts[0].clone());
    assert!(crate::check_genesis(&g).unwrap_err().to_string().contains("listed twice"));
    let mut g = test_genesis();
    g.accounts[0].balance = Amount::MAX;
    assert!(crate::check_genesis(&g).unwrap_err().to_string().contains("total supply"));
    let mut g = test_genesis();
    g.chain_id = String::new();
    assert!(crate::check_genesis(&g).is_err());
    let mut g = test_genesis();
    g.executors.push(g.executors[0].clone());
    assert!(crate::check_genesis(&g).is_err());
}

#[test]
fn transfer_moves_amount_and_pays_fee_to_proposer() {
    let mut c = Chain::new();
    let (alice, dave) = (key("alice"), key("dave"));
    let supply = c.supply();
    c.send(&alice, TxBody::Transfer { to: dave.address(), amount: 1234 }).unwrap();
    assert_eq!(c.balance(&dave.address()), 1234);
    assert_eq!(c.balance(&alice.address()), 1_000_000_000 - 1234 - FEE);
    assert_eq!(c.balance(&c.producer.address()), FEE);
    assert_eq!(c.nonce(&alice), 1);
    assert_eq!(c.supply(), supply);
    // To oneself: only the fee leaves.
    c.send(&alice, TxBody::Transfer { to: alice.address(), amount: 77 }).unwrap();
    assert_eq!(c.balance(&alice.address()), 1_000_000_000 - 1234 - 2 * FEE);
    assert_eq!(c.supply(), supply);
}

#[test]
fn wrong_chain_is_refused() {
    let mut c = Chain::new();
    let alice = key("alice");
    let t = Tx {
        chain_id: "deed-other".into(),
        sender: alice.public(),
        nonce: 0,
        fee: FEE,
        body: TxBody::Transfer { to: key("bob").address(), amount: 1 },
    }
    .sign(&alice);
    let want = TxError::WrongChain { expected: CHAIN.into(), got: "deed-other".into() };
    assert_eq!(check_tx(&c.state, &t, 0), Err(want.clone()));
    assert_eq!(c.send_tx(t), Err(want));
    assert_eq!(c.nonce(&alice), 0);
}

#[test]
fn bad_signature_is_refused_everywhere() {
    let mut c = Chain::new();
    let alice = key("alice");
    let good = c.tx(&alice, TxBody::Transfer { to: key("bob").address(), amount: 1 });
    let mut forged = good.clone();
    forged.tx.body = TxBody::Transfer { to: key("mallory").address(), amount: 1_000 };
    assert_eq!(check_tx(&c.state, &forged, 0), Err(TxError::BadSignature));
    // The producer drops only the forged one.
    let other = Tx { nonce: 0, ..c.tx(&key("carol"), TxBody::Transfer { to: alice.address(), amount: 5 }).tx }
        .sign(&key("carol"));
    let p = c.block(vec![forged.clone(), other]);
    assert_eq!(p.included.len(), 1);
    assert_eq!(p.rejected, vec![(forged.hash(), TxError::BadSignature)]);
    // A validator refuses a block that carries it.
    let p = Proposal { included: vec![good.clone(), forged.clone()], ..propose(&c.state, &c.env(), vec![good]) };
    let b = c.seal(&p);
    match apply_block(&c.state, &b) {
        Err(BlockError::Tx { index: 1, error: TxError::BadSignature, .. }) => {}
        other => panic!("expected a bad signature at index 1, got {other:?}"),
    }
    // Signatures the caller vouches for are skipped, the others are still checked: the
    // forged one is caught unless its caller claims it checked it; the good one's
    // outcome is the same checked or not.
    let blobs = crate::NoBlobs;
    match crate::apply_block_checked(&c.state, &b, &blobs, &[true, false]) {
        Err(BlockError::Tx { index: 1, error: TxError::BadSignature, .. }) => {}
        other => panic!("expected a bad signature at index 1, got {other:?}"),
    }
    let t = c.tx(&alice, TxBody::Transfer { to: key("bob").address(), amount: 1 });
    let p = propose(&c.state, &c.env(), vec![t]);
    assert_eq!(p.included.len(), 1);
    let b = c.seal(&p);
    let plain = apply_block(&c.state, &b).unwrap();
    let vouched = crate::apply_block_checked(&c.state, &b, &blobs, &[true]).unwrap();
    assert_eq!((plain.state_root, plain.writes), (vouched.state_root, vouched.writes));
    let p2 = crate::propose_checked(&c.state, &c.env(), b.txs.clone(), &blobs, &[true]);
    assert_eq!((p2.state_root, p2.included), (p.state_root, p.included));
}

#[test]
fn replay_is_refused() {
    let mut c = Chain::new();
    let alice = key("alice");
    let t = c.tx(&alice, TxBody::Transfer { to: key("bob").address(), amount: 1 });
    c.send_tx(t.clone()).unwrap();
    let e = c.send_tx(t.clone()).unwrap_err();
    assert_eq!(e, TxError::NonceTooLow { expected: 1, got: 0 });
    assert_eq!(e.to_string(), "nonce 0 was already used (account nonce is 1): a replayed or duplicate transaction");
    assert_eq!(check_tx(&c.state, &t, 1), Err(TxError::NonceTooLow { expected: 1, got: 0 }));
    // The same transaction twice in one block: the second is a replay.
    let t2 = c.tx(&alice, TxBody::Transfer { to: key("bob").address(), amount: 1 });
    let p = c.block(vec![t2.clone(), t2.clone()]);
    assert_eq!(p.included.len(), 1);
    assert_eq!(p.rejected[0].1, TxError::NonceTooLow { expected: 2, got: 1 });
}

#[test]
fn nonce_gap_is_refused() {
    let mut c = Chain::new();
    let alice = key("alice");
    let t = Tx { nonce: 3, ..c.tx(&alice, TxBody::Transfer { to: key("bob").address(), amount: 1 }).tx }.sign(&alice);
    assert_eq!(check_tx(&c.state, &t, 0), Err(TxError::NonceGap { expected: 0, got: 3 }));
    assert_eq!(check_tx(&c.state, &t, 3), Ok(()), "the mempool holds nonces 0..3");
    assert_eq!(check_tx(&c.state, &t, 4), Err(TxError::NonceTooLow { expected: 4, got: 3 }));
    assert_eq!(c.send_tx(t), Err(TxError::NonceGap { expected: 0, got: 3 }));
}

#[test]
fn low_fee_is_refused() {
    let mut c = Chain::new();
    let alice = key("alice");
    let t =
        Tx { fee: FEE - 1, ..c.tx(&alice, TxBody::Transfer { to: key("bob").address(), amount: 1 }).tx }.sign(&alice);
    let want = TxError::FeeTooLow { min: FEE, got: FEE - 1 };
    assert_eq!(check_tx(&c.state, &t, 0), Err(want.clone()));
    assert_eq!(c.send_tx(t), Err(want));
}

#[test]
fn insufficient_funds_is_refused() {
    let mut c = Chain::new();
    let bob = key("bob");
    let t = c.tx(&bob, TxBody::Transfer { to: key("alice").address(), amount: 1000 });
    let e = check_tx(&c.state, &t, 0).unwrap_err();
    assert_eq!(e.to_string(), "insufficient funds: needs 1010, balance is 500");
    assert_eq!(c.send_tx(t), Err(e));
    assert_eq!(c.balance(&bob.address()), 500);
    // Enough for the fee alone but not the amount.
    assert!(c.send(&bob, TxBody::Transfer { to: key("alice").address(), amount: 491 }).is_err());
    c.send(&bob, TxBody::Transfer { to: key("alice").address(), amount: 490 }).unwrap();
    assert_eq!(c.balance(&bob.address()), 0);
    assert!(!c.state.0.contains_key(&keys::account(&bob.address())) || c.nonce(&bob) == 1);
}

#[test]
fn amount_overflow_is_an_error_not_a_panic() {
    let mut c = Chain::new();
    let alice = key("alice");
    let e = c.send(&alice, TxBody::Transfer { to: key("bob").address(), amount: Amount::MAX }).unwrap_err();
    assert!(matches!(e, TxError::Overflow(_)), "{e:?}");
    c.register(&alice, model_cid(), 1);
    let e = c.request(&alice, model_cid(), input_cid(), 1, Amount::MAX).unwrap_err();
    assert!(matches!(e, TxError::Overflow(_)), "{e:?}");
}

#[test]
fn commit_then_reveal_registers_model() {
    let mut c = Chain::new();
    let alice = key("alice");
    let salt = Hash32::of(b"pepper");
    let commitment = model_commitment(&model_cid(), &alice.address(), &salt);
    c.send(&alice, TxBody::CommitModel { commitment }).unwrap();
    let cm = query::commitment(&c.state, &commitment).unwrap();
    assert_eq!((cm.owner, cm.height, cm.expires_height), (alice.address(), 1, 6));
    c.send(
        &alice,
        TxBody::RegisterModel { model: model_cid(), name: "resnet".into(), salt, price: 42, parents: vec![] },
    )
    .unwrap();
    let m = query::model(&c.state, &model_cid()).unwrap();
    assert_eq!(
        m,
        ModelRecord {
            id: model_cid(),
            name: "resnet".into(),
            owners: vec![Owner { address: alice.address(), bps: 10_000 }],
            price: 42,
            registered_height: 2,
            calls: 0,
            earnings: 0,
            version: 1,
            parents: vec![],
            registrant: alice.address(),
            commit_height: 1,
            royalties_in: 0,
            royalties_out: 0,
            license_votes: vec![],
        }
    );
    assert!(query::commitment(&c.state, &commitment).is_none(), "the reveal consumes the commitment");
    assert_eq!(query::models(&c.state), vec![m]);
}

#[test]
fn reveal_without_commitment_is_refused() {
    let mut c = Chain::new();
    let alice = key("alice");
    let body =
        TxBody::RegisterModel { model: model_cid(), name: "m".into(), salt: Hash32::ZERO, price: 1, parents: vec![] };
    assert_eq!(c.send(&alice, body), Err(TxError::NoCommitment));
    // A commitment by someone else (even the same hash) does not count.
    let salt = Hash32::of(b"s");
    let alices = model_commitment(&model_cid(), &alice.address(), &salt);
    c.send(&key("carol"), TxBody::CommitModel { commitment: alices }).unwrap();
    let body = TxBody::RegisterModel { model: model_cid(), name: "m".into(), salt, price: 1, parents: vec![] };
    assert_eq!(c.send(&key("carol"), body.clone()), Err(TxError::NoCommitment));
    // Copying alice's hash did not block alice.
    c.send(&alice, TxBody::CommitModel { commitment: alices }).unwrap();
    c.send(&alice, body).unwrap();
    // A wrong salt does not match.
    let body = TxBody::RegisterModel {
        model: Cid::of(b"x"),
        name: "m".into(),
        salt: Hash32::of(b"wrong"),
        price: 1,
        parents: vec![],
    };
    assert_eq!(c.send(&alice, body), Err(TxError::NoCommitment));
}

#[test]
fn reveal_in_the_commit_block_is_refused() {
    let mut c = Chain::new();
    let alice = key("alice");
    let salt = Hash32::of(b"s");
    let commit =
        c.tx(&alice, TxBody::CommitModel { commitment: model_commitment(&model_cid(), &alice.address(), &salt) });
    let reveal = Tx {
        nonce: 1,
        ..c.tx(&alice, TxBody::RegisterModel { model: model_cid(), name: "m".into(), salt, price: 1, parents: vec![] })
            .tx
    }
    .sign(&alice);
    let p = c.block(vec![commit, reveal.clone()]);
    assert_eq!(p.included.len(), 1);
    assert_eq!(p.rejected, vec![(reveal.hash(), TxError::CommitmentTooRecent)]);
    // The next block works.
    c.send_tx(reveal).unwrap();
}

#[test]
fn expired_commitment_is_refused() {
    let mut c = Chain::new();
    let alice = key("alice");
    let salt = Hash32::of(b"s");
    let commitment = model_commitment(&model_cid(), &alice.address(), &salt);
    c.send(&alice, TxBody::CommitModel { commitment }).unwrap(); // height 1, expires after 6
    // A duplicate while live is refused.
    assert_eq!(c.send(&alice, TxBody::CommitModel { commitment }), Err(TxError::DuplicateCommitment));
    while c.height < 6 {
        c.block(vec![]);
    }
    let reveal = TxBody::RegisterModel { model: model_cid(), name: "m".into(), salt, price: 1, parents: vec![] };
    // At height 7 the block's sweep has already deleted it (and its queue entry).
    assert!(query::commitment(&c.state, &commitment).is_some(), "live through height 6");
    assert_eq!(c.send(&alice, reveal.clone()), Err(TxError::NoCommitment)); // at height 7
    assert!(query::commitment(&c.state, &commitment).is_none(), "expired commitments are garbage-collected");
    assert!(c.state.scan_prefix(keys::COMMIT_QUEUE).is_empty());
    // Once expired, committing again is allowed, and that one can be revealed.
    c.send(&alice, TxBody::CommitModel { commitment }).unwrap();
    c.send(&alice, reveal).unwrap();
}

#[test]
fn reveal_at_the_last_live_height_works() {
    let mut c = Chain::new();
    let alice = key("alice");
    let salt = Hash32::of(b"s");
    c.send(&alice, TxBody::CommitModel { commitment: model_commitment(&model_cid(), &alice.address(), &salt) })
        .unwrap();
    while c.height < 5 {
        c.block(vec![]);
    }
    c.send(&alice, TxBody::RegisterModel { model: model_cid(), name: "m".into(), salt, price: 1, parents: vec![] })
        .unwrap();
}

#[test]
fn registered_model_cannot_be_registered_again() {
    let mut c = Chain::new();
    c.register(&key("alice"), model_cid(), 1);
    let carol = key("carol");
    let salt = Hash32::of(b"c");
    c.send(&carol, TxBody::CommitModel { commitment: model_commitment(&model_cid(), &carol.address(), &salt) })
        .unwrap();
    let body = TxBody::RegisterModel { model: model_cid(), name: "copy".into(), salt, price: 1, parents: vec![] };
    // Carol's commitment (height 3) is later than alice's (height 1): no takeover.
    assert_eq!(
        c.send(&carol, body),
        Err(TxError::CommitmentNotEarliest { model: model_cid(), registered: 1, yours: 3 })
    );
    // The registrant itself cannot register it twice.
    let alice = key("alice");
    let salt = Hash32::of(b"again");
    c.send(&alice, TxBody::CommitModel { commitment: model_commitment(&model_cid(), &alice.address(), &salt) })
        .unwrap();
    let body = TxBody::RegisterModel { model: model_cid(), name: "m2".into(), salt, price: 1, parents: vec![] };
    assert_eq!(c.send(&alice, body), Err(TxError::ModelExists(model_cid())));
}

#[test]
fn bad_names_are_refused() {
    let mut c = Chain::new();
    let alice = key("alice");
    for name in [String::new(), "  ".into(), "a".repeat(129), "tab\there".into(), "nl\n".into()] {
        let body = TxBody::RegisterModel { model: model_cid(), name, salt: Hash32::ZERO, price: 1, parents: vec![] };
        let t = c.tx(&alice, body);
        assert!(matches!(check_tx(&c.state, &t, 0), Err(TxError::BadName(_))));
        assert!(matches!(c.send_tx(t), Err(TxError::BadName(_))));
    }
    let salt = Hash32::ZERO;
    c.send(&alice, TxBody::CommitModel { commitment: model_commitment(&model_cid(), &alice.address(), &salt) })
        .unwrap();
    c.send(&alice, TxBody::RegisterModel { model: model_cid(), name: "é".repeat(64), salt, price: 1, parents: vec![] })
        .unwrap();
}

#[test]
fn request_checks_model_and_price() {
    let mut c = Chain::new();
    let carol = key("carol");
    assert_eq!(c.request(&carol, model_cid(), input_cid(), 1000, 5), Err(TxError::UnknownModel(model_cid())));
    c.register(&key("alice"), model_cid(), 1000);
    assert_eq!(
        c.request(&carol, model_cid(), input_cid(), 999, 5),
        Err(TxError::PriceMismatch { model_price: 1000, offered: 999 })
    );
    let bob = key("bob"); // 500
    assert_eq!(
        c.request(&bob, model_cid(), input_cid(), 1000, 5),
        Err(TxError::InsufficientFunds { needed: 1015, available: 500 })
    );
    let supply = c.supply();
    let id = c.request(&carol, model_cid(), input_cid(), 1000, 5).unwrap();
    let job = query::job(&c.state, &id).unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!((job.payer, job.price, job.executor_fee, job.height), (carol.address(), 1000, 5, c.height));
    assert_eq!(query::pending_jobs(&c.state), vec![job]);
    assert_eq!(c.supply(), supply, "escrow counts in total supply");
}

#[test]
fn paid_call_pays_owner_executor_and_proposer_exactly() {
    let (mut c, job) = with_job();
    let (alice, carol, exec) = (key("alice"), key("carol"), key("exec"));
    let supply = c.supply();
    // carol paid: price + executor fee + one tx fee.
    assert_eq!(c.balance(&carol.address()), 1_000_000 - 1_000 - 50 - FEE);
    let alice_before = c.balance(&alice.address());
    let proposer_before = c.balance(&c.producer.address());
    let exec_before = c.balance(&exec.address());
    let r = receipt_for(&job, &exec).sign(&exec);
    submit(&mut c, &exec, r.clone()).unwrap();
    assert_eq!(c.balance(&alice.address()), alice_before + 1_000);
    // The executor receives its fee and pays the receipt transaction's fee.
    assert_eq!(c.balance(&exec.address()), exec_before + 50 - FEE);
    assert_eq!(c.balance(&c.producer.address()), proposer_before + FEE);
    assert_eq!(c.supply(), supply);
    let j = query::job(&c.state, &job.id).unwrap();
    assert_eq!(
        j.status,
        JobStatus::Settled {
            executor: exec.public(),
            receipt: r.receipt.hash(),
            output_hash: Hash32::of(b"out"),
            height: c.height
        }
    );
    assert_eq!(query::receipt(&c.state, &job.id), Some(r));
    assert!(query::pending_jobs(&c.state).is_empty());
    let m = query::model(&c.state, &model_cid()).unwrap();
    assert_eq!((m.calls, m.earnings), (1, 1_000));
    // All fees went to the proposer: alice (commit, reveal, transfer), carol, exec.
    assert_eq!(c.balance(&c.producer.address()), 5 * FEE);
}

#[test]
fn settlement_splits_among_owners_with_remainder_to_first() {
    let (mut c, job) = with_job();
    // Give the model three owners directly in state (ownership transfer comes later).
    let owners = vec![
        Owner { address: key("o1").address(), bps: 3_333 },
        Owner { address: key("o2").address(), bps: 3_333 },
        Owner { address: key("o3").address(), bps: 3_334 },
    ];
    let mut m = query::model(&c.state, &model_cid()).unwrap();
    m.owners = owners.clone();
    c.state.0.insert(keys::model(&model_cid()), borsh::to_vec(&m).unwrap());
    let exec = key("exec");
    submit(&mut c, &exec, receipt_for(&job, &exec).sign(&exec)).unwrap();
    // 1000 * 3333 / 10000 = 333.3 -> 333, 333, 333.4 -> 333; remainder 1 to the first.
    let got: Vec<Amount> = owners.iter().map(|o| c.balance(&o.address)).collect();
    assert_eq!(got, vec![334, 333, 333]);
}

#[test]
fn receipt_from_unstaked_key_is_refused() {
    let (mut c, job) = with_job();
    let lazy = key("lazy"); // stake below the minimum
    c.send(&key("alice"), TxBody::Transfer { to: lazy.address(), amount: 1_000 }).unwrap();
    assert_eq!(submit(&mut c, &lazy, receipt_for(&job, &lazy).sign(&lazy)), Err(TxError::NotStaked));
    let nobody = key("alice"); // no executor record at all
    assert_eq!(submit(&mut c, &nobody, receipt_for(&job, &nobody).sign(&nobody)), Err(TxError::NotStaked));
}

#[test]
fn receipt_submitted_by_another_key_is_refused() {
    let (mut c, job) = with_job();
    let exec = key("exec");
    let r = receipt_for(&job, &exec).sign(&exec);
    assert!(matches!(submit(&mut c, &key("alice"), r), Err(TxError::ReceiptMismatch(_))));
}

#[test]
fn receipt_for_unknown_or_settled_job_is_refused() {
    let (mut c, job) = with_job();
    let exec = key("exec");
    c.send(&key("alice"), TxBody::Transfer { to: exec.address(), amount: 1_000 }).unwrap();
    let mut unknown = receipt_for(&job, &exec);
    unknown.job = Hash32::of(b"no such job");
    assert_eq!(submit(&mut c, &exec, unknown.sign(&exec)), Err(TxError::UnknownJob));
    submit(&mut c, &exec, receipt_for(&job, &exec).sign(&exec)).unwrap();
    let mut again = receipt_for(&job, &exec);
    again.output_hash = Hash32::of(b"different");
    assert_eq!(submit(&mut c, &exec, again.sign(&exec)), Err(TxError::JobSettled));
}

#[test]
fn receipt_that_does_not_match_the_job_is_refused() {
    let (mut c, job) = with_job();
    let exec = key("exec");
    c.send(&key("alice"), TxBody::Transfer { to: exec.address(), amount: 1_000 }).unwrap();
    type Tamper = Box<dyn Fn(&mut Receipt)>;
    let cases: Vec<(&str, Tamper)> = vec![
        ("input hash", Box::new(|r| r.input_hash = Hash32::of(b"other input"))),
        ("model", Box::new(|r| r.model = Cid::of(b"other model"))),
        ("price", Box::new(|r| r.price = 999)),
        ("executor fee", Box::new(|r| r.executor_fee = 51)),
        ("chain", Box::new(|r| r.chain_id = "deed-other".into())),
        ("engine", Box::new(|r| r.engine = String::new())),
        ("version", Box::new(|r| r.version = 2)),
    ];
    for (what, f) in cases {
        let mut r = receipt_for(&job, &exec);
        f(&mut r);
        match submit(&mut c, &exec, r.sign(&exec)) {
            Err(TxError::ReceiptMismatch(m)) => assert!(m.contains(what), "{what}: {m}"),
            other => panic!("{what}: expected a mismatch, got {other:?}"),
        }
    }
    assert_eq!(query::job(&c.state, &job.id).unwrap().status, JobStatus::Pending);
}

#[test]
fn receipt_with_bad_signature_or_trace_is_refused() {
    let (mut c, job) = with_job();
    let exec = key("exec");
    c.send(&key("alice"), TxBody::Transfer { to: exec.address(), amount: 1_000 }).unwrap();
    let mut r = receipt_for(&job, &exec).sign(&exec);
    r.receipt.output_hash = Hash32::of(b"tampered after signing");
    assert!(matches!(submit(&mut c, &exec, r), Err(TxError::BadReceipt(_))));
    let mut r = receipt_for(&job, &exec);
    r.trace.push(Hash32::of(b"extra"));
    assert!(matches!(submit(&mut c, &exec, r.sign(&exec)), Err(TxError::BadReceipt(_))));
    // Also refused at mempool admission.
    let mut r = receipt_for(&job, &exec).sign(&exec);
    r.receipt.output_hash = Hash32::ZERO;
    let t = c.tx(&exec, TxBody::SubmitReceipt { receipt: r });
    assert!(matches!(check_tx(&c.state, &t, c.nonce(&exec)), Err(TxError::BadReceipt(_))));
}

#[test]
fn oversized_transaction_is_refused() {
    let (mut c, job) = with_job();
    let exec = key("exec");
    let mut r = receipt_for(&job, &exec);
    r.trace = (0..3_000u32).map(|i| Hash32::of(&i.to_le_bytes())).collect();
    r.trace_root = deed_types::merkle::root(&r.trace);
    assert!(matches!(submit(&mut c, &exec, r.sign(&exec)), Err(TxError::TooLarge { .. })));
}

#[test]
fn apply_block_refuses_bad_blocks() {
    let c = Chain::new();
    let alice = key("alice");
    let t = c.tx(&alice, TxBody::Transfer { to: key("bob").address(), amount: 1 });
    let p = propose(&c.state, &c.env(), vec![t.clone()]);

    // Wrong state root.
    let mut bad = Proposal { state_root: Hash32::of(b"wrong"), ..p.clone() };
    let b = c.seal(&bad);
    assert!(matches!(apply_block(&c.state, &b), Err(BlockError::StateRootMismatch { .. })));

    // A transaction that fails.
    bad.included = vec![t.clone(), t.clone()];
    let b = c.seal(&bad);
    match apply_block(&c.state, &b) {
        Err(BlockError::Tx { index: 1, error: TxError::NonceTooLow { .. }, .. }) => {}
        other => panic!("{other:?}"),
    }

    // Signed by someone who is not a validator.
    let mut b = c.seal(&p);
    b.header.proposer = alice.public();
    let b = Block::seal(b.header, b.txs, &alice);
    assert!(matches!(apply_block(&c.state, &b), Err(BlockError::BadHeader(m)) if m.contains("validators")));

    // Bad header signature.
    let mut b = c.seal(&p);
    b.header.time_ms += 1;
    assert!(matches!(apply_block(&c.state, &b), Err(BlockError::BadHeader(_))));

    // Transactions that do not match the tx root.
    let mut b = c.seal(&p);
    b.txs.clear();
    assert!(matches!(apply_block(&c.state, &b), Err(BlockError::BadHeader(_))));

    // Another chain.
    let mut b = c.seal(&p);
    b.header.chain_id = "deed-other".into();
    let b = Block::seal(b.header, b.txs, &c.producer);
    assert!(matches!(apply_block(&c.state, &b), Err(BlockError::BadHeader(_))));

    // The good one applies.
    apply_block(&c.state, &c.seal(&p)).unwrap();
}

#[test]
fn propose_respects_block_size_limit() {
    let mut g = test_genesis();
    g.params.block_txs_max = 3;
    let mut c = Chain::with(g);
    let alice = key("alice");
    let txs: Vec<SignedTx> = (0..5)
        .map(|n| {
            Tx {
                chain_id: CHAIN.into(),
                sender: alice.public(),
                nonce: n,
                fee: FEE,
                body: TxBody::CommitModel { commitment: Hash32::of(&n.to_le_bytes()) },
            }
            .sign(&alice)
        })
        .collect();
    let p = c.block(txs.clone());
    assert_eq!(p.included, txs[..3].to_vec());
    assert!(p.rejected.is_empty(), "transactions beyond the limit wait; they are not rejected");
    let p2 = Proposal { included: txs[3..].to_vec(), ..propose(&c.state, &c.env(), txs[3..].to_vec()) };
    assert_eq!(p2.included.len(), 2);
    // A block over the limit is refused.
    let over = Proposal { included: txs.clone(), ..p };
    let b = c.seal(&over);
    assert!(matches!(apply_block(&c.state, &b), Err(BlockError::TooManyTxs { count: 5, max: 3 })));
}

#[test]
fn failed_transactions_have_no_effect() {
    let mut c = Chain::new();
    let before = c.state.clone();
    let bob = key("bob");
    assert!(c.send(&bob, TxBody::Transfer { to: key("alice").address(), amount: 10_000 }).is_err());
    assert_eq!(c.state, before, "an empty block changes nothing");
}

#[test]
fn state_proofs_verify_against_the_root() {
    let (c, job) = with_job();
    let root = crate::state_root(&c.state);
    let k = keys::job(&job.id);
    let proof = crate::prove(&c.state, &k);
    assert!(proof.verify(&root, &k));
    let j: Job = borsh::from_slice(proof.value.as_ref().unwrap()).unwrap();
    assert_eq!(j, job);
    // Absence is provable too, and a proof does not verify against another root.
    let missing = keys::job(&Hash32::of(b"no such job"));
    let none = crate::prove(&c.state, &missing);
    assert!(none.value.is_none() && crate::verify_proof(&root, &missing, None, &none));
    assert!(!crate::verify_proof(&root, &missing, Some(b"x"), &none));
    assert!(!proof.verify(&Hash32::of(b"other root"), &k));
}

#[test]
fn results_list_included_and_rejected() {
    let mut c = Chain::new();
    let good = c.tx(&key("alice"), TxBody::Transfer { to: key("bob").address(), amount: 1 });
    let bad = c.tx(&key("bob"), TxBody::Transfer { to: key("alice").address(), amount: 1_000_000 });
    let p = c.block(vec![good.clone(), bad.clone()]);
    let r = p.results();
    assert_eq!(r.len(), 2);
    assert!(r[0].ok && r[0].hash == good.hash());
    assert!(!r[1].ok && r[1].hash == bad.hash());
    assert!(r[1].error.as_deref().unwrap().starts_with("insufficient funds"));
}

#[test]
fn queries_order_models_and_commitments() {
    let mut c = Chain::new();
    let (alice, carol) = (key("alice"), key("carol"));
    let (m1, m2, m3) = (Cid::of(b"m1"), Cid::of(b"m2"), Cid::of(b"m3"));
    c.register(&alice, m2, 1);
    c.register(&carol, m3, 1);
    c.register(&alice, m1, 1);
    let ids: Vec<Cid> = query::models(&c.state).into_iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![m2, m3, m1], "by registration height");
    // Two accounts commit to the same hash: the query returns the earliest.
    let h = Hash32::of(b"shared");
    c.send(&carol, TxBody::CommitModel { commitment: h }).unwrap();
    c.send(&alice, TxBody::CommitModel { commitment: h }).unwrap();
    assert_eq!(query::commitment(&c.state, &h).unwrap().owner, carol.address());
    assert_eq!(query::commitment_by(&c.state, &h, &alice.address()).unwrap().height, c.height);
    assert!(query::commitment(&c.state, &Hash32::of(b"none")).is_none());
    assert_eq!(
        check_tx(&MemState::new(), &c.tx(&alice, TxBody::CommitModel { commitment: h }), 0),
        Err(TxError::NoGenesis)
    );
}

/// Random transaction sequences against a reference model of balances, nonces and jobs.
mod prop {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const USERS: usize = 4;

    #[derive(Clone, Debug)]
    enum Op {
        Transfer { from: usize, to: usize, amount: Amount, skew: i8, low_fee: bool },
        Request { from: usize, executor_fee: Amount, wrong_price: bool },
        Settle { pick: usize },
        EndBlock,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..USERS, 0..USERS + 2, prop_oneof![0..3_000u128, Just(Amount::MAX)], prop_oneof![8 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)], proptest::bool::weighted(0.1))
                .prop_map(|(from, to, amount, skew, low_fee)| Op::Transfer { from, to, amount, skew, low_fee }),
            2 => (0..USERS, 0..200u128, proptest::bool::weighted(0.1))
                .prop_map(|(from, executor_fee, wrong_price)| Op::Request { from, executor_fee, wrong_price }),
            2 => any::<usize>().prop_map(|pick| Op::Settle { pick }),
            1 => Just(Op::EndBlock),
        ]
    }

    struct RefJob {
        job: Job,
        settled: bool,
    }

    /// The reference: plain maps, no state machine.
    struct Model {
        bal: BTreeMap<Address, Amount>,
        nonce: BTreeMap<Address, u64>,
        jobs: Vec<RefJob>,
        price: Amount,
        producer: Address,
    }

    impl Model {
        fn bal(&self, a: &Address) -> Amount {
            self.bal.get(a).copied().unwrap_or(0)
        }
        /// Applies the generic part (nonce, fee) if the whole tx can succeed.
        fn try_tx(&mut self, sender: Address, nonce: u64, fee: Amount, spend: Option<Amount>) -> bool {
            let Some(spend) = spend else { return false };
            if nonce != self.nonce.get(&sender).copied().unwrap_or(0) || fee < FEE {
                return false;
            }
            let Some(need) = fee.checked_add(spend) else { return false };
            if self.bal(&sender) < need {
                return false;
            }
            *self.bal.entry(sender).or_default() -= need;
            *self.bal.entry(self.producer).or_default() += fee;
            *self.nonce.entry(sender).or_default() += 1;
            true
        }
    }

    fn run(initial: Vec<Amount>, price: Amount, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let users: Vec<Keypair> = (0..USERS).map(|i| key(&format!("user{i}"))).collect();
        let (owner, exec) = (key("owner"), key("exec"));
        let mut g = test_genesis();
        g.accounts = users
            .iter()
            .zip(&initial)
            .map(|(k, b)| GenesisAccount { address: k.address(), balance: *b })
            .chain([
                GenesisAccount { address: owner.address(), balance: 1_000 },
                GenesisAccount { address: exec.address(), balance: 200 },
            ])
            .collect();
        let mut c = Chain::with(g);
        let model = model_cid();
        c.register(&owner, model, price);
        let supply = c.supply();
        let mut everyone: Vec<Address> = users.iter().map(|k| k.address()).collect();
        everyone.extend([owner.address(), exec.address(), c.producer.address()]);
        let mut m = Model {
            bal: everyone.iter().map(|a| (*a, c.balance(a))).collect(),
            nonce: everyone.iter().map(|a| (*a, query::account(&c.state, a).nonce)).collect(),
            jobs: Vec::new(),
            price,
            producer: c.producer.address(),
        };

        let mut pending: Vec<(SignedTx, bool)> = Vec::new();
        let flush = |c: &mut Chain, m: &Model, pending: &mut Vec<(SignedTx, bool)>| -> Result<(), TestCaseError> {
            let txs: Vec<SignedTx> = pending.iter().map(|(t, _)| t.clone()).collect();
            let want: Vec<Hash32> = pending.iter().filter(|(_, ok)| *ok).map(|(t, _)| t.hash()).collect();
            let p = c.block(txs);
            let got: Vec<Hash32> = p.included.iter().map(SignedTx::hash).collect();
            prop_assert_eq!(got, want, "included set differs from the model; rejected: {:?}", p.rejected);
            for a in &everyone {
                prop_assert_eq!(c.balance(a), m.bal(a), "balance of {}", a);
            }
            prop_assert_eq!(c.supply(), supply);
            let pend = query::pending_jobs(&c.state).len();
            prop_assert_eq!(pend, m.jobs.iter().filter(|j| !j.settled).count());
            pending.clear();
            Ok(())
        };

        for op in ops {
            let (sender_key, body, skew, fee) = match op {
                Op::EndBlock => {
                    flush(&mut c, &m, &mut pending)?;
                    continue;
                }
                Op::Transfer { from, to, amount, skew, low_fee } => {
                    let to = everyone[to.min(everyone.len() - 1)];
                    (&users[from], TxBody::Transfer { to, amount }, skew, if low_fee { FEE - 1 } else { FEE })
                }
                Op::Request { from, executor_fee, wrong_price } => {
                    let offered = if wrong_price { m.price + 1 } else { m.price };
                    let body = TxBody::RequestInference {
                        model,
                        input: Cid::of(&(m.jobs.len() as u64).to_le_bytes()),
                        price: offered,
                        executor_fee,
                        mode: Default::default(),
                    };
                    (&users[from], body, 0, FEE)
                }
                Op::Settle { pick } => {
                    if m.jobs.is_empty() {
                        continue;
                    }
                    let j = &m.jobs[pick % m.jobs.len()].job;
                    (&exec, TxBody::SubmitReceipt { receipt: receipt_for(j, &exec).sign(&exec) }, 0, FEE)
                }
            };
            let sender = sender_key.address();
            let base = m.nonce.get(&sender).copied().unwrap_or(0);
            let nonce = base.saturating_add_signed(i64::from(skew));
            let t = Tx { chain_id: CHAIN.into(), sender: sender_key.public(), nonce, fee, body: body.clone() }
                .sign(sender_key);
            let ok = match &body {
                TxBody::Transfer { to, amount } => {
                    let ok = m.try_tx(sender, nonce, fee, Some(*amount));
                    if ok {
                        *m.bal.entry(*to).or_default() += amount;
                    }
                    ok
                }
                TxBody::RequestInference { input, price, executor_fee, .. } => {
                    let spend = if *price == m.price { price.checked_add(*executor_fee) } else { None };
                    let ok = m.try_tx(sender, nonce, fee, spend);
                    if ok {
                        let job = Job {
                            id: t.hash(),
                            payer: sender,
                            model,
                            input: *input,
                            price: *price,
                            executor_fee: *executor_fee,
                            height: c.height + 1,
                            mode: Default::default(),
                            receipts: Vec::new(),
                            status: JobStatus::Pending,
                        };
                        m.jobs.push(RefJob { job, settled: false });
                    }
                    ok
                }
                TxBody::SubmitReceipt { receipt } => {
                    let idx = m.jobs.iter().position(|j| j.job.id == receipt.receipt.job).unwrap();
                    let live = !m.jobs[idx].settled;
                    let ok = m.try_tx(sender, nonce, fee, if live { Some(0) } else { None });
                    if ok {
                        let j = &mut m.jobs[idx];
                        j.settled = true;
                        *m.bal.entry(owner.address()).or_default() += j.job.price;
                        *m.bal.entry(exec.address()).or_default() += j.job.executor_fee;
                    }
                    ok
                }
                _ => unreachable!(),
            };
            pending.push((t, ok));
        }
        flush(&mut c, &m, &mut pending)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn random_sequences_match_the_reference(
            initial in proptest::collection::vec(0..5_000u128, USERS),
            price in 0..1_000u128,
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            run(initial, price, ops)?;
        }
    }
}

//! Property test of the economic rules against a plain-`BTreeMap` reference: random
//! sequences of transfers, share transfers, license changes, paid calls over a three-
//! generation lineage, stakes and unstakes. After every block: the included set is the
//! one the reference predicts, balances, stakes, owners, license votes and earnings
//! match, no share list drifts from 10,000 bps, no pending license vote outweighs half
//! the shares, and total supply is conserved.

use super::tests::{CHAIN, Chain, FEE, key, receipt_for, test_genesis};
use crate::{Job, JobStatus, query};
use deed_types::{Address, Amount, Cid, GenesisAccount, Keypair, Parent, SignedTx, Tx, TxBody};
use proptest::prelude::*;
use std::collections::BTreeMap;

const USERS: usize = 4;
const MODELS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Transfer {
        from: usize,
        to: usize,
        amount: Amount,
    },
    /// With `owner`, `from` picks one of the model's current owners instead of any user.
    Shares {
        owner: bool,
        from: usize,
        model: usize,
        to: usize,
        bps: u16,
    },
    /// With `owner`, `from` picks one of the model's current owners instead of any user.
    License {
        owner: bool,
        from: usize,
        model: usize,
        price: Amount,
    },
    Request {
        from: usize,
        model: usize,
        fee: Amount,
    },
    Settle {
        pick: usize,
    },
    Stake {
        from: usize,
        amount: Amount,
    },
    Unstake {
        from: usize,
        amount: Amount,
    },
    EndBlock,
}

fn op() -> impl Strategy<Value = Op> {
    let u = || 0..USERS;
    let m = || 0..MODELS;
    prop_oneof![
        2 => (u(), u(), 0..2_000u128).prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        3 => (any::<bool>(), u(), m(), u(), prop_oneof![1..3_000u16, Just(2_500u16), Just(5_000u16), Just(10_000u16), Just(0u16)])
            .prop_map(|(owner, from, model, to, bps)| Op::Shares { owner, from, model, to, bps }),
        // Few distinct prices, so that several owners often vote for the same one.
        3 => (any::<bool>(), u(), m(), prop_oneof![Just(0u128), 1..4u128, 1..5_000u128])
            .prop_map(|(owner, from, model, price)| Op::License { owner, from, model, price }),
        4 => (u(), m(), 0..50u128).prop_map(|(from, model, fee)| Op::Request { from, model, fee }),
        4 => any::<usize>().prop_map(|pick| Op::Settle { pick }),
        1 => (u(), 0..3_000u128).prop_map(|(from, amount)| Op::Stake { from, amount }),
        1 => (u(), 0..3_000u128).prop_map(|(from, amount)| Op::Unstake { from, amount }),
        2 => Just(Op::EndBlock),
    ]
}

/// The reference ledger.
struct Ref {
    bal: BTreeMap<Address, Amount>,
    nonce: BTreeMap<Address, u64>,
    owners: Vec<Vec<(Address, u16)>>,
    price: Vec<Amount>,
    /// Pending license votes per model: voter -> price.
    votes: Vec<BTreeMap<Address, Amount>>,
    parents: Vec<Vec<(usize, u16)>>,
    stake: BTreeMap<Address, Amount>,
    unbonding: BTreeMap<(u64, Address), Amount>,
    jobs: Vec<(Job, bool)>,
    owner_earned: BTreeMap<Address, Amount>,
    producer: Address,
}

impl Ref {
    fn bal(&self, a: &Address) -> Amount {
        self.bal.get(a).copied().unwrap_or(0)
    }
    fn add(&mut self, a: Address, x: Amount) {
        *self.bal.entry(a).or_default() += x;
    }
    /// Fee and nonce, if the sender can pay `fee + spend`.
    fn pay(&mut self, a: Address, spend: Amount) -> bool {
        if self.bal(&a) < FEE + spend {
            return false;
        }
        *self.bal.get_mut(&a).unwrap() -= FEE + spend;
        self.add(self.producer, FEE);
        *self.nonce.entry(a).or_default() += 1;
        true
    }
    fn held(&self, m: usize, a: &Address) -> u16 {
        self.owners[m].iter().find(|(o, _)| o == a).map_or(0, |(_, b)| *b)
    }
    /// The royalty rule, written as plainly as possible: per generation, each model's
    /// revenue pays floor(r * bps / 10000) to each parent, the rest to owners (floors,
    /// remainder to the first owner).
    fn distribute(&mut self, model: usize, price: Amount) {
        let mut gen_: BTreeMap<usize, Amount> = BTreeMap::from([(model, price)]);
        while !gen_.is_empty() {
            let mut next = BTreeMap::new();
            for (m, r) in gen_ {
                let mut rest = r;
                for (p, bps) in self.parents[m].clone() {
                    let roy = r * Amount::from(bps) / 10_000;
                    rest -= roy;
                    *next.entry(p).or_insert(0) += roy;
                }
                let owners = self.owners[m].clone();
                let mut given = 0;
                for (i, (o, bps)) in owners.iter().enumerate().rev() {
                    let share = if i == 0 { rest - given } else { rest * Amount::from(*bps) / 10_000 };
                    given += share;
                    self.add(*o, share);
                    if share > 0 {
                        *self.owner_earned.entry(*o).or_default() += share;
                    }
                }
            }
            gen_ = next;
        }
    }
}

/// The user index of the `pick`-th current owner of model `m` (owners are always users).
fn owner_index(r: &Ref, users: &[Keypair], m: usize, pick: usize) -> usize {
    let owner = r.owners[m][pick % r.owners[m].len()].0;
    users.iter().position(|k| k.address() == owner).expect("owners are users")
}

fn run(initial: Vec<Amount>, royalties: (u16, u16, u16), ops: Vec<Op>) -> Result<(), TestCaseError> {
    let users: Vec<Keypair> = (0..USERS).map(|i| key(&format!("user{i}"))).collect();
    let exec = key("exec");
    let mut g = test_genesis();
    g.accounts = users
        .iter()
        .zip(&initial)
        .map(|(k, b)| GenesisAccount { address: k.address(), balance: 1_000 + *b })
        .chain([GenesisAccount { address: exec.address(), balance: 1_000_000 }])
        .collect();
    let mut c = Chain::with(g);
    // Lineage: m0 original; m1 derives from m0; m2 derives from m1 and m0 (with bps that
    // sum to at most 5000).
    let ids: Vec<Cid> = (0..MODELS).map(|i| Cid::of(format!("model{i}").as_bytes())).collect();
    let parents: Vec<Vec<(usize, u16)>> =
        vec![vec![], vec![(0, royalties.0)], vec![(1, royalties.1), (0, royalties.2)]];
    for m in 0..MODELS {
        let ps = parents[m].iter().map(|(p, bps)| Parent { model: ids[*p], royalty_bps: *bps }).collect();
        c.register_with(&users[m], ids[m], 100 * m as Amount, ps).unwrap();
    }
    let supply = c.supply();
    let mut everyone: Vec<Address> = users.iter().map(|k| k.address()).collect();
    everyone.extend([exec.address(), c.producer.address()]);
    let mut r = Ref {
        bal: everyone.iter().map(|a| (*a, c.balance(a))).collect(),
        nonce: everyone.iter().map(|a| (*a, query::account(&c.state, a).nonce)).collect(),
        owners: (0..MODELS).map(|m| vec![(users[m].address(), 10_000)]).collect(),
        price: (0..MODELS).map(|m| 100 * m as Amount).collect(),
        votes: vec![BTreeMap::new(); MODELS],
        parents,
        producer: c.producer.address(),
        stake: BTreeMap::new(),
        unbonding: BTreeMap::new(),
        jobs: Vec::new(),
        owner_earned: BTreeMap::new(),
    };
    let ttl = test_genesis().params.unbonding_blocks;

    let mut pending: Vec<(SignedTx, bool)> = Vec::new();
    let mut started = false;
    for op in ops.into_iter().chain([Op::EndBlock]) {
        let height = c.height + 1;
        if !started {
            // The block's sweep: unbonded stake whose time has come returns.
            let due: Vec<(u64, Address)> =
                r.unbonding.range(..=(height, Address([0xff; 20]))).map(|(k, _)| *k).collect();
            for k in due {
                let amt = r.unbonding.remove(&k).unwrap();
                r.add(k.1, amt);
            }
            started = true;
        }
        let (sender, body) = match op {
            Op::EndBlock => {
                let txs: Vec<SignedTx> = pending.iter().map(|(t, _)| t.clone()).collect();
                let want: Vec<_> = pending.iter().filter(|(_, ok)| *ok).map(|(t, _)| t.hash()).collect();
                let p = c.block(txs);
                let got: Vec<_> = p.included.iter().map(SignedTx::hash).collect();
                prop_assert_eq!(got, want, "rejected: {:?}", p.rejected);
                pending.clear();
                started = false;
                for a in &everyone {
                    prop_assert_eq!(c.balance(a), r.bal(a), "balance of {}", a);
                    let e = query::earnings(&c.state, a).owner;
                    prop_assert_eq!(e, r.owner_earned.get(a).copied().unwrap_or(0), "owner earnings of {}", a);
                }
                for (m, id) in ids.iter().enumerate() {
                    let rec = query::model(&c.state, id).unwrap();
                    let got: Vec<(Address, u16)> = rec.owners.iter().map(|o| (o.address, o.bps)).collect();
                    prop_assert_eq!(got.iter().map(|(_, b)| u32::from(*b)).sum::<u32>(), 10_000);
                    prop_assert_eq!(&got, &r.owners[m]);
                    prop_assert_eq!(rec.price, r.price[m]);
                    let votes: BTreeMap<Address, Amount> =
                        rec.license_votes.iter().map(|v| (v.voter, v.price)).collect();
                    prop_assert_eq!(votes.len(), rec.license_votes.len(), "one vote per owner");
                    prop_assert_eq!(&votes, &r.votes[m]);
                    for v in &rec.license_votes {
                        prop_assert!(rec.bps_of(&v.voter) > 0, "only owners' votes are pending");
                        prop_assert!(rec.license_tally(v.price) <= 5_000, "a pending majority would have applied");
                    }
                }
                for u in &users {
                    let s = query::executor(&c.state, &u.public()).map_or(0, |e| e.stake);
                    prop_assert_eq!(s, r.stake.get(&u.address()).copied().unwrap_or(0));
                }
                prop_assert_eq!(c.supply(), supply);
                continue;
            }
            Op::Transfer { from, to, amount } => (from, TxBody::Transfer { to: everyone[to], amount }),
            Op::Shares { owner, from, model, to, bps } => {
                let from = if owner { owner_index(&r, &users, model, from) } else { from };
                (from, TxBody::TransferShares { model: ids[model], to: users[to].address(), bps })
            }
            Op::License { owner, from, model, price } => {
                let from = if owner { owner_index(&r, &users, model, from) } else { from };
                (from, TxBody::SetLicense { model: ids[model], price })
            }
            Op::Request { from, model, fee } => {
                let input = Cid::of(&(r.jobs.len() as u64).to_le_bytes());
                (
                    from,
                    TxBody::RequestInference {
                        model: ids[model],
                        input,
                        price: r.price[model],
                        executor_fee: fee,
                        mode: Default::default(),
                    },
                )
            }
            Op::Settle { pick } => {
                if r.jobs.is_empty() {
                    continue;
                }
                let j = &r.jobs[pick % r.jobs.len()].0;
                (USERS, TxBody::SubmitReceipt { receipt: receipt_for(j, &exec).sign(&exec) })
            }
            Op::Stake { from, amount } => (from, TxBody::Stake { amount }),
            Op::Unstake { from, amount } => (from, TxBody::Unstake { amount }),
        };
        let k = if sender == USERS { &exec } else { &users[sender] };
        let a = k.address();
        let nonce = r.nonce.get(&a).copied().unwrap_or(0);
        let t = Tx { chain_id: CHAIN.into(), sender: k.public(), nonce, fee: FEE, body: body.clone() }.sign(k);
        // Predict, and apply to the reference if it succeeds.
        let ok = match &body {
            TxBody::Transfer { to, amount } => {
                let ok = r.pay(a, *amount);
                if ok {
                    r.add(*to, *amount);
                }
                ok
            }
            TxBody::TransferShares { model, to, bps } => {
                let m = ids.iter().position(|i| i == model).unwrap();
                let ok = *bps > 0 && *to != a && r.held(m, &a) >= *bps && r.pay(a, 0);
                if ok {
                    match r.owners[m].iter_mut().find(|(o, _)| o == to) {
                        Some(o) => o.1 += bps,
                        None => r.owners[m].push((*to, *bps)),
                    }
                    r.owners[m].iter_mut().find(|(o, _)| *o == a).unwrap().1 -= bps;
                    r.owners[m].retain(|(_, b)| *b > 0);
                    r.votes[m].remove(&a);
                    r.votes[m].remove(to);
                }
                ok
            }
            TxBody::SetLicense { model, price } => {
                let m = ids.iter().position(|i| i == model).unwrap();
                let ok = r.held(m, &a) > 0 && r.pay(a, 0);
                if ok {
                    r.votes[m].insert(a, *price);
                    let tally: u32 =
                        r.votes[m].iter().filter(|(_, p)| *p == price).map(|(v, _)| u32::from(r.held(m, v))).sum();
                    if tally > 5_000 {
                        r.price[m] = *price;
                        r.votes[m].clear();
                    }
                }
                ok
            }
            TxBody::RequestInference { model, price, executor_fee, input, .. } => {
                let ok = r.pay(a, price + executor_fee);
                if ok {
                    let job = Job {
                        id: t.hash(),
                        payer: a,
                        model: *model,
                        input: *input,
                        price: *price,
                        executor_fee: *executor_fee,
                        height,
                        mode: Default::default(),
                        receipts: Vec::new(),
                        status: JobStatus::Pending,
                    };
                    r.jobs.push((job, false));
                }
                ok
            }
            TxBody::SubmitReceipt { receipt } => {
                let idx = r.jobs.iter().position(|(j, _)| j.id == receipt.receipt.job).unwrap();
                let ok = !r.jobs[idx].1 && r.pay(a, 0);
                if ok {
                    r.jobs[idx].1 = true;
                    let (job, _) = r.jobs[idx].clone();
                    let m = ids.iter().position(|i| *i == job.model).unwrap();
                    r.distribute(m, job.price);
                    r.add(exec.address(), job.executor_fee);
                }
                ok
            }
            TxBody::Stake { amount } => {
                let ok = *amount > 0 && r.pay(a, *amount);
                if ok {
                    *r.stake.entry(a).or_default() += amount;
                }
                ok
            }
            TxBody::Unstake { amount } => {
                let staked = r.stake.get(&a).copied().unwrap_or(0);
                let ok = *amount > 0 && staked >= *amount && r.pay(a, 0);
                if ok {
                    *r.stake.get_mut(&a).unwrap() -= amount;
                    *r.unbonding.entry((height + ttl, a)).or_default() += amount;
                }
                ok
            }
            _ => unreachable!(),
        };
        pending.push((t, ok));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn economy_matches_the_reference(
        initial in proptest::collection::vec(0..20_000u128, USERS),
        royalties in (0..=5_000u16, 0..=2_500u16, 0..=2_500u16),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run(initial, royalties, ops)?;
    }
}

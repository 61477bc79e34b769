//! Tests of the issue-4 rules: names and versions, shares, licenses, lineage royalties,
//! the contest rule, commitment expiry, stakes and slashing. Each rule, and each
//! refusal, has a test; blocks go through `propose` and `apply_block` as in `tests`.

use super::tests::{Chain, key, receipt_for, test_genesis};
use crate::{MemState, StateRead, TxError, keys, query, slash};
use deed_types::tx::model_commitment;
use deed_types::{Address, Amount, Cid, Hash32, Keypair, Parent, TxBody};

fn cid(s: &str) -> Cid {
    Cid::of(s.as_bytes())
}

fn parent(m: &str, bps: u16) -> Parent {
    Parent { model: cid(m), royalty_bps: bps }
}

fn commit(c: &mut Chain, k: &Keypair, model: &str, salt: &str) {
    let h = model_commitment(&cid(model), &k.address(), &Hash32::of(salt.as_bytes()));
    c.send(k, TxBody::CommitModel { commitment: h }).unwrap();
}

fn reveal(
    c: &mut Chain,
    k: &Keypair,
    model: &str,
    salt: &str,
    name: &str,
    parents: Vec<Parent>,
) -> Result<(), TxError> {
    let body = TxBody::RegisterModel {
        model: cid(model),
        name: name.into(),
        salt: Hash32::of(salt.as_bytes()),
        price: 0,
        parents,
    };
    c.send(k, body).map(|_| ())
}

fn shares(c: &Chain, m: &str) -> Vec<(Address, u16)> {
    query::model(&c.state, &cid(m)).unwrap().owners.iter().map(|o| (o.address, o.bps)).collect()
}

/// Gives the executor something to pay its receipt transactions' fees with.
fn fund_exec(c: &mut Chain) {
    c.send(&key("alice"), TxBody::Transfer { to: key("exec").address(), amount: 1_000 }).unwrap();
}

/// A chain whose commitments live 20 blocks.
fn long_ttl_chain() -> Chain {
    let mut g = test_genesis();
    g.params.commit_ttl_blocks = 20;
    Chain::with(g)
}

/// Requests a call of `model` by carol and settles it by `exec`; returns the job id.
fn paid_call(c: &mut Chain, model: &str, price: Amount, fee: Amount) -> Hash32 {
    let id = c.request(&key("carol"), cid(model), Cid::of(b"in"), price, fee).unwrap();
    let job = query::job(&c.state, &id).unwrap();
    let exec = key("exec");
    c.send(&exec, TxBody::SubmitReceipt { receipt: receipt_for(&job, &exec).sign(&exec) }).unwrap();
    id
}

#[test]
fn a_name_owns_ordered_versions_and_majority_holders_append() {
    let mut c = Chain::new();
    let (alice, bob) = (key("alice"), key("bob"));
    for (m, s) in [("v1", "a1"), ("v2", "a2")] {
        commit(&mut c, &alice, m, s);
        reveal(&mut c, &alice, m, s, "net", vec![]).unwrap();
    }
    let n = query::name(&c.state, "net").unwrap();
    assert_eq!((n.versions, n.latest), (2, Some(cid("v2"))));
    let vs: Vec<(u32, Cid)> = query::name_versions(&c.state, "net").iter().map(|v| (v.version, v.model)).collect();
    assert_eq!(vs, vec![(1, cid("v1")), (2, cid("v2"))]);
    assert_eq!(query::model(&c.state, &cid("v2")).unwrap().version, 2);

    // Refused: bob holds nothing of the latest version.
    c.send(&alice, TxBody::Transfer { to: bob.address(), amount: 1_000 }).unwrap();
    commit(&mut c, &bob, "v3", "b3");
    let e = reveal(&mut c, &bob, "v3", "b3", "net", vec![]).unwrap_err();
    assert_eq!(e, TxError::NameTaken { name: "net".into(), latest: cid("v2") });
    // Exactly half is not a majority.
    c.send(&alice, TxBody::TransferShares { model: cid("v2"), to: bob.address(), bps: 5_000 }).unwrap();
    commit(&mut c, &bob, "v3", "b4");
    assert!(matches!(reveal(&mut c, &bob, "v3", "b4", "net", vec![]), Err(TxError::NameTaken { .. })));
    // With 5,001 bps bob may append; afterwards alice (no share of v3) may not.
    c.send(&alice, TxBody::TransferShares { model: cid("v2"), to: bob.address(), bps: 1 }).unwrap();
    commit(&mut c, &bob, "v3", "b5");
    reveal(&mut c, &bob, "v3", "b5", "net", vec![]).unwrap();
    assert_eq!(query::name(&c.state, "net").unwrap().latest, Some(cid("v3")));
    commit(&mut c, &alice, "v4", "a4");
    assert!(matches!(reveal(&mut c, &alice, "v4", "a4", "net", vec![]), Err(TxError::NameTaken { .. })));
}

#[test]
fn shares_transfer_in_part_or_whole_and_always_sum_to_10000() {
    let mut c = Chain::new();
    let (alice, bob, carol) = (key("alice"), key("bob"), key("carol"));
    c.register(&alice, cid("m"), 100);
    c.send(&alice, TxBody::TransferShares { model: cid("m"), to: bob.address(), bps: 2_500 }).unwrap();
    assert_eq!(shares(&c, "m"), vec![(alice.address(), 7_500), (bob.address(), 2_500)]);
    // Refusals: more than held, zero, to oneself, unknown model.
    let e = c.send(&bob, TxBody::TransferShares { model: cid("m"), to: carol.address(), bps: 2_501 }).unwrap_err();
    assert_eq!(e, TxError::InsufficientShares { model: cid("m"), held: 2_500, requested: 2_501 });
    let e = c.send(&carol, TxBody::TransferShares { model: cid("m"), to: bob.address(), bps: 1 }).unwrap_err();
    assert_eq!(e, TxError::InsufficientShares { model: cid("m"), held: 0, requested: 1 });
    assert!(matches!(
        c.send(&bob, TxBody::TransferShares { model: cid("m"), to: carol.address(), bps: 0 }),
        Err(TxError::BadShares(_))
    ));
    assert!(matches!(
        c.send(&bob, TxBody::TransferShares { model: cid("m"), to: bob.address(), bps: 1 }),
        Err(TxError::BadShares(_))
    ));
    assert_eq!(
        c.send(&bob, TxBody::TransferShares { model: cid("nope"), to: carol.address(), bps: 1 }),
        Err(TxError::UnknownModel(cid("nope")))
    );
    // Whole: bob leaves the owner list, carol joins last.
    c.send(&bob, TxBody::TransferShares { model: cid("m"), to: carol.address(), bps: 2_500 }).unwrap();
    assert_eq!(shares(&c, "m"), vec![(alice.address(), 7_500), (carol.address(), 2_500)]);
    let total: u32 = shares(&c, "m").iter().map(|(_, b)| u32::from(*b)).sum();
    assert_eq!(total, 10_000);
}

#[test]
fn a_majority_owner_changes_the_license_in_one_transaction() {
    let mut c = Chain::new();
    let (alice, bob) = (key("alice"), key("bob"));
    c.register(&alice, cid("m"), 100);
    fund_exec(&mut c);
    c.send(&alice, TxBody::SetLicense { model: cid("m"), price: 0 }).unwrap();
    let m = query::model(&c.state, &cid("m")).unwrap();
    assert_eq!((m.price, m.license_votes.len()), (0, 0), "open at once; no vote left pending");
    // An open model is called for free (the executor fee is still paid).
    let before = c.balance(&alice.address());
    paid_call(&mut c, "m", 0, 5);
    assert_eq!(c.balance(&alice.address()), before);
    c.send(&alice, TxBody::TransferShares { model: cid("m"), to: bob.address(), bps: 4_999 }).unwrap();
    c.send(&alice, TxBody::SetLicense { model: cid("m"), price: 77 }).unwrap();
    assert_eq!(query::model(&c.state, &cid("m")).unwrap().price, 77, "5,001 bps is a majority");
    assert_eq!(c.send(&alice, TxBody::SetLicense { model: cid("x"), price: 1 }), Err(TxError::UnknownModel(cid("x"))));
}

/// Splits `m` (owned by alice) into alice 3,000, bob 3,000, carol 4,000.
fn three_owners(c: &mut Chain) {
    let (alice, bob, carol) = (key("alice"), key("bob"), key("carol"));
    c.register(&alice, cid("m"), 100);
    c.send(&alice, TxBody::TransferShares { model: cid("m"), to: bob.address(), bps: 3_000 }).unwrap();
    c.send(&alice, TxBody::TransferShares { model: cid("m"), to: carol.address(), bps: 4_000 }).unwrap();
    assert_eq!(shares(c, "m"), vec![(alice.address(), 3_000), (bob.address(), 3_000), (carol.address(), 4_000)]);
}

fn votes(c: &Chain, m: &str) -> Vec<(Address, Amount)> {
    query::model(&c.state, &cid(m)).unwrap().license_votes.iter().map(|v| (v.voter, v.price)).collect()
}

fn sorted(mut v: Vec<(Address, Amount)>) -> Vec<(Address, Amount)> {
    v.sort();
    v
}

#[test]
fn a_minority_owner_alone_only_records_a_vote() {
    let mut c = Chain::new();
    three_owners(&mut c);
    let (alice, carol) = (key("alice"), key("carol"));
    let before = c.balance(&alice.address());
    c.send(&alice, TxBody::SetLicense { model: cid("m"), price: 7 }).unwrap();
    let m = query::model(&c.state, &cid("m")).unwrap();
    assert_eq!(m.price, 100, "3,000 bps alone do not change the license");
    assert_eq!(votes(&c, "m"), vec![(alice.address(), 7)], "the vote is recorded");
    assert_eq!(m.license_votes[0].height, c.height);
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["license_votes"][0]["price"], "7", "the API's JSON shows pending votes");
    assert_eq!(json["license_votes"][0]["voter"], alice.address().to_string());
    assert_eq!(c.balance(&alice.address()), before - super::tests::FEE, "a vote is a transaction: it pays its fee");
    // Replacing one's vote: still one vote per owner.
    c.send(&alice, TxBody::SetLicense { model: cid("m"), price: 8 }).unwrap();
    assert_eq!(votes(&c, "m"), vec![(alice.address(), 8)]);
    // 4,000 bps for another price do not add to alice's 3,000 for 8.
    c.send(&carol, TxBody::SetLicense { model: cid("m"), price: 9 }).unwrap();
    assert_eq!(query::model(&c.state, &cid("m")).unwrap().price, 100);
    assert_eq!(votes(&c, "m"), sorted(vec![(alice.address(), 8), (carol.address(), 9)]));
    // Someone with no shares has no vote.
    c.send(&alice, TxBody::Transfer { to: key("dave").address(), amount: 1_000 }).unwrap();
    let e = c.send(&key("dave"), TxBody::SetLicense { model: cid("m"), price: 1 }).unwrap_err();
    assert_eq!(e, TxError::NotOwner { model: cid("m") });
    assert_eq!(votes(&c, "m").len(), 2);
}

#[test]
fn minority_owners_together_change_the_license_and_clear_every_vote() {
    let mut c = Chain::new();
    three_owners(&mut c);
    let (alice, bob, carol) = (key("alice"), key("bob"), key("carol"));
    c.send(&carol, TxBody::SetLicense { model: cid("m"), price: 9 }).unwrap();
    c.send(&alice, TxBody::SetLicense { model: cid("m"), price: 0 }).unwrap();
    assert_eq!(query::model(&c.state, &cid("m")).unwrap().price, 100);
    // bob's 3,000 join alice's 3,000 for the same price: 6,000 > 5,000.
    c.send(&bob, TxBody::SetLicense { model: cid("m"), price: 0 }).unwrap();
    let m = query::model(&c.state, &cid("m")).unwrap();
    assert_eq!(m.price, 0, "two minority owners holding a majority together opened the model");
    assert!(m.license_votes.is_empty(), "carol's vote for another price is cleared too");
    // Exactly half is not a majority: alice 3,000 + 2,000 of bob's after he gives 1,000 away.
    c.send(&bob, TxBody::TransferShares { model: cid("m"), to: carol.address(), bps: 1_000 }).unwrap();
    c.send(&alice, TxBody::SetLicense { model: cid("m"), price: 5 }).unwrap();
    c.send(&bob, TxBody::SetLicense { model: cid("m"), price: 5 }).unwrap();
    assert_eq!(query::model(&c.state, &cid("m")).unwrap().price, 0, "5,000 bps is not more than half");
    assert_eq!(votes(&c, "m"), sorted(vec![(alice.address(), 5), (bob.address(), 5)]));
}

#[test]
fn a_vote_after_shares_moved_does_not_count_them_twice() {
    let mut c = Chain::new();
    three_owners(&mut c);
    let (alice, bob, carol, dave) = (key("alice"), key("bob"), key("carol"), key("dave"));
    c.send(&alice, TxBody::Transfer { to: dave.address(), amount: 1_000 }).unwrap();
    // alice votes with 3,000, then hands 2,500 of them to dave, who votes the same way.
    // Counted at vote time, that would be 3,000 + 2,500 > 5,000 although the two hold
    // 3,000 between them.
    c.send(&alice, TxBody::SetLicense { model: cid("m"), price: 1 }).unwrap();
    c.send(&alice, TxBody::TransferShares { model: cid("m"), to: dave.address(), bps: 2_500 }).unwrap();
    assert_eq!(votes(&c, "m"), vec![], "the transfer cleared the vote of its sender");
    c.send(&dave, TxBody::SetLicense { model: cid("m"), price: 1 }).unwrap();
    c.send(&alice, TxBody::SetLicense { model: cid("m"), price: 1 }).unwrap();
    let m = query::model(&c.state, &cid("m")).unwrap();
    assert_eq!(m.price, 100, "alice 500 + dave 2,500: no majority");
    assert_eq!(m.license_tally(1), 3_000);
    // A transfer between two others leaves those votes alone; one to a voter clears its vote.
    c.send(&carol, TxBody::TransferShares { model: cid("m"), to: bob.address(), bps: 1 }).unwrap();
    assert_eq!(votes(&c, "m").len(), 2, "neither party of carol -> bob had voted");
    c.send(&carol, TxBody::TransferShares { model: cid("m"), to: dave.address(), bps: 2_000 }).unwrap();
    assert_eq!(votes(&c, "m"), vec![(alice.address(), 1)], "the recipient's vote is cleared");
    // dave, now 4,500, votes again: 500 + 4,500 = 5,000, still not a majority; bob's
    // 3,001 for the same price carry it.
    c.send(&dave, TxBody::SetLicense { model: cid("m"), price: 1 }).unwrap();
    assert_eq!(query::model(&c.state, &cid("m")).unwrap().price, 100);
    c.send(&bob, TxBody::SetLicense { model: cid("m"), price: 1 }).unwrap();
    let m = query::model(&c.state, &cid("m")).unwrap();
    assert_eq!((m.price, m.license_votes.len()), (1, 0));
}

#[test]
fn a_takeover_clears_pending_license_votes() {
    let mut c = long_ttl_chain();
    let (alice, bob, carol) = (key("alice"), key("bob"), key("carol"));
    commit(&mut c, &carol, "m", "c");
    commit(&mut c, &alice, "m", "a");
    reveal(&mut c, &alice, "m", "a", "alice-m", vec![]).unwrap();
    c.send(&alice, TxBody::TransferShares { model: cid("m"), to: bob.address(), bps: 4_000 }).unwrap();
    c.send(&bob, TxBody::SetLicense { model: cid("m"), price: 3 }).unwrap();
    assert_eq!(votes(&c, "m").len(), 1);
    reveal(&mut c, &carol, "m", "c", "carol-m", vec![]).unwrap();
    let m = query::model(&c.state, &cid("m")).unwrap();
    assert_eq!(m.owners.len(), 1);
    assert!(m.license_votes.is_empty(), "bob's vote was about ownership he no longer has");
}

#[test]
fn royalties_flow_up_the_lineage_exactly() {
    let mut c = Chain::new();
    let (alice, bob, carol) = (key("alice"), key("bob"), key("carol"));
    c.register(&alice, cid("base"), 0);
    fund_exec(&mut c);
    c.send(&alice, TxBody::Transfer { to: bob.address(), amount: 10_000 }).unwrap();
    c.register_with(&bob, cid("child"), 0, vec![parent("base", 1_000)]).unwrap();
    c.register_with(&carol, cid("grand"), 10_001, vec![parent("child", 2_000), parent("base", 500)]).unwrap();
    let bal = |c: &Chain, k: &Keypair| c.balance(&k.address());
    let (a0, b0, c0) = (bal(&c, &alice), bal(&c, &bob), bal(&c, &carol));
    let e0 = bal(&c, &key("exec"));
    paid_call(&mut c, "grand", 10_001, 3);
    // grand: revenue 10001 -> child floor(2000.2)=2000, base floor(500.05)=500, owners 7501.
    // child: 2000 -> base 200, owners 1800. base: 500 + 200 = 700 to owners.
    assert_eq!(bal(&c, &alice) - a0, 700);
    assert_eq!(bal(&c, &bob) - b0, 1_800);
    // carol paid price + executor fee + two tx fees (request, and none for the receipt).
    assert_eq!(c0 - bal(&c, &carol), 10_001 + 3 + 10 - 7_501);
    assert_eq!(bal(&c, &key("exec")) + 10, e0 + 3, "executor fee, minus its receipt's tx fee");
    let m = |id: &str| query::model(&c.state, &cid(id)).unwrap();
    assert_eq!((m("grand").earnings, m("grand").royalties_out, m("grand").calls), (7_501, 2_500, 1));
    assert_eq!((m("child").earnings, m("child").royalties_in, m("child").royalties_out), (1_800, 2_000, 200));
    assert_eq!((m("base").earnings, m("base").royalties_in, m("base").calls), (700, 700, 0));
    assert_eq!(query::earnings(&c.state, &alice.address()).owner, 700);
    assert_eq!(query::earnings(&c.state, &key("exec").address()).executor, 3);
    let d = crate::distribute(&c.state, &cid("grand"), 10_001);
    assert_eq!(d.accounts.values().sum::<Amount>(), 10_001);
}

#[test]
fn lineage_refusals() {
    let mut c = Chain::new();
    let alice = key("alice");
    c.register(&alice, cid("base"), 0);
    assert_eq!(
        c.register_with(&alice, cid("x"), 0, vec![parent("ghost", 10)]),
        Err(TxError::UnknownParent(cid("ghost")))
    );
    let over = vec![parent("base", 5_001)];
    assert!(matches!(c.register_with(&alice, cid("x1"), 0, over), Err(TxError::BadParents(_))), "over the cap");
    let split_over = vec![parent("base", 2_500), Parent { model: cid("p2"), royalty_bps: 2_501 }];
    assert!(matches!(c.register_with(&alice, cid("x2"), 0, split_over), Err(TxError::BadParents(_))));
    let dup = vec![parent("base", 1), parent("base", 1)];
    assert!(matches!(c.register_with(&alice, cid("x3"), 0, dup), Err(TxError::BadParents(_))));
    let many: Vec<Parent> = (0..9).map(|i| parent(&format!("p{i}"), 1)).collect();
    assert!(matches!(c.register_with(&alice, cid("x4"), 0, many), Err(TxError::BadParents(_))));
    // Exactly the cap is fine; depth: a chain of 8 generations is allowed, 9 is not.
    c.register_with(&alice, cid("d1"), 0, vec![parent("base", 5_000)]).unwrap();
    for i in 2..=8 {
        c.register_with(&alice, cid(&format!("d{i}")), 0, vec![parent(&format!("d{}", i - 1), 1)]).unwrap();
    }
    assert_eq!(
        c.register_with(&alice, cid("d9"), 0, vec![parent("d8", 1)]),
        Err(TxError::LineageTooDeep { depth: 9, max: 8 })
    );
}

#[test]
fn the_earliest_live_commitment_takes_a_registration_over() {
    let mut c = long_ttl_chain();
    fund_exec(&mut c);
    let (alice, bob, carol) = (key("alice"), key("bob"), key("carol"));
    commit(&mut c, &carol, "m", "c"); // the true first
    commit(&mut c, &alice, "m", "a");
    reveal(&mut c, &alice, "m", "a", "stolen", vec![]).unwrap();
    assert_eq!(query::model(&c.state, &cid("m")).unwrap().registrant, alice.address());
    // A call settles to alice meanwhile; it stays paid.
    let before = c.balance(&alice.address());
    c.send(&alice, TxBody::SetLicense { model: cid("m"), price: 50 }).unwrap();
    paid_call(&mut c, "m", 50, 1);
    assert_eq!(c.balance(&alice.address()), before - 10 + 50);
    // A later commitment cannot take it.
    commit(&mut c, &bob, "m", "b");
    assert!(matches!(reveal(&mut c, &bob, "m", "b", "bob", vec![]), Err(TxError::CommitmentNotEarliest { .. })));
    // Carol's earlier one can.
    reveal(&mut c, &carol, "m", "c", "mine", vec![]).unwrap();
    let m = query::model(&c.state, &cid("m")).unwrap();
    assert_eq!((m.registrant, m.commit_height, m.name.as_str(), m.version), (carol.address(), 2, "mine", 1));
    assert_eq!(shares(&c, "m"), vec![(carol.address(), 10_000)]);
    assert_eq!((m.price, m.calls, m.earnings), (0, 1, 50), "carol's license; history kept");
    let stolen = query::name_versions(&c.state, "stolen");
    assert!(stolen[0].withdrawn);
    assert_eq!(query::name(&c.state, "stolen").unwrap().latest, None, "the name is free again");
}

#[test]
fn a_takeover_cannot_create_a_lineage_cycle() {
    let mut c = long_ttl_chain();
    let (alice, bob, carol) = (key("alice"), key("bob"), key("carol"));
    commit(&mut c, &carol, "m", "c");
    commit(&mut c, &carol, "m", "c2");
    commit(&mut c, &alice, "m", "a");
    reveal(&mut c, &alice, "m", "a", "m", vec![]).unwrap();
    c.register_with(&bob, cid("child"), 0, vec![parent("m", 100)]).unwrap();
    assert_eq!(reveal(&mut c, &carol, "m", "c", "m2", vec![parent("child", 10)]), Err(TxError::LineageCycle(cid("m"))));
    assert_eq!(reveal(&mut c, &carol, "m", "c2", "m2", vec![parent("m", 10)]), Err(TxError::LineageCycle(cid("m"))));
    // Without the cycle it goes through.
    reveal(&mut c, &carol, "m", "c", "m2", vec![]).unwrap();
}

#[test]
fn commitments_expire_and_are_collected() {
    let mut c = Chain::new(); // commit_ttl_blocks = 5
    let alice = key("alice");
    commit(&mut c, &alice, "m", "s"); // height 1, expires after 6
    let h = model_commitment(&cid("m"), &alice.address(), &Hash32::of(b"s"));
    while c.height < 6 {
        c.block(vec![]);
    }
    assert!(query::commitment(&c.state, &h).is_some());
    c.block(vec![]);
    assert!(query::commitment(&c.state, &h).is_none());
    assert!(c.state.scan_prefix(keys::COMMIT_QUEUE).is_empty());
}

#[test]
fn stake_unbonds_and_returns_after_the_delay() {
    let mut c = Chain::new(); // unbonding_blocks = 3
    let alice = key("alice");
    let supply = c.supply();
    let b0 = c.balance(&alice.address());
    c.send(&alice, TxBody::Stake { amount: 1_000 }).unwrap(); // height 1
    assert_eq!(query::executor(&c.state, &alice.public()).unwrap().stake, 1_000);
    assert_eq!(c.balance(&alice.address()), b0 - 1_000 - 10);
    assert!(matches!(c.send(&alice, TxBody::Stake { amount: 0 }), Err(TxError::BadAmount(_))));
    let e = c.send(&alice, TxBody::Unstake { amount: 1_001 }).unwrap_err();
    assert_eq!(e, TxError::InsufficientStake { staked: 1_000, requested: 1_001 });
    c.send(&alice, TxBody::Unstake { amount: 400 }).unwrap(); // height 4: releases at 7
    assert_eq!(query::executor(&c.state, &alice.public()).unwrap().stake, 600);
    assert_eq!(query::unbonding(&c.state, &alice.public())[0].release_height, 7);
    assert_eq!(c.supply(), supply);
    let bal = c.balance(&alice.address());
    while c.height < 6 {
        c.block(vec![]);
    }
    assert_eq!(c.balance(&alice.address()), bal, "still bonded at height 6");
    c.block(vec![]);
    assert_eq!(c.balance(&alice.address()), bal + 400, "released by block 7");
    assert!(query::unbonding(&c.state, &alice.public()).is_empty());
    assert!(c.state.scan_prefix(keys::UNBOND_QUEUE).is_empty());
    c.send(&alice, TxBody::Unstake { amount: 600 }).unwrap();
    assert!(query::executor(&c.state, &alice.public()).is_none(), "an emptied stake leaves no record");
    assert_eq!(c.supply(), supply);
}

#[test]
fn slash_takes_stake_then_unbonding_and_pays_the_beneficiary() {
    let mut c = Chain::new();
    let (alice, bob) = (key("alice"), key("bob"));
    c.send(&alice, TxBody::Stake { amount: 1_000 }).unwrap();
    c.send(&alice, TxBody::Unstake { amount: 300 }).unwrap();
    let supply = c.supply();
    let b0 = c.balance(&bob.address());
    let s = slash(&c.state, &alice.public(), 800, &bob.address()).unwrap();
    assert_eq!(s.slashed, 800);
    let mut st = c.state.clone();
    st.apply(&s.writes);
    assert_eq!(query::executor(&st, &alice.public()), None);
    assert_eq!(query::unbonding(&st, &alice.public())[0].amount, 200);
    assert_eq!(query::account(&st, &bob.address()).balance, b0 + 800);
    assert_eq!(query::total_supply(&st), supply);
    // More than there is: takes everything, no error.
    let s = slash(&st, &alice.public(), 10_000, &bob.address()).unwrap();
    assert_eq!(s.slashed, 200);
    st.apply(&s.writes);
    assert!(query::unbonding(&st, &alice.public()).is_empty() && st.scan_prefix(keys::UNBOND_QUEUE).is_empty());
    assert_eq!(query::total_supply(&st), supply);
    let none = slash(&MemState::new(), &alice.public(), 5, &bob.address()).unwrap();
    assert_eq!(none.slashed, 0);
}

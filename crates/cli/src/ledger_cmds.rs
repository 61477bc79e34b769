//! Commands on ownership and stake: share transfers, licenses, staking, earnings, and
//! Merkle proofs of facts checked against a block header proven final.

use crate::{
    Fail, ModelCmd, ProveCmd,
    commands::{Ctx, build_tx, submit_and_wait},
};
use anyhow::{Context, Result};
use deed_types::{Address, BlockHeader, Cid, Hash32, TxBody, tx::Parent};
use serde_json::{Value, json};

/// Decodes a proven state value; a proven value that does not decode means the chain
/// itself is broken, which is reported rather than trusted.
fn decode<T: borsh::BorshDeserialize>(v: &[u8]) -> Result<T> {
    borsh::from_slice(v)
        .map_err(|e| Fail::new(crate::EXIT_NOT_VERIFIED, format!("proven value does not decode: {e}")).into())
}

/// Parses `ID:BPS`.
pub fn parse_parent(s: &str) -> Result<Parent> {
    let (id, bps) = s
        .rsplit_once(':')
        .ok_or_else(|| Fail::new(2, format!("--parent '{s}': expected MODEL_ID:BPS, e.g. bafkr...:1000 for 10%")))?;
    let model: Cid = id.parse()?;
    let royalty_bps: u16 = bps
        .parse()
        .ok()
        .filter(|b| *b <= 10_000)
        .ok_or_else(|| Fail::new(2, format!("--parent '{s}': royalty must be basis points, 0..=10000")))?;
    Ok(Parent { model, royalty_bps })
}

fn signer_addr(ctx: &Ctx, addr: Option<String>) -> Result<Address> {
    Ok(match addr {
        Some(a) => a.parse()?,
        None => ctx.signer()?.address(),
    })
}

/// `deed model transfer|license`.
pub fn model_action(ctx: &Ctx, action: ModelCmd) -> Result<()> {
    let key = ctx.signer()?;
    let c = ctx.client()?;
    let (body, what) = match action {
        ModelCmd::Transfer { id, to, bps } => {
            if bps == 0 || bps > 10_000 {
                return Err(Fail::new(2, "bps must be between 1 and 10000").into());
            }
            (TxBody::TransferShares { model: id.parse()?, to: to.parse()?, bps }, "share transfer")
        }
        ModelCmd::License { id, price, open } => {
            let price = if open { 0 } else { price.unwrap_or(0) };
            (TxBody::SetLicense { model: id.parse()?, price }, "license change")
        }
    };
    let model = match &body {
        TxBody::TransferShares { model, .. } | TxBody::SetLicense { model, .. } => *model,
        _ => unreachable!("only model actions are built here"),
    };
    let asked = match &body {
        TxBody::SetLicense { price, .. } => Some(*price),
        _ => None,
    };
    let tx = build_tx(&c, &key, body)?;
    let (hash, height) = submit_and_wait(ctx, &c, &tx, what)?;
    let m = c.get(&format!("/v1/models/{model}"))?;
    let mut v = json!({ "tx": hash, "height": height, "model": m });
    // A license change is a vote: it applies once the owners voting for the price hold
    // a majority of shares. Say which happened.
    let applied = asked.map(|p| m["price"].as_str() == Some(p.to_string().as_str()));
    if let Some(applied) = applied {
        v["applied"] = json!(applied);
    }
    ctx.emit(&v, || {
        let head = match (applied, asked) {
            (Some(true), Some(p)) => format!("license changed in block {height}: price {p}\n"),
            (Some(false), Some(p)) => {
                let voted: u64 = m["license_votes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|x| x["price"].as_str() == Some(p.to_string().as_str()))
                    .filter_map(|x| {
                        let voter = x["voter"].as_str()?;
                        m["owners"].as_array()?.iter().find(|o| o["address"] == voter)?["bps"].as_u64()
                    })
                    .sum();
                format!(
                    "license vote recorded in block {height}: owners holding {}.{:02}% voted for price {p}; more than 50% changes it\n",
                    voted / 100,
                    voted % 100
                )
            }
            _ => format!("{what} included in block {height}\n"),
        };
        let mut s = format!("{head}price: {}\nowners:\n", m["price"].as_str().unwrap_or(""));
        for o in m["owners"].as_array().into_iter().flatten() {
            let bps = o["bps"].as_u64().unwrap_or(0);
            s.push_str(&format!("  {} {}.{:02}%\n", o["address"].as_str().unwrap_or(""), bps / 100, bps % 100));
        }
        s
    });
    Ok(())
}

/// `deed stake` / `deed unstake`.
pub fn stake(ctx: &Ctx, amount: u128, stake: bool) -> Result<()> {
    let key = ctx.signer()?;
    let c = ctx.client()?;
    let body = if stake { TxBody::Stake { amount } } else { TxBody::Unstake { amount } };
    let what = if stake { "stake" } else { "unstake" };
    let tx = build_tx(&c, &key, body)?;
    let (hash, height) = submit_and_wait(ctx, &c, &tx, what)?;
    let execs = c.get("/v1/executors")?;
    let me = execs["executors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["key"].as_str() == Some(key.public().to_string().as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    let v = json!({ "tx": hash, "height": height, "executor": me });
    ctx.emit(&v, || {
        format!("{what} of {amount} included in block {height}\nstake now: {}\n", me["stake"].as_str().unwrap_or("0"))
    });
    Ok(())
}

/// `deed earnings [ADDR]`.
pub fn earnings(ctx: &Ctx, addr: Option<String>) -> Result<()> {
    let addr = signer_addr(ctx, addr)?;
    let c = ctx.client()?;
    let v = c.get(&format!("/v1/earnings/{addr}"))?;
    ctx.emit(&v, || {
        let mut s = format!(
            "{addr}\n  as owner:    {}\n  as executor: {}\n",
            v["earnings"]["owner"].as_str().unwrap_or("0"),
            v["earnings"]["executor"].as_str().unwrap_or("0")
        );
        for m in v["models"].as_array().into_iter().flatten() {
            let bps = m["bps"].as_u64().unwrap_or(0);
            s.push_str(&format!(
                "  {} {} {}.{:02}% of {} calls, model earnings {}\n",
                m["model"].as_str().unwrap_or(""),
                m["name"].as_str().unwrap_or(""),
                bps / 100,
                bps % 100,
                m["calls"],
                m["earnings"].as_str().unwrap_or("0")
            ));
        }
        s
    });
    Ok(())
}

/// `deed prove …`: fetches a proof and checks it locally before trusting a byte of the
/// value: the node is on the trusted genesis ([`crate::trust::anchor`]), the proof's block
/// is final by that genesis's validators ([`crate::trust::final_block`]: a quorum's
/// finalization certificate, or the sole validator's signature on a solo chain), and
/// the Merkle path leads from the value to that block's state root.
pub fn prove(ctx: &Ctx, what: ProveCmd) -> Result<()> {
    let c = ctx.client()?;
    let (kind, key) = match what {
        ProveCmd::Balance { addr } => ("account", signer_addr(ctx, addr)?.to_string()),
        ProveCmd::Earnings { addr } => ("earnings", signer_addr(ctx, addr)?.to_string()),
        ProveCmd::Model { id } => ("model", id.parse::<Cid>()?.to_string()),
        ProveCmd::Job { id } => ("job", id.parse::<Hash32>()?.to_string()),
    };
    let anchor = crate::trust::anchor(ctx, &c)?;
    let p = c.get(&format!("/v1/proofs/{kind}/{key}"))?;
    let header: BlockHeader = serde_json::from_value(p["header"].clone()).context("proof lacks a header")?;
    let proof: deed_ledger::StateProof = serde_json::from_value(p["proof"].clone()).context("malformed proof")?;
    let state_key = hex::decode(p["key"].as_str().unwrap_or_default()).context("malformed key")?;
    let fail = |why: String| -> Result<()> {
        Err(Fail::new(crate::EXIT_NOT_VERIFIED, format!("proof rejected: {why}")).into())
    };
    let expected_key = match kind {
        "account" => deed_ledger::keys::account(&key.parse()?),
        "earnings" => deed_ledger::keys::earnings(&key.parse()?),
        "model" => deed_ledger::keys::model(&key.parse()?),
        _ => deed_ledger::keys::job(&key.parse()?),
    };
    if state_key != expected_key {
        return fail("the node proved a different key than the one asked for".into());
    }
    let (ev, fin) = match crate::trust::final_block(&c, &anchor, header.height) {
        Ok(x) => x,
        Err(why) => return fail(why),
    };
    if ev.header != header {
        return fail(format!(
            "the proof is against a block {} ({}) that is not the final block at that height ({})",
            header.height,
            header.hash(),
            ev.header.hash()
        ));
    }
    if !deed_ledger::verify_proof(&header.state_root, &state_key, proof.value.as_deref(), &proof) {
        return fail(format!("the Merkle path does not lead to block {}'s state root", header.height));
    }
    let value: Value = match (&proof.value, kind) {
        (None, "account") => serde_json::to_value(deed_ledger::Account::default())?,
        (None, "earnings") => serde_json::to_value(deed_ledger::Earnings::default())?,
        (None, _) => Value::Null,
        (Some(v), "account") => serde_json::to_value(decode::<deed_ledger::Account>(v)?)?,
        (Some(v), "earnings") => serde_json::to_value(decode::<deed_ledger::Earnings>(v)?)?,
        (Some(v), "model") => serde_json::to_value(decode::<deed_ledger::ModelRecord>(v)?)?,
        (Some(v), _) => serde_json::to_value(decode::<deed_ledger::Job>(v)?)?,
    };
    let out = json!({
        "verified": true, "kind": kind, "key": key, "height": header.height, "block": header.hash(),
        "state_root": header.state_root, "present": proof.value.is_some(), "value": value,
        "finality": fin.how, "trust": anchor.to_json(),
    });
    ctx.emit(&out, || {
        format!(
            "trust: {}\nfinality: block {} {}\nPROVEN at height {} (state root {}):\n{}\n",
            anchor.describe(),
            header.height,
            fin.how,
            header.height,
            header.state_root,
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )
    });
    Ok(())
}

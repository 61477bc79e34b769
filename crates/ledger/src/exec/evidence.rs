//! Equivocation evidence: two consensus votes signed by one validator for two different
//! proposals in the same round.
//!
//! A vote message is what commonware simplex (ed25519) signs:
//! `varint(len(ns)) ‖ ns ‖ epoch ‖ view ‖ parent_view ‖ payload`, where
//! `ns = "deed-simplex/" ‖ chain_id ‖ ("_NOTARIZE" | "_FINALIZE")`, the three numbers are
//! LEB128 varints and `payload` is the 32-byte block digest. Two messages conflict when
//! they have the same namespace, epoch and view and differ in (parent view, payload).
//! The ledger parses only this; it does not depend on the consensus library.

use crate::error::TxError;
use deed_types::{PublicKey, Signature};

/// The consensus namespace of a chain (the same string the node signs under).
pub fn consensus_namespace(chain_id: &str) -> Vec<u8> {
    format!("deed-simplex/{chain_id}").into_bytes()
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A parsed vote: (kind suffix, epoch, view, parent view, payload).
fn parse(chain_id: &str, m: &[u8]) -> Option<(&'static str, u64, u64, u64, [u8; 32])> {
    let base = consensus_namespace(chain_id);
    let mut at = 0;
    let ns_len = usize::try_from(varint(m, &mut at)?).ok()?;
    let ns = m.get(at..at.checked_add(ns_len)?)?;
    at += ns_len;
    let kind = match ns.strip_prefix(base.as_slice())? {
        b"_NOTARIZE" => "notarize",
        b"_FINALIZE" => "finalize",
        _ => return None,
    };
    let epoch = varint(m, &mut at)?;
    let view = varint(m, &mut at)?;
    let parent = varint(m, &mut at)?;
    let payload: [u8; 32] = m.get(at..)?.try_into().ok()?;
    Some((kind, epoch, view, parent, payload))
}

/// Checks that `(vote_a, sig_a)` and `(vote_b, sig_b)` are two conflicting votes signed by
/// `validator` on this chain.
pub(crate) fn check(
    chain_id: &str,
    validator: &PublicKey,
    vote_a: &[u8],
    sig_a: &Signature,
    vote_b: &[u8],
    sig_b: &Signature,
) -> Result<(), TxError> {
    let bad = |s: &str| TxError::BadEvidence(s.to_string());
    let a = parse(chain_id, vote_a).ok_or_else(|| bad("vote A is not a consensus vote of this chain"))?;
    let b = parse(chain_id, vote_b).ok_or_else(|| bad("vote B is not a consensus vote of this chain"))?;
    if (a.0, a.1, a.2) != (b.0, b.1, b.2) {
        return Err(bad("the votes are for different rounds or of different kinds"));
    }
    if (a.3, a.4) == (b.3, b.4) {
        return Err(bad("the votes are for the same proposal"));
    }
    validator.verify(vote_a, sig_a).map_err(|_| bad("vote A is not signed by the validator"))?;
    validator.verify(vote_b, sig_b).map_err(|_| bad("vote B is not signed by the validator"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use deed_types::Keypair;

    fn vote(chain: &str, kind: &str, view: u8, payload: u8) -> Vec<u8> {
        let mut ns = consensus_namespace(chain);
        ns.extend_from_slice(kind.as_bytes());
        let mut m = vec![ns.len() as u8];
        m.extend_from_slice(&ns);
        m.extend_from_slice(&[0, view, view - 1]);
        m.extend_from_slice(&[payload; 32]);
        m
    }

    #[test]
    fn conflicting_votes_are_evidence_and_others_are_not() {
        let k = Keypair::dev("validator");
        let (a, b) = (vote("c", "_NOTARIZE", 5, 1), vote("c", "_NOTARIZE", 5, 2));
        let (sa, sb) = (k.sign(&a), k.sign(&b));
        check("c", &k.public(), &a, &sa, &b, &sb).unwrap();
        // Same proposal twice, different rounds, another chain, another kind, wrong signer.
        assert!(check("c", &k.public(), &a, &sa, &a, &sa).is_err());
        let c = vote("c", "_NOTARIZE", 6, 2);
        assert!(check("c", &k.public(), &a, &sa, &c, &k.sign(&c)).is_err());
        assert!(check("other", &k.public(), &a, &sa, &b, &sb).is_err());
        let f = vote("c", "_FINALIZE", 5, 2);
        assert!(check("c", &k.public(), &a, &sa, &f, &k.sign(&f)).is_err());
        let other = Keypair::dev("someone");
        assert!(check("c", &other.public(), &a, &sa, &b, &sb).is_err());
    }
}

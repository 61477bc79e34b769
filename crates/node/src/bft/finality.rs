//! Checking finality without voting: a full node commits a block only with a simplex
//! finalization certificate for it — finalize votes of a quorum of the genesis
//! validators (more than two thirds), each an ed25519 signature over the block's header
//! hash in the chain's namespace ([`super::engine::namespace`]). Validators send the
//! certificate their consensus reported with the block ([`super::wire::Wire::Finalized`]);
//! blocks under a certified one are anchored to it by parent hashes.

use super::actor::to_consensus_key;
use super::chain::digest_of;
use commonware_codec::{Decode, Encode};
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::simplex::types::Finalization;
use commonware_cryptography::sha256::Digest;
use commonware_parallel::Sequential;
use commonware_utils::ordered::Set;
use deed_types::{Block, PublicKey};
use rand_core::CryptoRng;

/// A finalization certificate of the ed25519 simplex scheme over a block digest.
pub type Certificate = Finalization<Scheme, Digest>;

/// Encodes a certificate for the wire.
pub fn encode(c: &Certificate) -> Vec<u8> {
    c.encode().to_vec()
}

/// Verifies finalization certificates against the genesis validator set.
#[derive(Clone, Debug)]
pub struct Finality {
    scheme: Scheme,
    participants: usize,
}

impl Finality {
    /// A verifier for the validators of chain `chain_id`.
    pub fn new(chain_id: &str, validators: &[PublicKey]) -> Self {
        let set: Set<_> = Set::from_iter_dedup(validators.iter().map(to_consensus_key));
        let participants = set.len();
        Finality { scheme: Scheme::verifier(&super::engine::namespace(chain_id), set), participants }
    }

    /// Checks that `certificate` (encoded) finalizes `block`: it decodes whole, names
    /// this block's digest, and carries valid signatures of a quorum of validators over
    /// it in this chain's namespace. Returns the consensus view it was finalized in.
    pub fn check<R: CryptoRng>(&self, rng: &mut R, block: &Block, certificate: &[u8]) -> Result<u64, String> {
        let c = Certificate::decode_cfg(bytes::Bytes::copy_from_slice(certificate), &self.participants)
            .map_err(|e| format!("malformed finalization certificate: {e}"))?;
        if c.proposal.payload != digest_of(block) {
            return Err("the certificate finalizes another block".into());
        }
        if !c.verify(rng, &self.scheme, &Sequential) {
            return Err("the certificate's signatures are not a valid quorum of the validators".into());
        }
        Ok(c.proposal.round.view().get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::DecodeExt;
    use commonware_consensus::simplex::types::{Finalize, Proposal};
    use commonware_consensus::types::{Epoch, Round, View};
    use commonware_cryptography::certificate::Signers;
    use commonware_cryptography::ed25519;
    use commonware_runtime::{Runner, deterministic};
    use commonware_utils::iter::NonEmpty;
    use deed_types::{BlockHeader, Hash32, Keypair};

    /// A certificate over `block` signed by the validators `signers` (indices into
    /// `keys`) in chain `chain_id`'s namespace.
    fn certify(chain_id: &str, keys: &[Keypair], signers: &[usize], block: &Block, view: u64) -> Vec<u8> {
        let set: Set<ed25519::PublicKey> = Set::from_iter_dedup(keys.iter().map(|k| to_consensus_key(&k.public())));
        let ns = super::super::engine::namespace(chain_id);
        let proposal = Proposal::new(Round::new(Epoch::zero(), View::new(view)), View::new(view - 1), digest_of(block));
        // Consensus never assembles fewer than a quorum; a forged short certificate is
        // made from a quorum's, keeping the first `signers.len()` signatures.
        let short = signers.len() < 3;
        let signing: Vec<usize> = if short { (0..3).collect() } else { signers.to_vec() };
        let votes: Vec<Finalize<Scheme, Digest>> = signing
            .iter()
            .map(|i| {
                let sk = ed25519::PrivateKey::decode(keys[*i].seed().to_vec()).unwrap();
                let s = Scheme::signer(&ns, set.clone(), sk).unwrap();
                Finalize::sign(&s, proposal.clone()).unwrap()
            })
            .collect();
        let any = Scheme::verifier(&ns, set.clone());
        let mut it = votes.into_iter();
        let first = it.next().unwrap();
        let mut c = Certificate::from_owned_finalizes(&any, NonEmpty::new(first, it), &Sequential).unwrap();
        if short {
            let n = signers.len();
            let who = (0..n as u32).map(commonware_utils::Participant::new);
            c.certificate.signers = Signers::try_from((&set, who)).unwrap();
            c.certificate.signatures.truncate(n);
        }
        encode(&c)
    }

    fn block(keys: &[Keypair], height: u64) -> Block {
        let header = BlockHeader {
            chain_id: "c".into(),
            height,
            parent: Hash32::ZERO,
            time_ms: 1,
            tx_root: Block::tx_root(&[]),
            state_root: Hash32::ZERO,
            proposer: keys[0].public(),
        };
        Block::seal(header, Vec::new(), &keys[0])
    }

    #[test]
    fn only_a_quorum_over_this_block_in_this_chain_passes() {
        let keys: Vec<Keypair> = (0..4).map(|i| Keypair::dev(&format!("finality-{i}"))).collect();
        let vals: Vec<PublicKey> = keys.iter().map(|k| k.public()).collect();
        let f = Finality::new("c", &vals);
        let b = block(&keys, 1);
        deterministic::Runner::default().start(|mut ctx| async move {
            // Three of four: a quorum.
            assert_eq!(f.check(&mut ctx, &b, &certify("c", &keys, &[0, 1, 3], &b, 5)), Ok(5));
            assert!(f.check(&mut ctx, &b, &certify("c", &keys, &[0, 1, 2, 3], &b, 2)).is_ok());
            // Two of four: not a quorum.
            let e = f.check(&mut ctx, &b, &certify("c", &keys, &[0, 1], &b, 5)).unwrap_err();
            assert!(e.contains("quorum"), "{e}");
            // Another block's certificate.
            let other = block(&keys, 2);
            let e = f.check(&mut ctx, &b, &certify("c", &keys, &[0, 1, 2], &other, 5)).unwrap_err();
            assert!(e.contains("another block"), "{e}");
            // Signed for another chain (namespace).
            assert!(f.check(&mut ctx, &b, &certify("d", &keys, &[0, 1, 2], &b, 5)).is_err());
            // Signed by keys that are not the validators.
            let strangers: Vec<Keypair> = (0..4).map(|i| Keypair::dev(&format!("stranger-{i}"))).collect();
            assert!(f.check(&mut ctx, &b, &certify("c", &strangers, &[0, 1, 2], &b, 5)).is_err());
            // A flipped bit in a signature; truncated and trailing bytes; garbage.
            let good = certify("c", &keys, &[0, 1, 2], &b, 5);
            let mut bad = good.clone();
            let n = bad.len();
            bad[n - 1] ^= 1;
            assert!(f.check(&mut ctx, &b, &bad).is_err());
            assert!(f.check(&mut ctx, &b, &good[..n - 1]).is_err());
            assert!(f.check(&mut ctx, &b, &[good.clone(), vec![0]].concat()).is_err());
            assert!(f.check(&mut ctx, &b, &[]).is_err());
            assert!(f.check(&mut ctx, &b, &[0xff; 200]).is_err());
        });
    }
}

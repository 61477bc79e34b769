//! Checking finality without voting: a full node commits a block only with a simplex
//! finalization certificate for it — finalize votes of a quorum of the genesis
//! validators (more than two thirds), each an ed25519 signature over the block's header
//! hash in the chain's namespace ([`super::engine::namespace`]). Validators send the
//! certificate their consensus reported with the block ([`super::wire::Wire::Finalized`]);
//! blocks under a certified one are anchored to it by parent hashes.
//!
//! The same check serves clients that trust no node ([`Evidence`], [`verify_evidence`]):
//! a node stores each certificate it committed a block with (the chain database's
//! finalizations) and serves, for a height, the certificate of that block or of the
//! nearest certified block above it with the headers linking the two. A client checks it
//! against the validators of a genesis it pinned itself. A solo chain's single genesis
//! validator is its only producer: its signature over a header is that block's finality.

use super::actor::to_consensus_key;
use commonware_codec::{Decode, Encode};
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::simplex::types::Finalization;
use commonware_cryptography::sha256::Digest;
use commonware_parallel::Sequential;
use commonware_utils::ordered::Set;
use deed_types::{Block, BlockHeader, Genesis, Hash32, PublicKey, Signature};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

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
        self.check_header(rng, &block.header, certificate)
    }

    /// [`Finality::check`] of a block known by its header alone (a block's consensus
    /// digest is its header hash).
    pub fn check_header<R: CryptoRng>(
        &self,
        rng: &mut R,
        header: &BlockHeader,
        certificate: &[u8],
    ) -> Result<u64, String> {
        let c = Certificate::decode_cfg(bytes::Bytes::copy_from_slice(certificate), &self.participants)
            .map_err(|e| format!("malformed finalization certificate: {e}"))?;
        if c.proposal.payload != super::chain::to_digest(header.hash()) {
            return Err("the certificate finalizes another block".into());
        }
        if !c.verify(rng, &self.scheme, &Sequential) {
            return Err("the certificate's signatures are not a valid quorum of the validators".into());
        }
        Ok(c.proposal.round.view().get())
    }
}

/// Assembles a finalization certificate over `header` in chain `chain_id`'s namespace,
/// with the finalize votes of `signers` (keys among `validators`, the genesis set) in
/// `view`: what consensus assembles, for tests and benchmarks that need a real one.
pub fn certify(
    chain_id: &str,
    validators: &[PublicKey],
    signers: &[&deed_types::Keypair],
    header: &BlockHeader,
    view: u64,
) -> Result<Vec<u8>, String> {
    use commonware_codec::DecodeExt;
    use commonware_consensus::simplex::types::{Finalize, Proposal};
    use commonware_consensus::types::{Epoch, Round, View};
    let set: Set<_> = Set::from_iter_dedup(validators.iter().map(to_consensus_key));
    let ns = super::engine::namespace(chain_id);
    let round = Round::new(Epoch::zero(), View::new(view));
    let proposal = Proposal::new(round, View::new(view.saturating_sub(1)), super::chain::to_digest(header.hash()));
    let mut votes = Vec::with_capacity(signers.len());
    for k in signers {
        let sk = commonware_cryptography::ed25519::PrivateKey::decode(k.seed().to_vec()).map_err(|e| e.to_string())?;
        let s = Scheme::signer(&ns, set.clone(), sk).ok_or("a signer is not among the validators")?;
        votes.push(Finalize::sign(&s, proposal.clone()).ok_or("signing a finalize vote failed")?);
    }
    let mut it = votes.into_iter();
    let first = it.next().ok_or("no signers")?;
    let any = Scheme::verifier(&ns, set);
    let c = Certificate::from_owned_finalizes(&any, commonware_utils::iter::NonEmpty::new(first, it), &Sequential)
        .map_err(|e| format!("the votes do not make a certificate: {e:?}"))?;
    Ok(encode(&c))
}

/// Most headers finality evidence links from a block up to the certified block above it
/// (a node serves none longer; a client refuses longer ones).
pub const EVIDENCE_CHAIN_LEN_MAX: u64 = 1_024;

/// Why a block is final, as a node serves it (`GET /v1/finality/{height}`) and a client
/// checks it against a genesis it trusts ([`verify_evidence`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The block's header.
    pub header: BlockHeader,
    /// What makes it final.
    #[serde(flatten)]
    pub proof: Proof,
}

/// What makes a block final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Proof {
    /// A solo chain: the one genesis validator produces every block, so its signature
    /// over the header hash is the block's finality.
    Solo {
        /// The producer's signature over the header hash.
        signature: Signature,
    },
    /// A BFT chain: a simplex finalization certificate of a quorum of the genesis
    /// validators, over this block or over a descendant `chain` links it to.
    Bft {
        /// The certificate (commonware codec), hex.
        certificate: String,
        /// The headers above the block up to the certified one, each the child of the one
        /// before (empty when the certificate is the block's own).
        chain: Vec<BlockHeader>,
    },
}

/// What [`verify_evidence`] established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The final block's height.
    pub height: u64,
    /// Its header hash.
    pub block: Hash32,
    /// How it was checked, for people.
    pub how: String,
}

/// An OS-backed [`CryptoRng`] (the randomness of batch signature verification).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl rand_core::TryRng for OsRandom {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        getrandom::fill(dst).expect("the operating system's random source failed");
        Ok(())
    }
}

impl rand_core::TryCryptoRng for OsRandom {}

/// Checks that `ev` proves its header final on the chain `genesis` starts: the header is
/// of this chain, and either (solo) the genesis names exactly one validator and it signed
/// the header, or (BFT) `chain` links the header to a block a quorum of the genesis
/// validators certified final in this chain's namespace. Nothing the node says about its
/// own genesis or mode is trusted: a header signature on a chain of several validators is
/// refused, whatever the node calls itself.
pub fn verify_evidence(genesis: &Genesis, ev: &Evidence) -> Result<Verified, String> {
    let h = &ev.header;
    if h.chain_id != genesis.chain_id {
        return Err(format!(
            "block {} is of chain '{}', the trusted genesis is of '{}'",
            h.height, h.chain_id, genesis.chain_id
        ));
    }
    let block = h.hash();
    match &ev.proof {
        Proof::Solo { signature } => {
            let [only] = genesis.validators.as_slice() else {
                return Err(format!(
                    "block {} comes with a producer's signature only, but the trusted genesis names {} \
                     validators: only a finalization certificate of a quorum of them makes it final",
                    h.height,
                    genesis.validators.len()
                ));
            };
            if h.proposer != *only {
                return Err(format!(
                    "block {} was signed by {}, not by the chain's sole validator {only}",
                    h.height, h.proposer
                ));
            }
            only.verify(&block.0, signature)
                .map_err(|_| format!("block {}'s header signature by the sole validator is invalid", h.height))?;
            Ok(Verified { height: h.height, block, how: format!("signed by the sole genesis validator {only}") })
        }
        Proof::Bft { certificate, chain } => {
            if chain.len() as u64 > EVIDENCE_CHAIN_LEN_MAX {
                return Err(format!(
                    "finality evidence links {} headers, more than {EVIDENCE_CHAIN_LEN_MAX}",
                    chain.len()
                ));
            }
            let mut tip = h;
            for next in chain {
                if next.parent != tip.hash() || next.height != tip.height + 1 || next.chain_id != h.chain_id {
                    return Err(format!(
                        "the header at height {} is not the child of block {} ({})",
                        next.height,
                        tip.height,
                        tip.hash()
                    ));
                }
                tip = next;
            }
            let cert = hex::decode(certificate).map_err(|e| format!("certificate is not hex: {e}"))?;
            let view = Finality::new(&genesis.chain_id, &genesis.validators)
                .check_header(&mut OsRandom, tip, &cert)
                .map_err(|e| format!("block {}: {e}", tip.height))?;
            let n = genesis.validators.len();
            let how = if tip.height == h.height {
                format!("certified final by a quorum of the {n} genesis validators (view {view})")
            } else {
                format!(
                    "an ancestor of block {} ({}), certified final by a quorum of the {n} genesis validators (view {view})",
                    tip.height,
                    tip.hash()
                )
            };
            Ok(Verified { height: h.height, block, how })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bft::chain::digest_of;
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

    fn genesis_of(chain_id: &str, keys: &[Keypair]) -> Genesis {
        let vals: Vec<PublicKey> = keys.iter().map(|k| k.public()).collect();
        crate::bft::testnet_genesis(chain_id, &vals, &[], 1)
    }

    /// Block `height` of chain "c" on `parent`, sealed by `producer`.
    fn child(producer: &Keypair, parent: &BlockHeader, height: u64) -> Block {
        let header = BlockHeader {
            chain_id: "c".into(),
            height,
            parent: parent.hash(),
            time_ms: height,
            tx_root: Block::tx_root(&[]),
            state_root: Hash32::of(&height.to_le_bytes()),
            proposer: producer.public(),
        };
        Block::seal(header, Vec::new(), producer)
    }

    fn bft(header: &BlockHeader, cert: &[u8], chain: Vec<BlockHeader>) -> Evidence {
        Evidence { header: header.clone(), proof: Proof::Bft { certificate: hex::encode(cert), chain } }
    }

    #[test]
    fn clients_accept_only_a_trusted_quorum_or_a_sole_validator() {
        let keys: Vec<Keypair> = (0..4).map(|i| Keypair::dev(&format!("finality-{i}"))).collect();
        let g = genesis_of("c", &keys);
        let b1 = block(&keys, 1);
        let b2 = child(&keys[1], &b1.header, 2);
        let b3 = child(&keys[2], &b2.header, 3);
        deterministic::Runner::default().start(|_| async move {
            // Its own certificate; a descendant's, linked by the headers between.
            let own = certify("c", &keys, &[0, 1, 2], &b1, 4);
            let v = verify_evidence(&g, &bft(&b1.header, &own, vec![])).unwrap();
            assert_eq!((v.height, v.block), (1, b1.header.hash()));
            let above = certify("c", &keys, &[1, 2, 3], &b3, 6);
            let v = verify_evidence(&g, &bft(&b1.header, &above, vec![b2.header.clone(), b3.header.clone()])).unwrap();
            assert_eq!((v.height, v.block), (1, b1.header.hash()));
            assert!(v.how.contains("ancestor of block 3"), "{}", v.how);
            // A certificate of another block (here its child, presented as its own).
            let e = verify_evidence(&g, &bft(&b1.header, &certify("c", &keys, &[0, 1, 2], &b2, 5), vec![]));
            assert!(e.unwrap_err().contains("another block"));
            // A link that is not the child: a forged header's hash breaks the chain.
            let mut forged = b1.header.clone();
            forged.state_root = Hash32::of(b"forged");
            let e = verify_evidence(&g, &bft(&forged, &above, vec![b2.header.clone(), b3.header.clone()]));
            assert!(e.unwrap_err().contains("not the child"));
            // Skipping a link.
            let e = verify_evidence(&g, &bft(&b1.header, &above, vec![b3.header.clone()]));
            assert!(e.unwrap_err().contains("not the child"));
            // Two of four; strangers' quorum; another chain's validators (namespace).
            let e = verify_evidence(&g, &bft(&b1.header, &certify("c", &keys, &[0, 1], &b1, 4), vec![]));
            assert!(e.unwrap_err().contains("quorum"));
            let strangers: Vec<Keypair> = (0..4).map(|i| Keypair::dev(&format!("stranger-{i}"))).collect();
            let e = verify_evidence(&g, &bft(&b1.header, &certify("c", &strangers, &[0, 1, 2], &b1, 4), vec![]));
            assert!(e.is_err());
            let e = verify_evidence(&g, &bft(&b1.header, &certify("d", &keys, &[0, 1, 2], &b1, 4), vec![]));
            assert!(e.is_err());
            // Checked against a genesis of other validators, the honest evidence fails.
            let other = genesis_of("c", &strangers);
            assert!(verify_evidence(&other, &bft(&b1.header, &own, vec![])).is_err());
            // The public assembler makes the same certificates; fewer than a quorum, none.
            let vals: Vec<PublicKey> = keys.iter().map(|k| k.public()).collect();
            let made = super::certify("c", &vals, &[&keys[3], &keys[1], &keys[0]], &b1.header, 9).unwrap();
            assert!(verify_evidence(&g, &bft(&b1.header, &made, vec![])).is_ok());
            assert!(super::certify("c", &vals, &[&keys[0], &keys[1]], &b1.header, 9).is_err());
            assert!(super::certify("c", &vals, &[&strangers[0]], &b1.header, 9).is_err());
            // Not hex.
            let bad =
                Evidence { header: b1.header.clone(), proof: Proof::Bft { certificate: "zz".into(), chain: vec![] } };
            assert!(verify_evidence(&g, &bad).unwrap_err().contains("hex"));

            // A validator's header signature alone is not finality among four.
            let solo = |b: &Block| Evidence { header: b.header.clone(), proof: Proof::Solo { signature: b.signature } };
            let e = verify_evidence(&g, &solo(&b1)).unwrap_err();
            assert!(e.contains("4 validators"), "{e}");
            // On a chain of one validator, its signature is; a non-validator's is not.
            let one = genesis_of("c", &keys[..1]);
            assert!(verify_evidence(&one, &solo(&b1)).is_ok());
            let e = verify_evidence(&one, &solo(&b2)).unwrap_err();
            assert!(e.contains("not by the chain's sole validator"), "{e}");
            // The sole validator named as proposer, but the signature is another key's.
            let mut claimed = b2.clone();
            claimed.header.proposer = keys[0].public();
            let e = verify_evidence(&one, &solo(&claimed)).unwrap_err();
            assert!(e.contains("invalid"), "{e}");
            // Another chain's header.
            let e = verify_evidence(&genesis_of("other", &keys[..1]), &solo(&b1)).unwrap_err();
            assert!(e.contains("chain"), "{e}");
            // The wire form round-trips (what the API serves and clients parse).
            let ev = bft(&b1.header, &above, vec![b2.header.clone(), b3.header.clone()]);
            let json = serde_json::to_value(&ev).unwrap();
            assert_eq!(json["mode"], "bft");
            assert_eq!(serde_json::from_value::<Evidence>(json).unwrap(), ev);
            let json = serde_json::to_value(solo(&b1)).unwrap();
            assert_eq!(json["mode"], "solo");
            assert_eq!(serde_json::from_value::<Evidence>(json).unwrap(), solo(&b1));
        });
    }
}

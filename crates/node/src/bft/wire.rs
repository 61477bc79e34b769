//! Messages the application sends its peers over p2p, besides consensus's own: block
//! relay, ancestor requests for catching up, transaction gossip, and finalized blocks
//! with their certificates for full nodes. Borsh on the wire;
//! every message is bounded by [`MESSAGE_BYTES_MAX`] at the p2p layer.

use borsh::{BorshDeserialize, BorshSerialize};
use deed_types::{Block, Cid, Hash32, SignedTx};

/// p2p channel of consensus votes.
pub const CHANNEL_VOTES: u64 = 0;
/// p2p channel of consensus certificates.
pub const CHANNEL_CERTS: u64 = 1;
/// p2p channel of consensus's certificate resolver.
pub const CHANNEL_RESOLVER: u64 = 2;
/// p2p channel of blocks (relay and catch-up).
pub const CHANNEL_BLOCKS: u64 = 3;
/// p2p channel of transaction gossip.
pub const CHANNEL_TXS: u64 = 4;
/// p2p channel of blob transfer (the blob resolver: [`super::fetch`]).
pub const CHANNEL_BLOBS: u64 = 5;

/// Largest p2p message (a block of `block_txs_max` transactions fits).
pub const MESSAGE_BYTES_MAX: u32 = 16 << 20;
/// Most blocks in one ancestors answer.
pub const ANCESTORS_LEN_MAX: u32 = 64;
/// Most transactions in one gossip message.
pub const GOSSIP_TXS_MAX: usize = 2_000;

/// One application message.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub enum Wire {
    /// A proposed block (relayed by its proposer).
    Block(Box<Block>),
    /// Asks for the block with header hash `digest` and up to `count - 1` of its ancestors.
    /// `height` is the block's height when known (a hint that spares a search).
    GetAncestors {
        /// The newest block wanted.
        digest: Hash32,
        /// Its height, if known.
        height: Option<u64>,
        /// How many blocks, newest first.
        count: u32,
    },
    /// Blocks, newest first, each the parent of the one before.
    Ancestors(Vec<Block>),
    /// Transactions admitted by the sender (validators gossip them to each other; a full
    /// node sends the ones submitted to it).
    Txs(Vec<SignedTx>),
    /// Asks for the sender's newest state snapshot.
    GetSnapshot,
    /// A state snapshot: the finalized block it is the state after, and the blob
    /// holding it (fetched with the blob resolver, checked against the block's state
    /// root once the block is anchored to the finalized chain).
    Snapshot {
        /// The block.
        block: Box<Block>,
        /// The snapshot blob.
        cid: Cid,
    },
    /// A finalized block and its simplex finalization certificate, from a validator to
    /// the full nodes, which check the certificate ([`super::finality`]) before
    /// committing.
    Finalized {
        /// The block.
        block: Box<Block>,
        /// Its finalization certificate (commonware codec).
        certificate: Vec<u8>,
    },
    /// Asks a validator for the newest block it sent the full nodes, with its certificate
    /// (answered with [`Wire::Finalized`], or not at all when it has none yet).
    GetFinalized,
}

impl Wire {
    /// Encodes for the wire.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh to Vec")
    }

    /// Decodes a peer's message; `None` when malformed.
    pub fn decode(b: &[u8]) -> Option<Wire> {
        borsh::from_slice(b).ok()
    }
}

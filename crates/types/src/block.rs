//! Blocks, their headers, and the genesis that starts a chain.

use crate::{Address, Amount, Hash32, Keypair, PublicKey, Signature, SignedTx};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// A block header. The proposer signs its hash.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct BlockHeader {
    /// The chain.
    pub chain_id: String,
    /// Height; genesis state is height 0, the first block is 1.
    pub height: u64,
    /// Hash of the previous header (zero for the first block).
    pub parent: Hash32,
    /// Block time in milliseconds since the Unix epoch; the ledger's only clock.
    pub time_ms: u64,
    /// Merkle root of the transaction ids in order.
    pub tx_root: Hash32,
    /// State root after applying this block.
    pub state_root: Hash32,
    /// Who produced the block.
    pub proposer: PublicKey,
}

impl BlockHeader {
    /// The block hash.
    pub fn hash(&self) -> Hash32 {
        Hash32::tagged("deed block header v1", &borsh::to_vec(self).expect("borsh to Vec"))
    }
}

/// A block: a signed header and the transactions it orders.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The proposer's signature over the header hash.
    pub signature: Signature,
    /// Transactions in execution order.
    pub txs: Vec<SignedTx>,
}

impl Block {
    /// The Merkle root of `txs`' ids.
    pub fn tx_root(txs: &[SignedTx]) -> Hash32 {
        crate::merkle::root(&txs.iter().map(|t| t.hash()).collect::<Vec<_>>())
    }

    /// Signs `header` and wraps it with `txs`.
    pub fn seal(header: BlockHeader, txs: Vec<SignedTx>, key: &Keypair) -> Block {
        assert_eq!(header.tx_root, Self::tx_root(&txs), "header tx_root must match txs");
        let signature = key.sign(&header.hash().0);
        Block { header, signature, txs }
    }

    /// Checks the proposer's signature and the transaction root.
    pub fn verify(&self) -> Result<(), crate::Error> {
        self.header.proposer.verify(&self.header.hash().0, &self.signature)?;
        if Self::tx_root(&self.txs) != self.header.tx_root {
            return Err(crate::Error::BadSignature("transaction root does not match the transactions".into()));
        }
        Ok(())
    }
}

/// Chain parameters fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Params {
    /// Smallest transaction fee accepted.
    #[serde(with = "crate::amount_serde")]
    pub min_tx_fee: Amount,
    /// Smallest stake that lets an executor submit receipts.
    #[serde(with = "crate::amount_serde")]
    pub min_executor_stake: Amount,
    /// Blocks after which an unrevealed model commitment expires.
    pub commit_ttl_blocks: u64,
    /// Most transactions in one block.
    pub block_txs_max: u32,
    /// Blocks an unstaked amount stays bonded (and slashable) before it returns to the
    /// executor's balance.
    #[serde(default = "Params::default_unbonding_blocks")]
    pub unbonding_blocks: u64,
    /// Paid-inference rules: challenge windows, bonds, slashing.
    #[serde(default)]
    pub jobs: JobParams,
}

/// The rules of paid inference and its verification (DESIGN.md §2, §5).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct JobParams {
    /// Blocks after a `single` job's receipt during which anyone may challenge it; the
    /// job settles when the window closes unchallenged. 0 settles at once.
    pub challenge_window_blocks: u64,
    /// Blocks a `replicated` job whose executors disagree waits for a fraud proof before
    /// the payer is refunded.
    pub dispute_window_blocks: u64,
    /// Blocks a job may wait for its receipts before the payer is refunded.
    pub job_timeout_blocks: u64,
    /// What a challenger escrows; lost to the executor if the challenge fails.
    #[serde(with = "crate::amount_serde")]
    pub challenge_bond: Amount,
    /// Share of a proven liar's stake that is slashed, in basis points.
    pub slash_bps: u16,
    /// Share of the slashed amount paid to the challenger, in basis points; the rest
    /// compensates the payer.
    pub challenger_reward_bps: u16,
    /// Most executors a `replicated` job may ask for.
    pub replicas_max: u8,
}

impl Default for JobParams {
    fn default() -> Self {
        JobParams {
            challenge_window_blocks: 12,
            dispute_window_blocks: 40,
            job_timeout_blocks: 400,
            challenge_bond: 100_000,
            slash_bps: 5_000,
            challenger_reward_bps: 5_000,
            replicas_max: 8,
        }
    }
}

impl Params {
    /// The default unbonding delay in blocks.
    pub const UNBONDING_BLOCKS_DEFAULT: u64 = 2_000;

    fn default_unbonding_blocks() -> u64 {
        Self::UNBONDING_BLOCKS_DEFAULT
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_tx_fee: 10,
            min_executor_stake: 1_000_000,
            commit_ttl_blocks: 1_000,
            block_txs_max: 10_000,
            unbonding_blocks: Self::UNBONDING_BLOCKS_DEFAULT,
            jobs: JobParams::default(),
        }
    }
}

/// A funded account at genesis.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct GenesisAccount {
    /// The account.
    pub address: Address,
    /// Its starting balance.
    #[serde(with = "crate::amount_serde")]
    pub balance: Amount,
}

/// A staked executor at genesis.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct GenesisExecutor {
    /// The executor's key (receipts are signed with it).
    pub key: PublicKey,
    /// Its stake (moved out of circulation into the stake, counted in total supply).
    #[serde(with = "crate::amount_serde")]
    pub stake: Amount,
}

/// The starting state of a chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Genesis {
    /// The chain id every transaction must carry.
    pub chain_id: String,
    /// Genesis time in ms since the Unix epoch.
    pub time_ms: u64,
    /// Funded accounts.
    pub accounts: Vec<GenesisAccount>,
    /// Staked executors.
    pub executors: Vec<GenesisExecutor>,
    /// Keys allowed to produce blocks (the solo node's key, or the BFT validator set).
    pub validators: Vec<PublicKey>,
    /// Chain parameters.
    pub params: Params,
}

impl Genesis {
    /// The genesis hash (the parent of block 1 is not this; it is informational and
    /// lets nodes check they start from the same genesis).
    pub fn hash(&self) -> Hash32 {
        Hash32::tagged("deed genesis v1", &borsh::to_vec(self).expect("borsh to Vec"))
    }
}

//! The executor worker: runs paid jobs with the engine and submits signed receipts.
//!
//! It learns of jobs from finalized blocks (and, on start and after missed events, by
//! scanning pending jobs in state), runs them one at a time off the async runtime, stores
//! the output tensor set as a blob, and submits a `SubmitReceipt` transaction signed with
//! the node key.

use crate::App;
use deed_engine::RunOptions;
use deed_ledger::Job;
use deed_types::{Hash32, Receipt, SignedTx, TensorSet, Tx, TxBody};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};
use tokio::sync::{broadcast, mpsc, watch};

/// Jobs queued for the worker.
const EXECUTOR_QUEUE_LEN_MAX: usize = 1024;

#[derive(Debug)]
enum Seen {
    /// Receipt transaction submitted (its id).
    Submitted(Hash32),
    /// The job cannot run here; reason logged.
    Failed,
}

/// Runs the executor until shutdown.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let (job_tx, mut job_rx) = mpsc::channel::<Job>(EXECUTOR_QUEUE_LEN_MAX);
    let (done_tx, mut done_rx) = mpsc::channel::<(Hash32, Seen)>(EXECUTOR_QUEUE_LEN_MAX);
    let worker_app = app.clone();
    let worker = tokio::spawn(async move {
        while let Some(job) = job_rx.recv().await {
            let a = worker_app.clone();
            let id = job.id;
            let seen = match tokio::task::spawn_blocking(move || execute(&a, &job)).await {
                Ok(Ok(h)) => Seen::Submitted(h),
                Ok(Err(e)) => {
                    tracing::warn!(job = %id, "job not executed: {e}");
                    Seen::Failed
                }
                Err(e) => {
                    tracing::error!(job = %id, "executor task panicked: {e}");
                    Seen::Failed
                }
            };
            if done_tx.send((id, seen)).await.is_err() {
                break;
            }
        }
    });
    let mut blocks = app.blocks.subscribe();
    let mut seen: BTreeMap<Hash32, Option<Seen>> = BTreeMap::new();
    loop {
        // Queue every pending job we have not handled (or whose receipt was rejected).
        if let Ok(state) = app.state() {
            let pending = deed_ledger::query::pending_jobs(&state);
            let live: BTreeSet<Hash32> = pending.iter().map(|j| j.id).collect();
            seen.retain(|id, _| live.contains(id));
            for job in pending {
                let retry = match seen.get(&job.id) {
                    None => true,
                    Some(Some(Seen::Submitted(h))) => {
                        !app.is_pending(h) && app.db.tx_status(h).ok().flatten().is_some_and(|s| !s.ok)
                    }
                    Some(_) => false,
                };
                if retry && job_tx.try_send(job.clone()).is_ok() {
                    seen.insert(job.id, None);
                }
            }
        }
        tokio::select! {
            r = blocks.recv() => match r {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            Some((id, s)) = done_rx.recv() => { seen.insert(id, Some(s)); }
            _ = shutdown.changed() => break,
        }
    }
    drop(job_tx);
    worker.abort();
}

/// Runs one job and submits its receipt; returns the receipt transaction's id.
fn execute(app: &App, job: &Job) -> Result<Hash32, String> {
    if job.executor_fee < app.config.executor_fee_min {
        return Err(format!("executor fee {} is below this node's minimum", job.executor_fee));
    }
    let model = app.model(&job.model).map_err(|e| e.to_string())?;
    let input_bytes = app.store.get(&job.input).map_err(|e| e.to_string())?;
    let inputs = TensorSet::decode(&input_bytes).map_err(|e| e.to_string())?;
    let out =
        model.run(&inputs, &RunOptions { threads: app.config.threads, trace: true }).map_err(|e| e.to_string())?;
    let output_blob = out.outputs.encode();
    app.store.put(&output_blob).map_err(|e| e.to_string())?;
    let receipt = Receipt {
        version: 1,
        chain_id: app.chain_id().to_string(),
        job: job.id,
        model: job.model,
        engine: deed_engine::SPEC_VERSION.to_string(),
        input_hash: *job.input.digest(),
        output_hash: out.output_hash(),
        trace_root: out.trace_root(),
        trace: out.trace,
        executor: app.key.public(),
        price: job.price,
        executor_fee: job.executor_fee,
    }
    .sign(&app.key);
    let nonce = app.pending_nonce(&app.key.address()).map_err(|e| e.to_string())?;
    let tx: SignedTx = Tx {
        chain_id: app.chain_id().to_string(),
        sender: app.key.public(),
        nonce,
        fee: app.genesis.params.min_tx_fee,
        body: TxBody::SubmitReceipt { receipt },
    }
    .sign(&app.key);
    app.admit(tx).map_err(|e| e.to_string())
}

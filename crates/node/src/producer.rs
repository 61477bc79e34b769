//! Block production behind one trait (DESIGN.md §4): the solo producer of the embedded
//! default here; a BFT engine is the second implementation.
//!
//! A producer decides *when* a block is made and when it is final; the [`App`] decides
//! *what* is in it (propose) and applies it (finalize).

use crate::{App, NodeError};
use std::{future::Future, pin::Pin, sync::Arc, time::Duration};
use tokio::sync::watch;

/// A running producer's future.
pub type ProducerFuture = Pin<Box<dyn Future<Output = Result<(), NodeError>> + Send>>;

/// Something that orders transactions into finalized blocks.
pub trait BlockProducer: Send + 'static {
    /// A name for logs and `/v1/status`.
    fn name(&self) -> &'static str;
    /// Runs until `shutdown` turns true.
    fn run(self: Box<Self>, app: Arc<App>, shutdown: watch::Receiver<bool>) -> ProducerFuture;
}

/// The embedded default: this node alone orders and finalizes blocks, at most one
/// every `interval` while transactions are pending, and an empty one after `idle` without
/// any, so the ledger's schedule (commitment expiry, stake release) keeps moving.
#[derive(Debug, Clone)]
pub struct SoloProducer {
    /// Least time between two blocks.
    pub interval: Duration,
    /// Longest time without a block.
    pub idle: Duration,
}

impl BlockProducer for SoloProducer {
    fn name(&self) -> &'static str {
        "solo"
    }

    fn run(self: Box<Self>, app: Arc<App>, mut shutdown: watch::Receiver<bool>) -> ProducerFuture {
        Box::pin(async move {
            let mut last = tokio::time::Instant::now() - self.interval;
            loop {
                if *shutdown.borrow() {
                    return Ok(());
                }
                let idle_due = last + self.idle <= tokio::time::Instant::now() || app.has_scheduled_work();
                if app.mempool_len() == 0 && !idle_due {
                    tokio::select! {
                        _ = app.tx_notify.notified() => {}
                        _ = tokio::time::sleep_until(last + self.idle) => {}
                        _ = shutdown.changed() => continue,
                    }
                    continue;
                }
                let next = last + self.interval;
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {}
                    _ = shutdown.changed() => continue,
                }
                last = tokio::time::Instant::now();
                let a = app.clone();
                match tokio::task::spawn_blocking(move || a.produce_one(idle_due)).await {
                    Ok(Ok(Some(h))) => tracing::debug!(height = h, "block finalized"),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => {
                        // A failed commit means storage is broken: stop rather than fork ourselves.
                        tracing::error!("block production failed: {e}");
                        return Err(e);
                    }
                    Err(e) => return Err(NodeError::Internal(format!("producer task panicked: {e}"))),
                }
            }
        })
    }
}

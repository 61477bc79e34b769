//! The HTTP API under `/v1/`: JSON in and out, errors as `application/problem+json`,
//! the OpenAPI document at `/v1/openapi.json`.

use crate::{App, NodeError, app::AdmitError};
use axum::{
    Json, Router,
    body::Body,
    extract::{DefaultBodyLimit, Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use deed_ledger::TxError;
use deed_store::StoreError;
use deed_types::{Address, Cid, Hash32, SignedTx, TensorSet};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Largest transaction body accepted.
pub const TX_BODY_BYTES_MAX: usize = deed_types::tx::TX_BYTES_MAX;
/// Largest input tensor set accepted as a blob.
pub const INPUT_BLOB_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// An API error, rendered as RFC 9457 problem details.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: String,
}

impl Problem {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem { status, code, detail: detail.into() }
    }
    fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }
    fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": format!("https://deed.invalid/problems/{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": self.detail,
        });
        (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
    }
}

impl From<NodeError> for Problem {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Store(StoreError::NotFound(c)) => Problem::not_found(format!("blob {c} is not on this node")),
            e => {
                tracing::error!("internal error: {e}");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

impl From<AdmitError> for Problem {
    fn from(e: AdmitError) -> Self {
        let (status, code) = match &e {
            AdmitError::Ledger(t) => match t {
                TxError::NonceTooLow { .. } => (StatusCode::CONFLICT, "replayed-transaction"),
                TxError::BadSignature => (StatusCode::UNAUTHORIZED, "bad-signature"),
                TxError::WrongChain { .. } => (StatusCode::BAD_REQUEST, "wrong-chain"),
                TxError::InsufficientFunds { .. } => (StatusCode::PAYMENT_REQUIRED, "insufficient-funds"),
                TxError::UnknownModel(_) => (StatusCode::NOT_FOUND, "unknown-model"),
                _ => (StatusCode::UNPROCESSABLE_ENTITY, "transaction-refused"),
            },
            AdmitError::Policy(_) => (StatusCode::UNPROCESSABLE_ENTITY, "refused-by-node"),
            AdmitError::Duplicate(_) => (StatusCode::CONFLICT, "duplicate-transaction"),
            AdmitError::Full(_) => (StatusCode::SERVICE_UNAVAILABLE, "mempool-full"),
            AdmitError::Node(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Problem::new(status, code, e.to_string())
    }
}

type ApiResult<T> = Result<T, Problem>;

fn parse<T: std::str::FromStr<Err = deed_types::Error>>(s: &str) -> ApiResult<T> {
    s.parse().map_err(|e: deed_types::Error| Problem::bad_request(e.to_string()))
}

/// The router over `app`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/genesis", get(genesis))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/blobs", put(put_blob))
        .route("/v1/blobs/{cid}", get(crate::blobs::get_blob))
        .route("/v1/uploads", post(crate::blobs::create_upload))
        .route(
            "/v1/uploads/{id}",
            get(crate::blobs::upload_status).patch(crate::blobs::append_upload).delete(crate::blobs::abort_upload),
        )
        .route("/v1/uploads/{id}/complete", put(crate::blobs::complete_upload))
        .route("/v1/store/stats", get(crate::blobs::store_stats))
        .route(
            "/v1/similar",
            post(crate::blobs::similar_to_file).layer(DefaultBodyLimit::max(crate::blobs::SIMILAR_BODY_BYTES_MAX)),
        )
        .route("/v1/similar/{cid}", get(crate::blobs::similar_to_blob))
        .route("/v1/txs", post(post_tx).layer(DefaultBodyLimit::max(TX_BODY_BYTES_MAX * 3)))
        .route("/v1/txs/{hash}", get(get_tx))
        .route("/v1/accounts/{addr}", get(get_account))
        .route("/v1/models", get(get_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/v1/jobs", get(get_jobs))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/blocks/latest", get(latest_block))
        .route("/v1/blocks/{height}", get(get_block))
        .route("/v1/finality/{height}", get(get_finality))
        .route("/v1/supply", get(supply))
        .route("/v1/proofs/{kind}/{key}", get(get_proof))
        .route("/v1/earnings/{addr}", get(get_earnings))
        .route("/v1/executors", get(get_executors))
        .fallback(|| async { Problem::not_found("no such endpoint; see /v1/openapi.json") })
        .with_state(app)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
}

async fn status(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    let head = app.db.head().map_err(NodeError::from)?;
    let root = app.db.state_root().map_err(NodeError::from)?;
    let net = app.config.net.as_ref().map(|n| n.to_json(&app.key.public()));
    Ok(Json(json!({
        "peers": net.as_ref().map_or(json!([]), |n| n["peers"].clone()),
        "consensus": net.as_ref().map(|n| n["consensus"].clone()),
        "chain_id": app.chain_id(),
        "genesis_hash": app.genesis.hash(),
        "height": head.as_ref().map_or(0, |h| h.height),
        "head_hash": head.as_ref().map(|h| h.hash()),
        "head_time_ms": head.as_ref().map(|h| h.time_ms),
        "state_root": root,
        "finalized_height": head.as_ref().map_or(0, |h| h.height),
        "producer": app.config.producer_name,
        "role": if app.genesis.validators.contains(&app.key.public()) { "validator" } else { "full node" },
        "node_key": app.key.public(),
        "executor": { "key": app.key.public(), "address": app.key.address(), "fee_min": app.config.executor_fee_min.to_string() },
        "min_tx_fee": app.genesis.params.min_tx_fee.to_string(),
        "mempool": app.mempool_len(),
        "blob_fetch": app.fetcher.connected().then(|| app.fetcher.stats()),
        "engine": deed_engine::SPEC_VERSION,
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

async fn genesis(State(app): State<Arc<App>>) -> Json<deed_types::Genesis> {
    Json(app.genesis.clone())
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json"))
}

#[derive(Deserialize)]
struct BlobQuery {
    #[serde(default)]
    kind: Option<String>,
}

async fn put_blob(State(app): State<Arc<App>>, Query(q): Query<BlobQuery>, body: Body) -> ApiResult<Response> {
    let kind = q.kind.unwrap_or_else(|| "raw".into());
    let max = match kind.as_str() {
        "model" => app.config.model_bytes_max,
        "input" | "raw" => INPUT_BLOB_BYTES_MAX,
        other => return Err(Problem::bad_request(format!("unknown blob kind '{other}': use model, input or raw"))),
    };
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let app2 = app.clone();
    let kind2 = kind.clone();
    let info = blocking(move || {
        let sync = tokio_util::io::SyncIoBridge::new(reader);
        let res = if kind2 == "model" {
            app2.store.ingest_checked(sync, max, deed_store::refuse_pickle)
        } else {
            app2.store.ingest(sync, max)
        };
        res.map_err(|e| match e {
            StoreError::TooLarge { .. } => Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", e.to_string()),
            StoreError::Refused(m) => Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "refused-format", m),
            StoreError::Io(ref io) if io.kind() != std::io::ErrorKind::Other => NodeError::from(e).into(),
            e => Problem::bad_request(format!("upload failed: {e}")),
        })
    })
    .await?;
    let cid = info.cid;
    let mut out = json!({ "cid": cid, "size": info.size, "kind": kind });
    match kind.as_str() {
        "model" => {
            let app2 = app.clone();
            let m = blocking(move || {
                app2.model(&cid).map_err(|e| {
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-model", format!("not a usable model: {e}"))
                })
            })
            .await?;
            out["inputs"] = serde_json::to_value(m.inputs()).expect("io info serializes");
            out["outputs"] = serde_json::to_value(m.outputs()).expect("io info serializes");
        }
        "input" => {
            let app2 = app.clone();
            blocking(move || {
                let b = app2.store.get(&cid).map_err(NodeError::from)?;
                TensorSet::decode(&b).map_err(|e| {
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", format!("not a tensor set: {e}"))
                })?;
                Ok(())
            })
            .await?;
        }
        _ => {}
    }
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn post_tx(State(app): State<Arc<App>>, body: axum::body::Bytes) -> ApiResult<Response> {
    if body.len() > TX_BODY_BYTES_MAX * 3 {
        return Err(Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "transaction too large"));
    }
    let tx: SignedTx =
        serde_json::from_slice(&body).map_err(|e| Problem::bad_request(format!("not a signed transaction: {e}")))?;
    if tx.tx.encode().len() > TX_BODY_BYTES_MAX {
        return Err(Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "transaction too large"));
    }
    let h = blocking(move || app.admit(tx).map_err(Problem::from)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "hash": h }))).into_response())
}

async fn get_tx(State(app): State<Arc<App>>, Path(h): Path<String>) -> ApiResult<Json<Value>> {
    let h: Hash32 = parse(&h)?;
    if app.is_pending(&h) {
        return Ok(Json(json!({ "hash": h, "status": "pending" })));
    }
    match app.db.tx_status(&h).map_err(NodeError::from)? {
        Some(s) if s.ok => Ok(Json(json!({ "hash": h, "status": "included", "height": s.height, "index": s.index }))),
        Some(s) => Ok(Json(json!({ "hash": h, "status": "rejected", "error": s.error }))),
        None => Err(Problem::not_found(format!("transaction {h} is unknown to this node"))),
    }
}

async fn get_account(State(app): State<Arc<App>>, Path(a): Path<String>) -> ApiResult<Json<Value>> {
    let addr: Address = parse(&a)?;
    let snap = app.db.snapshot().map_err(NodeError::from)?;
    let acct = deed_ledger::query::account(&snap, &addr);
    let pending = app.pending_nonce(&addr)?;
    Ok(Json(json!({
        "address": addr,
        "balance": acct.balance.to_string(),
        "nonce": acct.nonce,
        "pending_nonce": pending,
    })))
}

#[derive(Deserialize)]
struct ModelsQuery {
    owner: Option<String>,
}

async fn get_models(State(app): State<Arc<App>>, Query(q): Query<ModelsQuery>) -> ApiResult<Json<Value>> {
    let owner: Option<Address> = q.owner.as_deref().map(parse).transpose()?;
    let snap = app.db.snapshot().map_err(NodeError::from)?;
    let models: Vec<_> = deed_ledger::query::models(&snap)
        .into_iter()
        .filter(|m| owner.is_none_or(|o| m.owners.iter().any(|w| w.address == o)))
        .collect();
    Ok(Json(json!({ "models": models })))
}

async fn get_model(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id: Cid = parse(&id)?;
    let snap = app.db.snapshot().map_err(NodeError::from)?;
    let rec = deed_ledger::query::model(&snap, &id)
        .ok_or_else(|| Problem::not_found(format!("no model {id} is registered on this chain")))?;
    let mut v = serde_json::to_value(&rec).expect("record serializes");
    let app2 = app.clone();
    if let Ok(m) = blocking(move || app2.model(&id).map_err(Problem::from)).await {
        v["inputs"] = serde_json::to_value(m.inputs()).expect("io info serializes");
        v["outputs"] = serde_json::to_value(m.outputs()).expect("io info serializes");
        v["size"] = json!(app.store.size(&id).ok());
    }
    Ok(Json(v))
}

async fn get_job(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id: Hash32 = parse(&id)?;
    let snap = app.db.snapshot().map_err(NodeError::from)?;
    let job = deed_ledger::query::job(&snap, &id).ok_or_else(|| {
        if app.is_pending(&id) {
            Problem::not_found(format!("job {id} is still waiting for a block"))
        } else {
            Problem::not_found(format!("no job {id}"))
        }
    })?;
    let receipt = deed_ledger::query::receipt(&snap, &id);
    let receipts: Vec<_> =
        job.receipts.iter().filter_map(|r| deed_ledger::query::job_receipt(&snap, &id, &r.executor)).collect();
    Ok(Json(json!({ "job": job, "receipt": receipt, "receipts": receipts })))
}

#[derive(Deserialize)]
struct JobsQuery {
    state: Option<String>,
}

/// Jobs an executor or auditor cares about: `?state=pending` (waiting for receipts) or
/// `?state=open` (in a challenge window or disputed).
async fn get_jobs(State(app): State<Arc<App>>, Query(q): Query<JobsQuery>) -> ApiResult<Json<Value>> {
    let snap = app.db.snapshot().map_err(NodeError::from)?;
    let jobs = match q.state.as_deref().unwrap_or("pending") {
        "pending" => deed_ledger::query::pending_jobs(&snap),
        "open" => deed_ledger::query::open_jobs(&snap)
            .into_iter()
            .filter(|j| !matches!(j.status, deed_ledger::JobStatus::Pending))
            .collect(),
        other => return Err(Problem::bad_request(format!("unknown job state '{other}': use pending or open"))),
    };
    Ok(Json(json!({ "jobs": jobs })))
}

async fn get_block(State(app): State<Arc<App>>, Path(h): Path<String>) -> ApiResult<Json<deed_types::Block>> {
    let h: u64 = h.parse().map_err(|_| Problem::bad_request("block height must be a number"))?;
    app.db.block(h).map_err(NodeError::from)?.map(Json).ok_or_else(|| Problem::not_found(format!("no block {h} yet")))
}

/// Why the block at a height is final, for clients that check rather than trust this
/// node ([`crate::bft::finality::Evidence`]): on a solo chain the producer's header
/// signature; on a BFT chain the finalization certificate this node committed the block,
/// or the nearest certified block above it with the headers linking the two.
async fn get_finality(
    State(app): State<Arc<App>>,
    Path(h): Path<String>,
) -> ApiResult<Json<crate::bft::finality::Evidence>> {
    use crate::bft::finality::{EVIDENCE_CHAIN_LEN_MAX, Evidence, Proof};
    let h: u64 = h.parse().map_err(|_| Problem::bad_request("block height must be a number"))?;
    blocking(move || {
        let block = app.db.block(h).map_err(NodeError::from)?.ok_or_else(|| {
            Problem::not_found(format!("no block {h} on this node (not final yet, or below its snapshot)"))
        })?;
        if app.config.producer_name == "solo" {
            return Ok(Json(Evidence { header: block.header, proof: Proof::Solo { signature: block.signature } }));
        }
        let Some((certified, cert)) =
            app.db.finalization_from(h, h.saturating_add(EVIDENCE_CHAIN_LEN_MAX)).map_err(NodeError::from)?
        else {
            return Err(Problem::not_found(format!(
                "this node holds no finalization certificate for block {h} or the {EVIDENCE_CHAIN_LEN_MAX} \
                 blocks above it (yet)"
            )));
        };
        let mut chain = Vec::with_capacity((certified - h) as usize);
        for i in h + 1..=certified {
            let b = app.db.block(i).map_err(NodeError::from)?.ok_or_else(|| {
                Problem::not_found(format!("block {i}, which links block {h} to its certificate, is not committed yet"))
            })?;
            chain.push(b.header);
        }
        Ok(Json(Evidence { header: block.header, proof: Proof::Bft { certificate: hex::encode(cert), chain } }))
    })
    .await
}

async fn latest_block(State(app): State<Arc<App>>) -> ApiResult<Json<deed_types::Block>> {
    let h = app.db.height().map_err(NodeError::from)?;
    app.db.block(h).map_err(NodeError::from)?.map(Json).ok_or_else(|| Problem::not_found("no blocks yet"))
}

async fn supply(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    let snap = app.db.snapshot().map_err(NodeError::from)?;
    Ok(Json(json!({ "total": deed_ledger::query::total_supply(&snap).to_string() })))
}

async fn get_earnings(State(app): State<Arc<App>>, Path(a): Path<String>) -> ApiResult<Json<Value>> {
    let addr: Address = parse(&a)?;
    let snap = app.db.snapshot().map_err(NodeError::from)?;
    let e = deed_ledger::query::earnings(&snap, &addr);
    let owned: Vec<Value> = deed_ledger::query::models(&snap)
        .into_iter()
        .filter_map(|m| {
            let bps = m.owners.iter().find(|o| o.address == addr)?.bps;
            Some(json!({ "model": m.id, "name": m.name, "bps": bps, "calls": m.calls, "earnings": m.earnings.to_string() }))
        })
        .collect();
    Ok(Json(json!({ "address": addr, "earnings": e, "models": owned })))
}

async fn get_executors(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    let snap = app.db.snapshot().map_err(NodeError::from)?;
    let list: Vec<Value> = deed_ledger::query::executors(&snap)
        .into_iter()
        .map(|e| {
            let unbonding = deed_ledger::query::unbonding(&snap, &e.key);
            json!({ "key": e.key, "address": e.key.address(), "stake": e.stake.to_string(), "unbonding": unbonding })
        })
        .collect();
    Ok(Json(json!({ "executors": list })))
}

/// A Merkle proof of one state entry against the state root of the latest block, with
/// that block's header (and signature); a client that trusts no node proves the header
/// final with `/v1/finality/{height}` before it believes the root.
async fn get_proof(State(app): State<Arc<App>>, Path((kind, key)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let state_key = match kind.as_str() {
        "account" | "balance" => deed_ledger::keys::account(&parse(&key)?),
        "model" => deed_ledger::keys::model(&parse(&key)?),
        "earnings" => deed_ledger::keys::earnings(&parse(&key)?),
        "job" => deed_ledger::keys::job(&parse(&key)?),
        "receipt" => deed_ledger::keys::receipt(&parse(&key)?),
        "executor" => deed_ledger::keys::executor(&parse(&key)?),
        other => {
            return Err(Problem::bad_request(format!(
                "unknown proof kind '{other}': use account, model, earnings, job, receipt or executor"
            )));
        }
    };
    let app2 = app.clone();
    blocking(move || {
        let (block, snap) = app2.head_and_state().map_err(Problem::from)?;
        let block = block.ok_or_else(|| Problem::not_found("no block yet: nothing to prove against"))?;
        let proof = deed_ledger::prove(&snap, &state_key);
        Ok(Json(json!({
            "kind": kind,
            "key": hex::encode(&state_key),
            "height": block.header.height,
            "header": block.header,
            "signature": block.signature,
            "proof": proof,
        })))
    })
    .await
}

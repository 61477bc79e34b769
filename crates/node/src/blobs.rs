//! Blob endpoints beyond the plain PUT: resumable uploads, verified range downloads,
//! store statistics, nearest registered models; the copy check run at registration; and
//! the periodic garbage collection of blobs nothing references.
//!
//! - `POST /v1/uploads?kind=model|input|raw` → `{"id", "offset": 0}`
//! - `GET /v1/uploads/{id}` → `{"id", "kind", "offset"}` (where to resume)
//! - `PATCH /v1/uploads/{id}` with `Upload-Offset: N` (or `Content-Range: bytes N-M/*`) and
//!   the next bytes as the body → `{"offset"}`; 409 with the current offset on a mismatch
//! - `PUT /v1/uploads/{id}/complete` → as `PUT /v1/blobs` (`{"cid", "size", "kind", …}`)
//! - `DELETE /v1/uploads/{id}`
//! - `GET /v1/blobs/{cid}` with `Range: bytes=a-b` → 206, every byte verified
//! - `GET /v1/store/stats` → logical and stored bytes
//! - `GET /v1/similar/{cid}` and `POST /v1/similar` (a model file as the body) → the
//!   registered models nearest by weight fingerprint, with scores
//!
//! Uploads live in `data/store/uploads/` and survive restarts.

// Handlers return ready HTTP responses as their error type: built once per failed
// request, so their size does not matter.
#![allow(clippy::result_large_err)]

use crate::App;
use axum::{
    Json,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use deed_store::{StoreError, fingerprint};
use deed_types::{Cid, TxBody};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use std::{collections::BTreeSet, sync::Arc, time::Duration};

/// Time between garbage collections.
pub const GC_INTERVAL_MS: u64 = 10 * 60 * 1000;
/// Blobs younger than this are kept even if nothing references them yet (an upload
/// waiting for its registration or its inference request).
pub const GC_GRACE_MS: u64 = 60 * 60 * 1000;
/// Job inputs and outputs referenced by the last this many blocks are kept.
pub const GC_RECENT_BLOCKS: u64 = 10_000;
/// Most models listed by the similarity endpoints.
pub const SIMILAR_LEN_MAX: usize = 20;
/// Largest model file accepted by `POST /v1/similar`.
pub const SIMILAR_BODY_BYTES_MAX: usize = 256 << 20;
/// Most ancestors followed when deciding whether a declared parent covers a match.
const LINEAGE_DEPTH_MAX: usize = 8;

type Res = Result<Response, Response>;

fn problem(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
    let body = json!({
        "type": format!("https://deed.invalid/problems/{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail.into(),
    });
    (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

fn store_problem(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(c) => problem(StatusCode::NOT_FOUND, "not-found", format!("blob {c} is not on this node")),
        StoreError::UploadNotFound(_) => problem(StatusCode::NOT_FOUND, "not-found", e.to_string()),
        StoreError::UploadOffset { expected, .. } => {
            let mut r = problem(StatusCode::CONFLICT, "upload-offset", e.to_string());
            r.headers_mut().insert("upload-offset", expected.into());
            r
        }
        StoreError::UploadsFull(_) => problem(StatusCode::SERVICE_UNAVAILABLE, "uploads-full", e.to_string()),
        StoreError::TooLarge { .. } => problem(StatusCode::PAYLOAD_TOO_LARGE, "too-large", e.to_string()),
        StoreError::Refused(m) => problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "refused-format", m),
        StoreError::BadRange { .. } => problem(StatusCode::RANGE_NOT_SATISFIABLE, "bad-range", e.to_string()),
        StoreError::Corrupt { .. } => problem(StatusCode::INTERNAL_SERVER_ERROR, "corrupt-blob", e.to_string()),
        StoreError::Format(f) => problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-model", f.to_string()),
        e => {
            tracing::error!("store error: {e}");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
    }
}

fn fetch_problem(e: crate::bft::fetch::FetchError) -> Response {
    use crate::bft::fetch::FetchError;
    match e {
        FetchError::NoPeers(_) | FetchError::NotServed { .. } => {
            problem(StatusCode::NOT_FOUND, "not-found", e.to_string())
        }
        FetchError::Busy(_) => problem(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()),
        e => problem(StatusCode::BAD_GATEWAY, "fetch-failed", e.to_string()),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Response> + Send + 'static) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
}

fn parse_cid(s: &str) -> Result<Cid, Response> {
    s.parse().map_err(|e: deed_types::Error| problem(StatusCode::BAD_REQUEST, "bad-request", e.to_string()))
}

fn kind_max(app: &App, kind: &str) -> Result<u64, Response> {
    match kind {
        "model" => Ok(app.config.model_bytes_max),
        "input" | "raw" => Ok(crate::api::INPUT_BLOB_BYTES_MAX),
        other => Err(problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("unknown blob kind '{other}': use model, input or raw"),
        )),
    }
}

// -------------------------------------------------------------------------------------
// Resumable uploads.

/// `?kind=` of an upload.
#[derive(Deserialize)]
pub struct KindQuery {
    kind: Option<String>,
}

/// `POST /v1/uploads?kind=…`
pub async fn create_upload(State(app): State<Arc<App>>, Query(q): Query<KindQuery>) -> Res {
    let kind = q.kind.unwrap_or_else(|| "raw".into());
    kind_max(&app, &kind)?;
    let id = blocking(move || app.store.upload_create(&kind).map_err(store_problem)).await?;
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/v1/uploads/{id}"))], Json(json!({ "id": id, "offset": 0 })))
        .into_response())
}

/// `GET /v1/uploads/{id}`
pub async fn upload_status(State(app): State<Arc<App>>, Path(id): Path<String>) -> Res {
    let id2 = id.clone();
    let (kind, offset) = blocking(move || app.store.upload_status(&id2).map_err(store_problem)).await?;
    Ok(([("upload-offset", offset.to_string())], Json(json!({ "id": id, "kind": kind, "offset": offset })))
        .into_response())
}

/// Where a PATCH says its bytes start: `Upload-Offset: N` or `Content-Range: bytes N-M/*`.
fn patch_offset(h: &HeaderMap) -> Result<u64, Response> {
    let bad = |m: &str| problem(StatusCode::BAD_REQUEST, "bad-request", m.to_string());
    if let Some(v) = h.get("upload-offset") {
        return v.to_str().ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| bad("Upload-Offset is not a number"));
    }
    if let Some(v) = h.get(header::CONTENT_RANGE) {
        let s = v.to_str().map_err(|_| bad("bad Content-Range"))?;
        let start = s
            .strip_prefix("bytes ")
            .and_then(|r| r.split('-').next())
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| bad("Content-Range must look like 'bytes N-M/*'"))?;
        return Ok(start);
    }
    Err(bad("say where the bytes go: an Upload-Offset header (GET the upload for the current offset)"))
}

/// `PATCH /v1/uploads/{id}`
pub async fn append_upload(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap, body: Body) -> Res {
    let offset = patch_offset(&headers)?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let new = blocking(move || {
        let (kind, _) = app.store.upload_status(&id).map_err(store_problem)?;
        let max = kind_max(&app, &kind)?;
        let sync = tokio_util::io::SyncIoBridge::new(reader);
        app.store.upload_append(&id, offset, sync, max).map_err(store_problem)
    })
    .await?;
    Ok(([("upload-offset", new.to_string())], Json(json!({ "offset": new }))).into_response())
}

/// `PUT /v1/uploads/{id}/complete`
pub async fn complete_upload(State(app): State<Arc<App>>, Path(id): Path<String>) -> Res {
    let app2 = app.clone();
    let (info, kind) = blocking(move || {
        let (kind, _) = app2.store.upload_status(&id).map_err(store_problem)?;
        let max = kind_max(&app2, &kind)?;
        let check = if kind == "model" { deed_store::refuse_pickle } else { |_: &[u8]| Ok(()) };
        let info = app2.store.upload_complete(&id, max, check).map_err(store_problem)?;
        Ok((info, kind))
    })
    .await?;
    let cid = info.cid;
    let mut out = json!({ "cid": cid, "size": info.size, "kind": kind });
    if kind == "model" {
        let m = blocking(move || {
            app.model(&cid).map_err(|e| {
                problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid-model", format!("not a usable model: {e}"))
            })
        })
        .await?;
        out["inputs"] = serde_json::to_value(m.inputs()).expect("io info serializes");
        out["outputs"] = serde_json::to_value(m.outputs()).expect("io info serializes");
    }
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `DELETE /v1/uploads/{id}`
pub async fn abort_upload(State(app): State<Arc<App>>, Path(id): Path<String>) -> Res {
    blocking(move || app.store.upload_abort(&id).map_err(store_problem)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// -------------------------------------------------------------------------------------
// Verified downloads.

/// Parses one `bytes=a-b`, `bytes=a-` or `bytes=-n` range against `size`.
/// `Ok(None)` = no Range header; `Err` = unsatisfiable.
fn parse_range(h: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, Response> {
    let Some(v) = h.get(header::RANGE) else { return Ok(None) };
    let unsat = || {
        let mut r = problem(StatusCode::RANGE_NOT_SATISFIABLE, "bad-range", "one range 'bytes=a-b' within the blob");
        r.headers_mut().insert(header::CONTENT_RANGE, format!("bytes */{size}").parse().expect("valid header"));
        r
    };
    let s = v.to_str().map_err(|_| unsat())?.trim();
    let spec = s.strip_prefix("bytes=").ok_or_else(unsat)?;
    if spec.contains(',') {
        return Err(unsat());
    }
    let (a, b) = spec.split_once('-').ok_or_else(unsat)?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| unsat())?;
        (size.saturating_sub(n), size)
    } else {
        let start: u64 = a.parse().map_err(|_| unsat())?;
        let end = if b.is_empty() { size } else { b.parse::<u64>().map_err(|_| unsat())?.saturating_add(1).min(size) };
        (start, end)
    };
    if start >= end {
        return Err(unsat());
    }
    Ok(Some((start, end)))
}

/// `GET /v1/blobs/{cid}`: the whole blob (200) or one range (206), streamed; every
/// 16 KiB group is verified against the blob's outboard before it is sent. A corrupt
/// group found before the first byte is a 500; found mid-stream, the connection is cut
/// (the client's own hash check then fails too).
pub async fn get_blob(State(app): State<Arc<App>>, Path(cid): Path<String>, headers: HeaderMap) -> Res {
    let cid = parse_cid(&cid)?;
    let app2 = app.clone();
    let size = blocking(move || match app2.store.size(&cid) {
        // Not here: a node with peers fetches it from them first (verified piece by piece).
        Err(StoreError::NotFound(_)) if app2.fetcher.connected() => {
            app2.fetcher.fetch(&app2.store, &cid, app2.config.model_bytes_max).map_err(fetch_problem)?;
            app2.store.size(&cid).map_err(store_problem)
        }
        r => r.map_err(store_problem),
    })
    .await?;
    let range = parse_range(&headers, size)?;
    let (start, end) = range.unwrap_or((0, size));
    let app2 = app.clone();
    let (first, reader) = blocking(move || {
        use std::io::Read;
        let mut r = app2.store.reader(&cid, start, Some(end)).map_err(store_problem)?;
        // Read (and verify) the first piece before answering, so a corrupt start is an
        // error status rather than a cut stream.
        let mut first = vec![0u8; (end - start).min(1 << 20) as usize];
        r.read_exact(&mut first).map_err(|e| store_problem(deed_store::unwrap_io(cid, e)))?;
        Ok((first, r))
    })
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut reader = reader;
        if tx.blocking_send(Ok(first)).is_err() {
            return;
        }
        loop {
            let mut buf = vec![0u8; (reader.remaining()).min(1 << 20) as usize];
            if buf.is_empty() {
                return;
            }
            if let Err(e) = reader.read_exact(&mut buf) {
                tracing::error!(%cid, "serving blob stopped: {e}");
                let _ = tx.blocking_send(Err(e));
                return;
            }
            if tx.blocking_send(Ok(buf)).is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) });
    let body = Body::from_stream(stream);
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, "application/octet-stream".parse().expect("valid"));
    h.insert(header::ACCEPT_RANGES, "bytes".parse().expect("valid"));
    h.insert(header::CONTENT_LENGTH, (end - start).into());
    h.insert(header::ETAG, format!("\"{cid}\"").parse().expect("valid"));
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        let cr = format!("bytes {start}-{}/{size}", end - 1);
        resp.headers_mut().insert(header::CONTENT_RANGE, cr.parse().expect("valid"));
    }
    Ok(resp)
}

/// `GET /v1/store/stats`
pub async fn store_stats(State(app): State<Arc<App>>) -> Res {
    let s = blocking(move || app.store.stats_full().map_err(store_problem)).await?;
    let ratio = if s.stored_bytes > 0 { s.logical_bytes as f64 / s.stored_bytes as f64 } else { 1.0 };
    let mut v = serde_json::to_value(&s).expect("stats serialize");
    v["dedup_ratio"] = json!(ratio);
    Ok(Json(v).into_response())
}

// -------------------------------------------------------------------------------------
// Copies.

/// The model's registered ancestors (parents, their parents, …), bounded.
fn ancestors(snap: &impl deed_ledger::StateRead, roots: &[Cid]) -> BTreeSet<Cid> {
    let mut seen: BTreeSet<Cid> = BTreeSet::new();
    let mut frontier: Vec<Cid> = roots.to_vec();
    for _ in 0..LINEAGE_DEPTH_MAX {
        let mut next = Vec::new();
        for id in frontier {
            if let Some(rec) = deed_ledger::query::model(snap, &id) {
                for p in rec.parents {
                    if seen.insert(p.model) {
                        next.push(p.model);
                    }
                }
            }
        }
        frontier = next;
    }
    seen
}

/// Registered models nearest to `fp`, best first, with their similarity.
fn nearest(app: &App, fp: &deed_store::Fingerprint, except: Option<&Cid>) -> Result<Vec<(Cid, String, f64)>, String> {
    let snap = app.db.snapshot().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for rec in deed_ledger::query::models(&snap) {
        if Some(&rec.id) == except {
            continue;
        }
        // Models whose bytes are not on this node cannot be compared here.
        let Ok(Some(other)) = app.store.fingerprint(&rec.id) else { continue };
        out.push((rec.id, rec.name, fingerprint::similarity(fp, &other)));
    }
    out.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// The registration rule against laundering: a model whose weights are an exact or
/// near copy (similarity ≥ [`fingerprint::NEAR_COPY_MIN`]) of a registered model is
/// refused unless it declares that model as a parent — or a parent that the matched
/// model itself descends from, or that descends from it (siblings fine-tuned from one
/// base, each naming the base). Files the store cannot fingerprint pass (the engine
/// validates them separately).
pub fn check_not_a_copy(app: &App, model: &Cid, declared_parents: &[Cid]) -> Result<(), String> {
    let fp = match app.store.fingerprint(model) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(()),
        Err(e) => return Err(format!("cannot fingerprint model {model}: {e}")),
    };
    let snap = app.db.snapshot().map_err(|e| e.to_string())?;
    let declared: BTreeSet<Cid> = declared_parents.iter().copied().collect();
    let declared_lineage = ancestors(&snap, declared_parents);
    for (id, name, s) in nearest(app, &fp, Some(model))? {
        if s < fingerprint::NEAR_COPY_MIN {
            break;
        }
        let covered = declared.contains(&id)
            || declared_lineage.contains(&id)
            || ancestors(&snap, &[id]).iter().any(|a| declared.contains(a));
        if !covered {
            let what = if s >= 1.0 { "an exact copy of the weights" } else { "a near copy" };
            return Err(format!(
                "model {model} is {what} of registered model {id} ('{name}'): similarity {s:.3} ≥ {:.2}. \
                 Declare it as a parent (deed publish --parent {id}:BPS) so royalties flow to it",
                fingerprint::NEAR_COPY_MIN
            ));
        }
    }
    Ok(())
}

fn similar_json(list: Vec<(Cid, String, f64)>) -> Value {
    let v: Vec<Value> = list
        .into_iter()
        .take(SIMILAR_LEN_MAX)
        .map(|(id, name, s)| json!({ "model": id, "name": name, "similarity": s, "copy": s >= fingerprint::NEAR_COPY_MIN }))
        .collect();
    json!({ "threshold": fingerprint::NEAR_COPY_MIN, "models": v })
}

/// `GET /v1/similar/{cid}`: nearest registered models to a stored model.
pub async fn similar_to_blob(State(app): State<Arc<App>>, Path(cid): Path<String>) -> Res {
    let cid = parse_cid(&cid)?;
    let v = blocking(move || {
        let fp = app.store.fingerprint(&cid).map_err(store_problem)?.ok_or_else(|| {
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-model",
                format!("{cid} is not a model file deed can read"),
            )
        })?;
        let list =
            nearest(&app, &fp, Some(&cid)).map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
        Ok(similar_json(list))
    })
    .await?;
    Ok(Json(v).into_response())
}

/// `POST /v1/similar`: nearest registered models to the model file in the body (not stored).
pub async fn similar_to_file(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Res {
    if body.len() > SIMILAR_BODY_BYTES_MAX {
        return Err(problem(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "model too large; upload it and use its id"));
    }
    let v = blocking(move || {
        deed_store::refuse_pickle(&body).map_err(store_problem)?;
        let fp = app.store.fingerprint_bytes(&body).map_err(store_problem)?;
        let list = nearest(&app, &fp, None).map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
        Ok(similar_json(list))
    })
    .await?;
    Ok(Json(v).into_response())
}

// -------------------------------------------------------------------------------------
// Garbage collection.

/// Blobs the node must keep: registered models (and the safetensors files their graphs
/// point at), and job inputs and outputs of the last [`GC_RECENT_BLOCKS`] blocks and of
/// pending transactions. Everything else goes once older than [`GC_GRACE_MS`].
pub fn referenced(app: &App) -> Result<BTreeSet<Cid>, crate::NodeError> {
    let snap = app.db.snapshot()?;
    let mut keep = BTreeSet::new();
    for rec in deed_ledger::query::models(&snap) {
        keep.insert(rec.id);
        if let Ok(bytes) = app.store.get(&rec.id)
            && let Ok(ts) = deed_store::formats::onnx_tensors(&bytes, &Default::default())
        {
            for t in ts {
                if let deed_store::formats::TensorData::External(e) = t.data
                    && let Some(c) = Cid::from_location(&e.location)
                {
                    keep.insert(c);
                }
            }
        }
    }
    let height = app.db.height()?;
    let mut note = |body: &TxBody| match body {
        TxBody::RequestInference { model, input, .. } => {
            keep.insert(*model);
            keep.insert(*input);
        }
        TxBody::SubmitReceipt { receipt } => {
            keep.insert(Cid(receipt.receipt.input_hash));
            keep.insert(Cid(receipt.receipt.output_hash));
        }
        TxBody::RegisterModel { model, .. } => {
            keep.insert(*model);
        }
        _ => {}
    };
    for h in height.saturating_sub(GC_RECENT_BLOCKS) + 1..=height {
        if let Some(b) = app.db.block(h)? {
            for tx in &b.txs {
                note(&tx.tx.body);
            }
        }
    }
    for tx in app.db.mempool_all()? {
        note(&tx.tx.body);
    }
    Ok(keep)
}

/// One garbage collection: see [`referenced`].
pub fn gc_once(app: &App) -> Result<deed_store::GcReport, crate::NodeError> {
    let keep = referenced(app)?;
    Ok(app.store.gc(|c| keep.contains(c), GC_GRACE_MS)?)
}

/// Runs [`gc_once`] every [`GC_INTERVAL_MS`] until shutdown.
pub async fn gc_loop(app: Arc<App>, mut shutdown: tokio::sync::watch::Receiver<bool>) -> Result<(), crate::NodeError> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(GC_INTERVAL_MS)) => {}
            _ = shutdown.wait_for(|v| *v) => return Ok(()),
        }
        let a = app.clone();
        match tokio::task::spawn_blocking(move || gc_once(&a)).await {
            Ok(Ok(r)) => tracing::info!(?r, "store garbage collection"),
            Ok(Err(e)) => tracing::warn!("store garbage collection failed: {e}"),
            Err(e) => tracing::warn!("store garbage collection panicked: {e}"),
        }
    }
}

//! Store commands: `deed pull` (resumable, verified download with a progress bar),
//! `deed store stats` (logical vs stored bytes) and `deed similar` (nearest registered
//! models by weight fingerprint).

use crate::{Fail, commands::Ctx};
use anyhow::Result;
use deed_types::Cid;
use serde_json::Value;
use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
    time::Duration,
};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .build()
        .into()
}

fn unreachable(base: &str, e: ureq::Error) -> anyhow::Error {
    Fail::new(crate::EXIT_UNREACHABLE, format!("cannot reach the node at {base}: {e}. Is `deed node` running?")).into()
}

fn refused(status: u16, body: &[u8]) -> anyhow::Error {
    let detail = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let code = if status == 404 { crate::EXIT_NOT_FOUND } else { crate::EXIT_REFUSED };
    Fail::new(code, detail).into()
}

fn hash_file(p: &Path) -> Result<blake3::Hasher> {
    let mut h = blake3::Hasher::new();
    h.update_reader(File::open(p)?)?;
    Ok(h)
}

/// `deed pull ID [-o FILE]`: downloads a blob, resuming a partial `FILE.part` with a
/// Range request, hashing as it writes; the file appears under its name only once its
/// BLAKE3 equals the id (exit 3 otherwise).
pub fn pull(ctx: &Ctx, id: &str, out: Option<PathBuf>) -> Result<()> {
    let cid: Cid = id.parse()?;
    let out = out.unwrap_or_else(|| PathBuf::from(cid.to_string()));
    let part = PathBuf::from(format!("{}.part", out.display()));
    let base = ctx.client()?.base;
    let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let mut req = agent().get(format!("{base}/v1/blobs/{cid}"));
    if have > 0 {
        req = req.header("range", format!("bytes={have}-"));
    }
    let mut resp = req.call().map_err(|e| unreachable(&base, e))?;
    let status = resp.status().as_u16();
    let (mut hasher, start) = match status {
        206 => (hash_file(&part)?, have),
        200 => (blake3::Hasher::new(), 0),
        // The partial file already holds everything: nothing left to fetch.
        416 if have > 0 => (hash_file(&part)?, have),
        _ => {
            let body = resp.body_mut().with_config().limit(1 << 20).read_to_vec().unwrap_or_default();
            return Err(refused(status, &body));
        }
    };
    let len: u64 =
        resp.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut f = if start > 0 { OpenOptions::new().append(true).open(&part)? } else { File::create(&part)? };
    let pb = if ctx.json {
        indicatif::ProgressBar::hidden()
    } else {
        let pb = indicatif::ProgressBar::new(start + len);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        pb.set_message("downloading");
        pb.set_position(start);
        pb
    };
    if status != 416 {
        let mut r = resp.body_mut().as_reader();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    pb.abandon();
                    return Err(Fail::new(
                        crate::EXIT_UNREACHABLE,
                        format!("download interrupted ({e}); run the same command again to resume"),
                    )
                    .into());
                }
            };
            f.write_all(&buf[..n])?;
            hasher.update(&buf[..n]);
            pb.inc(n as u64);
        }
    }
    f.sync_all()?;
    pb.finish_and_clear();
    let got = Cid(deed_types::Hash32(*hasher.finalize().as_bytes()));
    if got != cid {
        let _ = fs::remove_file(&part);
        return Err(Fail::new(
            crate::EXIT_NOT_VERIFIED,
            format!("the downloaded bytes hash to {got}, not {cid}: discarded (the node or the network is faulty)"),
        )
        .into());
    }
    fs::rename(&part, &out)?;
    let size = fs::metadata(&out)?.len();
    let v = serde_json::json!({ "cid": cid, "file": out, "size": size, "verified": true, "resumed_from": start });
    ctx.emit(&v, || format!("{} ({size} bytes) verified: BLAKE3 matches {cid}\n", out.display()));
    Ok(())
}

fn human(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = b as f64;
    let mut i = 0;
    while x >= 1024.0 && i + 1 < units.len() {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{b} B") } else { format!("{x:.1} {}", units[i]) }
}

/// `deed store stats`.
pub fn stats(ctx: &Ctx) -> Result<()> {
    let v = ctx.client()?.get("/v1/store/stats")?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    ctx.emit(&v, || {
        format!(
            "blobs:          {}\nlogical bytes:  {} ({})\nstored bytes:   {} ({}) in {} chunks\nmanifests:      {}\ndedup ratio:    {:.2}x\nuploads open:   {}\nbackend:        {}\n",
            n("blobs"),
            n("logical_bytes"),
            human(n("logical_bytes")),
            n("stored_bytes"),
            human(n("stored_bytes")),
            n("chunks"),
            human(n("manifest_bytes")),
            v["dedup_ratio"].as_f64().unwrap_or(1.0),
            n("uploads"),
            v["backend"].as_str().unwrap_or("?"),
        )
    });
    Ok(())
}

/// `deed similar ID|FILE`.
pub fn similar(ctx: &Ctx, target: &str) -> Result<()> {
    let c = ctx.client()?;
    let v = if let Ok(cid) = target.parse::<Cid>() {
        c.get(&format!("/v1/similar/{cid}"))?
    } else {
        let bytes =
            fs::read(target).map_err(|e| Fail::new(1, format!("'{target}' is neither a model id nor a file: {e}")))?;
        let mut resp = agent()
            .post(format!("{}/v1/similar", c.base))
            .header("content-type", "application/octet-stream")
            .send(&bytes[..])
            .map_err(|e| unreachable(&c.base, e))?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().with_config().limit(16 << 20).read_to_vec()?;
        if status >= 300 {
            return Err(refused(status, &body));
        }
        serde_json::from_slice(&body)?
    };
    ctx.emit(&v, || {
        let list = v["models"].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            return "no registered model on this node is comparable\n".to_string();
        }
        let mut s = format!("{:<10} {:<62} NAME\n", "SIMILARITY", "MODEL");
        for m in &list {
            let sim = m["similarity"].as_f64().unwrap_or(0.0);
            let flag = if m["copy"].as_bool().unwrap_or(false) { " (copy)" } else { "" };
            s.push_str(&format!(
                "{:<10} {:<62} {}{flag}\n",
                format!("{sim:.3}"),
                m["model"].as_str().unwrap_or("?"),
                m["name"].as_str().unwrap_or("")
            ));
        }
        s.push_str(&format!(
            "a similarity ≥ {} is a copy: registering it needs that model as a parent\n",
            v["threshold"]
        ));
        s
    });
    Ok(())
}

/// `deed store …`.
#[derive(clap::Subcommand, Debug)]
pub enum StoreCmd {
    /// Blobs, logical bytes (as files) and stored bytes (deduplicated chunks).
    Stats,
}

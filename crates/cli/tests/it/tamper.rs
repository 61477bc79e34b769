//! A man in the middle for proof tests: an HTTP proxy in front of a node that passes
//! every request through and lets the test change the JSON of `/v1/proofs/…` answers.
//! `deed --node PROXY prove …` then shows that the CLI's own check refuses a proof
//! with one byte changed, exactly as it would from a lying node.

use serde_json::Value;
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

/// How a proof answer is changed before the client sees it.
pub type Tamper = fn(&mut Value);

/// The proxy; stops when dropped.
pub struct TamperProxy {
    /// `http://127.0.0.1:PORT`, to pass as `--node`.
    pub url: String,
    tamper: Arc<Mutex<Tamper>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TamperProxy {
    /// A proxy in front of the node at `node_url`, passing proofs through unchanged
    /// until [`TamperProxy::set`] is called.
    pub fn start(node_url: &str) -> TamperProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = node_url.trim_start_matches("http://").to_string();
        let tamper: Arc<Mutex<Tamper>> = Arc::new(Mutex::new(|_| {}));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (tamper.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let f = *t.lock().unwrap();
                if let Err(e) = serve(conn, &upstream, f) {
                    eprintln!("tamper proxy: {e}");
                }
            }
        });
        TamperProxy { url, tamper, stop, thread: Some(thread) }
    }

    /// Changes every proof answer from now on with `f`.
    pub fn set(&self, f: Tamper) {
        *self.tamper.lock().unwrap() = f;
    }
}

impl Drop for TamperProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://")); // wakes accept()
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Index just past the blank line that ends an HTTP head.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).ok_or("truncated chunk")?);
        body = body.get(size + 2..).ok_or("truncated chunk")?;
    }
}

/// One request: forwarded with `Connection: close`, the answer read to its end, a proof
/// answer changed, and written back with `Connection: close`.
fn serve(mut client: TcpStream, upstream: &str, tamper: Tamper) -> Result<(), String> {
    client.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(end) = head_end(&buf) {
            break end;
        }
        let n = client.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(()); // a connection that sent nothing (e.g. the wake-up in drop)
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len: usize = header(&head, "content-length").map_or(Ok(0), str::parse).map_err(|e| format!("{e}"))?;
    while buf.len() < end + len {
        let n = client.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("client closed mid-body".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let request_line = head.lines().next().unwrap_or_default().to_string();
    let path = request_line.split(' ').nth(1).unwrap_or_default().to_string();
    let mut fwd = format!("{request_line}\r\nHost: {upstream}\r\nConnection: close\r\n");
    for l in head.lines().skip(1).filter(|l| !l.is_empty()) {
        let name = l.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        if name != "host" && name != "connection" {
            fwd.push_str(l);
            fwd.push_str("\r\n");
        }
    }
    fwd.push_str("\r\n");
    let mut up = TcpStream::connect(upstream).map_err(|e| e.to_string())?;
    up.write_all(fwd.as_bytes()).and_then(|()| up.write_all(&buf[end..end + len])).map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let rend = head_end(&resp).ok_or("upstream answer has no head")?;
    let rhead = String::from_utf8_lossy(&resp[..rend]).into_owned();
    let mut body = match header(&rhead, "transfer-encoding") {
        Some(te) if te.eq_ignore_ascii_case("chunked") => dechunk(&resp[rend..])?,
        _ => resp[rend..].to_vec(),
    };
    let status_line = rhead.lines().next().unwrap_or_default();
    if path.starts_with("/v1/proofs/") && status_line.split(' ').nth(1) == Some("200") {
        let mut v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        tamper(&mut v);
        body = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
    }
    let mut out = format!("{status_line}\r\n");
    for l in rhead.lines().skip(1).filter(|l| !l.is_empty()) {
        let name = l.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        if !matches!(name.as_str(), "content-length" | "transfer-encoding" | "connection") {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    client.write_all(out.as_bytes()).and_then(|()| client.write_all(&body)).map_err(|e| e.to_string())
}

/// Changes one byte of the hex string `v`: its last hex digit (one nibble of the last
/// byte). Panics if `v` is not a non-empty string, so a tamper never silently does nothing.
pub fn flip_hex(v: &mut Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}")).to_string();
    let last = s.chars().last().expect("non-empty hex");
    let flipped = if last == '0' { '1' } else { '0' };
    *v = Value::String(format!("{}{flipped}", &s[..s.len() - 1]));
}

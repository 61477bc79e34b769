//! A small blocking HTTP client for the node API.

use crate::Fail;
use serde_json::Value;
use std::{io::Read, time::Duration};

/// Client for one node.
pub struct Client {
    agent: ureq::Agent,
    /// Base URL, without a trailing slash.
    pub base: String,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .build()
            .into();
        Client { agent, base: base.trim_end_matches('/').to_string() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self, e: ureq::Error) -> Fail {
        Fail::new(
            crate::EXIT_UNREACHABLE,
            format!(
                "cannot reach the node at {}: {e}. Is `deed node` running? (set --node or node_url in config.toml)",
                self.base
            ),
        )
    }

    fn finish(&self, mut resp: ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, Fail> {
        let status = resp.status();
        let body = resp
            .body_mut()
            .with_config()
            .limit(4 << 30)
            .read_to_vec()
            .map_err(|e| Fail::new(crate::EXIT_UNREACHABLE, format!("reading the node's answer failed: {e}")))?;
        if status.is_success() {
            return Ok(body);
        }
        let detail = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let code = if status.as_u16() == 404 { crate::EXIT_NOT_FOUND } else { crate::EXIT_REFUSED };
        Err(Fail::new(code, detail))
    }

    fn json(&self, body: Vec<u8>) -> Result<Value, Fail> {
        serde_json::from_slice(&body)
            .map_err(|e| Fail::new(1, format!("the node answered something that is not JSON: {e}")))
    }

    /// GET a JSON document.
    pub fn get(&self, path: &str) -> Result<Value, Fail> {
        let resp = self.agent.get(&self.url(path)).call().map_err(|e| self.unreachable(e))?;
        let b = self.finish(resp)?;
        self.json(b)
    }

    /// GET raw bytes.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, Fail> {
        let resp = self.agent.get(&self.url(path)).call().map_err(|e| self.unreachable(e))?;
        self.finish(resp)
    }

    /// POST a JSON document.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Fail> {
        let resp = self.agent.post(&self.url(path)).send_json(body).map_err(|e| self.unreachable(e))?;
        let b = self.finish(resp)?;
        self.json(b)
    }

    /// PUT a blob streamed from `reader`.
    pub fn put_blob(&self, kind: &str, reader: &mut dyn Read) -> Result<Value, Fail> {
        let resp = self
            .agent
            .put(&self.url(&format!("/v1/blobs?kind={kind}")))
            .header("content-type", "application/octet-stream")
            .send(ureq::SendBody::from_reader(reader))
            .map_err(|e| self.unreachable(e))?;
        let b = self.finish(resp)?;
        self.json(b)
    }
}

//! Helpers shared by the integration test binaries: drive the real `deed` binary
//! and real nodes on loopback ports.
#![allow(dead_code)]

use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

pub fn deed(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deed"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("DEED_HOME")
        .output()
        .expect("deed runs")
}

/// Runs deed with --json, expects success, returns the JSON document.
pub fn ok_json(home: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = deed(home, &a);
    assert!(
        out.status.success(),
        "deed {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("deed {args:?} printed no single JSON document ({e}): {}", String::from_utf8_lossy(&out.stdout))
    })
}

/// Runs deed, expects failure with `code`, returns stderr.
pub fn fails(home: &Path, args: &[&str], code: i32) -> String {
    let out = deed(home, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "deed {args:?}: expected exit {code}; stderr: {err}");
    err
}

pub struct NodeProc {
    pub child: Child,
    pub url: String,
}

impl NodeProc {
    pub fn start(home: &Path) -> NodeProc {
        Self::start_with(home, &[])
    }

    pub fn start_with(home: &Path, env: &[(&str, &str)]) -> NodeProc {
        Self::start_args(home, &[], env)
    }

    /// A dev node with extra `deed node` arguments (e.g. `--misbehave wrong-output`).
    pub fn start_args(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> NodeProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_deed"))
            .arg("--home")
            .arg(home)
            .args(["node", "--dev", "--listen", "127.0.0.1:0", "--json"])
            .args(extra)
            .env("DEED_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("node prints its address");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("node said {line:?}: {e}"));
        let url = format!("http://{}", v["listen"].as_str().unwrap());
        NodeProc { child, url }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn balance(home: &Path, url: &str, addr: &str) -> u128 {
    ok_json(home, &["--node", url, "balance", addr])["balance"].as_str().unwrap().parse().unwrap()
}

/// Minimal HTTP/1.1 GET without curl, so the test needs nothing but the toolchain.
/// GET a JSON document from a node with a raw HTTP/1.1 request (the tests need
/// nothing but the toolchain).
pub fn get_json(url: &str, path: &str) -> Value {
    use std::io::{Read, Write};
    let host = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let body = resp.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap()
}

/// Total supply as the node reports it.
pub fn supply(url: &str) -> u128 {
    get_json(url, "/v1/supply")["total"].as_str().unwrap().parse().unwrap()
}

/// A `deed worker` process beside a node; killed when dropped.
pub struct WorkerProc(pub Child);

impl WorkerProc {
    /// Starts `deed --key KEY worker ARGS` against `url`.
    pub fn start(home: &Path, url: &str, key: &str, args: &[&str], env: &[(&str, &str)]) -> WorkerProc {
        let child = Command::new(env!("CARGO_BIN_EXE_deed"))
            .arg("--home")
            .arg(home)
            .args(["--node", url, "--key", key, "worker"])
            .args(args)
            .env("DEED_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("worker starts");
        WorkerProc(child)
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn key_addr(home: &Path, name: &str) -> String {
    let keys = ok_json(home, &["key", "list"]);
    keys["keys"].as_array().unwrap().iter().find(|k| k["name"] == name).unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string()
}

//! S3-compatible object storage backend (feature `s3`), over the `object_store` crate.
//!
//! The store's API is blocking (the node calls it from blocking threads), so this backend
//! owns a small current-thread tokio runtime and blocks on each request; it must not be
//! called from inside an async task. The `s3` feature speaks HTTP (a local or in-cluster
//! endpoint, and the moto server of scripts/s3_test.sh) and HTTPS through rustls with the
//! ring provider; `s3-tls` adds object_store's own `aws` feature (aws-lc).
//! Puts are atomic and durable when acknowledged, so [`Backend::sync`] has nothing to do.

use crate::backend::{Backend, ObjectInfo};
use futures_util::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, aws::AmazonS3Builder, path::Path};
use std::{io, sync::Arc};

/// Where the objects go.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// Bucket (must exist).
    pub bucket: String,
    /// Key prefix inside the bucket (may be empty).
    pub prefix: String,
    /// Region name (any string for most S3-compatible servers).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl S3Config {
    /// Reads `DEED_S3_ENDPOINT`, `DEED_S3_BUCKET`, `DEED_S3_PREFIX`, `DEED_S3_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`; `None` without an endpoint.
    pub fn from_env() -> Option<S3Config> {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        Some(S3Config {
            endpoint: std::env::var("DEED_S3_ENDPOINT").ok()?,
            bucket: var("DEED_S3_BUCKET", "deed"),
            prefix: var("DEED_S3_PREFIX", ""),
            region: var("DEED_S3_REGION", "us-east-1"),
            access_key_id: var("AWS_ACCESS_KEY_ID", "deed"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY", "deed"),
        })
    }
}

/// Objects in an S3-compatible bucket.
pub struct S3Backend {
    s3: Arc<dyn ObjectStore>,
    cfg: S3Config,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Backend({}/{})", self.cfg.bucket, self.cfg.prefix)
    }
}

fn io_err(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
        e => io::Error::other(e.to_string()),
    }
}

impl S3Backend {
    /// Connects (lazily: the first request does).
    pub fn new(cfg: S3Config) -> io::Result<S3Backend> {
        // reqwest is built without a default TLS provider: use ring's (already installed
        // by the embedding program is fine too).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let s3 = AmazonS3Builder::new()
            .with_endpoint(&cfg.endpoint)
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_access_key_id(&cfg.access_key_id)
            .with_secret_access_key(&cfg.secret_access_key)
            .with_allow_http(true)
            .build()
            .map_err(io_err)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(S3Backend { s3: Arc::new(s3), cfg, rt })
    }

    fn path(&self, key: &str) -> Path {
        if self.cfg.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.cfg.prefix.trim_end_matches('/')))
        }
    }
}

impl Backend for S3Backend {
    fn put(&self, key: &str, data: &[u8]) -> io::Result<()> {
        let p = self.path(key);
        self.rt.block_on(self.s3.put(&p, PutPayload::from(data.to_vec()))).map_err(io_err)?;
        Ok(())
    }

    fn sync(&self, _keys: &[String]) -> io::Result<()> {
        Ok(())
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let p = self.path(key);
        match self.rt.block_on(async { self.s3.get(&p).await?.bytes().await }) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let p = self.path(key);
        let b = self.rt.block_on(self.s3.get_range(&p, offset..offset + len)).map_err(io_err)?;
        if b.len() as u64 != len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short range read"));
        }
        Ok(b.to_vec())
    }

    fn has(&self, key: &str) -> io::Result<bool> {
        let p = self.path(key);
        match self.rt.block_on(self.s3.head(&p)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io_err(e)),
        }
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        let p = self.path(key);
        match self.rt.block_on(self.s3.delete(&p)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<ObjectInfo>> {
        let p = self.path(prefix.trim_end_matches('/'));
        let strip = if self.cfg.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.cfg.prefix.trim_end_matches('/'))
        };
        let metas: Vec<object_store::ObjectMeta> =
            self.rt.block_on(self.s3.list(Some(&p)).try_collect()).map_err(io_err)?;
        Ok(metas
            .into_iter()
            .map(|m| ObjectInfo {
                key: m.location.as_ref().strip_prefix(&strip).unwrap_or(m.location.as_ref()).to_string(),
                size: m.size,
                modified_ms: m.last_modified.timestamp_millis().max(0) as u64,
            })
            .collect())
    }

    fn describe(&self) -> String {
        format!("s3 {} {}/{}", self.cfg.endpoint, self.cfg.bucket, self.cfg.prefix)
    }
}

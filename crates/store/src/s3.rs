//! S3-compatible object storage backend (feature `s3`).

//! Integration tests for deed-engine.

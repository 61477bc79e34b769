//! Integration tests for deed-engine: whole models built here or read from
//! `fixtures/`, hostile inputs, and the determinism of outputs and traces.

mod build;
mod conformance;
mod fixtures;
mod hostile;
mod models;
mod shapes;

//! Naksha's benchmark harness: every figure in the README comes from here.
//!
//! - [`datasets`]: seeded synthetic clustered vectors, fvecs/ivecs files (TEXMEX layout).
//! - [`ann`]: recall@k vs QPS sweeps of Naksha's HNSW beside `hnsw_rs` and usearch (in-process), in one run.
//! - [`filtered`]: the same sweep with filters admitting 10% or 1% of the points, beside the peers' filtered searches.
//! - [`peers`]: hnswlib and faiss through a Python script, same data, same run.
//! - [`corpus`]: the Debian corpus of `../shared/data` and its cached MiniLM vectors.
//! - [`embed`]: embedding docs/s and tokens/s beside sentence-transformers, same texts, same run.
//! - [`ingest`]: durable upserts/s through the embedded API and HTTP NDJSON, one or several writers.
//! - [`load`]: concurrent HTTP clients on loopback for a bounded time: QPS, p50/p99.
//! - [`quality`]: MRR/nDCG/recall and latency of text, vector and hybrid search on a labelled set, beside bm25s.
//! - [`rag`]: how often grounded answers cite the right record, latency and context tokens, on the same set.
//! - [`tenants`]: thousands of small tenants on one node: start-up, RSS, open files, hot and cold query latency.
//! - [`plot`]: PNG plots of the reports (matplotlib in a pinned venv).
//! - [`report`]: markdown tables with the machine, data, parameters and command.
#![allow(clippy::print_stdout)]

pub mod ann;
pub mod common;
pub mod corpus;
pub mod curve;
pub mod datasets;
pub mod embed;
pub mod filtered;
pub mod ingest;
pub mod load;
pub mod peers;
pub mod plot;
pub mod quality;
pub mod rag;
pub mod report;
pub mod snapshots;
pub mod soak;
pub mod sources;
pub mod tenants;
mod usearch_peer;

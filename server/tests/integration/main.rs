//! End-to-end tests: the real `naksha` binary on an ephemeral port.

mod api;
mod embed;
mod fulltext;
mod grpc;
mod rag;
mod server;

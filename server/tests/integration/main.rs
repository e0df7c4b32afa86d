//! End-to-end tests: the real `naksha` binary on an ephemeral port.

mod api;
// The chat-completions server of the engine's tests, for the generator's end-to-end paths.
#[allow(dead_code)]
#[path = "../../../rag/tests/support/chat_server.rs"]
mod chat_server;
mod contract;
mod embed;
mod fulltext;
mod grpc;
mod hardening;
mod jobs;
mod rag;
mod server;
mod snapshots;
mod tenancy;

//! Integration tests of the collection engine, on real files in temp dirs.

mod chat_server;
mod crash;
mod faults;
mod fixtures;
mod fulltext;
mod lifecycle;
mod rag;
mod recall;
mod text;
mod validation;

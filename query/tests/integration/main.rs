//! Integration tests of the collection engine, on real files in temp dirs.

mod compat;
mod crash;
mod faults;
mod fixtures;
mod fulltext;
mod lifecycle;
mod recall;
mod snapshot;
mod text;
mod validation;

//! Integration tests of the collection engine, on real files in temp dirs.

mod crash;
mod fixtures;
mod fulltext;
mod lifecycle;
mod recall;
mod text;
mod validation;

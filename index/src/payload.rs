//! Payload indexes.

//! The one authentication check, shared by the HTTP layer and the gRPC
//! interceptor: `Authorization: Bearer <key>` against the configured key.

use crate::error::ApiError;

/// Accepts the request when no key is configured, or when `authorization` (the
/// header or metadata value) is `Bearer <key>` with the configured key
/// (compared in constant time); 401 otherwise.
pub fn check(api_key: &str, authorization: Option<&str>) -> Result<(), ApiError> {
    if api_key.is_empty() {
        return Ok(());
    }
    match authorization.and_then(|v| v.strip_prefix("Bearer ")) {
        Some(given) if constant_time_eq(given.as_bytes(), api_key.as_bytes()) => Ok(()),
        _ => Err(ApiError::unauthenticated()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_required_only_when_configured() {
        assert!(check("", None).is_ok());
        assert!(check("s3cret", Some("Bearer s3cret")).is_ok());
        for bad in [None, Some("s3cret"), Some("Bearer s3cre"), Some("Bearer s3cret2"), Some("bearer s3cret")] {
            assert_eq!(check("s3cret", bad).unwrap_err().kind, crate::error::Kind::Unauthenticated, "{bad:?}");
        }
    }
}

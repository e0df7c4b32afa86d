//! Signed JWTs as credentials (HS256 with a shared secret; RS256 or ES256
//! with public keys from PEM files), in the manner of Qdrant's JWT RBAC.
//!
//! Claims: `tenant` (absent: the default tenant), `role` (`admin`,
//! `tenant_admin`, `writer` or `reader`), `collections` (optional list) and
//! `exp` (required); `sub` names the token in the audit log. The algorithm
//! must be one a configured key is for: `alg: none`, a wrong algorithm, a bad
//! signature or an expired token is 401.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{Principal, Role};
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    tenant: Option<String>,
    role: Role,
    #[serde(default)]
    collections: Option<Vec<String>>,
    #[serde(default)]
    sub: Option<String>,
}

/// The configured verification keys.
pub struct Verifier {
    keys: Vec<(Algorithm, DecodingKey)>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("algorithms", &self.keys.iter().map(|k| k.0).collect::<Vec<_>>()).finish()
    }
}

impl Verifier {
    /// Keys from a shared HS256 secret (may be empty) and PEM public keys
    /// (RSA for RS256, P-256 for ES256). `None` when nothing is configured.
    pub fn new(hs256_secret: &str, public_pems: &[(String, Vec<u8>)]) -> Result<Option<Self>, String> {
        let mut keys = Vec::new();
        if !hs256_secret.is_empty() {
            if hs256_secret.len() < 32 {
                return Err("auth.jwt_secret must be at least 32 bytes".into());
            }
            keys.push((Algorithm::HS256, DecodingKey::from_secret(hs256_secret.as_bytes())));
        }
        for (name, pem) in public_pems {
            if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
                keys.push((Algorithm::RS256, k));
            } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
                keys.push((Algorithm::ES256, k));
            } else {
                return Err(format!("{name}: not an RSA or P-256 public key in PEM"));
            }
        }
        Ok((!keys.is_empty()).then_some(Self { keys }))
    }

    /// The principal a token stands for, or 401.
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| ApiError::unauthenticated())?;
        for (alg, key) in self.keys.iter().filter(|(a, _)| *a == header.alg) {
            let mut v = Validation::new(*alg);
            v.leeway = 5;
            v.validate_aud = false;
            v.set_required_spec_claims(&["exp"]);
            if let Ok(data) = jsonwebtoken::decode::<Claims>(token, key, &v) {
                let c = data.claims;
                return Ok(Principal {
                    key_id: format!("jwt:{}", c.sub.unwrap_or_default()),
                    tenant: c.tenant.unwrap_or_else(|| super::registry::DEFAULT_TENANT.to_owned()),
                    role: c.role,
                    collections: c.collections,
                    requests_per_second: None,
                });
            }
        }
        Err(ApiError::unauthenticated())
    }
}

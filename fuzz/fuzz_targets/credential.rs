//! Untrusted credentials and tenant-admin input: bearer tokens (tenant keys
//! against a registry, JWTs against an HS256 key), RFC 3339 times and quota
//! patches. Nothing panics; a forged token is never accepted.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use naksha_server::tenancy::registry::{Key, Registry};
use naksha_server::tenancy::{clock, jwt, Quotas, Role};

struct Fixture {
    registry: Registry,
    verifier: jwt::Verifier,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.create_tenant("acme", Quotas::default()).unwrap();
        registry.create_key(Key::new("acme", Role::Reader)).unwrap();
        let verifier = jwt::Verifier::new("a-fuzzing-secret-of-at-least-32-bytes", &[]).unwrap().unwrap();
        Fixture { registry, verifier, _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let f = fixture();
    assert!(f.registry.find(text).is_none(), "a guessed key was accepted");
    assert!(f.verifier.verify(text).is_err(), "an unsigned token was accepted");
    let _ = clock::parse(text);
    if let Ok(serde_json::Value::Object(patch)) = serde_json::from_str(text) {
        let _ = naksha_server::http::tenants::patch_quotas(&Quotas::default(), patch);
    }
});

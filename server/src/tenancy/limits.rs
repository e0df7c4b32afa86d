//! Token buckets for request rates and embedding tokens, and per-tenant
//! counters for `/metrics` and tenant usage.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{ApiError, Kind};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Counters of one tenant since start.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct Counters {
    /// Authorised requests.
    pub requests: u64,
    /// Requests refused with `rate_limited`.
    pub rate_limited: u64,
    /// Requests refused with `quota_exceeded`.
    pub quota_exceeded: u64,
    /// Tokens embedded (documents, embeddings, RAG and text queries on collections with a model).
    pub embed_tokens: u64,
}

/// Buckets keyed by `tenant:…` or `key:…`, and counters by tenant.
#[derive(Debug, Default)]
pub struct Limits {
    buckets: Mutex<HashMap<String, Bucket>>,
    counters: Mutex<HashMap<String, Counters>>,
}

impl Limits {
    /// Take `n` tokens from the bucket `key` that refills at `per_sec` up to
    /// `burst`; on refusal, the time until they would be there.
    fn take(&self, key: &str, per_sec: f64, burst: f64, n: f64) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.buckets.lock();
        let b = map.entry(key.to_owned()).or_insert(Bucket { tokens: burst, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec).min(burst);
        b.at = now;
        if b.tokens >= n {
            b.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((n - b.tokens) / per_sec))
        }
    }

    /// One request against a requests-per-second limit (burst: one second's worth).
    pub fn request(&self, key: &str, what: &str, per_sec: f64) -> Result<(), ApiError> {
        self.take(key, per_sec, per_sec.max(1.0), 1.0)
            .map_err(|wait| ApiError::rate_limited(format!("{what} is limited to {per_sec} requests per second"), wait))
    }

    /// `n` embedding tokens against a tokens-per-minute limit.
    pub fn embed_tokens(&self, tenant: &str, per_minute: u64, n: u64) -> Result<(), ApiError> {
        if n > per_minute {
            return Err(ApiError::new(
                Kind::QuotaExceeded,
                format!("this request embeds {n} tokens, more than embed_tokens_per_minute ({per_minute})"),
            ));
        }
        let per_sec = per_minute as f64 / 60.0;
        self.take(&format!("embed:{tenant}"), per_sec, per_minute as f64, n as f64)
            .map_err(|wait| ApiError::rate_limited(format!("embed_tokens_per_minute ({per_minute}) is spent"), wait))
    }

    /// Update a tenant's counters.
    pub fn count(&self, tenant: &str, f: impl FnOnce(&mut Counters)) {
        f(self.counters.lock().entry(tenant.to_owned()).or_default());
    }

    /// A tenant's counters.
    pub fn counters(&self, tenant: &str) -> Counters {
        self.counters.lock().get(tenant).copied().unwrap_or_default()
    }

    /// Every tenant's counters.
    pub fn all_counters(&self) -> Vec<(String, Counters)> {
        let mut v: Vec<_> = self.counters.lock().iter().map(|(k, c)| (k.clone(), *c)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Forget a deleted tenant.
    pub fn forget(&self, tenant: &str) {
        self.counters.lock().remove(tenant);
        self.buckets.lock().retain(|k, _| k.split_once(':').is_none_or(|(_, t)| t != tenant));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_exactly_the_limit_then_say_when_to_retry() {
        let l = Limits::default();
        for _ in 0..3 {
            l.request("tenant:a", "tenant a", 3.0).unwrap();
        }
        let e = l.request("tenant:a", "tenant a", 3.0).unwrap_err();
        assert_eq!(e.kind, Kind::RateLimited);
        assert!(e.retry_after.is_some_and(|s| s >= 1));
        l.request("tenant:b", "tenant b", 3.0).expect("buckets are per key");
        l.embed_tokens("a", 100, 60).unwrap();
        l.embed_tokens("a", 100, 40).unwrap();
        assert_eq!(l.embed_tokens("a", 100, 5).unwrap_err().kind, Kind::RateLimited);
        assert_eq!(l.embed_tokens("a", 100, 101).unwrap_err().kind, Kind::QuotaExceeded);
    }
}

//! The durable registry of tenants and API keys.
//!
//! # On-disk format (`{data_dir}/tenancy/registry.jsonl`, [`FORMAT_VERSION`])
//!
//! One JSON object per line, appended and fsynced before a change is
//! acknowledged. The first line is `{"op":"header","format":1}`; then, in the
//! order they happened:
//!
//! | `op`            | fields                                  | meaning                         |
//! |-----------------|-----------------------------------------|---------------------------------|
//! | `tenant`        | `name, quotas, created_at`              | create or replace a tenant      |
//! | `delete_tenant` | `name`                                  | the tenant and all its keys go  |
//! | `key`           | `id, tenant, role, collections, hash, created_at, expires_at, requests_per_second` | a new key |
//! | `revoke`        | `id`                                    | the key stops working           |
//! | `used`          | `id, at`                                | last use (written at most once a minute per key, not fsynced) |
//!
//! Keys are stored only as the SHA-256 of the whole key text (`hash`, hex);
//! the secret is shown once, when the key is made. A torn last line (a crash
//! mid-append) is dropped at open; any other unreadable line stops the open.
//! At open, a log with many superseded lines is rewritten (a new file,
//! fsynced, renamed over the old one).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{clock, Quotas, Role};
use crate::error::{ApiError, Kind};

/// Version of the registry log format.
pub const FORMAT_VERSION: u32 = 1;
/// The tenant that exists without being created: requests without a tenant
/// (single-user use, the bootstrap key) address it, and its collections live
/// where they always did (`{data_dir}/collections`).
pub const DEFAULT_TENANT: &str = "default";
/// Prefix of every key Naksha issues.
pub const KEY_PREFIX: &str = "nk_";
/// How often a key's last use is written at most.
const USED_EVERY_SECS: i64 = 60;

/// A tenant.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Tenant {
    /// Name (a namespace of collections).
    pub name: String,
    /// Limits.
    pub quotas: Quotas,
    /// Seconds since the epoch.
    pub created_at: i64,
}

/// A stored API key (never the secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Key {
    /// Public id (also in the key text: `nk_{id}_{secret}`).
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Role.
    pub role: Role,
    /// Collections it may use (`None`: all of its tenant's).
    pub collections: Option<Vec<String>>,
    /// SHA-256 of the key text, hex.
    pub hash: String,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// Seconds since the epoch after which it stops working.
    pub expires_at: Option<i64>,
    /// Its own request rate limit, besides the tenant's.
    pub requests_per_second: Option<f64>,
    /// Last successful use (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<i64>,
}

impl Key {
    /// A key of `tenant` with `role` and no limits, to pass to [`Registry::create_key`]
    /// (which fills in the id, hash and creation time).
    pub fn new(tenant: &str, role: Role) -> Self {
        Self {
            id: String::new(),
            tenant: tenant.to_owned(),
            role,
            collections: None,
            hash: String::new(),
            created_at: 0,
            expires_at: None,
            requests_per_second: None,
            last_used: None,
        }
    }

    /// `nk_{id}`: enough to recognise a key in a list, useless to authenticate.
    pub fn prefix(&self) -> String {
        format!("{KEY_PREFIX}{}", self.id)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Record {
    Header { format: u32 },
    Tenant(Tenant),
    DeleteTenant { name: String },
    Key(Key),
    Revoke { id: String },
    Used { id: String, at: i64 },
}

#[derive(Debug)]
struct Inner {
    tenants: BTreeMap<String, Tenant>,
    keys: HashMap<String, Key>,
    file: std::fs::File,
    /// When each key's last use was last written.
    used_written: HashMap<String, i64>,
}

/// The registry; every method is safe to call from many threads.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    inner: Mutex<Inner>,
}

/// Tenant names: as collection names, and not the default tenant's.
pub fn validate_tenant_name(name: &str) -> Result<(), ApiError> {
    naksha_query::database::validate_name(name)
        .map_err(|_| ApiError::invalid(format!("tenant name {name:?} must be 1 to 64 letters, digits, '_' or '-'")))?;
    if name == DEFAULT_TENANT {
        return Err(ApiError::invalid(format!("{DEFAULT_TENANT:?} is the built-in tenant's name")));
    }
    Ok(())
}

fn io(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("tenant registry: {e}"))
}

impl Registry {
    /// Open (or create) the registry in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ApiError> {
        fs_err::create_dir_all(dir).map_err(io)?;
        let path = dir.join("registry.jsonl");
        let text = match fs_err::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let (mut tenants, mut keys) = (BTreeMap::new(), HashMap::new());
        let mut lines = 0usize;
        let mut good_len = 0usize;
        let mut rest = &text[..];
        while !rest.is_empty() {
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                tracing::warn!(path = %path.display(), "dropping a torn last line of the tenant registry");
                break;
            };
            let line = &rest[..end];
            let record: Record = match serde_json::from_slice(line) {
                Ok(r) => r,
                Err(e) if end + 1 == rest.len() => {
                    tracing::warn!(path = %path.display(), error = %e, "dropping an unreadable last line of the tenant registry");
                    break;
                }
                Err(e) => {
                    return Err(io(format!("{} line {}: {e}; the registry is damaged", path.display(), lines + 1)))
                }
            };
            match record {
                Record::Header { format } if format != FORMAT_VERSION => {
                    return Err(io(format!(
                        "{} has format {format}; this build reads {FORMAT_VERSION}",
                        path.display()
                    )))
                }
                Record::Header { .. } => {}
                Record::Tenant(t) => {
                    tenants.insert(t.name.clone(), t);
                }
                Record::DeleteTenant { name } => {
                    tenants.remove(&name);
                    keys.retain(|_, k: &mut Key| k.tenant != name);
                }
                Record::Key(k) => {
                    keys.insert(k.id.clone(), k);
                }
                Record::Revoke { id } => {
                    keys.remove(&id);
                }
                Record::Used { id, at } => {
                    if let Some(k) = keys.get_mut(&id) {
                        k.last_used = Some(at);
                    }
                }
            }
            lines += 1;
            good_len += end + 1;
            rest = &rest[end + 1..];
        }
        let live = tenants.len() + keys.len();
        let file = if lines == 0 || lines > 2 * live + 1000 || good_len != text.len() {
            Self::rewrite(&path, &tenants, &keys)?
        } else {
            fs_err::OpenOptions::new().append(true).open(&path).map_err(io)?.into_parts().0
        };
        let used_written = HashMap::new();
        Ok(Self { path, inner: Mutex::new(Inner { tenants, keys, file, used_written }) })
    }

    /// Write the live state as a new log and put it in place atomically.
    fn rewrite(
        path: &Path,
        tenants: &BTreeMap<String, Tenant>,
        keys: &HashMap<String, Key>,
    ) -> Result<std::fs::File, ApiError> {
        let tmp = path.with_extension("jsonl.tmp");
        let mut out = Vec::new();
        let mut push = |r: &Record| {
            out.extend(serde_json::to_vec(r).unwrap_or_default());
            out.push(b'\n');
        };
        push(&Record::Header { format: FORMAT_VERSION });
        for t in tenants.values() {
            push(&Record::Tenant(t.clone()));
        }
        let mut sorted: Vec<&Key> = keys.values().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        for k in sorted {
            push(&Record::Key(k.clone()));
        }
        let mut f = fs_err::File::create(&tmp).map_err(io)?;
        f.write_all(&out).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs_err::rename(&tmp, path).map_err(io)?;
        if let Some(parent) = path.parent() {
            fs_err::File::open(parent).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(fs_err::OpenOptions::new().append(true).open(path).map_err(io)?.into_parts().0)
    }

    /// Append records and fsync: the change is durable when this returns.
    fn append(inner: &mut Inner, records: &[Record], sync: bool) -> Result<(), ApiError> {
        let mut out = Vec::new();
        for r in records {
            out.extend(serde_json::to_vec(r).map_err(io)?);
            out.push(b'\n');
        }
        inner.file.write_all(&out).map_err(io)?;
        if sync {
            inner.file.sync_data().map_err(io)?;
        }
        Ok(())
    }

    /// Where the log lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tenant, by name.
    pub fn tenants(&self) -> Vec<Tenant> {
        self.inner.lock().tenants.values().cloned().collect()
    }

    /// Number of tenants.
    pub fn tenant_count(&self) -> usize {
        self.inner.lock().tenants.len()
    }

    /// A tenant by name.
    pub fn tenant(&self, name: &str) -> Option<Tenant> {
        self.inner.lock().tenants.get(name).cloned()
    }

    /// Whether any key or tenant exists.
    pub fn is_empty(&self) -> bool {
        let g = self.inner.lock();
        g.tenants.is_empty() && g.keys.is_empty()
    }

    /// Create a tenant; 409 when one of that name exists.
    pub fn create_tenant(&self, name: &str, quotas: Quotas) -> Result<Tenant, ApiError> {
        validate_tenant_name(name)?;
        quotas.validate()?;
        let mut g = self.inner.lock();
        if g.tenants.contains_key(name) {
            return Err(ApiError::new(Kind::AlreadyExists, format!("tenant {name:?} exists")));
        }
        let t = Tenant { name: name.to_owned(), quotas, created_at: clock::now() };
        Self::append(&mut g, &[Record::Tenant(t.clone())], true)?;
        g.tenants.insert(t.name.clone(), t.clone());
        Ok(t)
    }

    /// Replace a tenant's quotas.
    pub fn update_tenant(&self, name: &str, quotas: Quotas) -> Result<Tenant, ApiError> {
        quotas.validate()?;
        let mut g = self.inner.lock();
        let Some(old) = g.tenants.get(name) else { return Err(tenant_not_found(name)) };
        let t = Tenant { quotas, ..old.clone() };
        Self::append(&mut g, &[Record::Tenant(t.clone())], true)?;
        g.tenants.insert(t.name.clone(), t.clone());
        Ok(t)
    }

    /// Remove a tenant and its keys (durably); false when there was none.
    pub fn delete_tenant(&self, name: &str) -> Result<bool, ApiError> {
        let mut g = self.inner.lock();
        if !g.tenants.contains_key(name) {
            return Ok(false);
        }
        Self::append(&mut g, &[Record::DeleteTenant { name: name.to_owned() }], true)?;
        g.tenants.remove(name);
        g.keys.retain(|_, k| k.tenant != name);
        Ok(true)
    }

    /// Make a key; returns it and its secret text (shown once).
    pub fn create_key(&self, mut key: Key) -> Result<(Key, String), ApiError> {
        let mut g = self.inner.lock();
        if key.tenant != DEFAULT_TENANT && !g.tenants.contains_key(&key.tenant) {
            return Err(tenant_not_found(&key.tenant));
        }
        let id = loop {
            let id = super::secret::hex(&super::secret::random::<6>());
            if !g.keys.contains_key(&id) {
                break id;
            }
        };
        let text = format!("{KEY_PREFIX}{id}_{}", super::secret::base64url(&super::secret::random::<32>()));
        key.id = id;
        key.hash = super::secret::sha256_hex(text.as_bytes());
        key.created_at = clock::now();
        Self::append(&mut g, &[Record::Key(key.clone())], true)?;
        g.keys.insert(key.id.clone(), key.clone());
        Ok((key, text))
    }

    /// A tenant's keys, oldest first.
    pub fn keys(&self, tenant: &str) -> Vec<Key> {
        let g = self.inner.lock();
        let mut keys: Vec<Key> = g.keys.values().filter(|k| k.tenant == tenant).cloned().collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        keys
    }

    /// Revoke a tenant's key (durably, at once); false when it has no such key.
    pub fn revoke(&self, tenant: &str, id: &str) -> Result<bool, ApiError> {
        let mut g = self.inner.lock();
        if g.keys.get(id).is_none_or(|k| k.tenant != tenant) {
            return Ok(false);
        }
        Self::append(&mut g, &[Record::Revoke { id: id.to_owned() }], true)?;
        g.keys.remove(id);
        Ok(true)
    }

    /// The key whose text this is (hash compared in constant time), if it exists.
    pub fn find(&self, text: &str) -> Option<Key> {
        let id = text.strip_prefix(KEY_PREFIX)?.split_once('_')?.0;
        let g = self.inner.lock();
        let key = g.keys.get(id)?;
        let hash = super::secret::sha256_hex(text.as_bytes());
        super::secret::constant_time_eq(hash.as_bytes(), key.hash.as_bytes()).then(|| key.clone())
    }

    /// Record a key's use (written at most once a minute per key).
    pub fn touch(&self, id: &str) {
        let now = clock::now();
        let mut g = self.inner.lock();
        let Some(k) = g.keys.get_mut(id) else { return };
        k.last_used = Some(now);
        if g.used_written.get(id).is_some_and(|&at| now - at < USED_EVERY_SECS) {
            return;
        }
        g.used_written.insert(id.to_owned(), now);
        if let Err(e) = Self::append(&mut g, &[Record::Used { id: id.to_owned(), at: now }], false) {
            tracing::warn!(error = e.message, "cannot record a key's last use");
        }
    }
}

/// 404 for a tenant, worded the same whether or not it exists.
pub fn tenant_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("tenant {name:?} not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_and_keys_survive_reopen_and_revocations_stick() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, gone);
        {
            let r = Registry::open(dir.path()).unwrap();
            r.create_tenant("acme", Quotas { max_points: Some(10), ..Quotas::default() }).unwrap();
            r.create_tenant("beta", Quotas::default()).unwrap();
            assert_eq!(r.create_tenant("acme", Quotas::default()).unwrap_err().kind, Kind::AlreadyExists);
            assert_eq!(r.create_tenant("default", Quotas::default()).unwrap_err().kind, Kind::InvalidArgument);
            kept = r.create_key(Key::new("acme", Role::Writer)).unwrap();
            gone = r.create_key(Key::new("acme", Role::Reader)).unwrap();
            r.create_key(Key::new("beta", Role::Reader)).unwrap();
            assert_eq!(r.find(&kept.1).unwrap().id, kept.0.id);
            assert!(r.revoke("acme", &gone.0.id).unwrap());
            assert!(r.find(&gone.1).is_none());
            assert!(!r.revoke("beta", &kept.0.id).unwrap(), "another tenant's key is not found");
            assert!(r.delete_tenant("beta").unwrap());
            r.touch(&kept.0.id);
        }
        let r = Registry::open(dir.path()).unwrap();
        assert_eq!(r.tenants().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["acme"]);
        assert_eq!(r.tenant("acme").unwrap().quotas.max_points, Some(10));
        let k = r.find(&kept.1).expect("the key still works after a restart");
        assert!(k.last_used.is_some());
        assert!(r.find(&gone.1).is_none(), "revoked across restarts");
        assert!(r.keys("beta").is_empty(), "a deleted tenant's keys are gone");
        let tampered = format!("{}x", kept.1);
        assert!(r.find(&tampered).is_none());
        assert!(!std::fs::read_to_string(r.path()).unwrap().contains(&kept.1), "only hashes are stored");
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_other_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = {
            let r = Registry::open(dir.path()).unwrap();
            r.create_tenant("acme", Quotas::default()).unwrap();
            r.path().to_owned()
        };
        let mut f = fs_err::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"op":"tenant","name":"be"#).unwrap();
        drop(f);
        let r = Registry::open(dir.path()).unwrap();
        assert_eq!(r.tenants().len(), 1);
        r.create_tenant("beta", Quotas::default()).unwrap();
        drop(r);
        assert_eq!(Registry::open(dir.path()).unwrap().tenants().len(), 2);
        let text = fs_err::read_to_string(&path).unwrap();
        fs_err::write(&path, text.replacen("\"acme\"", "\"acme", 1)).unwrap();
        assert!(Registry::open(dir.path()).is_err(), "damage before the last line stops the open");
    }
}

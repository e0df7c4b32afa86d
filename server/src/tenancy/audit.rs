//! The audit log: every admin action, every write and every failed
//! authentication or authorization, appended and fsynced before the reply.
//!
//! # On-disk format (`{data_dir}/audit/audit.log`, [`FORMAT_VERSION`])
//!
//! One [`AuditEntry`] as JSON per line, `seq` increasing by one. When the file
//! passes `max_file_bytes` it is renamed `audit.log.1` (older ones shift to
//! `.2`, … up to `keep_files`; the oldest is removed) and a new one starts.
//! Appends are group-committed: one `fdatasync` covers every entry written
//! before it, so concurrent writers share syncs and each returns only once its
//! own entry is durable.
//! Entries hold the key id, never a secret. A torn last line is skipped.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Version of the audit line format.
pub const FORMAT_VERSION: u32 = 1;
const FILE: &str = "audit.log";

/// One audit record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Position in the log (increasing; the paging cursor).
    pub seq: u64,
    /// RFC 3339 time.
    pub time: String,
    /// Milliseconds since the epoch.
    pub ts_ms: i64,
    /// Key id (`bootstrap` for the configured admin key, `jwt:{sub}` for tokens,
    /// `anonymous` without authentication configured); absent when authentication failed.
    pub key_id: Option<String>,
    /// Tenant addressed.
    pub tenant: Option<String>,
    /// Operation, e.g. `points.upsert`, `tenants.create`, `auth`.
    pub action: String,
    /// What it addressed, e.g. `collections/docs`.
    pub resource: String,
    /// `ok`, `denied`, `unauthenticated`, `rate_limited` or `error`.
    pub outcome: String,
    /// The API code when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Client address.
    pub client: Option<String>,
}

/// Filters for reading.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only entries at or after this time (seconds since the epoch).
    pub since: Option<i64>,
    /// Only entries after this `seq` (the previous page's `next`).
    pub after: Option<u64>,
    /// Page size.
    pub limit: usize,
}

#[derive(Debug)]
struct Inner {
    file: std::fs::File,
    size: u64,
    next_seq: u64,
}

/// The log.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    max_file_bytes: u64,
    keep_files: usize,
    inner: Mutex<Inner>,
    /// Entries below this `seq` are durable.
    synced: Mutex<u64>,
}

fn io(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("audit log: {e}"))
}

impl AuditLog {
    /// Open (or create) the log in `dir`.
    pub fn open(dir: &Path, max_file_bytes: u64, keep_files: usize) -> Result<Self, ApiError> {
        fs_err::create_dir_all(dir).map_err(io)?;
        let path = dir.join(FILE);
        let mut next_seq = 0;
        for p in Self::files(dir, keep_files).into_iter().rev() {
            if let Some(last) = read_entries(&p).map_err(io)?.last() {
                next_seq = last.seq + 1;
                break;
            }
        }
        let file = fs_err::OpenOptions::new().create(true).append(true).open(&path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let (mut file, _) = file.into_parts();
        // A torn last line: end it so the next entry starts on a line of its own.
        if size > 0 && fs_err::read(&path).map_err(io)?.last() != Some(&b'\n') {
            file.write_all(b"\n").map_err(io)?;
        }
        let inner = Mutex::new(Inner { file, size, next_seq });
        let synced = Mutex::new(next_seq);
        let (max_file_bytes, keep_files) = (max_file_bytes.max(4096), keep_files.max(1));
        Ok(Self { dir: dir.to_owned(), max_file_bytes, keep_files, inner, synced })
    }

    /// Files oldest first: `audit.log.{keep}` … `audit.log.1`, `audit.log`.
    fn files(dir: &Path, keep: usize) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = (1..=keep).rev().map(|i| dir.join(format!("{FILE}.{i}"))).collect();
        v.push(dir.join(FILE));
        v.retain(|p| p.exists());
        v
    }

    /// Append an entry (its `seq` is filled in); durable when this returns.
    pub fn append(&self, mut e: AuditEntry) -> Result<(), ApiError> {
        let seq = {
            let mut g = self.inner.lock();
            e.seq = g.next_seq;
            let mut line = serde_json::to_vec(&e).map_err(io)?;
            line.push(b'\n');
            if g.size > 0 && g.size + line.len() as u64 > self.max_file_bytes {
                self.rotate(&mut g)?;
            }
            g.file.write_all(&line).map_err(io)?;
            g.size += line.len() as u64;
            g.next_seq += 1;
            e.seq
        };
        let mut synced = self.synced.lock();
        if *synced > seq {
            return Ok(()); // another writer's sync covered it
        }
        // Everything written so far is in this file, or in older ones synced at rotation.
        let (upto, file) = {
            let g = self.inner.lock();
            (g.next_seq, g.file.try_clone().map_err(io)?)
        };
        file.sync_data().map_err(io)?;
        *synced = upto;
        Ok(())
    }

    fn rotate(&self, g: &mut Inner) -> Result<(), ApiError> {
        let name = |i: usize| self.dir.join(format!("{FILE}.{i}"));
        let _ = fs_err::remove_file(name(self.keep_files));
        for i in (1..self.keep_files).rev() {
            if name(i).exists() {
                fs_err::rename(name(i), name(i + 1)).map_err(io)?;
            }
        }
        g.file.sync_data().map_err(io)?;
        fs_err::rename(self.dir.join(FILE), name(1)).map_err(io)?;
        let f = fs_err::OpenOptions::new().create(true).append(true).open(self.dir.join(FILE)).map_err(io)?;
        g.file = f.into_parts().0;
        g.size = 0;
        fs_err::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }

    /// Entries matching `q`, oldest first, at most `q.limit`; and the cursor
    /// for the next page when there may be more.
    pub fn read(&self, q: &AuditQuery) -> Result<(Vec<AuditEntry>, Option<u64>), ApiError> {
        let files = {
            let _g = self.inner.lock(); // no rotation while the list is taken
            Self::files(&self.dir, self.keep_files)
        };
        let mut out = Vec::new();
        for p in files {
            for e in read_entries(&p).map_err(io)? {
                let keep = q.after.is_none_or(|a| e.seq > a)
                    && q.tenant.as_ref().is_none_or(|t| e.tenant.as_ref() == Some(t))
                    && q.action.as_ref().is_none_or(|a| &e.action == a)
                    && q.since.is_none_or(|s| e.ts_ms >= s * 1000);
                if keep {
                    if out.len() == q.limit {
                        let next = out.last().map(|l: &AuditEntry| l.seq);
                        return Ok((out, next));
                    }
                    out.push(e);
                }
            }
        }
        Ok((out, None))
    }
}

/// Every readable entry of a file (a file rotated away meanwhile reads as empty).
fn read_entries(path: &Path) -> std::io::Result<Vec<AuditEntry>> {
    let f = match fs_err::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        if let Ok(e) = serde_json::from_str::<AuditEntry>(&line?) {
            out.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tenant: &str, action: &str) -> AuditEntry {
        AuditEntry {
            seq: 0,
            time: String::new(),
            ts_ms: 1000,
            key_id: Some("k".into()),
            tenant: Some(tenant.into()),
            action: action.into(),
            resource: "collections/docs".into(),
            outcome: "ok".into(),
            code: None,
            client: None,
        }
    }

    #[test]
    fn entries_page_filter_rotate_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = AuditLog::open(dir.path(), 4096, 3).unwrap();
            for i in 0..40 {
                log.append(entry(if i % 2 == 0 { "a" } else { "b" }, "points.upsert")).unwrap();
            }
        }
        assert!(dir.path().join("audit.log.1").exists(), "rotated by size");
        let log = AuditLog::open(dir.path(), 4096, 3).unwrap();
        log.append(entry("a", "tenants.create")).unwrap();
        let all = |q: AuditQuery| log.read(&q).unwrap();
        let (page, next) = all(AuditQuery { tenant: Some("a".into()), limit: 5, ..Default::default() });
        assert_eq!(page.len(), 5);
        assert!(page.iter().all(|e| e.tenant.as_deref() == Some("a")));
        assert!(page.windows(2).all(|w| w[0].seq < w[1].seq));
        let (rest, _) = all(AuditQuery { tenant: Some("a".into()), after: next, limit: 100, ..Default::default() });
        assert!(rest.iter().all(|e| e.seq > page[4].seq));
        let (created, next) =
            all(AuditQuery { action: Some("tenants.create".into()), limit: 10, ..Default::default() });
        assert_eq!((created.len(), created[0].seq, next), (1, 40, None), "seq continues after a reopen");
    }

    #[test]
    fn concurrent_appends_get_distinct_sequence_numbers_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), 1 << 20, 2).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let log = &log;
                s.spawn(move || {
                    for _ in 0..50 {
                        log.append(entry(&format!("t{t}"), "points.upsert")).unwrap();
                    }
                });
            }
        });
        let (all, _) = log.read(&AuditQuery { limit: 1000, ..Default::default() }).unwrap();
        let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (0..400).collect::<Vec<_>>());
        assert_eq!(*log.synced.lock(), 400, "every entry is covered by a sync");
    }
}

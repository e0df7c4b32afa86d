//! Tenants' databases, opened on demand and closed when idle.
//!
//! The default tenant is the data directory itself and stays open. Tenant
//! `t` lives in `{data_dir}/tenants/t/` (a data directory of its own, with
//! its own lock). Start-up opens none of them; the first request to a tenant
//! opens it (recovering its collections), and tenants left idle, or the least
//! recently used ones past `max_open`, are closed again, so open files,
//! threads and memory stay bounded however many tenants exist. A tenant is
//! closed only when no request holds its database or any of its collections.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use naksha_query::{Database, EngineOptions};
use parking_lot::Mutex;

use super::registry::DEFAULT_TENANT;
use crate::error::ApiError;

#[derive(Debug, Default)]
struct Slot {
    db: Mutex<Option<Arc<Database>>>,
    /// Milliseconds since the epoch of the last use.
    used: AtomicI64,
}

/// Open databases by tenant.
#[derive(Debug)]
pub struct Pool {
    dir: PathBuf,
    root: Arc<Database>,
    options: EngineOptions,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    max_open: usize,
    /// Slots holding a database (changed only with that slot's lock held).
    open: AtomicUsize,
}

impl Pool {
    /// A pool over `root` (the default tenant) keeping at most `max_open` other tenants open.
    pub fn new(root: Arc<Database>, options: EngineOptions, max_open: usize) -> Self {
        let dir = root.dir().join("tenants");
        Self {
            dir,
            root,
            options,
            slots: Mutex::new(HashMap::new()),
            max_open: max_open.max(1),
            open: AtomicUsize::new(0),
        }
    }

    /// The default tenant's database.
    pub fn root(&self) -> &Arc<Database> {
        &self.root
    }

    /// Where tenant `name` keeps its data.
    pub fn tenant_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Remove folders of tenants that no longer exist (a crash between the
    /// registry's delete and the folder's removal) and unfinished deletes.
    pub fn clean_up(&self, exists: impl Fn(&str) -> bool) -> std::io::Result<()> {
        let Ok(entries) = fs_err::read_dir(&self.dir) else { return Ok(()) };
        for e in entries {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".deleting") || !exists(&name) {
                tracing::info!(tenant = %name, "removing the files of a deleted tenant");
                fs_err::remove_dir_all(e.path())?;
            }
        }
        Ok(())
    }

    /// The tenant's database, opened if needed. `exists` is checked while the
    /// tenant's slot is held, so a deleted tenant is never reopened. Blocks.
    pub fn get(&self, name: &str, exists: impl FnOnce() -> bool) -> Result<Arc<Database>, ApiError> {
        if name == DEFAULT_TENANT {
            return Ok(self.root.clone());
        }
        let slot = self.slots.lock().entry(name.to_owned()).or_default().clone();
        slot.used.store(super::clock::now_ms(), Ordering::Relaxed);
        let mut g = slot.db.lock();
        if let Some(db) = g.as_ref() {
            return Ok(db.clone());
        }
        if !exists() {
            return Err(super::registry::tenant_not_found(name));
        }
        let db = Arc::new(Database::open_with(self.tenant_dir(name), self.options.clone())?);
        *g = Some(db.clone());
        self.open.fetch_add(1, Ordering::Relaxed);
        drop(g);
        let open = self.open_count();
        if open > self.max_open {
            self.close_where(|_, _| true, open - self.max_open);
        }
        Ok(db)
    }

    /// Whether the tenant's database is open now (never blocks: a tenant being
    /// opened or closed counts as not open).
    pub fn is_open(&self, name: &str) -> bool {
        if name == DEFAULT_TENANT {
            return true;
        }
        let slot = self.slots.lock().get(name).cloned();
        slot.is_some_and(|s| s.db.try_lock().is_some_and(|g| g.is_some()))
    }

    /// Number of open tenant databases (not counting the default tenant).
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Open tenants' databases.
    pub fn open_databases(&self) -> Vec<(String, Arc<Database>)> {
        let slots: Vec<(String, Arc<Slot>)> = self.slots.lock().iter().map(|(n, s)| (n.clone(), s.clone())).collect();
        slots.into_iter().filter_map(|(n, s)| s.db.lock().clone().map(|db| (n, db))).collect()
    }

    /// Close tenants unused for `idle`.
    pub fn close_idle(&self, idle: Duration) -> usize {
        let cutoff = super::clock::now_ms() - idle.as_millis() as i64;
        self.close_where(|_, used| used < cutoff, usize::MAX)
    }

    /// Close up to `max` open tenants matching `pick`, least recently used first,
    /// skipping any a request is still using.
    fn close_where(&self, pick: impl Fn(&str, i64) -> bool, max: usize) -> usize {
        let mut slots: Vec<(String, Arc<Slot>)> = self
            .slots
            .lock()
            .iter()
            .filter(|(n, s)| pick(n, s.used.load(Ordering::Relaxed)))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        slots.sort_by_key(|(_, s)| s.used.load(Ordering::Relaxed));
        let mut closed = 0;
        for (name, slot) in slots {
            if closed == max {
                break;
            }
            let Some(mut g) = slot.db.try_lock() else { continue };
            if g.as_ref().is_some_and(idle) {
                // Closed while the slot is held: a request for this tenant waits for the
                // close instead of finding the old database's lock still taken.
                drop(g.take());
                self.open.fetch_sub(1, Ordering::Relaxed);
                drop(g);
                tracing::debug!(tenant = %name, "closed an idle tenant");
                closed += 1;
            }
        }
        closed
    }

    /// Close the tenant's database for good and remove its files (the
    /// registry has already forgotten it). Waits for requests still using it.
    pub fn remove(&self, name: &str, wait: Duration) -> Result<(), ApiError> {
        let slot = self.slots.lock().remove(name);
        if let Some(slot) = slot {
            let mut g = slot.db.lock();
            let deadline = std::time::Instant::now() + wait;
            while g.as_ref().is_some_and(|db| !idle(db)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if g.take().is_some() {
                self.open.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let dir = self.tenant_dir(name);
        if dir.exists() {
            let doomed = self.dir.join(format!("{name}.deleting"));
            fs_err::rename(&dir, &doomed).map_err(ApiError::internal)?;
            sync_dir(&self.dir);
            if let Err(e) = fs_err::remove_dir_all(&doomed) {
                tracing::warn!(tenant = name, error = %e, "cannot remove a deleted tenant's files; the next start does");
            }
        }
        Ok(())
    }
}

/// Nobody but the pool holds the database or any of its collections.
fn idle(db: &Arc<Database>) -> bool {
    Arc::strong_count(db) == 1 && db.collections().iter().all(|(_, c)| Arc::strong_count(c) == 2)
}

fn sync_dir(dir: &Path) {
    if let Err(e) = fs_err::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot fsync a folder");
    }
}

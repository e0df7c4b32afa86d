//! A database: one data directory holding named collections.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::collection::Collection;
use crate::config::{CollectionConfig, EngineOptions};
use crate::{Error, Result};

/// Longest collection name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// An open data directory: `collections/{name}/` for every collection, and a
/// `LOCK` file held with an exclusive advisory lock while open, so two
/// processes never write the same directory.
#[derive(Debug)]
pub struct Database {
    dir: PathBuf,
    options: EngineOptions,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
    _lock: fs_err::File,
}

/// Check a collection name: 1–64 of `[A-Za-z0-9_-]`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "collection name {name:?} must be 1 to {MAX_NAME_LEN} letters, digits, '_' or '-'"
        )))
    }
}

impl Database {
    /// Open (or create) the data directory `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, EngineOptions::default())
    }

    /// Open (or create) `dir`, recovering every collection in it.
    pub fn open_with(dir: impl AsRef<Path>, options: EngineOptions) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        let cdir = dir.join("collections");
        fs_err::create_dir_all(&cdir).map_err(naksha_storage::Error::from)?;
        let lock = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(naksha_storage::Error::from)?;
        let deadline = std::time::Instant::now() + options.lock_wait;
        loop {
            match lock.file().try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked(dir)),
                Err(std::fs::TryLockError::Error(e)) => return Err(naksha_storage::Error::Io(e).into()),
            }
        }
        let mut collections = BTreeMap::new();
        for entry in fs_err::read_dir(&cdir).map_err(naksha_storage::Error::from)? {
            let entry = entry.map_err(naksha_storage::Error::from)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".creating") || name.ends_with(".deleting") {
                // An interrupted create or delete: finish it.
                fs_err::remove_dir_all(entry.path()).map_err(naksha_storage::Error::from)?;
                continue;
            }
            if validate_name(&name).is_err() {
                continue;
            }
            let c = Collection::open(&entry.path(), &name, options.clone())?;
            collections.insert(name, Arc::new(c));
        }
        Ok(Self { dir, options, collections: RwLock::new(collections), _lock: lock })
    }

    /// The embedding models collections can use.
    pub fn models(&self) -> &naksha_embed::Models {
        &self.options.models
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Create a collection. Creating one that exists with the same configuration
    /// returns it; with another configuration is [`Error::CollectionExists`].
    pub fn create_collection(&self, name: &str, config: CollectionConfig) -> Result<Arc<Collection>> {
        validate_name(name)?;
        config.validate()?;
        let mut map = self.collections.write();
        if let Some(c) = map.get(name) {
            return if c.config() == &config { Ok(c.clone()) } else { Err(Error::CollectionExists(name.to_owned())) };
        }
        let c =
            Arc::new(Collection::create(&self.dir.join("collections").join(name), name, config, self.options.clone())?);
        map.insert(name.to_owned(), c.clone());
        Ok(c)
    }

    /// A collection by name.
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        self.collections.read().get(name).cloned().ok_or_else(|| Error::CollectionNotFound(name.to_owned()))
    }

    /// Every collection with its name, in name order (one snapshot of the map).
    pub fn collections(&self) -> Vec<(String, Arc<Collection>)> {
        self.collections.read().iter().map(|(n, c)| (n.clone(), c.clone())).collect()
    }

    /// Names and live point counts of every collection.
    pub fn list(&self) -> Vec<(String, usize)> {
        self.collections.read().iter().map(|(n, c)| (n.clone(), c.len())).collect()
    }

    /// Delete a collection and its files; returns whether it existed.
    ///
    /// The durable step (renaming the directory to `{name}.deleting`) comes
    /// first, with the collection's flushes and merges held off; only when it
    /// succeeded does the collection leave the map. A failure before it changes
    /// nothing; a failure after it (removing the files) is finished at the next open.
    pub fn delete_collection(&self, name: &str) -> Result<bool> {
        let mut map = self.collections.write();
        let Some(c) = map.get(name).cloned() else { return Ok(false) };
        let cdir = self.dir.join("collections");
        let dir = cdir.join(name);
        let doomed = dir.with_extension("deleting");
        c.quiesced(|| {
            naksha_storage::fault::check("collection.delete", &dir)?;
            fs_err::rename(&dir, &doomed)?;
            Ok::<_, naksha_storage::Error>(())
        })?;
        map.remove(name);
        drop(map);
        c.shutdown();
        if let Err(e) = naksha_storage::dirs::sync_dir(&cdir) {
            tracing::warn!(collection = name, error = %e, "cannot fsync the collections folder after a delete");
        }
        if let Err(e) = fs_err::remove_dir_all(&doomed) {
            tracing::warn!(collection = name, error = %e, "cannot remove a deleted collection's files; the next open finishes it");
        }
        Ok(true)
    }
}

//! A database: one data directory holding named collections.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::collection::Collection;
use crate::config::{CollectionConfig, EngineOptions};
use crate::snapshot::{
    bad, claim_id, io_err, now_ms, pack, remove_all, times, unique_path, unpack, ArchiveManifest, Restored,
    SnapshotInfo, FORMAT_VERSION, INCOMING_DIR, SNAPSHOTS_DIR,
};
use crate::{Error, ErrorKind, Result};

/// Longest collection name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// A file in a restored collection's directory from the moment it is renamed
/// into place until it has opened and matched its manifest: a crash in
/// between leaves it, and the next open removes that unchecked restore.
const RESTORE_PENDING: &str = "RESTORE-PENDING";

/// Check a restored collection, just opened from `dir`, against its archive's
/// manifest, then drop its [`RESTORE_PENDING`] mark.
fn confirm_restore(c: &Collection, dir: &Path, m: &ArchiveManifest) -> Result<()> {
    let (seq, points) = (c.info().seq, c.len() as u64);
    if seq != m.seq || points != m.points {
        return Err(bad(format!(
            "it opens at seq {seq} with {points} points, the manifest says seq {} with {}",
            m.seq, m.points
        )));
    }
    fs_err::remove_file(dir.join(RESTORE_PENDING)).map_err(naksha_storage::Error::from)?;
    Ok(naksha_storage::dirs::sync_dir(dir)?)
}

/// An open data directory: `collections/{name}/` for every collection, and a
/// `LOCK` file held with an exclusive advisory lock while open, so two
/// processes never write the same directory.
#[derive(Debug)]
pub struct Database {
    dir: PathBuf,
    options: EngineOptions,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
    /// Names being restored: taken, though not yet in `collections`.
    restoring: parking_lot::Mutex<std::collections::BTreeSet<String>>,
    _lock: fs_err::File,
}

/// A name reserved for a restore; released when dropped.
#[derive(Debug)]
pub(crate) struct Reserved<'a> {
    db: &'a Database,
    name: String,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.db.restoring.lock().remove(&self.name);
    }
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
            if name.ends_with(".creating") || name.ends_with(".deleting") || name.ends_with(".restoring") {
                // An interrupted create, delete or restore: finish it (a restore is undone).
                fs_err::remove_dir_all(entry.path()).map_err(naksha_storage::Error::from)?;
                continue;
            }
            if validate_name(&name).is_err() {
                continue;
            }
            if entry.path().join(RESTORE_PENDING).exists() {
                tracing::info!(collection = name, "removing a restore that a crash interrupted before its checks");
                fs_err::remove_dir_all(entry.path()).map_err(naksha_storage::Error::from)?;
                continue;
            }
            let c = Collection::open(&entry.path(), &name, options.clone())?;
            collections.insert(name, Arc::new(c));
        }
        crate::snapshot::clean_leftovers(&dir)?;
        Ok(Self { dir, options, collections: RwLock::new(collections), restoring: Default::default(), _lock: lock })
    }

    /// The engine options collections open with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Reserve `name` for a restore: a conflict if a collection has it or
    /// another restore holds it.
    pub(crate) fn reserve(&self, name: &str) -> Result<Reserved<'_>> {
        let map = self.collections.read();
        let mut restoring = self.restoring.lock();
        if map.contains_key(name) || !restoring.insert(name.to_owned()) {
            return Err(Error::Conflict(format!(
                "collection {name:?} already exists; restore into a new name, or delete it first"
            )));
        }
        Ok(Reserved { db: self, name: name.to_owned() })
    }

    /// Move an unpacked, verified restore (`staging`) into place as collection
    /// `name` (reserved by the caller), open it once, and check it against the
    /// archive's manifest before anyone can see it. Until that check passes, a
    /// [`RESTORE_PENDING`] file marks it for removal by the next open; when it
    /// fails, the directory goes and the error says why.
    pub(crate) fn install_restored(&self, staging: &Path, name: &str, m: &ArchiveManifest) -> Result<Arc<Collection>> {
        let cdir = self.dir.join("collections");
        let dir = cdir.join(name);
        let io = naksha_storage::Error::from;
        fs_err::File::create(staging.join(RESTORE_PENDING)).and_then(|f| f.sync_all()).map_err(io)?;
        naksha_storage::dirs::sync_dir(staging)?;
        naksha_storage::fault::check("restore.before_rename", staging).map_err(io_err)?;
        fs_err::rename(staging, &dir).map_err(io)?;
        naksha_storage::dirs::sync_dir(&cdir)?;
        let checked = (|| {
            // Verified files that do not open are a bad archive; a full disk or
            // a locked directory is this node's problem, and says so.
            let c = Collection::open(&dir, name, self.options.clone()).map_err(|e| match e.kind() {
                ErrorKind::NoSpace | ErrorKind::ReadOnly | ErrorKind::Unavailable => e,
                _ => bad(format!("it does not open: {e}")),
            })?;
            if let Err(e) = confirm_restore(&c, &dir, m) {
                c.shutdown();
                return Err(e);
            }
            Ok(c)
        })();
        match checked {
            Ok(c) => {
                let c = Arc::new(c);
                self.collections.write().insert(name.to_owned(), c.clone());
                Ok(c)
            }
            Err(e) => {
                remove_all(&dir);
                Err(e)
            }
        }
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
        if self.restoring.lock().contains(name) {
            return Err(Error::Conflict(format!("collection {name:?} is being restored")));
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

/// Snapshots ([`crate::snapshot`]): create, list, delete, restore.
impl Database {
    fn snapshots_root(&self) -> PathBuf {
        self.dir().join(SNAPSHOTS_DIR)
    }

    /// A folder for spooling an incoming archive (an upload, an S3 object)
    /// before [`Database::restore`] reads it; emptied when the database opens.
    pub fn incoming_dir(&self) -> Result<PathBuf> {
        let dir = self.snapshots_root().join(INCOMING_DIR);
        fs_err::create_dir_all(&dir).map_err(io_err)?;
        Ok(dir)
    }

    /// Snapshot collection `name` online: a cut at its last applied sequence
    /// number (writes go on meanwhile), packed into an archive kept under
    /// `snapshots/{name}/`.
    pub fn snapshot(&self, name: &str) -> Result<SnapshotInfo> {
        let c = self.collection(name)?;
        let root = self.snapshots_root();
        let created = now_ms();
        let staging = root.join(format!(".staging-{name}-{created}-{}", std::process::id()));
        let staging = unique_path(&staging);
        let data = staging.join("collection");
        let result = (|| {
            let (seq, points) = c.cut(&data)?;
            let dir = root.join(name);
            fs_err::create_dir_all(&dir).map_err(io_err)?;
            let (created_at, compact) = times(created);
            let (id, file) = claim_id(&dir, &format!("{compact}-{seq}"))?;
            let partial = dir.join(format!("{id}.tar.partial"));
            let manifest = ArchiveManifest {
                format_version: FORMAT_VERSION,
                collection: name.to_owned(),
                seq,
                points: points as u64,
                created_at: created_at.clone(),
                config: serde_json::to_value(c.config()).map_err(|e| Error::Internal(e.to_string()))?,
                files: Vec::new(),
            };
            let packed = pack(&data, manifest, file, created / 1000);
            let (size_bytes, sha256) = match packed {
                Ok(p) => p,
                Err(e) => {
                    remove_all(&partial);
                    return Err(e);
                }
            };
            let info = SnapshotInfo {
                id: id.clone(),
                collection: name.to_owned(),
                seq,
                points: points as u64,
                size_bytes,
                sha256,
                created_at,
            };
            let publish = (|| {
                naksha_storage::fault::check("snapshot.before_publish", &partial).map_err(io_err)?;
                let json = serde_json::to_vec_pretty(&info).map_err(|e| Error::Internal(e.to_string()))?;
                naksha_storage::dirs::write_atomic(&dir.join(format!("{id}.json")), &json)?;
                fs_err::rename(&partial, dir.join(format!("{id}.tar"))).map_err(io_err)?;
                naksha_storage::dirs::sync_dir(&dir)?;
                Ok(())
            })();
            if let Err(e) = publish {
                for leftover in [format!("{id}.tar.partial"), format!("{id}.json"), format!("{id}.json.tmp")] {
                    remove_all(&dir.join(leftover));
                }
                return Err(e);
            }
            Ok(info)
        })();
        remove_all(&staging);
        if let Ok(info) = &result {
            tracing::info!(collection = name, id = %info.id, seq = info.seq, bytes = info.size_bytes, "snapshot created");
        }
        result
    }

    /// Snapshots kept here, of one collection or of all, oldest first. A
    /// collection's snapshots outlive it (they are how a deleted one comes back).
    pub fn snapshots(&self, collection: Option<&str>) -> Result<Vec<SnapshotInfo>> {
        let root = self.snapshots_root();
        let names: Vec<String> = match collection {
            Some(c) => {
                validate_name(c)?;
                vec![c.to_owned()]
            }
            None => match fs_err::read_dir(&root) {
                Ok(rd) => rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| validate_name(n).is_ok())
                    .collect(),
                Err(_) => Vec::new(),
            },
        };
        let mut out = Vec::new();
        for name in names {
            let Ok(rd) = fs_err::read_dir(root.join(&name)) else { continue };
            for f in rd.flatten() {
                let path = f.path();
                if path.extension().is_some_and(|e| e == "json") && path.with_extension("tar").exists() {
                    let bytes = fs_err::read(&path).map_err(io_err)?;
                    match serde_json::from_slice::<SnapshotInfo>(&bytes) {
                        Ok(info) => out.push(info),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable snapshot record")
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| (&a.created_at, &a.collection, &a.id).cmp(&(&b.created_at, &b.collection, &b.id)));
        Ok(out)
    }

    /// The archive of snapshot `id` of `collection`, with its record.
    pub fn snapshot_archive(&self, collection: &str, id: &str) -> Result<(PathBuf, SnapshotInfo)> {
        validate_name(collection)?;
        let not_found = || Error::NotFound(format!("snapshot {id:?} of collection {collection:?} not found"));
        if validate_name(id).is_err() {
            return Err(not_found());
        }
        let dir = self.snapshots_root().join(collection);
        let archive = dir.join(format!("{id}.tar"));
        let bytes = match fs_err::read(dir.join(format!("{id}.json"))) {
            Ok(b) if archive.exists() => b,
            Ok(_) => return Err(not_found()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(io_err(e)),
        };
        let info = serde_json::from_slice(&bytes).map_err(|e| Error::Internal(format!("snapshot record {id}: {e}")))?;
        Ok((archive, info))
    }

    /// Delete snapshot `id` of `collection`; `false` when there was none.
    pub fn delete_snapshot(&self, collection: &str, id: &str) -> Result<bool> {
        let (archive, _) = match self.snapshot_archive(collection, id) {
            Ok(found) => found,
            Err(Error::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        // The record goes first: an archive without one is never listed, and is removed at the next open.
        fs_err::remove_file(archive.with_extension("json")).map_err(io_err)?;
        fs_err::remove_file(&archive).map_err(io_err)?;
        if let Some(dir) = archive.parent() {
            naksha_storage::dirs::sync_dir(dir)?;
        }
        Ok(true)
    }

    /// Restore snapshot `id` of `collection` into a new collection `target`.
    pub fn restore_snapshot(&self, collection: &str, id: &str, target: &str) -> Result<(Arc<Collection>, Restored)> {
        let (archive, info) = self.snapshot_archive(collection, id)?;
        let file = fs_err::File::open(&archive).map_err(io_err)?;
        self.restore(std::io::BufReader::with_capacity(1 << 20, file), target, Some(&info.sha256))
    }

    /// Restore an archive into a new collection `target` (a conflict if one
    /// by that name exists or is being restored). Every file is verified, and
    /// the whole archive against `expect_sha256` when given, before anything
    /// is visible; a bad archive is an [`Error::InvalidArgument`] naming the
    /// problem, and changes nothing.
    pub fn restore(
        &self,
        reader: impl std::io::Read,
        target: &str,
        expect_sha256: Option<&str>,
    ) -> Result<(Arc<Collection>, Restored)> {
        validate_name(target)?;
        let _reserved = self.reserve(target)?;
        let cdir = self.dir().join("collections");
        let staging = cdir.join(format!("{target}.restoring"));
        remove_all(&staging);
        let verified = (|| {
            let restored = unpack(reader, &staging, expect_sha256)?;
            let m = &restored.manifest;
            let config: CollectionConfig =
                serde_json::from_value(m.config.clone()).map_err(|e| bad(format!("collection config: {e}")))?;
            config.validate()?;
            if let Some(e) = &config.embed {
                self.models().get(&e.model)?;
            }
            Ok(restored)
        })();
        let installed = verified.and_then(|r| self.install_restored(&staging, target, &r.manifest).map(|c| (c, r)));
        let (c, restored) = match installed {
            Ok(done) => done,
            Err(e) => {
                remove_all(&staging);
                return Err(e);
            }
        };
        tracing::info!(collection = target, from = %restored.manifest.collection, seq = restored.manifest.seq, "snapshot restored");
        Ok((c, restored))
    }
}

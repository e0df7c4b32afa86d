//! Snapshots: a point-in-time cut of a collection packed into one
//! self-describing archive, and restores from such an archive.
//!
//! ## Archive format (version [`FORMAT_VERSION`])
//! A tar stream (GNU headers for long names, deterministic modes):
//!
//! | entry                              | content                                                     |
//! |------------------------------------|-------------------------------------------------------------|
//! | `naksha-snapshot.json` (first)     | [`ArchiveManifest`]: format version, collection, sequence number, live points, creation time, the collection's configuration, and every file's path, size and SHA-256 |
//! | `collection/MANIFEST`              | the collection's manifest at the cut                        |
//! | `collection/seg-{id:08}/...`       | the segments it lists (vectors, graph, points, text index, deletions) |
//! | `collection/wal/wal-*.log`         | the log up to the cut's sequence number                     |
//!
//! The archive's own SHA-256 and size live beside it in `{id}.json`
//! ([`SnapshotInfo`]) and travel with downloads and uploads.
//!
//! ## Local layout and crash safety
//! `snapshots/{collection}/{id}.tar` and `{id}.json` in the data directory.
//! Creating one: [`Collection::cut`] into `snapshots/.staging-*` (hard links,
//! no copy; writes go on), pack into `{id}.tar.partial`, fsync, write
//! `{id}.json`, rename the archive into place. Restoring: unpack into
//! `collections/{target}.restoring` checking every file's size and SHA-256
//! (and the whole archive's, when known), open it (WAL replay) and check its
//! sequence number and point count against the manifest, then rename it into
//! place. Nothing is visible before that rename. Whatever a crash leaves
//! (staging folders, `.partial` files, `.restoring` folders, a `{id}.json`
//! whose archive never arrived) is removed when the database opens.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Current archive format version.
pub const FORMAT_VERSION: u32 = 1;
/// Oldest archive format version this build restores.
pub const OLDEST_READABLE_VERSION: u32 = 1;
/// Name of the manifest entry, the first of every archive.
pub const MANIFEST_ENTRY: &str = "naksha-snapshot.json";
/// Folder of the data directory that holds snapshots.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// Folder (inside [`SNAPSHOTS_DIR`]) where incoming archives are spooled before a restore.
pub const INCOMING_DIR: &str = ".incoming";
const DATA_PREFIX: &str = "collection/";
const MAX_MANIFEST_BYTES: u64 = 64 << 20;
const BUF: usize = 1 << 20;

/// What an archive holds, written as its first entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchiveManifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Name of the collection the snapshot was taken of.
    pub collection: String,
    /// Sequence number of the cut: every write up to it, none after.
    pub seq: u64,
    /// Live points at the cut.
    pub points: u64,
    /// When the cut was taken (RFC 3339, UTC).
    pub created_at: String,
    /// The collection's configuration.
    pub config: Value,
    /// Every other entry of the archive.
    pub files: Vec<FileEntry>,
}

/// One file of an archive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path inside the archive (`collection/...`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// A snapshot kept in the data directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Id, unique per collection (`{YYYYMMDD}T{HHMMSS}Z-{seq}`, sortable by time).
    pub id: String,
    /// Collection it was taken of.
    pub collection: String,
    /// Sequence number of the cut.
    pub seq: u64,
    /// Live points at the cut.
    pub points: u64,
    /// Size of the archive in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the archive, lowercase hex.
    pub sha256: String,
    /// When the cut was taken (RFC 3339, UTC).
    pub created_at: String,
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq)]
pub struct Restored {
    /// The archive's manifest.
    pub manifest: ArchiveManifest,
    /// Bytes of archive read.
    pub archive_bytes: u64,
    /// SHA-256 of the archive read, lowercase hex.
    pub sha256: String,
}

/// A reader or writer that hashes (SHA-256) and counts what passes through:
/// archives are checksummed as they are packed, unpacked or downloaded, not
/// read back.
#[derive(Debug)]
pub struct Hashing<T> {
    inner: T,
    hash: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    /// Wrap `inner`.
    pub fn new(inner: T) -> Self {
        Hashing { inner, hash: Sha256::new(), bytes: 0 }
    }

    /// The inner reader or writer, the bytes that passed and their SHA-256 (lowercase hex).
    pub fn finish(self) -> (T, u64, String) {
        (self.inner, self.bytes, hex(self.hash.finalize()))
    }

    fn count(&mut self, passed: &[u8]) {
        self.hash.update(passed);
        self.bytes += passed.len() as u64;
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count(&buf[..n]);
        Ok(n)
    }
}

fn hex(digest: impl AsRef<[u8]>) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn io_err(e: io::Error) -> Error {
    Error::Storage(naksha_storage::Error::Io(e))
}

/// A damaged, truncated or foreign archive.
pub(crate) fn bad(what: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("snapshot archive rejected: {what}"))
}

/// SHA-256 and size of a file.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    // io::copy reads straight into the BufReader's 1 MiB buffer.
    let mut f = io::BufReader::with_capacity(BUF, fs_err::File::open(path).map_err(io_err)?);
    let mut hashed = Hashing::new(io::sink());
    io::copy(&mut f, &mut hashed).map_err(io_err)?;
    let (_, size, sha256) = hashed.finish();
    Ok((size, sha256))
}

/// Relative paths (with `/`) of every file under `dir`, sorted.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    let mut entries: Vec<_> = fs_err::read_dir(dir).map_err(io_err)?.collect::<io::Result<_>>().map_err(io_err)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = format!("{prefix}{name}");
        if e.file_type().map_err(io_err)?.is_dir() {
            walk(&e.path(), &format!("{rel}/"), out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// Pack the collection folder `src` (a cut) with `manifest` (its `files` are
/// filled in here) into `out`, fsynced. Returns the archive's size and SHA-256.
pub fn pack(src: &Path, mut manifest: ArchiveManifest, out: fs_err::File, mtime: u64) -> Result<(u64, String)> {
    let mut rel = Vec::new();
    walk(src, "", &mut rel)?;
    manifest.files.clear();
    for r in &rel {
        let (size, sha256) = hash_file(&src.join(r))?;
        manifest.files.push(FileEntry { path: format!("{DATA_PREFIX}{r}"), size, sha256 });
    }
    let out_path = out.path().to_owned();
    let mut w = Hashing::new(BufWriter::with_capacity(BUF, out));
    {
        let mut b = tar::Builder::new(&mut w);
        let header = |size: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(size);
            h.set_mode(0o644);
            h.set_mtime(mtime);
            h
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
        b.append_data(&mut header(json.len() as u64), MANIFEST_ENTRY, json.as_slice()).map_err(io_err)?;
        for (i, (r, f)) in rel.iter().zip(&manifest.files).enumerate() {
            if i == rel.len() / 2 {
                naksha_storage::fault::check("snapshot.pack", &out_path).map_err(io_err)?;
            }
            let file = fs_err::File::open(src.join(r)).map_err(io_err)?;
            b.append_data(&mut header(f.size), &f.path, file.take(f.size)).map_err(io_err)?;
        }
        b.finish().map_err(io_err)?;
    }
    let (buffered, bytes, sha) = w.finish();
    let file = buffered.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    Ok((bytes, sha))
}

/// Read the manifest entry: a version this build reads, sane paths.
fn parse_manifest(bytes: &[u8]) -> Result<ArchiveManifest> {
    let raw: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("{MANIFEST_ENTRY}: {e}")))?;
    let version = raw.get("format_version").and_then(Value::as_u64).ok_or_else(|| bad("no format_version"))?;
    if version > FORMAT_VERSION as u64 {
        return Err(bad(format!(
            "format version {version} is newer than this build reads ({OLDEST_READABLE_VERSION} to {FORMAT_VERSION}); restore it with a newer Naksha"
        )));
    }
    if version < OLDEST_READABLE_VERSION as u64 {
        return Err(bad(format!(
            "format version {version} is older than this build reads ({OLDEST_READABLE_VERSION})"
        )));
    }
    let m: ArchiveManifest = serde_json::from_value(raw).map_err(|e| bad(format!("{MANIFEST_ENTRY}: {e}")))?;
    let mut seen = HashSet::new();
    for f in &m.files {
        let rel = f.path.strip_prefix(DATA_PREFIX).ok_or_else(|| bad(format!("unexpected path {:?}", f.path)))?;
        let clean = !rel.is_empty() && Path::new(rel).components().all(|c| matches!(c, Component::Normal(_)));
        if !clean || rel.contains('\\') {
            return Err(bad(format!("unsafe path {:?}", f.path)));
        }
        if !seen.insert(f.path.as_str()) {
            return Err(bad(format!("{:?} is listed twice", f.path)));
        }
        if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!("{:?}: malformed sha256", f.path)));
        }
    }
    Ok(m)
}

/// The manifest from an archive's first entry.
fn manifest_entry<R: Read>(first: Option<io::Result<tar::Entry<'_, R>>>) -> Result<ArchiveManifest> {
    let mut first = first.ok_or_else(|| bad("the archive is empty"))?.map_err(bad)?;
    let name = first.path().map_err(bad)?.to_string_lossy().into_owned();
    if name != MANIFEST_ENTRY || first.size() > MAX_MANIFEST_BYTES {
        return Err(bad(format!("the first entry is {name:?}, not {MANIFEST_ENTRY}: not a Naksha snapshot")));
    }
    let mut json = Vec::with_capacity(first.size() as usize);
    first.read_to_end(&mut json).map_err(|e| bad(format!("{MANIFEST_ENTRY}: {e}")))?;
    parse_manifest(&json)
}

/// Read only the manifest of an archive (its first entry): what it holds,
/// before a restore reads the rest.
pub fn read_manifest(reader: impl Read) -> Result<ArchiveManifest> {
    let mut archive = tar::Archive::new(reader);
    let mut entries = archive.entries().map_err(|e| bad(format!("not a tar archive: {e}")))?;
    manifest_entry(entries.next())
}

/// Unpack an archive into `dest` (created), verifying every file against the
/// manifest and the whole stream against `expect_sha256` when given.
pub fn unpack(reader: impl Read, dest: &Path, expect_sha256: Option<&str>) -> Result<Restored> {
    let mut hr = Hashing::new(reader);
    let manifest = {
        let mut archive = tar::Archive::new(&mut hr);
        let mut entries = archive.entries().map_err(|e| bad(format!("not a tar archive: {e}")))?;
        let manifest = manifest_entry(entries.next())?;
        let wanted: HashMap<&str, &FileEntry> = manifest.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let mut seen = HashSet::new();
        let mut dirs = HashSet::new();
        fs_err::create_dir_all(dest).map_err(io_err)?;
        let mut buf = vec![0u8; BUF];
        for entry in entries {
            let mut e = entry.map_err(|e| bad(format!("damaged entry: {e}")))?;
            let path = e.path().map_err(bad)?.to_string_lossy().into_owned();
            let Some(want) = wanted.get(path.as_str()) else {
                return Err(bad(format!("{path:?} is not in the archive's manifest")));
            };
            if !e.header().entry_type().is_file() || !seen.insert(want.path.as_str()) {
                return Err(bad(format!("{path:?}: unexpected entry type or a second copy")));
            }
            let out = dest.join(&path[DATA_PREFIX.len()..]);
            if let Some(parent) = out.parent() {
                if dirs.insert(parent.to_owned()) {
                    fs_err::create_dir_all(parent).map_err(io_err)?;
                }
            }
            let mut f = fs_err::File::create(&out).map_err(io_err)?;
            let (mut hash, mut size) = (Sha256::new(), 0u64);
            loop {
                let n = e.read(&mut buf).map_err(|err| bad(format!("{path:?}: {err} (truncated?)")))?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                size += n as u64;
                naksha_storage::fault::write_all("restore.write", &out, &mut f, &buf[..n]).map_err(io_err)?;
            }
            let sha = hex(hash.finalize());
            if size != want.size || sha != want.sha256 {
                return Err(bad(format!(
                    "{path:?}: {size} bytes with SHA-256 {sha}, the manifest says {} bytes with {} (damaged archive)",
                    want.size, want.sha256
                )));
            }
            f.sync_all().map_err(io_err)?;
        }
        if let Some(missing) = manifest.files.iter().find(|f| !seen.contains(f.path.as_str())) {
            return Err(bad(format!("{:?} is missing (truncated archive?)", missing.path)));
        }
        for d in &dirs {
            naksha_storage::dirs::sync_dir(d)?;
        }
        manifest
    };
    // The end-of-archive padding belongs to the checksum too.
    io::copy(&mut hr, &mut io::sink()).map_err(bad)?;
    let (_, archive_bytes, sha256) = hr.finish();
    if let Some(expected) = expect_sha256 {
        if !expected.eq_ignore_ascii_case(&sha256) {
            return Err(bad(format!("the archive's SHA-256 is {sha256}, expected {expected}")));
        }
    }
    Ok(Restored { manifest, archive_bytes, sha256 })
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian):
/// snapshot ids and times here, and the server's clock and backup schedule.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `(RFC 3339 with milliseconds, compact YYYYMMDDTHHMMSSZ)` of a time in ms.
pub(crate) fn times(ms: u64) -> (String, String) {
    let secs = (ms / 1000) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let (h, mi, se) = (s / 3600, s / 60 % 60, s % 60);
    (
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}.{:03}Z", ms % 1000),
        format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{se:02}Z"),
    )
}

pub(crate) fn remove_all(path: &Path) {
    let r = if path.is_dir() { fs_err::remove_dir_all(path) } else { fs_err::remove_file(path) };
    if let Err(e) = r {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a snapshot leftover");
        }
    }
}

/// Remove what an interrupted snapshot or upload left in `snapshots/`.
pub(crate) fn clean_leftovers(db_dir: &Path) -> Result<()> {
    let root = db_dir.join(SNAPSHOTS_DIR);
    let Ok(rd) = fs_err::read_dir(&root) else { return Ok(()) };
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".staging-") || name == INCOMING_DIR {
            tracing::info!(path = %entry.path().display(), "removing the leftover of an interrupted snapshot");
            remove_all(&entry.path());
            continue;
        }
        let Ok(files) = fs_err::read_dir(entry.path()) else { continue };
        for f in files.flatten() {
            let path = f.path();
            let fname = f.file_name().to_string_lossy().into_owned();
            let orphan_info =
                fname.strip_suffix(".json").is_some_and(|id| !path.with_file_name(format!("{id}.tar")).exists());
            if fname.ends_with(".partial") || fname.ends_with(".tmp") || orphan_info {
                tracing::info!(path = %path.display(), "removing the leftover of an interrupted snapshot");
                remove_all(&path);
            }
        }
    }
    Ok(())
}

/// `path`, or `path-2`, `path-3`, ... whichever does not exist yet.
pub(crate) fn unique_path(path: &Path) -> PathBuf {
    let mut p = path.to_owned();
    let mut n = 1;
    while p.exists() {
        n += 1;
        p = PathBuf::from(format!("{}-{n}", path.display()));
    }
    p
}

/// Claim the id `base` (or `base-2`, ...) in `dir` by creating its `.partial` archive.
pub(crate) fn claim_id(dir: &Path, base: &str) -> Result<(String, fs_err::File)> {
    for n in 1..1000 {
        let id = if n == 1 { base.to_owned() } else { format!("{base}-{n}") };
        if dir.join(format!("{id}.json")).exists() || dir.join(format!("{id}.tar")).exists() {
            continue;
        }
        match fs_err::OpenOptions::new().write(true).create_new(true).open(dir.join(format!("{id}.tar.partial"))) {
            Ok(f) => return Ok((id, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
    Err(Error::Unavailable(format!("too many snapshots named {base}-* in {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(times(0), ("1970-01-01T00:00:00.000Z".into(), "19700101T000000Z".into()));
        // 2026-12-03T10:15:30.250Z
        assert_eq!(times(1_796_292_930_250).0, "2026-12-03T10:15:30.250Z");
        // A leap day.
        assert_eq!(times(951_782_400_000).1, "20000229T000000Z");
    }

    #[test]
    fn manifests_from_the_future_or_with_unsafe_paths_are_refused() {
        let future = br#"{"format_version": 2, "anything": true}"#;
        let e = parse_manifest(future).unwrap_err().to_string();
        assert!(e.contains("format version 2 is newer"), "{e}");
        let base = |path: &str| {
            serde_json::to_vec(&serde_json::json!({
                "format_version": 1, "collection": "c", "seq": 1, "points": 0, "created_at": "x", "config": {},
                "files": [{"path": path, "size": 1, "sha256": "0".repeat(64)}]
            }))
            .unwrap()
        };
        assert!(parse_manifest(&base("collection/MANIFEST")).is_ok());
        for evil in ["collection/../../etc/passwd", "/etc/passwd", "collection//x", "other/MANIFEST", "collection/"] {
            assert!(parse_manifest(&base(evil)).is_err(), "{evil}");
        }
        assert!(parse_manifest(b"not json").is_err());
    }
}

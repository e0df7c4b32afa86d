//! Snapshots: a point-in-time cut of a collection packed into one
//! self-describing archive, and restores from such an archive.
//!
//! ## Archive format (version [`FORMAT_VERSION`])
//! A tar stream (GNU headers for long names, deterministic modes):
//!
//! | entry                              | content                                                     |
//! |------------------------------------|-------------------------------------------------------------|
//! | `naksha-snapshot.json` (first)     | [`ArchiveManifest`]: format version, collection, sequence number, live points, creation time, the collection's configuration, and every file's path and size |
//! | `collection/MANIFEST`              | the collection's manifest at the cut                        |
//! | `collection/seg-{id:08}/...`       | the segments it lists (vectors, graph, points, text index, deletions) |
//! | `collection/wal/wal-*.log`         | the log up to the cut's sequence number                     |
//! | `naksha-checksums.json` (last)     | [`ArchiveChecksums`]: the CRC-32C of the manifest entry and of every file |
//!
//! The archive's own SHA-256 and size live beside it in `{id}.json`
//! ([`SnapshotInfo`]) and travel with downloads and uploads: that is the
//! end-to-end check. The CRC-32Cs catch a damaged file even when the archive
//! arrives without its SHA-256 (an upload), and name the file.
//!
//! ### Versions
//! - **1**: every file's SHA-256 in the manifest, no last entry. Packing read
//!   every byte twice (the checksums must precede the files) and hashed it
//!   twice. Still restored (`tests/compat/snapshot-v1/`).
//! - **2**: the per-file checksums are CRC-32Cs in a last entry, computed as
//!   the files stream past: a snapshot reads each byte once, and the archive's
//!   SHA-256 is computed on a thread of its own beside the copy.
//!
//! ## Local layout and crash safety
//! `snapshots/{collection}/{id}.tar` and `{id}.json` in the data directory.
//! Creating one: [`Collection::cut`] into `snapshots/.staging-*` (hard links,
//! no copy; writes go on), pack into `{id}.tar.partial`, fsync, write
//! `{id}.json`, rename the archive into place. Restoring: unpack into
//! `collections/{target}.restoring` checking every file's size and checksum
//! (and the whole archive's SHA-256, when known), mark it `RESTORE-PENDING`,
//! rename it into place, open it once (WAL replay) and check its sequence
//! number and point count against the manifest, then drop the mark. Nothing
//! is visible before that. Whatever a crash leaves (staging folders,
//! `.partial` files, `.restoring` folders, a collection still marked
//! `RESTORE-PENDING`, a `{id}.json` whose archive never arrived) is removed
//! when the database opens.
//!
//! [`Collection::cut`]: crate::Collection::cut

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use naksha_storage::dirs::Writeback;
use naksha_storage::mmap::MappedBytes;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Current archive format version.
pub const FORMAT_VERSION: u32 = 2;
/// Oldest archive format version this build restores.
pub const OLDEST_READABLE_VERSION: u32 = 1;
/// Name of the manifest entry, the first of every archive.
pub const MANIFEST_ENTRY: &str = "naksha-snapshot.json";
/// Name of the checksums entry, the last of an archive of format 2 or later.
pub const CHECKSUMS_ENTRY: &str = "naksha-checksums.json";
/// Folder of the data directory that holds snapshots.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// Folder (inside [`SNAPSHOTS_DIR`]) where incoming archives are spooled before a restore.
pub const INCOMING_DIR: &str = ".incoming";
const DATA_PREFIX: &str = "collection/";
const MAX_MANIFEST_BYTES: u64 = 64 << 20;
const BUF: usize = 1 << 20;
/// Bytes written between two requests to start writeback (so the final fsync has little left).
const WRITEBACK: usize = 8 << 20;
/// Buffers a restore may have in flight to the SHA-256 thread.
const BUFFERS: usize = 8;

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
    /// SHA-256, lowercase hex: format 1 only (format 2 keeps CRC-32Cs in [`CHECKSUMS_ENTRY`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The last entry of a format 2 archive: checksums of what came before it,
/// computed as it streamed past.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveChecksums {
    /// CRC-32C (Castagnoli) of the manifest entry's bytes, 8 lowercase hex digits.
    pub manifest_crc32c: String,
    /// Every file of the manifest, in its order.
    pub files: Vec<FileChecksum>,
}

/// The CRC-32C of one file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileChecksum {
    /// Path inside the archive, as in the manifest.
    pub path: String,
    /// CRC-32C (Castagnoli), 8 lowercase hex digits.
    pub crc32c: String,
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

/// Bytes on their way to a [`HashThread`], in stream order.
enum Chunk {
    /// Small bytes (a tar header, padding, a JSON entry).
    Bytes(Vec<u8>),
    /// The first `.1` bytes of a reader's buffer, handed back once hashed.
    Buffer(Vec<u8>, usize),
    /// A whole mapped file.
    Mapped(Arc<MappedBytes>),
}

/// The SHA-256 of a stream, computed on a thread of its own: hashing (some
/// 1.7 GB/s on one core) runs beside the copy and the disk instead of in
/// their way.
struct HashThread {
    tx: Option<SyncSender<Chunk>>,
    spare: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<Sha256>>,
    buffers: usize,
    bytes: u64,
}

impl HashThread {
    fn start() -> Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Chunk>(64);
        let (back, spare): (Sender<Vec<u8>>, _) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("naksha-sha256".into())
            .spawn(move || {
                let mut hash = Sha256::new();
                for chunk in rx {
                    match chunk {
                        Chunk::Bytes(b) => hash.update(&b),
                        Chunk::Buffer(b, n) => {
                            hash.update(&b[..n]);
                            let _ = back.send(b);
                        }
                        Chunk::Mapped(m) => hash.update(m.as_bytes()),
                    }
                }
                hash
            })
            .map_err(io_err)?;
        Ok(HashThread { tx: Some(tx), spare, thread: Some(thread), buffers: 0, bytes: 0 })
    }

    fn send(&mut self, chunk: Chunk) -> io::Result<()> {
        self.bytes += match &chunk {
            Chunk::Bytes(b) => b.len(),
            Chunk::Buffer(_, n) => *n,
            Chunk::Mapped(m) => m.as_bytes().len(),
        } as u64;
        let stopped = || io::Error::other("the SHA-256 thread stopped");
        self.tx.as_ref().ok_or_else(stopped)?.send(chunk).map_err(|_| stopped())
    }

    /// A buffer of [`BUF`] bytes: one the thread is done with, a new one while
    /// fewer than [`BUFFERS`] exist, else the next one the thread hands back.
    fn buffer(&mut self) -> Vec<u8> {
        if let Ok(b) = self.spare.try_recv() {
            return b;
        }
        if self.buffers < BUFFERS {
            self.buffers += 1;
            return vec![0; BUF];
        }
        self.spare.recv().unwrap_or_else(|_| vec![0; BUF])
    }

    /// The bytes hashed and their SHA-256 (lowercase hex).
    fn finish(mut self) -> Result<(u64, String)> {
        self.tx = None;
        let thread = self.thread.take().ok_or_else(|| Error::Internal("SHA-256 thread already joined".into()))?;
        let hash = thread.join().map_err(|_| Error::Internal("the SHA-256 thread panicked".into()))?;
        Ok((self.bytes, hex(hash.finalize())))
    }
}

impl Drop for HashThread {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes a tar stream to a file: file data copied inside the kernel, the
/// stream's SHA-256 on a [`HashThread`], and writeback started every
/// [`WRITEBACK`] bytes so the closing fsync has little left to do.
struct ArchiveWriter {
    file: fs_err::File,
    hash: HashThread,
    /// Encodes headers (with GNU long names where needed); emptied after each.
    headers: tar::Builder<Vec<u8>>,
    mtime: u64,
    writeback: Writeback,
}

impl ArchiveWriter {
    fn new(file: fs_err::File, mtime: u64) -> Result<Self> {
        let headers = tar::Builder::new(Vec::new());
        let writeback = Writeback::every(WRITEBACK as u64);
        Ok(ArchiveWriter { file, hash: HashThread::start()?, headers, mtime, writeback })
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.writeback.wrote(self.file.file(), bytes.len() as u64);
        Ok(())
    }

    fn small(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        self.write(&bytes)?;
        self.hash.send(Chunk::Bytes(bytes))
    }

    fn header(&mut self, path: &str, size: u64) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(self.mtime);
        self.headers.append_data(&mut h, path, io::empty())?;
        let bytes = std::mem::take(self.headers.get_mut());
        self.small(bytes)
    }

    fn padding(&mut self, size: u64) -> io::Result<()> {
        let pad = (512 - size % 512) % 512;
        if pad > 0 {
            self.small(vec![0; pad as usize])?;
        }
        Ok(())
    }

    /// An entry of a few bytes; returns their CRC-32C.
    fn entry(&mut self, path: &str, data: Vec<u8>) -> io::Result<u32> {
        let (size, crc) = (data.len() as u64, crc32c::crc32c(&data));
        self.header(path, size)?;
        self.small(data)?;
        self.padding(size)?;
        Ok(crc)
    }

    /// An entry holding the file `src`, read through its mapping `map`;
    /// returns its CRC-32C. The bytes go file to file inside the kernel (as
    /// `cp` copies them: `copy_file_range` where the system has it), in
    /// [`WRITEBACK`] pieces, each checksummed from the mapping as it goes.
    /// The mapping goes to the SHA-256 thread first, so it hashes the file
    /// while this thread copies it.
    fn file_entry(&mut self, path: &str, src: &fs_err::File, map: Arc<MappedBytes>) -> io::Result<u32> {
        let size = map.as_bytes().len() as u64;
        self.header(path, size)?;
        self.hash.send(Chunk::Mapped(Arc::clone(&map)))?;
        let mut crc = 0;
        let mut from = src.file();
        for chunk in map.as_bytes().chunks(WRITEBACK) {
            crc = crc32c::crc32c_append(crc, chunk);
            let copied = io::copy(&mut (&mut from).take(chunk.len() as u64), &mut self.file.file())?;
            if copied != chunk.len() as u64 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{path}: shorter than its mapping")));
            }
            self.writeback.wrote(self.file.file(), copied);
        }
        self.padding(size)?;
        Ok(crc)
    }

    /// End the archive, fsync it; its size and SHA-256.
    fn finish(mut self) -> Result<(u64, String)> {
        self.small(vec![0; 1024]).map_err(io_err)?;
        self.file.sync_all().map_err(io_err)?;
        self.hash.finish()
    }
}

/// A buffered reader whose spent buffers go to a [`HashThread`]: a restore
/// hashes the archive beside unpacking it, not in its way.
struct HashedReader<R> {
    inner: R,
    hash: HashThread,
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
}

impl<R: Read> HashedReader<R> {
    fn new(inner: R) -> Result<Self> {
        let mut hash = HashThread::start()?;
        let buf = hash.buffer();
        Ok(HashedReader { inner, hash, buf, pos: 0, filled: 0 })
    }

    /// Read the rest of the stream; its size and SHA-256.
    fn finish(mut self) -> Result<(u64, String)> {
        io::copy(&mut self, &mut io::sink()).map_err(bad)?;
        if self.filled > 0 {
            let buf = std::mem::take(&mut self.buf);
            self.hash.send(Chunk::Buffer(buf, self.filled)).map_err(io_err)?;
        }
        self.hash.finish()
    }
}

impl<R: Read> Read for HashedReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.filled {
            if self.filled > 0 {
                let next = self.hash.buffer();
                let spent = std::mem::replace(&mut self.buf, next);
                self.hash.send(Chunk::Buffer(spent, self.filled))?;
            }
            self.pos = 0;
            self.filled = 0;
            self.filled = self.inner.read(&mut self.buf)?;
        }
        let n = (self.filled - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn crc_hex(crc: u32) -> String {
    format!("{crc:08x}")
}

/// Pack the collection folder `src` (a cut) with `manifest` (its `files` are
/// filled in here) into `out`, fsynced. Returns the archive's size and SHA-256.
///
/// File data goes file to file inside the kernel; each byte is read once more,
/// through a mapping, for its CRC-32C (here) and SHA-256 (on a second thread).
pub fn pack(src: &Path, mut manifest: ArchiveManifest, out: fs_err::File, mtime: u64) -> Result<(u64, String)> {
    let mut rel = Vec::new();
    walk(src, "", &mut rel)?;
    let mut maps = Vec::with_capacity(rel.len());
    for r in &rel {
        let path = src.join(r);
        let file = fs_err::File::open(&path).map_err(io_err)?;
        let map = Arc::new(MappedBytes::map(&file)?);
        maps.push((file, map));
    }
    manifest.format_version = FORMAT_VERSION;
    manifest.files = rel
        .iter()
        .zip(&maps)
        .map(|(r, (_, m))| FileEntry {
            path: format!("{DATA_PREFIX}{r}"),
            size: m.as_bytes().len() as u64,
            sha256: None,
        })
        .collect();
    let out_path = out.path().to_owned();
    let mut w = ArchiveWriter::new(out, mtime)?;
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
    let manifest_crc = w.entry(MANIFEST_ENTRY, json).map_err(io_err)?;
    let mut files = Vec::with_capacity(maps.len());
    for (i, (f, (file, map))) in manifest.files.iter().zip(maps).enumerate() {
        if i == manifest.files.len() / 2 {
            naksha_storage::fault::check("snapshot.pack", &out_path).map_err(io_err)?;
        }
        let crc = w.file_entry(&f.path, &file, map).map_err(io_err)?;
        files.push(FileChecksum { path: f.path.clone(), crc32c: crc_hex(crc) });
    }
    let checksums = ArchiveChecksums { manifest_crc32c: crc_hex(manifest_crc), files };
    let json = serde_json::to_vec_pretty(&checksums).map_err(|e| Error::Internal(e.to_string()))?;
    w.entry(CHECKSUMS_ENTRY, json).map_err(io_err)?;
    w.finish()
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
        match (m.format_version, &f.sha256) {
            (1, Some(sha)) if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) => {}
            (1, _) => return Err(bad(format!("{:?}: missing or malformed sha256", f.path))),
            (_, None) => {}
            (_, Some(_)) => return Err(bad(format!("{:?}: a per-file sha256 in a format 2 manifest", f.path))),
        }
    }
    Ok(m)
}

/// The bytes of a JSON entry (the manifest or the checksums) of at most [`MAX_MANIFEST_BYTES`].
fn json_entry<R: Read>(mut entry: tar::Entry<'_, R>, name: &str) -> Result<Vec<u8>> {
    if entry.size() > MAX_MANIFEST_BYTES {
        return Err(bad(format!("{name} is {} bytes, more than a snapshot writes", entry.size())));
    }
    let mut json = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut json).map_err(|e| bad(format!("{name}: {e}")))?;
    Ok(json)
}

/// The manifest from an archive's first entry, with the CRC-32C of its bytes.
fn manifest_entry<R: Read>(first: Option<io::Result<tar::Entry<'_, R>>>) -> Result<(ArchiveManifest, u32)> {
    let first = first.ok_or_else(|| bad("the archive is empty"))?.map_err(bad)?;
    let name = first.path().map_err(bad)?.to_string_lossy().into_owned();
    if name != MANIFEST_ENTRY {
        return Err(bad(format!("the first entry is {name:?}, not {MANIFEST_ENTRY}: not a Naksha snapshot")));
    }
    let json = json_entry(first, MANIFEST_ENTRY)?;
    Ok((parse_manifest(&json)?, crc32c::crc32c(&json)))
}

/// Read only the manifest of an archive (its first entry): what it holds,
/// before a restore reads the rest.
pub fn read_manifest(reader: impl Read) -> Result<ArchiveManifest> {
    let mut archive = tar::Archive::new(reader);
    let mut entries = archive.entries().map_err(|e| bad(format!("not a tar archive: {e}")))?;
    manifest_entry(entries.next()).map(|(m, _)| m)
}

/// How one file of an archive is checked as it streams past.
enum FileCheck {
    /// Format 1: against the manifest's SHA-256.
    Sha256(Sha256),
    /// Format 2: against [`CHECKSUMS_ENTRY`], once it arrives.
    Crc32c(u32),
}

impl FileCheck {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            FileCheck::Sha256(h) => h.update(bytes),
            FileCheck::Crc32c(c) => *c = crc32c::crc32c_append(*c, bytes),
        }
    }
}

/// Check format 2's last entry against what streamed past: the manifest's
/// CRC-32C and every file's.
fn check_checksums(
    json: &[u8],
    manifest_crc: u32,
    manifest: &ArchiveManifest,
    crcs: &HashMap<String, u32>,
) -> Result<()> {
    let sums: ArchiveChecksums =
        serde_json::from_slice(json).map_err(|e| bad(format!("{CHECKSUMS_ENTRY}: {e} (damaged archive)")))?;
    if sums.manifest_crc32c != crc_hex(manifest_crc) {
        return Err(bad(format!(
            "{MANIFEST_ENTRY} has CRC-32C {}, {CHECKSUMS_ENTRY} says {} (damaged archive)",
            crc_hex(manifest_crc),
            sums.manifest_crc32c
        )));
    }
    let listed: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    let summed: Vec<&str> = sums.files.iter().map(|f| f.path.as_str()).collect();
    if listed != summed {
        return Err(bad(format!("{CHECKSUMS_ENTRY} does not list the manifest's files (damaged archive)")));
    }
    for f in &sums.files {
        let got = crcs.get(&f.path).map(|c| crc_hex(*c)).unwrap_or_default();
        if got != f.crc32c {
            return Err(bad(format!(
                "{:?} has CRC-32C {got}, {CHECKSUMS_ENTRY} says {} (damaged archive)",
                f.path, f.crc32c
            )));
        }
    }
    Ok(())
}

/// Unpack an archive into `dest` (created), verifying every file against the
/// manifest and the checksums, and the whole stream against `expect_sha256`
/// when given. The stream's SHA-256 is computed on a second thread.
pub fn unpack(reader: impl Read, dest: &Path, expect_sha256: Option<&str>) -> Result<Restored> {
    let mut hr = HashedReader::new(reader)?;
    let manifest = {
        let mut archive = tar::Archive::new(&mut hr);
        let mut entries = archive.entries().map_err(|e| bad(format!("not a tar archive: {e}")))?;
        let (manifest, manifest_crc) = manifest_entry(entries.next())?;
        let wanted: HashMap<&str, &FileEntry> = manifest.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let mut crcs = HashMap::new();
        let (trailer, mut summed) = (manifest.format_version >= 2, false);
        let mut dirs = HashSet::new();
        fs_err::create_dir_all(dest).map_err(io_err)?;
        let mut buf = vec![0u8; BUF];
        for entry in entries {
            let mut e = entry.map_err(|e| bad(format!("damaged entry: {e}")))?;
            let path = e.path().map_err(bad)?.to_string_lossy().into_owned();
            if summed {
                return Err(bad(format!("{path:?} follows the archive's last entry")));
            }
            if trailer && path == CHECKSUMS_ENTRY {
                if let Some(missing) = manifest.files.iter().find(|f| !crcs.contains_key(&f.path)) {
                    return Err(bad(format!("{:?} is missing (truncated archive?)", missing.path)));
                }
                check_checksums(&json_entry(e, CHECKSUMS_ENTRY)?, manifest_crc, &manifest, &crcs)?;
                summed = true;
                continue;
            }
            let Some(want) = wanted.get(path.as_str()) else {
                return Err(bad(format!("{path:?} is not in the archive's manifest")));
            };
            if !e.header().entry_type().is_file() || crcs.contains_key(&want.path) {
                return Err(bad(format!("{path:?}: unexpected entry type or a second copy")));
            }
            let out = dest.join(&path[DATA_PREFIX.len()..]);
            if let Some(parent) = out.parent() {
                if dirs.insert(parent.to_owned()) {
                    fs_err::create_dir_all(parent).map_err(io_err)?;
                }
            }
            let mut f = fs_err::File::create(&out).map_err(io_err)?;
            let mut check = match manifest.format_version {
                1 => FileCheck::Sha256(Sha256::new()),
                _ => FileCheck::Crc32c(0),
            };
            let mut writeback = Writeback::every(WRITEBACK as u64);
            loop {
                let n = e.read(&mut buf).map_err(|err| bad(format!("{path:?}: {err} (truncated?)")))?;
                if n == 0 {
                    break;
                }
                check.update(&buf[..n]);
                naksha_storage::fault::write_all("restore.write", &out, &mut f, &buf[..n]).map_err(io_err)?;
                writeback.wrote(f.file(), n as u64);
            }
            let size = writeback.written();
            if size != want.size {
                return Err(bad(format!(
                    "{path:?}: {size} bytes, the manifest says {} bytes (damaged archive)",
                    want.size
                )));
            }
            match check {
                FileCheck::Sha256(h) => {
                    let sha = hex(h.finalize());
                    if Some(&sha) != want.sha256.as_ref() {
                        return Err(bad(format!(
                            "{path:?}: SHA-256 {sha}, the manifest says {} (damaged archive)",
                            want.sha256.as_deref().unwrap_or_default()
                        )));
                    }
                    crcs.insert(want.path.clone(), 0);
                }
                FileCheck::Crc32c(c) => {
                    crcs.insert(want.path.clone(), c);
                }
            }
            f.sync_all().map_err(io_err)?;
        }
        if let Some(missing) = manifest.files.iter().find(|f| !crcs.contains_key(&f.path)) {
            return Err(bad(format!("{:?} is missing (truncated archive?)", missing.path)));
        }
        if trailer && !summed {
            return Err(bad(format!("{CHECKSUMS_ENTRY} is missing (truncated archive?)")));
        }
        for d in &dirs {
            naksha_storage::dirs::sync_dir(d)?;
        }
        manifest
    };
    // The end-of-archive padding belongs to the checksum too.
    let (archive_bytes, sha256) = hr.finish()?;
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
        let future = br#"{"format_version": 3, "anything": true}"#;
        let e = parse_manifest(future).unwrap_err().to_string();
        assert!(e.contains("format version 3 is newer"), "{e}");
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
        // Per-file SHA-256s belong to format 1, and only there.
        let files = |v: u32, sha: Option<String>| {
            let mut f = serde_json::json!({"path": "collection/MANIFEST", "size": 1});
            if let Some(sha) = sha {
                f["sha256"] = sha.into();
            }
            let m = serde_json::json!({
                "format_version": v, "collection": "c", "seq": 1, "points": 0, "created_at": "x", "config": {},
                "files": [f]
            });
            parse_manifest(&serde_json::to_vec(&m).unwrap())
        };
        assert!(files(1, None).is_err());
        assert!(files(1, Some("xyz".into())).is_err());
        assert!(files(2, Some("0".repeat(64))).is_err());
        assert!(files(2, None).is_ok());
    }

    /// Hands out its bytes a few at a time, as a network stream does.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = (self.1 * 7 + 3) % 5000;
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_threaded_reader_passes_every_byte_and_hashes_them_in_order() {
        let data: Vec<u8> =
            (0..(3 * BUF + 12_345) as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut r = HashedReader::new(Trickle(&data, 1)).unwrap();
        let mut head = vec![0u8; 2 * BUF + 77];
        r.read_exact(&mut head).unwrap();
        assert_eq!(head, data[..head.len()]);
        // The rest is read (and hashed) by finish.
        let (bytes, sha) = r.finish().unwrap();
        assert_eq!(bytes, data.len() as u64);
        assert_eq!(sha, hex(Sha256::digest(&data)));
    }
}

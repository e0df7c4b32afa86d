//! Write-ahead log: every acknowledged write is here, `fsync`ed, before it is
//! applied anywhere else.
//!
//! The log is a sequence of files `wal-{first_seq:020}.log` in one directory.
//! Only the newest file is appended to; older files are complete (they were
//! `fsync`ed before the next one was created) and are deleted once a flush has
//! made all their records durable in segments ([`Wal::truncate_through`]).
//!
//! ## File layout (little-endian)
//!
//! | offset | size | field                                  |
//! |--------|------|----------------------------------------|
//! | 0      | 8    | magic `NAKSHWAL`                       |
//! | 8      | 4    | format version ([`FORMAT_VERSION`])    |
//! | 12     | 4    | reserved, zero                         |
//! | 16     | 8    | sequence number of the first record    |
//! | 24     | ...  | records                                |
//!
//! ## Record layout
//!
//! | size | field                                                  |
//! |------|--------------------------------------------------------|
//! | 4    | body length `n` (`u32`)                                |
//! | 4    | CRC32C of the next `8 + n` bytes (seq and body)        |
//! | 8    | sequence number (`u64`, +1 per record, no gaps)        |
//! | n    | body: op tag `u8` (1 upsert, 2 delete), `u32` count, then points or ids ([`crate::point`]) |
//!
//! Versions: 1 = points without text fields; 2 = points carry text fields. Files of
//! both versions replay; new files are written as the current version.
//!
//! ## Recovery
//! Records are read in order until the end of the newest file. A short record,
//! a CRC mismatch, a sequence gap or an undecodable body in the newest file is a
//! torn tail from a crash mid-write: the file is truncated to the last good
//! record (those bytes were never acknowledged, since acknowledgement waits for
//! `fsync`). The same damage in an older file is reported as
//! [`Error::Corrupt`], never skipped.
//!
//! ## Group commit
//! [`Wal::append`] writes a record (one `write` call) under a short lock;
//! [`Wal::sync_through`] makes it durable. Writers that arrive while an `fsync`
//! is running wait for it and are then covered by the next one, so N
//! concurrent writers share far fewer than N `fsync`s.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fs_err::{File, OpenOptions};
use parking_lot::Mutex;

use crate::point::{Decoder, Encoder, Point, PointId, MAX_FIELD_LEN};
use crate::{dirs, fault, Error, Result};

/// Current WAL format version.
pub const FORMAT_VERSION: u32 = 2;
/// Oldest WAL format version this build can replay.
pub const OLDEST_READABLE_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"NAKSHWAL";
const FILE_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;

/// One logged operation.
#[derive(Clone, Debug, PartialEq)]
pub enum WalOp {
    /// Insert or replace these points.
    Upsert(Vec<Point>),
    /// Delete these ids (missing ids are ignored).
    Delete(Vec<PointId>),
}

impl WalOp {
    /// Encode the record body.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        match self {
            WalOp::Upsert(points) => {
                e.u8(1);
                e.u32(points.len() as u32);
                points.iter().for_each(|p| e.point(p));
            }
            WalOp::Delete(ids) => {
                e.u8(2);
                e.u32(ids.len() as u32);
                ids.iter().for_each(|id| e.id(id));
            }
        }
        e.buf
    }

    /// Decode a record body written by WAL format `version`; any malformation is an error.
    pub fn decode(body: &[u8], version: u32) -> Result<Self> {
        let mut d = Decoder::new(body);
        let tag = d.u8()?;
        let count = d.u32()? as usize;
        // Every item takes at least 9 bytes: a cheap bound against absurd counts.
        if count > body.len() / 9 + 1 {
            return Err(Error::Decode(format!("count {count} larger than the record")));
        }
        let op = match tag {
            1 if version >= 2 => WalOp::Upsert((0..count).map(|_| d.point()).collect::<Result<_>>()?),
            1 => WalOp::Upsert((0..count).map(|_| d.point_v1()).collect::<Result<_>>()?),
            2 => WalOp::Delete((0..count).map(|_| d.id()).collect::<Result<_>>()?),
            t => return Err(Error::Decode(format!("unknown op tag {t}"))),
        };
        if !d.is_empty() {
            return Err(Error::Decode("trailing bytes after op".into()));
        }
        Ok(op)
    }
}

/// Options for [`Wal::open`].
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Rotate to a new file once the current one exceeds this many bytes.
    pub max_file_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self { max_file_bytes: 64 << 20 }
    }
}

#[derive(Debug)]
struct Writer {
    file: Arc<File>,
    file_bytes: u64,
    next_seq: u64,
    /// (first seq, path) of every file, oldest first; the last one is `file`.
    files: Vec<(u64, PathBuf)>,
    poisoned: Option<String>,
}

#[derive(Debug)]
struct SyncState {
    synced_seq: u64,
}

/// The write-ahead log of one collection.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
}

/// A record read back during recovery.
pub type Replayed = Vec<(u64, WalOp)>;

fn file_name(first_seq: u64) -> String {
    format!("wal-{first_seq:020}.log")
}

fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?.strip_suffix(".log")?.parse().ok()
}

/// Result of scanning one WAL file.
#[derive(Debug)]
pub struct Scan {
    /// Records in order.
    pub records: Replayed,
    /// Byte offset just past the last good record.
    pub good_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub damage: Option<String>,
    /// The file's format version.
    pub version: u32,
}

/// Parse a WAL file image. Never panics; stops at the first damaged record.
pub fn scan(bytes: &[u8], expect_first: Option<u64>) -> Result<Scan, String> {
    if bytes.len() < FILE_HEADER {
        return Err(format!("file header truncated ({} bytes)", bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err("bad magic".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(format!("unsupported WAL version {version}"));
    }
    let first = u64::from_le_bytes(bytes[16..24].try_into().unwrap_or_default());
    if let Some(e) = expect_first {
        if e != first {
            return Err(format!("file starts at seq {first}, expected {e}"));
        }
    }
    let mut pos = FILE_HEADER;
    let mut next = first;
    let mut records = Vec::new();
    let damage = loop {
        let rest = &bytes[pos..];
        if rest.is_empty() {
            break None;
        }
        if rest.len() < RECORD_HEADER {
            break Some(format!("short record header at offset {pos}"));
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
        if len > MAX_FIELD_LEN || rest.len() < RECORD_HEADER + len {
            break Some(format!("short record at offset {pos}"));
        }
        let checked = &rest[8..RECORD_HEADER + len];
        if crc32c::crc32c(checked) != crc {
            break Some(format!("checksum mismatch at offset {pos}"));
        }
        let seq = u64::from_le_bytes(rest[8..16].try_into().unwrap_or_default());
        if seq != next {
            break Some(format!("sequence {seq} at offset {pos}, expected {next}"));
        }
        match WalOp::decode(&rest[RECORD_HEADER..RECORD_HEADER + len], version) {
            Ok(op) => records.push((seq, op)),
            Err(e) => break Some(format!("undecodable record at offset {pos}: {e}")),
        }
        next += 1;
        pos += RECORD_HEADER + len;
    };
    Ok(Scan { records, good_len: pos as u64, damage, version })
}

/// The byte offset just past the last record `<= seq` of a WAL file image
/// (its header when the file holds none), checking each such record's CRC.
fn record_end(bytes: &[u8], seq: u64) -> Result<usize, String> {
    if bytes.len() < FILE_HEADER || &bytes[..8] != MAGIC {
        return Err("not a WAL file".into());
    }
    let mut pos = FILE_HEADER;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < RECORD_HEADER {
            return Err(format!("short record header at offset {pos}"));
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
        let rec_seq = u64::from_le_bytes(rest[8..16].try_into().unwrap_or_default());
        if rec_seq > seq {
            break;
        }
        if rest.len() < RECORD_HEADER + len {
            return Err(format!("short record at offset {pos}"));
        }
        if crc32c::crc32c(&rest[8..RECORD_HEADER + len]) != crc {
            return Err(format!("checksum mismatch at offset {pos}"));
        }
        pos += RECORD_HEADER + len;
    }
    Ok(pos)
}

/// Create the file for records from `first_seq` on. A file of that name can
/// only be left over from a creation that failed part-way (its first record was
/// never appended), so it is overwritten. On failure the file is removed again:
/// a header-less file left behind would block the next rotation.
fn create_file(dir: &Path, first_seq: u64) -> Result<(File, PathBuf)> {
    let path = dir.join(file_name(first_seq));
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    let mut header = Vec::with_capacity(FILE_HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&first_seq.to_le_bytes());
    let written = (|| -> Result<()> {
        file.set_len(0)?;
        fault::check("wal.create", &path)?;
        fault::write_all("wal.write", &path, &mut file, &header)?;
        file.sync_all()?;
        dirs::sync_dir(dir)
    })();
    if let Err(e) = written {
        drop(file);
        if let Err(rm) = fs_err::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %rm, "cannot remove a WAL file whose creation failed; it is removed at the next open");
        }
        return Err(e);
    }
    Ok((file, path))
}

impl Wal {
    /// Open (or create) the log in `dir`, replaying every record with a
    /// sequence number above `durable_seq` (the records below it are already
    /// in segments). A torn tail of the newest file is cut off.
    pub fn open(dir: &Path, durable_seq: u64, options: WalOptions) -> Result<(Self, Replayed)> {
        fs_err::create_dir_all(dir)?;
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs_err::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if let Some(first) = name.to_str().and_then(parse_file_name) {
                found.push((first, entry.path()));
            }
        }
        found.sort();
        let mut replay = Vec::new();
        let mut next_seq = durable_seq + 1;
        let mut last_version = FORMAT_VERSION;
        let mut files = Vec::new();
        // Where the previous file's records end: the next file must start there.
        // (Not `next_seq`: files wholly below `durable_seq` may still be on disk
        // after a crash between a flush and `truncate_through`.)
        let mut prev_end: Option<u64> = None;
        let count = found.len();
        for (i, (first, path)) in found.into_iter().enumerate() {
            let newest = i + 1 == count;
            let bytes = fs_err::read(&path)?;
            let scan = match scan(&bytes, prev_end) {
                Ok(s) => s,
                Err(reason) if bytes.len() <= FILE_HEADER => {
                    // A creation that crashed or failed (disk full) before its header was
                    // durable: records are only appended after that, so nothing in it was
                    // ever acknowledged, wherever it sorts.
                    tracing::warn!(path = %path.display(), %reason, "removing a WAL file left by a failed creation");
                    fs_err::remove_file(&path)?;
                    dirs::sync_dir(dir)?;
                    continue;
                }
                Err(reason) => return Err(Error::corrupt(&path, reason)),
            };
            if let Some(reason) = scan.damage {
                if !newest {
                    return Err(Error::corrupt(&path, reason));
                }
                tracing::warn!(path = %path.display(), %reason, keep = scan.good_len, "truncating torn WAL tail");
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(scan.good_len)?;
                f.sync_all()?;
            }
            if files.is_empty() && first > durable_seq + 1 {
                return Err(Error::corrupt(
                    &path,
                    format!("log starts at seq {first} but segments end at {durable_seq}"),
                ));
            }
            let end = first + scan.records.len() as u64;
            prev_end = Some(end);
            replay.extend(scan.records.into_iter().filter(|(seq, _)| *seq > durable_seq));
            next_seq = next_seq.max(end);
            files.push((first, path));
            last_version = scan.version;
        }
        // Records are only appended to a file of the current version; after an
        // upgrade the next record starts a new file.
        let (file, file_bytes) = match files.last() {
            Some((_, path)) if last_version == FORMAT_VERSION => {
                let f = OpenOptions::new().append(true).open(path)?;
                let len = f.metadata()?.len();
                (f, len)
            }
            _ => {
                let (f, path) = create_file(dir, next_seq)?;
                files.push((next_seq, path));
                (f, FILE_HEADER as u64)
            }
        };
        let wal = Wal {
            dir: dir.to_owned(),
            options,
            writer: Mutex::new(Writer { file: Arc::new(file), file_bytes, next_seq, files, poisoned: None }),
            sync: Mutex::new(SyncState { synced_seq: next_seq - 1 }),
        };
        Ok((wal, replay))
    }

    /// Append `op` and return its sequence number. The record is written but not
    /// yet durable: call [`Wal::sync_through`] before acknowledging it.
    pub fn append(&self, op: &WalOp) -> Result<u64> {
        let body = op.encode();
        if body.len() > MAX_FIELD_LEN {
            return Err(Error::Decode(format!("record of {} bytes exceeds the limit", body.len())));
        }
        if self.writer.lock().file_bytes > self.options.max_file_bytes {
            self.rotate()?;
        }
        let mut w = self.writer.lock();
        if let Some(why) = &w.poisoned {
            return Err(Error::WalPoisoned(why.clone()));
        }
        let seq = w.next_seq;
        let mut record = Vec::with_capacity(RECORD_HEADER + body.len());
        record.extend_from_slice(&(body.len() as u32).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&seq.to_le_bytes()), &body);
        record.extend_from_slice(&crc.to_le_bytes());
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(&body);
        let written = {
            let path = w.files.last().map_or(Path::new(""), |(_, p)| p.as_path());
            fault::write_all("wal.write", path, &*w.file, &record)
        };
        if let Err(e) = written {
            // A partial record may be in the file; cut it off so the batch changes
            // nothing and later records do not sit behind it. If even that fails,
            // no further record may be appended.
            if let Err(cut) = w.file.set_len(w.file_bytes) {
                let path = w.files.last().map(|(_, p)| p.display().to_string()).unwrap_or_default();
                tracing::error!(%path, error = %cut, "cannot cut a failed WAL append; the log is read-only until restart");
                w.poisoned = Some(format!("append failed ({e}) and could not be undone ({cut})"));
            }
            return Err(e.into());
        }
        w.next_seq += 1;
        w.file_bytes += record.len() as u64;
        Ok(seq)
    }

    /// Block until every record up to `seq` is durable (group commit).
    pub fn sync_through(&self, seq: u64) -> Result<()> {
        let mut s = self.sync.lock();
        if s.synced_seq >= seq {
            return Ok(());
        }
        let (file, path, upto) = {
            let w = self.writer.lock();
            if let Some(why) = &w.poisoned {
                return Err(Error::WalPoisoned(why.clone()));
            }
            (w.file.clone(), w.files.last().map(|(_, p)| p.clone()).unwrap_or_default(), w.next_seq - 1)
        };
        if let Err(e) = fault::check("wal.fsync", &path).and_then(|()| file.sync_data()) {
            return Err(self.poison(&path, e));
        }
        s.synced_seq = upto;
        Ok(())
    }

    /// After a failed fsync the kernel may have dropped the dirty pages and a
    /// retried fsync would report success for data that never reached the disk
    /// (PostgreSQL's "fsyncgate"): the log takes no further record until it is
    /// reopened, where replay reads what really is on disk.
    fn poison(&self, path: &Path, e: std::io::Error) -> Error {
        tracing::error!(path = %path.display(), error = %e, "WAL fsync failed; the collection is read-only until restart");
        self.writer.lock().poisoned = Some(format!("fsync of {} failed: {e}", path.display()));
        Error::SyncFailed(e)
    }

    /// Why the log takes no more records, if it does not.
    pub fn poisoned(&self) -> Option<String> {
        self.writer.lock().poisoned.clone()
    }

    /// Sequence number of the last appended record (0 when none ever was).
    pub fn last_seq(&self) -> u64 {
        self.writer.lock().next_seq - 1
    }

    /// Finish the current file (fsync) and start a new one, unless the current
    /// file holds no records.
    pub fn rotate(&self) -> Result<()> {
        let mut s = self.sync.lock();
        let mut w = self.writer.lock();
        if let Some(why) = &w.poisoned {
            return Err(Error::WalPoisoned(why.clone()));
        }
        if w.files.last().is_some_and(|(first, _)| *first == w.next_seq) {
            return Ok(());
        }
        let current = w.files.last().map(|(_, p)| p.clone()).unwrap_or_default();
        if let Err(e) = fault::check("wal.fsync", &current).and_then(|()| w.file.sync_data()) {
            drop(w);
            return Err(self.poison(&current, e));
        }
        s.synced_seq = w.next_seq - 1;
        let (file, path) = create_file(&self.dir, w.next_seq)?;
        if let Err(e) = fault::check("wal.rotate.after_create", &path) {
            let _ = fs_err::remove_file(&path);
            return Err(e.into());
        }
        w.file = Arc::new(file);
        w.file_bytes = FILE_HEADER as u64;
        let first = w.next_seq;
        w.files.push((first, path));
        Ok(())
    }

    /// Delete files whose records all have sequence numbers `<= seq` (they are
    /// durable elsewhere). The current file is always kept.
    pub fn truncate_through(&self, seq: u64) -> Result<()> {
        let doomed: Vec<PathBuf> = {
            let mut w = self.writer.lock();
            let mut keep_from = 0;
            for i in 0..w.files.len().saturating_sub(1) {
                if w.files[i + 1].0 <= seq + 1 {
                    keep_from = i + 1;
                }
            }
            w.files.drain(..keep_from).map(|(_, p)| p).collect()
        };
        for path in &doomed {
            fault::check("wal.truncate", path)?;
            fs_err::remove_file(path)?;
        }
        if !doomed.is_empty() {
            dirs::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Copy every record with a sequence number `<= seq` into a new log in
    /// `dest` (a snapshot's cut). Files keep their names and are cut just past
    /// record `seq`; files that start after it are left out. The records must
    /// be durable ([`Wal::sync_through`]) and the caller must keep
    /// [`Wal::truncate_through`] from running meanwhile (the collection's
    /// maintenance lock). Every copied record's checksum is verified.
    pub fn copy_through(&self, seq: u64, dest: &Path) -> Result<()> {
        let files: Vec<(u64, PathBuf)> = self.writer.lock().files.clone();
        fs_err::create_dir_all(dest)?;
        for (first, path) in files.into_iter().filter(|(first, _)| *first <= seq) {
            let bytes = fs_err::read(&path)?;
            let end = record_end(&bytes, seq).map_err(|reason| Error::corrupt(&path, reason))?;
            let out = dest.join(file_name(first));
            let mut f = File::create(&out)?;
            fault::write_all("section.write", &out, &mut f, &bytes[..end])?;
            f.sync_all()?;
        }
        dirs::sync_dir(dest)
    }

    /// Number of WAL files on disk and their total size.
    pub fn disk_usage(&self) -> (usize, u64) {
        let w = self.writer.lock();
        let older: u64 =
            w.files[..w.files.len() - 1].iter().filter_map(|(_, p)| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
        (w.files.len(), older + w.file_bytes)
    }
}

#[cfg(test)]
mod tests;

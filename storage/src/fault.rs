//! Fault injection: named points on the I/O paths of the storage and query
//! layers where a test can make the next operation fail as a sick disk would
//! (`ENOSPC`, `EIO`, a short write) or make the process die on the spot (a
//! crash between two steps of a flush, merge, rotation or manifest swap).
//!
//! Faults are armed in-process with [`set`] (unit and integration tests) or,
//! for a child process or a server binary under test, with the environment
//! variable `NAKSHA_FAULTS`, read once at the first check:
//!
//! ```text
//! NAKSHA_FAULTS="wal.fsync=eio;flush.before_manifest=crash@3"
//! ```
//!
//! Each entry is `point=action[@skip][*times]`: the action fires after `skip`
//! hits have passed through (default 0) and then `times` times (default:
//! forever). Actions: `enospc`, `eio`, `eacces`, `short` (write part of the
//! buffer, then fail with `ENOSPC`; only where a write goes through
//! [`write_all`]) and `crash` (abort the process without unwinding or flushing
//! anything, as a power cut would leave the page cache aside).
//!
//! With nothing armed a check is one relaxed atomic load. The points are listed
//! in [`POINTS`]; a name not listed there is refused, so a typo cannot make a
//! test pass by injecting nothing.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Every fault point, with where it sits.
pub const POINTS: &[(&str, &str)] = &[
    ("wal.write", "appending a record to the WAL (short writes supported)"),
    ("wal.fsync", "fsync of the WAL file (group commit and rotation)"),
    ("wal.create", "creating a new WAL file, after the file exists and before its header is written"),
    ("wal.rotate.after_create", "rotation: the new WAL file is complete, the writer not yet switched"),
    ("wal.truncate", "deleting WAL files made durable by a flush"),
    ("section.write", "writing a segment section file (vectors, points, graph, deletions)"),
    ("atomic.before_rename", "replacing a file atomically (the manifest): temp file written, not yet renamed"),
    ("atomic.after_rename", "replacing a file atomically: renamed, directory not yet fsynced"),
    ("flush.before_manifest", "flush: segment directory renamed into place, manifest not yet swapped"),
    ("flush.after_manifest", "flush: manifest swapped, WAL not yet truncated"),
    ("merge.before_manifest", "merge: new segment in place, manifest not yet swapped"),
    ("merge.after_manifest", "merge: manifest swapped, old segment directories not yet removed"),
    ("collection.delete", "deleting a collection: before the directory is renamed away"),
    ("snapshot.pack", "snapshot: the cut is taken (hard links), the archive partly written"),
    ("snapshot.before_publish", "snapshot: the archive is complete and fsynced, not yet renamed into place"),
    ("restore.write", "restore: writing an archive's file into the staging directory"),
    ("restore.before_rename", "restore: every file verified, the collection not yet renamed into place"),
];

/// What an armed point does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fail with `ENOSPC` (no space left on device).
    NoSpace,
    /// Fail with `EIO`.
    Io,
    /// Fail with `EACCES`.
    Denied,
    /// Write part of the buffer, then fail with `ENOSPC` (plain checks fail with `ENOSPC`).
    Short,
    /// Abort the process.
    Crash,
}

#[derive(Clone, Debug)]
struct Armed {
    point: String,
    /// Only paths under this one (None: every path).
    scope: Option<PathBuf>,
    action: Action,
    skip: u64,
    times: Option<u64>,
}

static ARMED: AtomicBool = AtomicBool::new(false);
static TABLE: OnceLock<Mutex<Vec<Armed>>> = OnceLock::new();

fn table() -> &'static Mutex<Vec<Armed>> {
    TABLE.get_or_init(|| {
        let mut map = Vec::new();
        if let Ok(spec) = std::env::var("NAKSHA_FAULTS") {
            match parse(&spec) {
                Ok(entries) => {
                    tracing::warn!(faults = %spec, "fault injection armed from NAKSHA_FAULTS (tests only)");
                    map.extend(entries);
                }
                Err(e) => panic!("NAKSHA_FAULTS: {e}"),
            }
        }
        ARMED.store(!map.is_empty(), Ordering::Release);
        Mutex::new(map)
    })
}

fn parse(spec: &str) -> Result<Vec<Armed>, String> {
    let mut out = Vec::new();
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (point, rest) = entry.split_once('=').ok_or_else(|| format!("{entry:?}: expected point=action"))?;
        if !POINTS.iter().any(|(p, _)| *p == point) {
            return Err(format!("unknown fault point {point:?}"));
        }
        let (rest, times) = match rest.split_once('*') {
            Some((r, t)) => (r, Some(t.parse().map_err(|_| format!("{entry:?}: bad count {t:?}"))?)),
            None => (rest, None),
        };
        let (action, skip) = match rest.split_once('@') {
            Some((a, s)) => (a, s.parse().map_err(|_| format!("{entry:?}: bad skip {s:?}"))?),
            None => (rest, 0),
        };
        let action = match action {
            "enospc" => Action::NoSpace,
            "eio" => Action::Io,
            "eacces" => Action::Denied,
            "short" => Action::Short,
            "crash" => Action::Crash,
            other => return Err(format!("{entry:?}: unknown action {other:?}")),
        };
        out.push(Armed { point: point.to_owned(), scope: None, action, skip, times });
    }
    Ok(out)
}

/// Arm `point` for paths under `scope` (replacing an earlier setting of the
/// same point and scope) from a spec `action[@skip][*times]`. Scoping by
/// directory keeps tests that run side by side in one process apart.
///
/// # Panics
/// On an unknown point or a malformed spec (tests only).
pub fn set(scope: &Path, point: &str, spec: &str) {
    let entries = parse(&format!("{point}={spec}")).unwrap_or_else(|e| panic!("fault spec: {e}"));
    let mut t = table().lock().unwrap_or_else(|p| p.into_inner());
    t.retain(|a| !(a.point == point && a.scope.as_deref() == Some(scope)));
    t.extend(entries.into_iter().map(|a| Armed { scope: Some(scope.to_owned()), ..a }));
    ARMED.store(true, Ordering::Release);
}

/// Disarm every point armed for `scope`.
pub fn clear(scope: &Path) {
    let mut t = table().lock().unwrap_or_else(|p| p.into_inner());
    t.retain(|a| a.scope.as_deref() != Some(scope));
    ARMED.store(!t.is_empty(), Ordering::Release);
}

fn take(point: &str, path: &Path) -> Option<Action> {
    if TABLE.get().is_none() {
        table(); // reads NAKSHA_FAULTS once
    }
    if !ARMED.load(Ordering::Relaxed) {
        return None;
    }
    let mut t = table().lock().unwrap_or_else(|p| p.into_inner());
    let armed = t.iter_mut().find(|a| a.point == point && a.scope.as_deref().is_none_or(|s| path.starts_with(s)))?;
    if armed.skip > 0 {
        armed.skip -= 1;
        return None;
    }
    let action = armed.action;
    match &mut armed.times {
        Some(0) => return None,
        Some(n) => *n -= 1,
        None => {}
    }
    Some(action)
}

fn error(action: Action, point: &str) -> io::Error {
    let (code, what) = match action {
        Action::Io => (5, "EIO"),
        Action::Denied => (13, "EACCES"),
        Action::NoSpace | Action::Short | Action::Crash => (28, "ENOSPC"),
    };
    tracing::debug!(point, what, "injected fault");
    io::Error::from_raw_os_error(code)
}

fn crash(point: &str) -> ! {
    eprintln!("naksha: injected crash at {point}");
    std::process::abort()
}

/// Fail (or crash) here if `point` is armed for `path`.
pub fn check(point: &str, path: &Path) -> io::Result<()> {
    match take(point, path) {
        None => Ok(()),
        Some(Action::Crash) => crash(point),
        Some(action) => Err(error(action, point)),
    }
}

/// `write_all` with `point` checked first: a `short` fault writes the first
/// half of `buf` and then fails, as a full disk part-way through a write does.
pub fn write_all(point: &str, path: &Path, mut w: impl Write, buf: &[u8]) -> io::Result<()> {
    match take(point, path) {
        None => w.write_all(buf),
        Some(Action::Crash) => crash(point),
        Some(Action::Short) => {
            w.write_all(&buf[..buf.len() / 2])?;
            Err(error(Action::Short, point))
        }
        Some(action) => Err(error(action, point)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_refused() {
        let e = parse("wal.fsync=eio@2*1; flush.before_manifest=crash").unwrap();
        assert_eq!(e[0].point, "wal.fsync");
        assert_eq!((e[0].action, e[0].skip, e[0].times), (Action::Io, 2, Some(1)));
        assert_eq!((e[1].action, e[1].skip, e[1].times), (Action::Crash, 0, None));
        assert!(parse("wal.fsnyc=eio").is_err());
        assert!(parse("wal.fsync=boom").is_err());
        assert!(parse("wal.fsync").is_err());
        assert!(parse("wal.fsync=eio@x").is_err());
    }

    #[test]
    fn faults_fire_in_their_scope_after_skips_and_as_often_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        set(dir.path(), "wal.truncate", "eio@1*2");
        let f = dir.path().join("x");
        assert!(check("wal.truncate", other.path()).is_ok());
        assert!(check("wal.truncate", &f).is_ok()); // skipped
        assert_eq!(check("wal.truncate", &f).unwrap_err().raw_os_error(), Some(5));
        assert_eq!(check("wal.truncate", &f).unwrap_err().raw_os_error(), Some(5));
        assert!(check("wal.truncate", &f).is_ok()); // spent
        set(dir.path(), "wal.write", "short");
        let mut out = Vec::new();
        let e = write_all("wal.write", &f, &mut out, b"abcdef").unwrap_err();
        assert_eq!((e.raw_os_error(), out.as_slice()), (Some(28), &b"abc"[..]));
        clear(dir.path());
        assert!(write_all("wal.write", &f, &mut out, b"gh").is_ok());
    }
}

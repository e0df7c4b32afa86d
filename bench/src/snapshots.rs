//! Snapshot and restore throughput beside a plain copy of the same files:
//! `cp -r`, `tar cf` and `tar xf`, each with and without a final `sync` (a
//! snapshot and a restore fsync what they write), on one collection built
//! here, in one run. Every timing is the median of `reps`, with the files in
//! the page cache (as they are on a serving node), and starts after a `sync`
//! so that no earlier step's writeback runs into it.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use naksha_index::testing::clustered;
use naksha_query::{CollectionConfig, Database, EngineOptions, Metric, Point, PointId};
use serde_json::json;

/// What to measure.
#[derive(Debug, Clone)]
pub struct SnapshotArgs {
    /// Points in the collection.
    pub points: usize,
    /// Dimension.
    pub dim: usize,
    /// Repetitions per timing.
    pub reps: usize,
    /// Scratch folder (on the file system to measure).
    pub dir: PathBuf,
}

/// One measured operation.
#[derive(Debug, Clone)]
pub struct Row {
    /// What ran.
    pub what: &'static str,
    /// Bytes it moved.
    pub bytes: u64,
    /// Median seconds.
    pub secs: f64,
}

impl Row {
    /// MB/s (10^6 bytes).
    pub fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }
}

/// The report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Rows in the order of the table.
    pub rows: Vec<Row>,
    /// Bytes of the collection directory.
    pub dir_bytes: u64,
    /// Median time of the cut alone (hard links, manifest, WAL tail), seconds.
    pub cut_secs: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn timed(reps: usize, mut f: impl FnMut(usize) -> Result<()>) -> Result<f64> {
    let mut times = Vec::new();
    for i in 0..reps {
        sh(&mut Command::new("sync"))?;
        let t = Instant::now();
        f(i)?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

fn sh(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn du(dir: &Path) -> u64 {
    let mut n = 0;
    for e in fs_err::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        n += if p.is_dir() { du(&p) } else { e.metadata().map_or(0, |m| m.len()) };
    }
    n
}

impl Report {
    /// MB/s of the row `what`.
    pub fn rate(&self, what: &str) -> Option<f64> {
        self.rows.iter().find(|x| x.what == what).map(Row::mbps)
    }
}

/// Build the collection, then time snapshots, restores and the plain copies.
pub fn run(args: &SnapshotArgs) -> Result<Report> {
    let root = args.dir.join("naksha-bench-snapshots");
    if root.exists() {
        fs_err::remove_dir_all(&root)?;
    }
    let data = root.join("data");
    let options = EngineOptions { background: false, ..EngineOptions::default() };
    let db = Database::open_with(&data, options)?;
    let c = db.create_collection("bench", CollectionConfig::new(args.dim, Metric::L2))?;
    eprintln!("building {} × {} ...", args.points, args.dim);
    let vectors = clustered(args.points, args.dim, 64, 0.1, 7);
    for (b, chunk) in vectors.chunks(args.dim * 10_000).enumerate() {
        let points = chunk
            .chunks_exact(args.dim)
            .enumerate()
            .map(|(i, v)| {
                let id = (b * 10_000 + i) as u64;
                Point::new(PointId::Num(id), v.to_vec(), json!({"g": id % 10}))
            })
            .collect();
        c.upsert(points)?;
        if (b + 1) % 10 == 0 {
            c.flush()?;
        }
    }
    c.flush()?;
    c.merge()?;
    let cdir = data.join("collections/bench");
    let dir_bytes = du(&cdir);
    eprintln!("collection: {} bytes on disk, {} segments", dir_bytes, c.info().segments);

    let mut rows = Vec::new();
    let reps = args.reps.max(1);
    // The cut alone: what holds the collection's flushes and merges back.
    let cuts = root.join("cuts");
    let cut_secs = timed(reps, |i| c.cut(&cuts.join(i.to_string())).map(|_| ()).map_err(Into::into))?;
    fs_err::remove_dir_all(&cuts)?;

    // Earlier snapshots are deleted after the timing, not inside it: the copies
    // below are not deleted inside theirs either.
    let mut ids: Vec<String> = Vec::new();
    let snap_secs = timed(reps, |_| {
        ids.push(db.snapshot("bench")?.id);
        Ok(())
    })?;
    let last = ids.pop();
    for id in &ids {
        db.delete_snapshot("bench", id)?;
    }
    let (archive, info) = db.snapshot_archive("bench", last.as_deref().unwrap_or_default())?;
    rows.push(Row { what: "naksha snapshot (cut, SHA-256, tar, fsync)", bytes: info.size_bytes, secs: snap_secs });

    let copies = root.join("copies");
    fs_err::create_dir_all(&copies)?;
    let cp = timed(reps, |i| sh(Command::new("cp").arg("-r").arg(&cdir).arg(copies.join(format!("cp{i}")))))?;
    rows.push(Row { what: "cp -r", bytes: dir_bytes, secs: cp });
    // `op` into `{copies}/{prefix}{rep}{suffix}`, then a sync of that file system.
    let synced = |prefix: &str, suffix: &str, op: &dyn Fn(&Path) -> Result<()>| {
        timed(reps, |i| {
            let to = copies.join(format!("{prefix}{i}{suffix}"));
            op(&to)?;
            sh(Command::new("sync").arg("-f").arg(&to))
        })
    };
    let cp_sync = synced("cps", "", &|to| sh(Command::new("cp").arg("-r").arg(&cdir).arg(to)))?;
    rows.push(Row { what: "cp -r + sync", bytes: dir_bytes, secs: cp_sync });
    let tar_cf =
        |to: &Path| sh(Command::new("tar").arg("cf").arg(to).arg("-C").arg(data.join("collections")).arg("bench"));
    let tar = timed(reps, |i| tar_cf(&copies.join(format!("t{i}.tar"))))?;
    rows.push(Row { what: "tar cf", bytes: dir_bytes, secs: tar });
    let tar_sync = synced("ts", ".tar", &tar_cf)?;
    rows.push(Row { what: "tar cf + sync", bytes: dir_bytes, secs: tar_sync });

    let mut n = 0;
    let restore_secs = timed(reps, |_| {
        n += 1;
        let file = std::io::BufReader::with_capacity(1 << 20, fs_err::File::open(&archive)?);
        let (r, _) = db.restore(file, &format!("restored{n}"), Some(&info.sha256))?;
        if r.len() != c.len() {
            bail!("restored {} points of {}", r.len(), c.len());
        }
        Ok(())
    })?;
    rows.push(Row { what: "naksha restore (verify, unpack, fsync, open)", bytes: info.size_bytes, secs: restore_secs });
    let tar_xf = |to: &Path| {
        fs_err::create_dir_all(to)?;
        sh(Command::new("tar").arg("xf").arg(copies.join("t0.tar")).arg("-C").arg(to))
    };
    let untar = timed(reps, |i| tar_xf(&copies.join(format!("x{i}"))))?;
    rows.push(Row { what: "tar xf", bytes: dir_bytes, secs: untar });
    let untar_sync = synced("xs", "", &tar_xf)?;
    rows.push(Row { what: "tar xf + sync", bytes: dir_bytes, secs: untar_sync });
    drop((c, db));
    fs_err::remove_dir_all(&root)?;
    Ok(Report { rows, dir_bytes, cut_secs })
}

/// The markdown report.
pub fn markdown(r: &Report, args: &SnapshotArgs, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Snapshots and restores beside a plain copy\n");
    let _ = writeln!(s, "- Machine: {}", crate::common::machine());
    let _ = writeln!(
        s,
        "- Data: one collection of {} clustered vectors × {} (l2, payload `{{\"g\": id % 10}}`), flushed and merged: {:.1} MB on disk",
        args.points,
        args.dim,
        r.dir_bytes as f64 / 1e6
    );
    let _ = writeln!(
        s,
        "- Each time is the median of {} runs with the files in the page cache; MB = 10^6 bytes",
        args.reps
    );
    let _ = writeln!(
        s,
        "- The cut alone (hard links, manifest, WAL tail; what flushes and merges wait for): {:.1} ms",
        r.cut_secs * 1e3
    );
    let _ = writeln!(s, "- Command: `{command}`\n");
    let _ = writeln!(s, "| operation | MB | seconds | MB/s | vs cp -r + sync | vs tar + sync | vs tar (no sync) |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for row in &r.rows {
        let vs = |w: &str| match (row.what.starts_with("naksha"), r.rate(w)) {
            (true, Some(base)) => format!("{:.2}×", row.mbps() / base),
            _ => String::new(),
        };
        let (cp, tar_sync, tar) = if row.what.contains("restore") {
            (String::new(), vs("tar xf + sync"), vs("tar xf"))
        } else {
            (vs("cp -r + sync"), vs("tar cf + sync"), vs("tar cf"))
        };
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.3} | {:.0} | {cp} | {tar_sync} | {tar} |",
            row.what,
            row.bytes as f64 / 1e6,
            row.secs,
            row.mbps(),
        );
    }
    s
}

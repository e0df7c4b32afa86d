//! Snapshots and restores (#21): a cut taken under concurrent writes holds
//! exactly the writes up to its sequence number; a restored collection answers
//! every query as the original did; damaged, truncated, foreign and future
//! archives restore nothing; interrupted snapshots and restores leave nothing
//! behind after the next open.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use naksha_index::testing::Rng;
use naksha_query::{
    Collection, CollectionConfig, Database, EngineOptions, Error, FieldType, Filter, Metric, Mode, Point, PointId,
    SearchRequest,
};
use naksha_storage::fault;
use serde_json::{json, Value};

const DIM: usize = 8;

/// Acknowledged writes: (seq, the point upserted or `None` for a delete, id).
type Log = Vec<(u64, Option<Point>, u64)>;

fn config() -> CollectionConfig {
    CollectionConfig::new(DIM, Metric::Cosine).with_text_fields(&["body"]).with_payload_index("tag", FieldType::Keyword)
}

fn options() -> EngineOptions {
    // Small thresholds: flushes and merges run while snapshots are taken.
    EngineOptions { flush_points: 300, merge_min_segments: 3, ..EngineOptions::default() }
}

const WORDS: [&str; 8] = ["river", "stone", "cloud", "ember", "frost", "maple", "quartz", "willow"];

fn point(rng: &mut Rng, id: u64, version: u64) -> Point {
    let v: Vec<f32> = (0..DIM).map(|_| rng.f64() as f32 - 0.5).collect();
    let body = format!("{} {} w{id} v{version}", WORDS[(id % 8) as usize], WORDS[((id / 8 + version) % 8) as usize]);
    Point::new(PointId::Num(id), v, json!({"tag": format!("t{}", id % 5), "v": version}))
        .with_text(json!({"body": body}))
}

/// Everything a collection holds, by id: (vector, payload, text).
fn contents(c: &Collection, ids: impl Iterator<Item = u64>) -> BTreeMap<u64, (Vec<f32>, Value, Value)> {
    ids.filter_map(|i| c.get(&PointId::Num(i)).unwrap().map(|r| (i, (r.vector, r.payload, r.text)))).collect()
}

/// The answers to a fixed set of queries: vector (graph and exact), filtered, text and hybrid.
fn answers(c: &Collection) -> Vec<Vec<(PointId, u32)>> {
    let mut rng = Rng::new(99);
    let filter = Filter::from_json(json!({"must": [{"key": "tag", "match": "t2"}]})).unwrap();
    let mut out = Vec::new();
    for q in 0..6 {
        let v: Vec<f32> = (0..DIM).map(|_| rng.f64() as f32 - 0.5).collect();
        let text = format!("{} {}", WORDS[q % 8], WORDS[(q * 3 + 1) % 8]);
        let reqs = [
            SearchRequest::new(v.clone(), 10),
            SearchRequest::new(v.clone(), 10).exact(true),
            SearchRequest::new(v.clone(), 10).filter(filter.clone()),
            SearchRequest::text(text.clone(), 10).mode(Mode::Text),
            SearchRequest { vector: v, ..SearchRequest::text(text, 10).mode(Mode::Hybrid) },
        ];
        for r in reqs {
            out.push(c.search(&r).unwrap().into_iter().map(|h| (h.id, h.score.to_bits())).collect());
        }
    }
    out
}

#[test]
fn a_snapshot_under_concurrent_writes_is_exactly_its_cut() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open_with(dir.path(), options()).unwrap());
    let c = db.create_collection("live", config()).unwrap();
    // The writer logs every acknowledged write with its sequence number.
    let log: Arc<Mutex<Log>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, log, stop) = (c.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(7);
            let mut j = 0u64;
            while !stop.load(Relaxed) || j < 40 {
                let id = rng.below(1500);
                if j % 7 == 6 {
                    let seq = c.delete(vec![PointId::Num(id)]).map(|_| c.info().seq).unwrap();
                    log.lock().unwrap().push((seq, None, id));
                } else {
                    let batch: Vec<Point> = (0..20).map(|k| point(&mut rng, (id + k * 71) % 1500, j)).collect();
                    let seq = c.upsert(batch.clone()).unwrap();
                    let mut l = log.lock().unwrap();
                    l.extend(batch.into_iter().map(|p| {
                        (
                            seq,
                            Some(p.clone()),
                            match p.id {
                                PointId::Num(n) => n,
                                _ => 0,
                            },
                        )
                    }));
                }
                j += 1;
            }
        })
    };
    let mut snaps = Vec::new();
    for _ in 0..4 {
        std::thread::sleep(std::time::Duration::from_millis(150));
        snaps.push(db.snapshot("live").unwrap());
    }
    stop.store(true, Relaxed);
    writer.join().unwrap();
    assert!(snaps.windows(2).all(|w| w[0].seq <= w[1].seq));
    assert!(c.metrics().flushes.load(Relaxed) > 0, "flushes ran during the snapshots");
    let listed = db.snapshots(Some("live")).unwrap();
    assert_eq!(listed, snaps);

    // The model at each cut: every logged write up to its sequence number (one
    // writer, so the seq read right after a delete is the delete's).
    let log = log.lock().unwrap().clone();
    for (k, s) in snaps.iter().enumerate() {
        let mut model: BTreeMap<u64, (Vec<f32>, Value, Value)> = BTreeMap::new();
        for (seq, p, id) in &log {
            if *seq > s.seq {
                continue;
            }
            match p {
                Some(p) => {
                    let norm = (p.vector.iter().map(|x| x * x).sum::<f32>()).sqrt();
                    let v = p.vector.iter().map(|x| x / norm).collect();
                    model.insert(*id, (v, p.payload.clone(), p.text.clone()));
                }
                None => {
                    model.remove(id);
                }
            }
        }
        let target = format!("cut{k}");
        let (restored, r) = db.restore_snapshot("live", &s.id, &target).unwrap();
        assert_eq!(r.manifest.seq, s.seq);
        assert_eq!(restored.info().seq, s.seq);
        assert_eq!(restored.len() as u64, s.points);
        let got = contents(&restored, 0..1500);
        assert_eq!(got.len(), model.len(), "snapshot {k} at seq {}: point count", s.seq);
        for (id, want) in &model {
            let have = &got[id];
            assert_eq!((&have.1, &have.2), (&want.1, &want.2), "snapshot {k}: point {id}");
            assert!(have.0.iter().zip(&want.0).all(|(a, b)| (a - b).abs() < 1e-5), "snapshot {k}: vector of {id}");
        }
    }
}

#[test]
fn a_restored_collection_answers_every_query_as_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), EngineOptions { background: false, ..options() }).unwrap();
    let c = db.create_collection("orig", config()).unwrap();
    let mut rng = Rng::new(3);
    // Three segments (one with deletions) and a memtable with replaced and deleted points.
    for round in 0..3u64 {
        c.upsert((0..400).map(|i| point(&mut rng, round * 300 + i, round)).collect()).unwrap();
        c.flush().unwrap();
    }
    c.delete((0..1200).step_by(9).map(PointId::Num).collect()).unwrap();
    c.upsert((1100..1300).map(|i| point(&mut rng, i, 9)).collect()).unwrap();
    c.delete(vec![PointId::Num(1290), PointId::Num(5)]).unwrap();
    let before = answers(&c);
    let snap = db.snapshot("orig").unwrap();
    assert_eq!(snap.seq, c.info().seq);
    assert_eq!(snap.points, c.len() as u64);
    let (archive, info) = db.snapshot_archive("orig", &snap.id).unwrap();
    assert_eq!(info, snap);
    assert_eq!(fs_err::metadata(&archive).unwrap().len(), snap.size_bytes);

    // Into another data directory (another node), from the archive file.
    let other = tempfile::tempdir().unwrap();
    let db2 = Database::open_with(other.path(), EngineOptions { background: false, ..options() }).unwrap();
    let file = std::io::BufReader::new(fs_err::File::open(&archive).unwrap());
    let (copy, restored) = db2.restore(file, "copy", Some(&snap.sha256)).unwrap();
    assert_eq!(restored.sha256, snap.sha256);
    assert_eq!(restored.archive_bytes, snap.size_bytes);
    assert_eq!(copy.config(), c.config());
    assert_eq!(answers(&copy), before);
    assert_eq!(contents(&copy, 0..1300), contents(&c, 0..1300));
    // It survives a reopen and takes writes like any collection.
    drop((copy, db2));
    let db2 = Database::open_with(other.path(), EngineOptions { background: false, ..options() }).unwrap();
    let copy = db2.collection("copy").unwrap();
    assert_eq!(answers(&copy), before);
    copy.upsert(vec![point(&mut rng, 5000, 0)]).unwrap();
    copy.flush().unwrap();
    assert_eq!(copy.len(), c.len() + 1);
    // Writes to the original after the cut are not in the snapshot.
    c.upsert(vec![point(&mut rng, 7000, 0)]).unwrap();
    let (again, _) = db.restore_snapshot("orig", &snap.id, "again").unwrap();
    assert!(!again.contains(&PointId::Num(7000)));
    assert_eq!(answers(&again), before);
    // A restore never replaces a collection.
    for name in ["orig", "again"] {
        let e = db.restore_snapshot("orig", &snap.id, name).unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
    }
    // Snapshots outlive their collection and can be deleted.
    assert!(db.delete_collection("orig").unwrap());
    let (back, _) = db.restore_snapshot("orig", &snap.id, "orig").unwrap();
    assert_eq!(answers(&back), before);
    assert!(db.delete_snapshot("orig", &snap.id).unwrap());
    assert!(!db.delete_snapshot("orig", &snap.id).unwrap());
    assert!(matches!(db.snapshot_archive("orig", &snap.id), Err(Error::NotFound(_))));
    assert!(matches!(db.snapshot_archive("orig", "../../etc"), Err(Error::NotFound(_))));
}

/// A small collection's archive, as bytes.
fn small_archive(db: &Database) -> (Vec<u8>, naksha_query::SnapshotInfo) {
    let c = db.create_collection("src", config()).unwrap();
    let mut rng = Rng::new(5);
    c.upsert((0..200).map(|i| point(&mut rng, i, 0)).collect()).unwrap();
    c.flush().unwrap();
    c.upsert((200..260).map(|i| point(&mut rng, i, 0)).collect()).unwrap();
    let info = db.snapshot("src").unwrap();
    let (path, _) = db.snapshot_archive("src", &info.id).unwrap();
    (fs_err::read(path).unwrap(), info)
}

fn assert_nothing_restored(db: &Database, dir: &std::path::Path, what: &str) {
    assert!(db.collection("dst").is_err(), "{what}: a collection appeared");
    let left: Vec<_> = fs_err::read_dir(dir.join("collections"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "src")
        .collect();
    assert!(left.is_empty(), "{what}: left behind {left:?}");
}

#[test]
fn damaged_truncated_foreign_and_future_archives_restore_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), EngineOptions { background: false, ..options() }).unwrap();
    let (bytes, info) = small_archive(&db);
    let restore = |b: &[u8], sha: Option<&str>| db.restore(b, "dst", sha).map(|_| ()).unwrap_err();

    // One flipped byte in any file's data is caught by that file's checksum ...
    let mut spans = Vec::new();
    for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let e = entry.unwrap();
        if e.size() > 0 {
            spans.push((e.raw_file_position() as usize, e.size() as usize));
        }
    }
    assert!(spans.len() > 5, "{spans:?}");
    let mut rng = Rng::new(11);
    for (start, len) in spans {
        let mut damaged = bytes.clone();
        let at = start + rng.below(len as u64) as usize;
        damaged[at] ^= 0x5a;
        let e = restore(&damaged, None);
        assert!(matches!(e, Error::InvalidArgument(_)), "byte {at}: {e}");
        assert_nothing_restored(&db, dir.path(), &format!("flipped byte {at}"));
    }
    // ... and anywhere at all (headers, padding) by the archive's.
    for _ in 0..8 {
        let mut damaged = bytes.clone();
        let at = rng.below(bytes.len() as u64) as usize;
        damaged[at] ^= 0x01;
        let e = restore(&damaged, Some(&info.sha256));
        assert!(matches!(e, Error::InvalidArgument(_)), "byte {at}: {e}");
        assert_nothing_restored(&db, dir.path(), &format!("flipped byte {at}"));
    }
    // Truncated anywhere.
    for cut in [0, 100, 512, 1500, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1500] {
        let e = restore(&bytes[..cut], Some(&info.sha256));
        assert!(matches!(e, Error::InvalidArgument(_)), "cut at {cut}: {e}");
        assert_nothing_restored(&db, dir.path(), &format!("cut at {cut}"));
    }
    // Cut in the end-of-archive padding: every file is intact, but the archive's checksum is not.
    let e = restore(&bytes[..bytes.len() - 512], Some(&info.sha256));
    assert!(e.to_string().contains("SHA-256"), "{e}");
    // A wrong expected checksum.
    let e = restore(&bytes, Some(&"ab".repeat(32)));
    assert!(e.to_string().contains("expected"), "{e}");
    assert_nothing_restored(&db, dir.path(), "wrong checksum");
    // Not a snapshot at all.
    for junk in [&b"hello world"[..], &[0u8; 4096][..], br#"{"format_version": 1}"#] {
        let e = restore(junk, None);
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    }
    // From a future format version.
    let future = rewrite_manifest(&bytes, |m| m["format_version"] = json!(3));
    let e = restore(&future, None);
    assert!(e.to_string().contains("format version 3 is newer"), "{e}");
    // A manifest changed after packing (its CRC-32C no longer matches the last entry's).
    let edited = {
        let mut archive = bytes.clone();
        let at = find(&archive, b"\"created_at\": \"") + 15;
        archive[at] = if archive[at] == b'1' { b'2' } else { b'1' };
        archive
    };
    let e = restore(&edited, None);
    assert!(e.to_string().contains("naksha-snapshot.json has CRC-32C"), "{e}");
    // A manifest that claims more points than the data holds.
    let lying = rewrite_manifest(&bytes, |m| m["points"] = json!(261));
    let e = restore(&lying, None);
    assert!(e.to_string().contains("the manifest says"), "{e}");
    assert_nothing_restored(&db, dir.path(), "all of the above");
    // The intact archive restores.
    let (c, _) = db.restore(&bytes[..], "dst", Some(&info.sha256)).unwrap();
    assert_eq!(c.len(), 260);
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).position(|w| w == needle).unwrap()
}

/// The archive with its manifest entry changed by `f` (the files untouched,
/// the manifest's CRC-32C in the last entry made to match).
fn rewrite_manifest(bytes: &[u8], f: impl Fn(&mut Value)) -> Vec<u8> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = tar::Builder::new(Vec::new());
    let mut manifest_crc = 0;
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if path == naksha_query::snapshot::MANIFEST_ENTRY {
            let mut m: Value = serde_json::from_slice(&data).unwrap();
            f(&mut m);
            data = serde_json::to_vec(&m).unwrap();
            manifest_crc = crc32c::crc32c(&data);
        }
        if path == naksha_query::snapshot::CHECKSUMS_ENTRY {
            let mut sums: Value = serde_json::from_slice(&data).unwrap();
            sums["manifest_crc32c"] = json!(format!("{manifest_crc:08x}"));
            data = serde_json::to_vec(&sums).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        out.append_data(&mut h, &path, data.as_slice()).unwrap();
    }
    out.into_inner().unwrap()
}

#[test]
fn failed_and_interrupted_snapshots_and_restores_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || EngineOptions { background: false, ..options() };
    let db = Database::open_with(dir.path(), opts()).unwrap();
    let (bytes, info) = small_archive(&db);
    let snaps = dir.path().join("snapshots");
    // A disk failure in each step of a snapshot: an error, nothing listed, nothing left over.
    for (point, spec) in
        [("snapshot.pack", "eio"), ("snapshot.before_publish", "enospc"), ("atomic.before_rename", "eio")]
    {
        fault::set(dir.path(), point, spec);
        let e = db.snapshot("src").unwrap_err();
        fault::clear(dir.path());
        assert!(!e.is_client_error(), "{point}: {e}");
        assert_eq!(db.snapshots(None).unwrap(), vec![info.clone()], "{point}");
        let mut files: Vec<String> = walk(&snaps);
        files.sort();
        assert_eq!(files, [format!("src/{}.json", info.id), format!("src/{}.tar", info.id)], "{point}");
    }
    // ... and in each step of a restore.
    for (point, spec) in [("restore.write", "short@3"), ("restore.before_rename", "eio")] {
        fault::set(dir.path(), point, spec);
        let e = db.restore(&bytes[..], "dst", None).map(|_| ()).unwrap_err();
        fault::clear(dir.path());
        assert!(!e.is_client_error(), "{point}: {e}");
        assert_nothing_restored(&db, dir.path(), point);
    }
    // What a crash leaves (a staging cut, a half-written archive, a record
    // without its archive, a half-restored collection, a spooled upload) goes at the next open.
    let src_before = contents(&db.collection("src").unwrap(), 0..300);
    drop(db);
    fs_err::create_dir_all(snaps.join(".staging-src-1-2/collection/wal")).unwrap();
    fs_err::write(snaps.join("src/20260101T000000Z-1.tar.partial"), b"half").unwrap();
    fs_err::write(snaps.join("src/20260101T000000Z-2.json"), b"{}").unwrap();
    fs_err::create_dir_all(snaps.join(".incoming")).unwrap();
    fs_err::write(snaps.join(".incoming/upload-1"), b"half").unwrap();
    fs_err::create_dir_all(dir.path().join("collections/dst.restoring/wal")).unwrap();
    // A restore renamed into place whose open and checks a crash cut short.
    fs_err::create_dir_all(dir.path().join("collections/dst/wal")).unwrap();
    fs_err::write(dir.path().join("collections/dst/RESTORE-PENDING"), b"").unwrap();
    let db = Database::open_with(dir.path(), opts()).unwrap();
    let mut files = walk(&snaps);
    files.sort();
    assert_eq!(files, [format!("src/{}.json", info.id), format!("src/{}.tar", info.id)]);
    assert_nothing_restored(&db, dir.path(), "after reopen");
    assert_eq!(contents(&db.collection("src").unwrap(), 0..300), src_before, "the original is untouched");
    db.restore(&bytes[..], "dst", Some(&info.sha256)).unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs_err::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()).into_iter().map(|n| format!("{name}/{n}")));
        } else {
            out.push(name);
        }
    }
    out
}

//! I/O faults on a live collection (#17): disk full and `EIO` during WAL
//! appends, flushes, merges and manifest swaps; a failed `fsync`; a failing
//! collection delete. Faults are armed per directory ([`naksha_storage::fault`])
//! so these tests run beside others in one process. After each: nothing
//! acknowledged is lost, nothing refused appears, and the data directory opens.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use naksha_query::{
    CollectionConfig, Database, EngineOptions, Error, HealthStatus, Metric, Point, PointId, SearchRequest,
};
use naksha_storage::fault;
use serde_json::json;

use crate::fixtures::{manual_options, open};

const DIM: usize = 4;

fn config() -> CollectionConfig {
    CollectionConfig::new(DIM, Metric::L2).with_text_fields(&["body"])
}

fn batch(ids: std::ops::Range<u64>) -> Vec<Point> {
    ids.map(|i| {
        Point::new(PointId::Num(i), vec![i as f32, 1.0, 2.0, 3.0], json!({"i": i}))
            .with_text(json!({"body": format!("word{i}")}))
    })
    .collect()
}

fn assert_points(db: &Database, want: std::ops::Range<u64>, absent: &[u64], stage: &str) {
    let c = db.collection("c").unwrap();
    assert_eq!(c.len(), want.clone().count(), "{stage}: live points");
    for i in want {
        let r = c.get(&PointId::Num(i)).unwrap().unwrap_or_else(|| panic!("{stage}: acknowledged point {i} lost"));
        assert_eq!(r.payload, json!({"i": i}), "{stage}");
    }
    for i in absent {
        assert!(c.get(&PointId::Num(*i)).unwrap().is_none(), "{stage}: refused point {i} appeared");
    }
}

/// Disk full (and EIO) at each step of a flush: the flush fails, every point
/// stays readable and searchable, writes go on, and once the disk is back a
/// flush succeeds; a restart at any of these moments finds every point.
#[test]
fn failed_flushes_lose_nothing_and_the_next_one_heals() {
    for (point, spec) in [
        ("section.write", "enospc"),
        ("section.write", "short"),
        ("wal.create", "enospc"),
        ("flush.before_manifest", "eio"),
        ("atomic.before_rename", "enospc"),
        ("flush.after_manifest", "eio"),
        ("wal.truncate", "eacces"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let stage = format!("{point}={spec}");
        {
            let db = open(dir.path());
            let c = db.create_collection("c", config()).unwrap();
            c.upsert(batch(0..50)).unwrap();
            c.flush().unwrap();
            c.upsert(batch(50..100)).unwrap();
            fault::set(dir.path(), point, spec);
            assert!(c.flush().is_err(), "{stage}: the flush did not fail");
            c.upsert(batch(100..120)).unwrap();
            let hit = c.search(&SearchRequest::new(vec![77.0, 1.0, 2.0, 3.0], 1)).unwrap();
            assert_eq!(hit[0].id, PointId::Num(77), "{stage}: search after the failed flush");
            assert_points(&db, 0..120, &[], &stage);
        }
        // A restart while the disk is still failing opens, and replays everything.
        fault::clear(dir.path());
        {
            let db = open(dir.path());
            assert_points(&db, 0..120, &[], &format!("{stage}, reopened"));
            let c = db.collection("c").unwrap();
            c.upsert(batch(120..130)).unwrap();
            c.flush().unwrap();
            assert_eq!(c.info().wal_files, 1, "{stage}: the WAL is trimmed after a good flush");
        }
        let db = open(dir.path());
        assert_points(&db, 0..130, &[], &format!("{stage}, flushed and reopened"));
    }
}

/// A merge that fails at any step changes nothing visible; the next one works.
#[test]
fn failed_merges_lose_nothing() {
    for (point, spec) in
        [("section.write", "enospc"), ("merge.before_manifest", "eio"), ("atomic.before_rename", "eio")]
    {
        let dir = tempfile::tempdir().unwrap();
        let stage = format!("{point}={spec}");
        let options = EngineOptions { merge_min_segments: 2, ..manual_options() };
        {
            let db = Database::open_with(dir.path(), options.clone()).unwrap();
            let c = db.create_collection("c", config()).unwrap();
            for k in 0..3 {
                c.upsert(batch(k * 10..k * 10 + 10)).unwrap();
                c.flush().unwrap();
            }
            c.delete(vec![PointId::Num(3)]).unwrap();
            fault::set(dir.path(), point, spec);
            assert!(c.merge().is_err(), "{stage}: the merge did not fail");
            fault::clear(dir.path());
            assert_eq!(c.len(), 29, "{stage}");
            assert!(c.get(&PointId::Num(3)).unwrap().is_none() && c.get(&PointId::Num(29)).unwrap().is_some());
        }
        let db = Database::open_with(dir.path(), options).unwrap();
        let c = db.collection("c").unwrap();
        assert_eq!(c.len(), 29, "{stage}: reopened");
        assert!(c.merge().unwrap() >= 1, "{stage}: the next merge runs");
        assert!(c.get(&PointId::Num(3)).unwrap().is_none() && c.get(&PointId::Num(29)).unwrap().is_some());
    }
}

/// A WAL append that fails part-way (disk full) is refused and changes nothing,
/// in memory or after a restart; the next write succeeds.
#[test]
fn a_failed_append_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let c = db.create_collection("c", config()).unwrap();
        c.upsert(batch(0..10)).unwrap();
        for spec in ["short*1", "enospc*1"] {
            fault::set(dir.path(), "wal.write", spec);
            let e = c.upsert(batch(10..20)).unwrap_err();
            assert!(matches!(&e, Error::Storage(s) if s.is_no_space()), "{e}");
        }
        assert_points(&db, 0..10, &[10, 15], "after the failed appends");
        c.upsert(batch(20..25)).unwrap();
        assert_eq!(c.info().status, HealthStatus::Ok);
    }
    let db = open(dir.path());
    let c = db.collection("c").unwrap();
    assert_eq!(c.len(), 15);
    assert!(c.get(&PointId::Num(12)).unwrap().is_none() && c.get(&PointId::Num(24)).unwrap().is_some());
}

/// A failed fsync makes the collection read-only (reads go on, writes are
/// refused with a reason, info says so) until it is reopened.
#[test]
fn a_failed_fsync_makes_the_collection_read_only_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let c = db.create_collection("c", config()).unwrap();
        c.upsert(batch(0..10)).unwrap();
        fault::set(dir.path(), "wal.fsync", "eio*1");
        let e = c.upsert(batch(10..20)).unwrap_err();
        assert!(e.to_string().contains("outcome of this write unknown"), "{e}");
        let e = c.upsert(batch(20..21)).unwrap_err();
        assert!(e.to_string().contains("unusable"), "{e}");
        assert!(c.delete(vec![PointId::Num(1)]).is_err());
        let info = c.info();
        assert_eq!(info.status, HealthStatus::ReadOnly);
        assert!(info.error.unwrap().contains("fsync"));
        assert_eq!(c.get(&PointId::Num(3)).unwrap().unwrap().payload, json!({"i": 3}));
        assert!(c.get(&PointId::Num(10)).unwrap().is_none(), "a write whose fsync failed was applied");
    }
    fault::clear(dir.path());
    let db = open(dir.path());
    let c = db.collection("c").unwrap();
    assert_eq!(c.info().status, HealthStatus::Ok);
    assert!(c.get(&PointId::Num(5)).unwrap().is_some());
    c.upsert(batch(30..31)).unwrap();
}

/// The memtable is full and flushes fail (disk full): the write is refused
/// before it is logged, repeated writes are refused at once during the
/// back-off (no segment build per request), and writes resume when space does.
#[test]
fn a_full_memtable_that_cannot_flush_refuses_writes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions { flush_points: 10, max_memtable_points: 20, ..manual_options() };
    let db = Database::open_with(dir.path(), options).unwrap();
    let c = db.create_collection("c", config()).unwrap();
    c.upsert(batch(0..20)).unwrap();
    // One failure: a flush tried again inside the back-off would succeed.
    fault::set(dir.path(), "section.write", "enospc*1");
    let e = c.upsert(batch(20..25)).unwrap_err();
    assert!(e.to_string().contains("No space left"), "{e}");
    assert_points(&db, 0..20, &[20, 24], "refused");
    // The frozen points wait for their flush; new writes fill a fresh memtable up to the limit.
    c.upsert(batch(20..40)).unwrap();
    let e = c.upsert(batch(40..45)).unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "a doomed flush ran again inside the back-off: {e}");
    assert_points(&db, 0..40, &[40, 44], "refused");
    assert_eq!(c.metrics().graph_builds.load(Relaxed), 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.upsert(batch(40..45)).is_err() {
        assert!(Instant::now() < deadline, "writes did not resume");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(c.metrics().flushes.load(Relaxed) >= 1);
    assert_points(&db, 0..45, &[], "resumed");
}

/// The background worker backs off while flushes fail (a handful of tries per
/// second at most, not a tight loop), reports the collection degraded, and
/// recovers by itself once the disk does.
#[test]
fn the_background_worker_backs_off_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions { flush_points: 10, ..EngineOptions::default() };
    let db = Database::open_with(dir.path(), options).unwrap();
    let c = db.create_collection("c", config()).unwrap();
    fault::set(dir.path(), "section.write", "enospc");
    c.upsert(batch(0..30)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.info().status != HealthStatus::Degraded {
        assert!(Instant::now() < deadline, "never reported degraded");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(c.info().error.unwrap().contains("No space"), "{:?}", c.info().error);
    for i in 30..60 {
        c.upsert(batch(i..i + 1)).unwrap(); // each write wakes the worker
    }
    std::thread::sleep(Duration::from_millis(1500));
    let failures = c.metrics().background_failures.load(Relaxed);
    assert!((1..=5).contains(&failures), "{failures} attempts in ~2 s: no back-off");
    fault::clear(dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.info().status != HealthStatus::Ok || c.info().segments == 0 {
        assert!(Instant::now() < deadline, "did not recover: {:?}", c.info());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_points(&db, 0..60, &[], "recovered");
}

/// Deleting a collection whose directory cannot be renamed (EACCES) fails and
/// changes nothing: before, the collection vanished from the API until a
/// restart brought it back.
#[test]
fn a_failed_collection_delete_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let c = db.create_collection("c", config()).unwrap();
    c.upsert(batch(0..5)).unwrap();
    drop(c);
    fault::set(dir.path(), "collection.delete", "eacces*1");
    assert!(db.delete_collection("c").is_err());
    assert_points(&db, 0..5, &[], "after the failed delete");
    db.collection("c").unwrap().upsert(batch(5..6)).unwrap();
    assert!(db.delete_collection("c").unwrap());
    assert!(db.collection("c").is_err());
    drop(db);
    let db = open(dir.path());
    assert!(db.collection("c").is_err(), "a deleted collection came back");
}

/// Regenerates the fuzzers' seed files (`fuzz/seeds/{wal_record,section_file,manifest}`)
/// from a small real collection: `cargo test -p naksha-query --test integration -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes the fuzz seeds into the checkout; run by hand after a format change"]
fn write_fuzz_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let config = config()
        .with_quantization(naksha_query::Quantization::Int8)
        .with_payload_index("i", naksha_query::FieldType::Integer);
    let c = db.create_collection("c", config).unwrap();
    c.upsert(batch(0..12)).unwrap();
    c.delete(vec![PointId::Num(3), PointId::Num(7)]).unwrap();
    c.flush().unwrap();
    c.delete(vec![PointId::Num(5)]).unwrap();
    c.flush().unwrap(); // a deletion bitmap
    c.upsert(vec![Point::new(PointId::Str("doc-1#0".into()), vec![0.5, 1.0, 2.0, 3.0], json!({"doc_id": "doc-1"}))])
        .unwrap();
    c.delete(vec![PointId::Num(1)]).unwrap();
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let cdir = dir.path().join("collections/c");
    let copy = |from: &std::path::Path, to: &str| {
        fs_err::copy(from, seeds.join(to)).unwrap();
    };
    copy(&cdir.join("MANIFEST"), "manifest/MANIFEST");
    for e in fs_err::read_dir(cdir.join("wal")).unwrap() {
        let p = e.unwrap().path();
        let bytes = fs_err::read(&p).unwrap();
        if bytes.len() > 24 {
            copy(&p, "wal_record/wal.log");
            // The first record's body alone, for the record decoder.
            let n = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as usize;
            fs_err::write(seeds.join("wal_record/record.bin"), &bytes[40..40 + n]).unwrap();
        }
    }
    let seg = fs_err::read_dir(&cdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
        .unwrap();
    for e in fs_err::read_dir(&seg).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_file() && (name.ends_with(".bin") || name.ends_with(".hnsw")) {
            copy(&p, &format!("section_file/{name}"));
        }
    }
}

//! Updates, deletes, flushes, merges and restarts.

use std::sync::atomic::Ordering::Relaxed;

use naksha_index::testing::clustered;
use naksha_query::{CollectionConfig, Database, Error, FieldType, Filter, Metric, Point, PointId, SearchRequest};
use serde_json::json;

use crate::fixtures::{open, points};

const DIM: usize = 16;

fn config() -> CollectionConfig {
    CollectionConfig::new(DIM, Metric::L2).with_payload_index("tag", FieldType::Keyword)
}

fn top1(c: &naksha_query::Collection, v: &[f32]) -> PointId {
    c.search(&SearchRequest::new(v.to_vec(), 1)).unwrap()[0].id.clone()
}

/// What every stage must agree on: updated points have their new content,
/// deleted ones are gone from get, search and filters.
fn assert_state(c: &naksha_query::Collection, data: &[f32], stage: &str) {
    assert_eq!(c.len(), 2990, "{stage}: live points");
    for id in [0u64, 1, 2] {
        let r = c.get(&PointId::Num(id)).unwrap().unwrap_or_else(|| panic!("{stage}: point {id} missing"));
        assert_eq!(r.payload, json!({"updated": true}), "{stage}: update of {id} lost");
        assert_eq!(r.vector, vec![100.0 + id as f32; DIM], "{stage}");
        assert_eq!(top1(c, &[100.0 + id as f32; DIM]), PointId::Num(id), "{stage}: search sees the update");
    }
    for id in 10u64..20 {
        assert!(c.get(&PointId::Num(id)).unwrap().is_none(), "{stage}: deleted point {id} is back");
        let v = &data[id as usize * DIM..(id as usize + 1) * DIM];
        let hits = c.search(&SearchRequest::new(v.to_vec(), 5).exact(true)).unwrap();
        assert!(hits.iter().all(|h| h.id != PointId::Num(id)), "{stage}: deleted point {id} found by search");
    }
    let f = Filter::from_json(json!({"must": [{"key": "tag", "match": "t3"}]})).unwrap();
    let hits = c.search(&SearchRequest::new(vec![0.0; DIM], 1000).filter(f).exact(true)).unwrap();
    assert!(hits.iter().all(|h| h.payload.as_ref().unwrap()["tag"] == "t3"), "{stage}");
    assert!(hits.iter().all(|h| !matches!(h.id, PointId::Num(10..=19))), "{stage}");
}

#[test]
fn updates_and_deletes_survive_flush_merge_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = clustered(3000, DIM, 10, 0.3, 1);
    {
        let db = open(dir.path());
        let c = db.create_collection("c", config()).unwrap();
        // Three segments, then more in the memtable.
        for (i, chunk) in points(&data, DIM, 0).chunks(1000).enumerate() {
            c.upsert(chunk.to_vec()).unwrap();
            if i < 2 {
                c.flush().unwrap();
            }
        }
        let updates: Vec<Point> = (0..3)
            .map(|i| Point::new(PointId::Num(i), vec![100.0 + i as f32; DIM], json!({"updated": true})))
            .collect();
        c.upsert(updates).unwrap();
        assert_eq!(c.delete((10..20).map(PointId::Num).collect()).unwrap(), 10);
        assert_eq!(c.delete(vec![PointId::Num(10), PointId::Num(999_999)]).unwrap(), 0);
        assert_state(&c, &data, "memtable");
        c.flush().unwrap();
        assert_eq!(c.info().segments, 3);
        assert_state(&c, &data, "after flush");
    }
    {
        let db = open(dir.path());
        let c = db.collection("c").unwrap();
        assert_state(&c, &data, "after restart");
        assert_eq!(c.metrics().graph_builds.load(Relaxed), 0, "reopening must not rebuild graphs");
        assert_eq!(c.metrics().segments_loaded.load(Relaxed), 3);
        // Enough small segments to merge: they collapse into one, tombstones dropped.
        drop(c);
        drop(db);
        let o = naksha_query::EngineOptions { background: false, merge_min_segments: 3, ..Default::default() };
        let db = Database::open_with(dir.path(), o).unwrap();
        let c = db.collection("c").unwrap();
        assert_eq!(c.merge().unwrap(), 1);
        assert_eq!(c.info().segments, 1);
        assert_state(&c, &data, "after merge");
    }
    let db = open(dir.path());
    let c = db.collection("c").unwrap();
    assert_state(&c, &data, "after merge and restart");
    assert_eq!(c.info().segments, 1);
    // The merged segment holds exactly the live points: deletes were dropped.
    assert_eq!(c.info().points, 2990);
}

#[test]
fn reopened_collection_searches_without_rebuilding() {
    let dir = tempfile::tempdir().unwrap();
    let data = clustered(5000, DIM, 10, 0.3, 2);
    let before = {
        let db = open(dir.path());
        let c = db.create_collection("c", config()).unwrap();
        c.upsert(points(&data, DIM, 0)).unwrap();
        c.flush().unwrap();
        assert_eq!(c.metrics().graph_builds.load(Relaxed), 1);
        c.search(&SearchRequest::new(data[..DIM].to_vec(), 10)).unwrap()
    };
    let db = open(dir.path());
    let c = db.collection("c").unwrap();
    let after = c.search(&SearchRequest::new(data[..DIM].to_vec(), 10)).unwrap();
    assert_eq!(after, before);
    let m = c.metrics();
    assert_eq!((m.graph_builds.load(Relaxed), m.segments_loaded.load(Relaxed)), (0, 1));
    assert_eq!(m.graph_searches.load(Relaxed), 1, "the mapped graph answered");
    assert_eq!(m.replayed.load(Relaxed), 0, "a flushed collection replays nothing");
}

#[test]
fn unflushed_writes_are_replayed_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let c = db.create_collection("c", config()).unwrap();
        c.upsert(points(&clustered(50, DIM, 2, 0.3, 3), DIM, 0)).unwrap();
        c.delete(vec![PointId::Num(7)]).unwrap();
    }
    let db = open(dir.path());
    let c = db.collection("c").unwrap();
    assert_eq!(c.len(), 49);
    assert_eq!(c.metrics().replayed.load(Relaxed), 2);
    assert!(c.get(&PointId::Num(7)).unwrap().is_none());
}

#[test]
fn delete_by_filter_string_ids_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let c = db.create_collection("c", config()).unwrap();
    let pts: Vec<Point> = (0..100)
        .map(|i| {
            Point::new(PointId::Str(format!("doc-{i}")), vec![i as f32; DIM], json!({"tag": format!("t{}", i % 4)}))
        })
        .collect();
    c.upsert(pts[..50].to_vec()).unwrap();
    c.flush().unwrap();
    c.upsert(pts[50..].to_vec()).unwrap();
    let f = Filter::from_json(json!({"must": [{"key": "tag", "match": "t0"}]})).unwrap();
    assert_eq!(c.delete_where(&f).unwrap(), 25);
    assert_eq!(c.len(), 75);
    let mut req = SearchRequest::new(vec![0.0; DIM], 3);
    let first = c.search(&req).unwrap();
    assert_eq!(first.iter().map(|h| h.id.to_string()).collect::<Vec<_>>(), ["\"doc-1\"", "\"doc-2\"", "\"doc-3\""]);
    req.offset = 2;
    assert_eq!(c.search(&req).unwrap()[0].id, PointId::Str("doc-3".into()));
    assert!(first[0].score < first[1].score, "l2 scores are distances, best first");
}

#[test]
fn collections_are_created_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let a = db.create_collection("a", config()).unwrap();
    a.upsert(points(&clustered(3, DIM, 1, 0.1, 4), DIM, 0)).unwrap();
    db.create_collection("a", config()).unwrap(); // same config: fine
    let other = CollectionConfig::new(DIM + 1, Metric::L2);
    assert!(matches!(db.create_collection("a", other), Err(Error::CollectionExists(_))));
    assert!(matches!(db.create_collection("../x", config()), Err(Error::InvalidArgument(_))));
    assert!(matches!(db.collection("nope"), Err(Error::CollectionNotFound(_))));
    db.create_collection("b", config()).unwrap();
    assert_eq!(db.list(), vec![("a".to_owned(), 3), ("b".to_owned(), 0)]);
    assert!(matches!(Database::open(dir.path()), Err(Error::Locked(_))), "second opener is refused");
    assert!(db.delete_collection("a").unwrap());
    assert!(!db.delete_collection("a").unwrap());
    drop(a);
    drop(db);
    let db = open(dir.path());
    assert_eq!(db.list(), vec![("b".to_owned(), 0)]);
}

#[test]
fn background_worker_flushes_and_merges() {
    let dir = tempfile::tempdir().unwrap();
    let opts = naksha_query::EngineOptions { flush_points: 500, merge_min_segments: 3, ..Default::default() };
    let db = Database::open_with(dir.path(), opts).unwrap();
    let c = db.create_collection("c", config()).unwrap();
    let data = clustered(4000, DIM, 10, 0.3, 5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        while !done() {
            assert!(std::time::Instant::now() < deadline, "worker did not {what}: {:?}", c.info());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    for chunk in points(&data, DIM, 0).chunks(500) {
        c.upsert(chunk.to_vec()).unwrap();
        wait("flush", &|| c.info().memtable_points == 0);
    }
    wait("merge", &|| c.metrics().merges.load(Relaxed) > 0 && c.info().segments < 3);
    assert_eq!(c.len(), 4000);
    for i in (0..4000).step_by(397) {
        assert_eq!(top1(&c, &data[i * DIM..(i + 1) * DIM]), PointId::Num(i as u64));
    }
}

#[test]
fn a_delete_only_workload_trims_the_wal_and_drops_empty_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = naksha_query::EngineOptions { background: false, max_wal_bytes: 2048, ..Default::default() };
    {
        let db = Database::open_with(dir.path(), opts.clone()).unwrap();
        let c = db.create_collection("c", config()).unwrap();
        let data = clustered(300, DIM, 3, 0.3, 6);
        c.upsert(points(&data[..100 * DIM], DIM, 0)).unwrap();
        c.flush().unwrap();
        c.upsert(points(&data[100 * DIM..], DIM, 100)).unwrap();
        c.flush().unwrap();
        assert_eq!(c.info().segments, 2);
        // Delete every point of the first segment, one by one: only the WAL grows.
        for id in 0..100 {
            c.delete(vec![PointId::Num(id)]).unwrap();
        }
        assert!(c.info().wal_bytes > 2048, "{:?}", c.info());
        c.maintain().unwrap();
        let info = c.info();
        assert!(info.wal_bytes < 2048, "the WAL was not trimmed: {info:?}");
        assert_eq!(info.segments, 1, "the fully deleted segment is dropped, not rewritten empty: {info:?}");
        assert_eq!(c.len(), 200);
    }
    let db = Database::open_with(dir.path(), opts).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!((c.len(), c.info().segments), (200, 1));
    assert_eq!(c.metrics().replayed.load(Relaxed), 0, "the deletes are durable in the segments");
    assert!(c.get(&PointId::Num(5)).unwrap().is_none() && c.get(&PointId::Num(150)).unwrap().is_some());
}

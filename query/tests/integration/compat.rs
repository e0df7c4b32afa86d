//! Compatibility with data written by earlier builds: `tests/compat/v1/` is a
//! data directory written by the build that introduced it (WAL, manifest, two
//! segments with graphs, payload indexes, int8 codes, a deletion bitmap and a
//! tantivy text index, plus an unflushed WAL tail). Each build must open it
//! and answer the same queries the same way, so a format change that breaks
//! old data fails CI instead of a user's upgrade. A new format version adds a
//! new fixture beside the old ones (`write_compat_fixture` writes one).

use std::path::{Path, PathBuf};

use naksha_query::{
    CollectionConfig, Database, FieldType, Filter, Metric, Mode, Point, PointId, Quantization, SearchRequest,
};
use serde_json::{json, Value};

use crate::fixtures::{manual_options, open};

const TOPICS: [&str; 5] =
    ["rust compilers", "python notebooks", "vegetable gardening", "telescope astronomy", "bread baking"];

fn fixture(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat").join(version)
}

fn vector(i: u64) -> Vec<f32> {
    vec![i as f32, (i % 3) as f32, 0.5, 1.0]
}

fn point(i: u64) -> Point {
    let lang = if i.is_multiple_of(2) { "en" } else { "de" };
    Point::new(PointId::Num(i), vector(i), json!({"lang": lang, "n": i, "tags": [format!("t{}", i % 4)]}))
        .with_text(json!({"body": format!("item {i} about {}", TOPICS[i as usize % 5])}))
}

/// Writes the fixture: `docs` (l2, text and payload indexes) with segment 1
/// (points 0–29), segment 2 (30–32, and the deletion of 5), and a WAL tail
/// (33–35, "s-1", the deletion of 7); `codes` (int8, cosine) with one segment.
fn write(dir: &Path) {
    let db = Database::open_with(dir, manual_options()).unwrap();
    let config = CollectionConfig::new(4, Metric::L2)
        .with_text_fields(&["body"])
        .with_payload_index("lang", FieldType::Keyword)
        .with_payload_index("n", FieldType::Integer);
    let docs = db.create_collection("docs", config).unwrap();
    docs.upsert((0..30).map(point).collect()).unwrap();
    docs.flush().unwrap();
    docs.delete(vec![PointId::Num(5)]).unwrap();
    docs.upsert((30..33).map(point).collect()).unwrap();
    docs.flush().unwrap();
    docs.upsert((33..36).map(point).collect()).unwrap();
    docs.upsert(vec![Point::new(PointId::Str("s-1".into()), vec![100.0, 0.0, 0.5, 1.0], json!({"lang": "fr"}))])
        .unwrap();
    docs.delete(vec![PointId::Num(7)]).unwrap();
    let config = CollectionConfig::new(4, Metric::Cosine).with_quantization(Quantization::Int8);
    let codes = db.create_collection("codes", config).unwrap();
    codes.upsert((1..41).map(|i| Point::new(PointId::Num(i), vector(i), Value::Null)).collect()).unwrap();
    codes.flush().unwrap();
}

fn ids(hits: &[naksha_query::ScoredPoint]) -> Vec<PointId> {
    hits.iter().map(|h| h.id.clone()).collect()
}

fn nums(ns: &[u64]) -> Vec<PointId> {
    ns.iter().map(|n| PointId::Num(*n)).collect()
}

/// The answers every build must give on the fixture (with `extra` points written since).
fn check(db: &Database, extra: usize) {
    let mut names: Vec<String> = db.list().into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(names, ["codes", "docs"]);
    let docs = db.collection("docs").unwrap();
    assert_eq!(docs.len(), 36 + 1 - 2 + extra, "36 numbered points and s-1, less 5 and 7");
    let info = docs.info();
    assert_eq!(info.segments, 2);
    assert!(info.memtable_points >= 4, "the WAL tail is replayed: {info:?}");
    // Points from a segment, from the WAL tail, and deleted ones.
    let r = docs.get(&PointId::Num(12)).unwrap().unwrap();
    assert_eq!(r.vector, vector(12));
    assert_eq!(r.payload, json!({"lang": "en", "n": 12, "tags": ["t0"]}));
    assert_eq!(r.text, json!({"body": "item 12 about vegetable gardening"}));
    assert_eq!(docs.get(&PointId::Num(34)).unwrap().unwrap().payload["n"], 34);
    assert_eq!(docs.get(&PointId::Str("s-1".into())).unwrap().unwrap().payload, json!({"lang": "fr"}));
    assert!(docs.get(&PointId::Num(5)).unwrap().is_none());
    assert!(docs.get(&PointId::Num(7)).unwrap().is_none());
    // Vector search through the graphs and the WAL tail, indexed and exact.
    for exact in [false, true] {
        let hits = docs.search(&SearchRequest::new(vec![10.2, 1.0, 0.5, 1.0], 3).exact(exact)).unwrap();
        assert_eq!(ids(&hits), nums(&[10, 11, 9]), "exact: {exact}");
        let hits = docs.search(&SearchRequest::new(vec![6.9, 1.0, 0.5, 1.0], 2).exact(exact)).unwrap();
        assert_eq!(ids(&hits), nums(&[6, 8]), "deleted 7 stays deleted (exact: {exact})");
        let hits = docs.search(&SearchRequest::new(vec![34.0, 1.0, 0.5, 1.0], 1).exact(exact)).unwrap();
        assert_eq!(ids(&hits), nums(&[34]));
    }
    // Payload indexes (keyword and integer) and the scan agree.
    let mut req = SearchRequest::new(vec![0.0, 0.0, 0.5, 1.0], 50);
    req.filter = Some(
        Filter::from_json(json!({"must": [{"key": "lang", "match": "de"}, {"key": "n", "range": {"lt": 12}}]}))
            .unwrap(),
    );
    let mut got = ids(&docs.search(&req).unwrap());
    got.sort_by_key(|i| i.to_string());
    let mut want = nums(&[1, 3, 9, 11]);
    want.sort_by_key(|i| i.to_string());
    assert_eq!(got, want);
    // BM25 over the tantivy index of segment 1 and the text of the tail.
    let mut req = SearchRequest::new(Vec::new(), 10);
    req.text = Some("telescope".into());
    req.mode = Some(Mode::Text);
    let mut got: Vec<String> = docs.search(&req).unwrap().iter().map(|h| h.id.to_string()).collect();
    got.sort();
    let mut want: Vec<String> = (0..36).filter(|i| i % 5 == 3).map(|i: u64| i.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
    // int8 codes.
    let codes = db.collection("codes").unwrap();
    assert_eq!(codes.len(), 40);
    let hits = codes.search(&SearchRequest::new(vector(20), 1)).unwrap();
    assert_eq!(ids(&hits), nums(&[20]));
}

fn copy_dir(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs_err::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The checked-in v1 data directory opens and answers as it did when written;
/// it keeps doing so after more writes and a restart.
#[test]
fn data_written_by_format_v1_opens_and_answers_known_queries() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("v1"), dir.path());
    let db = open(dir.path());
    check(&db, 0);
    db.collection("docs").unwrap().upsert(vec![point(40)]).unwrap();
    drop(db);
    let db = open(dir.path());
    check(&db, 1);
    assert!(db.collection("docs").unwrap().get(&PointId::Num(40)).unwrap().is_some());
}

/// Writes `tests/compat/v1` afresh (run by hand when a new format version needs
/// a fixture: copy it, rename it for the new version, and keep the old ones).
#[test]
#[ignore = "writes the checked-in fixture"]
fn write_compat_fixture() {
    let out = fixture("v1");
    let _ = fs_err::remove_dir_all(&out);
    write(&out);
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&out, copy.path());
    check(&open(copy.path()), 0);
}

/// `tests/compat/snapshot-v{N}/`: snapshot archives of the v1 fixture's two
/// collections, written by the build that introduced archive format N, with
/// each archive's SHA-256.
fn snapshot_fixture(version: u32) -> PathBuf {
    fixture(&format!("snapshot-v{version}"))
}

/// An archive of every format version restores (checksums verified) into a
/// collection that answers the fixture's queries.
#[test]
fn snapshot_archives_of_every_format_restore_and_answer_known_queries() {
    for version in 1..=naksha_query::snapshot::FORMAT_VERSION {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        for name in ["codes", "docs"] {
            let from = snapshot_fixture(version);
            let bytes = fs_err::read(from.join(format!("{name}.tar"))).unwrap();
            let sha = fs_err::read_to_string(from.join(format!("{name}.sha256"))).unwrap();
            let (_, restored) = db.restore(&bytes[..], name, Some(sha.trim())).unwrap();
            assert_eq!(restored.manifest.format_version, version);
            assert_eq!(restored.manifest.collection, name);
        }
        check(&db, 0);
    }
}

/// Writes `tests/compat/snapshot-v{FORMAT_VERSION}` (run by hand with the build
/// that introduces a new archive format version; keep the old ones).
#[test]
#[ignore = "writes a checked-in fixture"]
fn write_snapshot_compat_fixture() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("v1"), dir.path());
    let db = open(dir.path());
    let out = snapshot_fixture(naksha_query::snapshot::FORMAT_VERSION);
    let _ = fs_err::remove_dir_all(&out);
    fs_err::create_dir_all(&out).unwrap();
    for name in ["codes", "docs"] {
        let info = db.snapshot(name).unwrap();
        let (archive, _) = db.snapshot_archive(name, &info.id).unwrap();
        fs_err::copy(archive, out.join(format!("{name}.tar"))).unwrap();
        fs_err::write(out.join(format!("{name}.sha256")), format!("{}\n", info.sha256)).unwrap();
    }
}

/// The answers above hold for data written by this build too.
#[test]
fn freshly_written_data_gives_the_fixture_answers() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path());
    check(&open(dir.path()), 0);
}

//! Bad input gets a clear error and changes nothing.

use naksha_query::{CollectionConfig, Error, Filter, Metric, Point, PointId, SearchRequest};
use serde_json::json;

use crate::fixtures::open;

#[test]
fn a_bad_point_rejects_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let c = db.create_collection("c", CollectionConfig::new(3, Metric::Cosine)).unwrap();
    let good = |i: u64| Point::new(PointId::Num(i), vec![1.0, 2.0, 3.0], json!({"i": i}));
    let seq = c.upsert(vec![good(1)]).unwrap();
    let cases: Vec<(Point, &str)> = vec![
        (
            Point::new(PointId::Num(9), vec![1.0, 2.0], json!({})),
            "point 9: vector has 2 dimensions, the collection expects 3",
        ),
        (
            Point::new(PointId::Str("x".into()), vec![1.0, f32::NAN, 0.0], json!({})),
            "point \"x\": vector element 1 is not a finite number",
        ),
        (Point::new(PointId::Num(9), vec![f32::INFINITY, 0.0, 0.0], json!({})), "element 0"),
        (Point::new(PointId::Num(9), vec![0.0, 0.0, 0.0], json!({})), "zero vector"),
        (Point::new(PointId::Num(9), vec![1.0, 0.0, 0.0], json!([1, 2])), "payload must be a JSON object"),
    ];
    for (bad, msg) in cases {
        let err = c.upsert(vec![good(2), bad, good(3)]).unwrap_err();
        assert!(err.is_client_error(), "{err}");
        assert!(err.to_string().contains(msg), "{err} should contain {msg}");
    }
    assert_eq!(c.len(), 1, "rejected batches change nothing");
    assert_eq!(c.info().seq, seq, "rejected batches are not logged");
    let r = c.get(&PointId::Num(1)).unwrap().unwrap();
    let norm: f32 = r.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "cosine vectors are stored normalised");
}

#[test]
fn bad_searches_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let c = db.create_collection("c", CollectionConfig::new(2, Metric::L2)).unwrap();
    let bad = [
        SearchRequest::new(vec![1.0], 10),
        SearchRequest::new(vec![f32::NAN, 1.0], 10),
        SearchRequest::new(vec![1.0, 1.0], 0),
        SearchRequest::new(vec![1.0, 1.0], 20_000),
        SearchRequest::new(vec![1.0, 1.0], 10).ef(0),
    ];
    for req in bad {
        let e = c.search(&req).unwrap_err();
        assert!(e.is_client_error(), "{e}");
    }
    let f = Filter { must: vec![], ..Default::default() };
    assert!(c.search(&SearchRequest::new(vec![1.0, 1.0], 1).filter(f)).unwrap().is_empty());
}

#[test]
fn bad_configs_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut cfg = CollectionConfig::new(0, Metric::L2);
    assert!(matches!(db.create_collection("c", cfg.clone()), Err(Error::InvalidArgument(m)) if m.contains("dim")));
    cfg.vectors.dim = 4;
    cfg.vectors.hnsw.m = 1000;
    assert!(matches!(db.create_collection("c", cfg), Err(Error::InvalidArgument(m)) if m.contains("hnsw.m")));
    let parsed: Result<CollectionConfig, _> =
        serde_json::from_value(json!({"vectors": {"dim": 4, "metric": "cosine", "bogus": 1}}));
    assert!(parsed.unwrap_err().to_string().contains("bogus"));
    assert!(db.list().is_empty());
}

//! Recall of indexed search against exact search, through the public API.

use std::sync::atomic::Ordering::Relaxed;

use naksha_index::testing::clustered;
use naksha_query::planner::Planner;
use naksha_query::{CollectionConfig, Database, EngineOptions, FieldType, Filter, Metric, Quantization, SearchRequest};
use serde_json::json;

use crate::fixtures::{manual_options, mean_recall, points};

const N: usize = 20_000;

fn check(dim: usize, metric: Metric, quantization: Quantization) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), manual_options()).unwrap();
    let c = db.create_collection("c", CollectionConfig::new(dim, metric).with_quantization(quantization)).unwrap();
    // Queries are held-out points of the same distribution.
    let all = clustered(N + 100, dim, 50, 0.5, dim as u64);
    let (data, queries) = all.split_at(N * dim);
    for batch in points(data, dim, 0).chunks(2000) {
        c.upsert(batch.to_vec()).unwrap();
    }
    c.flush().unwrap();
    assert_eq!(c.info().segments, 1);
    let r = mean_recall(&c, queries, dim, |v| SearchRequest::new(v, 10));
    eprintln!("{dim}-d {metric:?} {quantization:?}: recall@10 = {r:.4}");
    assert!(r >= 0.95, "{dim}-d {metric:?} {quantization:?}: recall@10 = {r}");
    assert!(c.metrics().graph_searches.load(Relaxed) >= 100, "the graph path must have run");
}

macro_rules! recall_cases {
    ($($name:ident: $dim:expr, $metric:expr, $q:expr;)*) => {$(
        #[test]
        fn $name() {
            check($dim, $metric, $q);
        }
    )*};
}

recall_cases! {
    cosine_128: 128, Metric::Cosine, Quantization::None;
    dot_128: 128, Metric::Dot, Quantization::None;
    l2_128: 128, Metric::L2, Quantization::None;
    cosine_384: 384, Metric::Cosine, Quantization::None;
    dot_384: 384, Metric::Dot, Quantization::None;
    l2_384: 384, Metric::L2, Quantization::None;
    cosine_128_int8: 128, Metric::Cosine, Quantization::Int8;
    dot_128_int8: 128, Metric::Dot, Quantization::Int8;
    l2_128_int8: 128, Metric::L2, Quantization::Int8;
    cosine_384_int8: 384, Metric::Cosine, Quantization::Int8;
    dot_384_int8: 384, Metric::Dot, Quantization::Int8;
    l2_384_int8: 384, Metric::L2, Quantization::Int8;
}

fn filtered_collection(
    dir: &std::path::Path,
    planner: Planner,
) -> (Database, std::sync::Arc<naksha_query::Collection>) {
    let dim = 128;
    let db = Database::open_with(dir, EngineOptions { planner, ..manual_options() }).unwrap();
    let c = db
        .create_collection("f", CollectionConfig::new(dim, Metric::L2).with_payload_index("bucket", FieldType::Integer))
        .unwrap();
    let data = clustered(N, dim, 50, 0.5, 7);
    for batch in points(&data, dim, 0).chunks(5000) {
        c.upsert(batch.to_vec()).unwrap();
    }
    c.flush().unwrap();
    (db, c)
}

fn filtered_recall(c: &naksha_query::Collection, buckets_below: u64) -> f64 {
    let f = Filter::from_json(json!({"must": [{"key": "bucket", "range": {"lt": buckets_below}}]})).unwrap();
    mean_recall(c, &clustered(N + 60, 128, 50, 0.5, 7)[N * 128..], 128, |v| SearchRequest::new(v, 10).filter(f.clone()))
}

/// 50 %, 10 %, 1 % and 0.1 % of points pass; the planner picks the path.
#[test]
fn filtered_recall_at_every_selectivity() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, c) = filtered_collection(dir.path(), Planner::default());
    for (below, name) in [(500, "50%"), (100, "10%"), (10, "1%"), (1, "0.1%")] {
        let (g0, e0) = (c.metrics().graph_searches.load(Relaxed), c.metrics().exact_searches.load(Relaxed));
        let r = filtered_recall(&c, below);
        let (g1, e1) = (c.metrics().graph_searches.load(Relaxed), c.metrics().exact_searches.load(Relaxed));
        eprintln!("filtered, selectivity {name}: recall@10 = {r:.4}");
        assert!(r >= 0.95, "selectivity {name}: recall@10 = {r}");
        // Every query runs once exactly (ground truth) and once planned.
        match below {
            500 => assert_eq!((g1 - g0, e1 - e0), (60, 60), "{name}: the graph walk should be planned"),
            _ => assert_eq!((g1 - g0, e1 - e0), (0, 120), "{name}: the exact scan should be planned"),
        }
    }
}

/// The filtered graph walk itself keeps recall when forced at 10 % and 1 %.
#[test]
fn filtered_graph_walk_keeps_recall() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, c) = filtered_collection(dir.path(), Planner { graph_cost_per_ef: 0.0 });
    for (below, min) in [(100, 0.95), (10, 0.95)] {
        let g0 = c.metrics().graph_searches.load(Relaxed);
        let r = filtered_recall(&c, below);
        assert_eq!(c.metrics().graph_searches.load(Relaxed) - g0, 60);
        eprintln!("forced graph walk at {}%: recall@10 = {r:.4}", below / 10);
        assert!(r >= min, "forced graph walk at {}%: recall@10 = {r}", below / 10);
    }
}

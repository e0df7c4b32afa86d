use naksha_index::testing::recall;
use naksha_query::{Collection, Database, EngineOptions, Point, PointId, SearchRequest};
use serde_json::json;

pub fn points(vectors: &[f32], dim: usize, first_id: u64) -> Vec<Point> {
    vectors
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| {
            let id = first_id + i as u64;
            Point::new(PointId::Num(id), v.to_vec(), json!({"bucket": id % 1000, "tag": format!("t{}", id % 7)}))
        })
        .collect()
}

pub fn manual_options() -> EngineOptions {
    EngineOptions { background: false, ..EngineOptions::default() }
}

pub fn open(dir: &std::path::Path) -> Database {
    Database::open_with(dir, manual_options()).unwrap()
}

/// Mean recall@10 of indexed search against exact search over `queries`.
pub fn mean_recall(c: &Collection, queries: &[f32], dim: usize, base: impl Fn(Vec<f32>) -> SearchRequest) -> f64 {
    let mut total = 0.0;
    let n = queries.len() / dim;
    for q in queries.chunks_exact(dim) {
        let exact: Vec<u32> = c.search(&base(q.to_vec()).exact(true)).unwrap().iter().map(id_num).collect();
        let got: Vec<u32> = c.search(&base(q.to_vec())).unwrap().iter().map(id_num).collect();
        assert_eq!(exact.len(), got.len().max(exact.len()));
        total += recall(&exact, &got);
    }
    total / n as f64
}

pub fn id_num(p: &naksha_query::ScoredPoint) -> u32 {
    match p.id {
        PointId::Num(n) => n as u32,
        PointId::Str(_) => u32::MAX,
    }
}

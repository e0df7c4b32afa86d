use super::*;
use crate::testing::{clustered, exact_knn, prepare_all, recall};
use crate::topk::Neighbor;

fn nodes(v: &[Neighbor]) -> Vec<u32> {
    v.iter().map(|n| n.node).collect()
}

fn mean_recall(graph: &Graph, vectors: &[f32], queries: &[f32], dim: usize, metric: Metric, ef: usize) -> f64 {
    let mut total = 0.0;
    let nq = queries.len() / dim;
    for q in queries.chunks_exact(dim) {
        let truth = exact_knn(vectors, dim, metric, q, 10);
        let scorer = F32Scorer::new(q, vectors, dim, metric);
        let (got, _) = graph.search(&scorer, 10, ef, |_| true);
        total += recall(&nodes(&truth), &nodes(&got));
    }
    total / nq as f64
}

#[test]
fn parallel_build_reaches_recall_for_every_metric() {
    let dim = 32;
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let mut data = clustered(3000, dim, 30, 0.4, 1);
        let mut queries = clustered(50, dim, 30, 0.4, 2);
        if metric != Metric::Dot {
            prepare_all(&mut data, dim, metric);
            prepare_all(&mut queries, dim, metric);
        }
        let (graph, vectors) = HnswBuilder::build(dim, metric, HnswParams::default(), data).freeze();
        let r = mean_recall(&graph, &vectors, &queries, dim, metric, 128);
        assert!(r >= 0.95, "{metric:?}: recall {r}");
    }
}

#[test]
fn links_respect_capacity_and_have_no_self_loops() {
    let dim = 8;
    let params = HnswParams { m: 4, ef_construction: 32, ..Default::default() };
    let (graph, _) = HnswBuilder::build(dim, Metric::L2, params, clustered(500, dim, 5, 0.3, 3)).freeze();
    for i in 0..500u32 {
        let nb = graph.neighbours(i);
        assert!(nb.len() <= 8 && !nb.contains(&i), "node {i}: {nb:?}");
    }
}

#[test]
fn incremental_inserts_are_searchable_at_once() {
    let dim = 16;
    let data = clustered(1500, dim, 10, 0.3, 4);
    let mut b = HnswBuilder::build(dim, Metric::L2, HnswParams::default(), data[..1000 * dim].to_vec());
    for v in data[1000 * dim..].chunks_exact(dim) {
        let node = b.push(v);
        assert_eq!(b.search(v, 1, 64)[0].node, node);
    }
    let (graph, vectors) = b.freeze();
    assert_eq!(graph.len(), 1500);
    let queries = clustered(40, dim, 10, 0.3, 5);
    assert!(mean_recall(&graph, &vectors, &queries, dim, Metric::L2, 128) >= 0.95);
}

#[test]
fn empty_and_single_node_graphs() {
    let (g, v) = HnswBuilder::build(4, Metric::L2, HnswParams::default(), Vec::new()).freeze();
    let s = F32Scorer::new(&[0.0; 4], &v, 4, Metric::L2);
    assert!(g.search(&s, 5, 10, |_| true).0.is_empty());
    let (g, v) = HnswBuilder::build(4, Metric::L2, HnswParams::default(), vec![1.0; 4]).freeze();
    let s = F32Scorer::new(&[0.0; 4], &v, 4, Metric::L2);
    assert_eq!(nodes(&g.search(&s, 5, 10, |_| true).0), vec![0]);
}

#[test]
fn admit_filters_results_but_not_the_walk() {
    let dim = 16;
    let data = clustered(2000, dim, 20, 0.3, 6);
    let (graph, vectors) = HnswBuilder::build(dim, Metric::L2, HnswParams::default(), data).freeze();
    let q = &vectors[..dim];
    let admit = |i: u32| i % 10 == 3;
    let truth = crate::topk::exact(2000, 10, |i| Metric::L2.distance(q, &vectors[i as usize * dim..][..dim]), admit);
    let scorer = F32Scorer::new(q, &vectors, dim, Metric::L2);
    let (got, _) = graph.search(&scorer, 10, 128, admit);
    assert!(got.iter().all(|n| admit(n.node)));
    assert!(recall(&nodes(&truth), &nodes(&got)) >= 0.9);
}

#[test]
fn file_round_trip_is_used_in_place() {
    let dim = 8;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.hnsw");
    let (graph, vectors) =
        HnswBuilder::build(dim, Metric::L2, HnswParams::default(), clustered(800, dim, 8, 0.3, 7)).freeze();
    graph.write(&path).unwrap();
    let mapped = Graph::open(&path).unwrap();
    assert_eq!(mapped.heap_bytes(), 0, "a mapped graph holds no heap copy");
    assert_eq!(mapped.links_bytes(), graph.links_bytes());
    for i in 0..800 {
        assert_eq!(mapped.neighbours(i), graph.neighbours(i));
    }
    let scorer = F32Scorer::new(&vectors[..dim], &vectors, dim, Metric::L2);
    assert_eq!(mapped.search(&scorer, 10, 64, |_| true).0, graph.search(&scorer, 10, 64, |_| true).0);
}

#[test]
fn damaged_graph_files_are_rejected() {
    let dim = 4;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.hnsw");
    let (graph, _) =
        HnswBuilder::build(dim, Metric::L2, HnswParams::default(), clustered(200, dim, 4, 0.3, 8)).freeze();
    graph.write(&path).unwrap();
    let good = fs_err::read(&path).unwrap();
    for at in (0..good.len()).step_by(97) {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        fs_err::write(&path, &bad).unwrap();
        let _ = Graph::open(&path); // must not panic; padding bytes may still open
    }
    fs_err::write(&path, &good[..good.len() / 2]).unwrap();
    assert!(Graph::open(&path).is_err());
}

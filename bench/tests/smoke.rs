//! A seconds-long smoke run of each benchmark so they cannot rot.

use naksha_bench::{ann, curve, datasets, report};
use naksha_index::metric::Metric;

#[test]
fn ann_sweep_smoke() {
    for metric in [Metric::L2, Metric::Cosine] {
        let ds = datasets::synthetic(4000, 30, 16, metric, 1);
        let args = curve::AnnArgs {
            m: 8,
            ef_construction: 64,
            efs: vec![10, 64],
            k: 10,
            int8: true,
            skip_peer: false,
            python_peers: vec![],
            filter_percents: vec![10, 1],
            filter_efs: vec![10, 64],
            filter_seed: 3,
        };
        let r = ann::run(&ds, &args).unwrap();
        let names: Vec<&str> = r.engines.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["naksha", "naksha-int8", "hnsw_rs", "usearch"]);
        for e in &r.engines {
            assert_eq!(e.curve.len(), 2);
            assert!(e.curve[1].recall > 0.8, "{}: {:?}", e.name, e.curve);
            assert!(e.curve.iter().all(|p| p.qps > 0.0));
            assert!(e.build_secs > 0.0);
        }
        assert_eq!(r.filtered.iter().map(|f| f.percent).collect::<Vec<_>>(), [10, 1]);
        for f in &r.filtered {
            let names: Vec<&str> = f.runs.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, ["naksha", "naksha-graph", "naksha-int8", "hnsw_rs", "usearch"]);
            assert!(
                (f.admitted as f64 - ds.len() as f64 * f64::from(f.percent) / 100.0).abs()
                    < 0.5 * ds.len() as f64 / 100.0 + 30.0
            );
            // The planner scans the 40 candidates of the 1% filter exactly, and the
            // 400 of the 10% filter at ef 64: perfect recall, as the server gives.
            let naksha = &f.runs[0].curve;
            assert!(naksha[1].recall > 0.999, "{}%: {naksha:?}", f.percent);
            // A filtered walk still finds most true neighbours at ef 64.
            for c in &f.runs[1..] {
                assert!(c.curve[1].recall > 0.5, "{} {}%: {:?}", c.name, f.percent, c.curve);
            }
        }
        let md = report::ann_markdown(&r, "test");
        assert!(md.contains("| naksha |") && md.contains("hnsw_rs") && md.contains("| usearch |"), "{md}");
        assert!(md.contains("#### Filtered: 1% of the points admitted"), "{md}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["filtered"][0]["runs"][1]["name"], "naksha-graph");
    }
}

#[test]
fn fvecs_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.fvecs");
    let v: Vec<f32> = (0..30).map(|i| i as f32).collect();
    datasets::write_fvecs(&p, 3, &v).unwrap();
    assert_eq!(datasets::read_fvecs(&p).unwrap(), (3, v));
}

#[test]
fn qps_interpolates_between_points() {
    let c = |ef, recall, qps| curve::CurvePoint { ef, recall, qps };
    let curve = [c(10, 0.9, 1000.0), c(20, 0.96, 500.0), c(40, 0.995, 250.0)];
    assert!((curve::qps_at(&curve, 0.93).unwrap() - 750.0).abs() < 1e-6);
    assert!(curve::qps_at(&curve, 0.999).is_none());
}

#[test]
fn load_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _server) = naksha_bench::load::start_server(dir.path(), None).unwrap();
    let args = naksha_bench::load::LoadArgs { points: 500, dim: 8, clients: vec![1, 2], seconds: 0.3, upsert_batch: 5 };
    let cells = naksha_bench::load::run(&url, &args).unwrap();
    assert_eq!(cells.len(), 4);
    for c in &cells {
        assert!(c.requests > 0 && c.errors == 0, "{c:?}");
        assert!(c.p99_ms >= c.p50_ms);
    }
    assert!(naksha_bench::load::markdown(&cells, &args, "t").contains("| upsert | 2 |"));
    assert!(naksha_bench::load::run("http://10.0.0.1:6480", &args).is_err(), "non-loopback targets are refused");
}

#[test]
fn soak_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _server) =
        naksha_bench::load::start_server_with(dir.path(), None, |s| s.storage.flush_points = 300).unwrap();
    let args =
        naksha_bench::soak::SoakArgs { seconds: 3.0, sample_seconds: 1.0, dim: 8, window: 2000, flush_points: 300 };
    let samples = naksha_bench::soak::run(&url, &args).unwrap();
    assert!(samples.len() >= 3, "{samples:?}");
    let last = samples.last().unwrap();
    assert!(last.rss_bytes > 0 && last.open_files > 0 && last.points > 0, "{last:?}");
    for s in &samples {
        for (op, requests, errors, p50, p99) in &s.ops {
            assert_eq!(*errors, 0, "{op} failed at t={}", s.t);
            assert!(p99 >= p50, "{op}");
            assert!(*requests > 0 || op.starts_with("delete"), "{op} made no request at t={}", s.t);
        }
    }
    let md = naksha_bench::soak::markdown(&samples, &args, "t");
    assert!(md.contains("| RSS, MB |") && md.contains("middle third"), "{md}");
    assert!(naksha_bench::soak::run("http://10.0.0.1:6480", &args).is_err(), "non-loopback targets are refused");
}

#[test]
fn ingest_smoke() {
    let args = naksha_bench::ingest::IngestArgs { points: 1500, dim: 8, batch: 200, writers: vec![1, 3] };
    let cells = naksha_bench::ingest::run(&args).unwrap();
    let paths: Vec<(&str, usize)> = cells.iter().map(|c| (c.path, c.writers)).collect();
    assert_eq!(paths, [("embedded", 1), ("http-ndjson", 1), ("embedded", 3), ("http-ndjson", 3)]);
    assert!(cells.iter().all(|c| c.points == 1500 && c.rate() > 0.0), "{cells:?}");
    let md = naksha_bench::ingest::markdown(&cells, &args, "t");
    assert!(md.contains("| http-ndjson | 3 | 1500 |") && md.contains("×"), "{md}");
    let bad = naksha_bench::ingest::IngestArgs { writers: vec![0], ..args };
    assert!(naksha_bench::ingest::run(&bad).is_err());
}

#[test]
fn peer_output_parses() {
    let (r, filtered) = naksha_bench::peers::parse_run(
        r#"{"engine": "hnswlib", "build_secs": 1.5, "rss_bytes": 1024, "curve": [{"ef": 10, "recall": 0.9, "qps": 100.0}],
            "filtered": [{"percent": 10, "curve": [{"ef": 10, "recall": 0.7, "qps": 50.0}]}]}"#,
    )
    .unwrap();
    assert_eq!((r.name.as_str(), r.curve.len(), r.curve[0].ef), ("hnswlib", 1, 10));
    assert_eq!((filtered.len(), filtered[0].name.as_str(), filtered[0].curve[0].recall), (1, "hnswlib", 0.7));
    assert!(naksha_bench::peers::parse_run("not json").is_err());
}

#[test]
fn embed_smoke_runs_naksha_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.jsonl");
    let lines: Vec<String> = (0..20)
        .map(|i| serde_json::json!({"id": i, "text": format!("package number {i} does things")}).to_string())
        .collect();
    fs_err::write(&corpus, lines.join("\n")).unwrap();
    let texts = naksha_bench::embed::read_texts(&corpus, 12).unwrap();
    assert_eq!(texts.len(), 12);
    let args = naksha_bench::embed::EmbedArgs {
        models_dir: naksha_embed::testing::models_dir(),
        model: naksha_embed::testing::MODEL.into(),
        texts,
        source: "smoke".into(),
        skip_peer: true,
        rounds: 3,
    };
    let r = naksha_bench::embed::run(&args).unwrap();
    assert_eq!((r.docs, r.runs.len(), r.runs[0].rounds.len(), r.peer.is_none()), (12, 2, 3, true));
    assert!(r.tokens > 12 * 5 && r.runs.iter().all(|run| run.secs > 0.0 && run.rounds.len() == 3));
    // The reported time is the median round.
    let mut sorted = r.runs[0].rounds.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(r.runs[0].secs, sorted[1]);
    let md = naksha_bench::embed::markdown(&r, &args, "naksha-bench embed --docs 12");
    assert!(md.contains("| Naksha (own CPU encoder") && md.contains("median of 3") && md.contains("docs/s"), "{md}");
    assert!(md.contains("device cpu:") && md.contains("device cpu-f32: f32 matmuls"), "{md}");
}

/// The quickstart's 36 packages as a known-item set: each synopsis ("Web
/// browser") is a query for its description.
fn packages_set(dir: &std::path::Path) -> naksha_bench::quality::KnownItemArgs {
    let packages =
        fs_err::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../clients/rust/examples/data/packages.jsonl"))
            .unwrap();
    let (mut corpus, mut queries, mut qrels) = (String::new(), String::new(), String::new());
    for (qid, line) in packages.lines().enumerate() {
        let p: serde_json::Value = serde_json::from_str(line).unwrap();
        let title = p["text"]["title"].as_str().unwrap();
        let synopsis = title.split_once(": ").map_or(title, |t| t.1);
        corpus += &format!("{}\n", serde_json::json!({"id": p["id"], "title": title, "text": p["text"]["body"]}));
        queries += &format!("{}\n", serde_json::json!({"qid": qid, "query": synopsis}));
        qrels += &format!("{qid}\t{}\t1\n", p["id"]);
    }
    let eval = dir.join("eval");
    fs_err::create_dir_all(&eval).unwrap();
    fs_err::write(dir.join("corpus.jsonl"), corpus).unwrap();
    fs_err::write(eval.join("queries.jsonl"), queries).unwrap();
    fs_err::write(eval.join("qrels.tsv"), qrels).unwrap();
    naksha_bench::quality::KnownItemArgs {
        corpus: dir.join("corpus.jsonl"),
        eval_dir: eval,
        models_dir: naksha_embed::testing::models_dir(),
        model: naksha_embed::testing::MODEL.into(),
        docs: usize::MAX,
        queries: usize::MAX,
    }
}

#[test]
fn quality_smoke_on_the_bundled_packages() {
    let dir = tempfile::tempdir().unwrap();
    let args = naksha_bench::quality::QualityArgs { set: packages_set(dir.path()), skip_peer: true };
    let r = naksha_bench::quality::run(&args).unwrap();
    assert_eq!((r.docs, r.queries, r.rows.len()), (36, 36, 4));
    for row in &r.rows {
        assert!(row.mrr10 > 0.3 && row.recall[2] >= row.recall[1], "{row:?}");
        let (p50, p99) = row.latency.unwrap();
        assert!(p50 > 0.0 && p99 >= p50);
    }
    let md = naksha_bench::quality::markdown(&r, &args, "t");
    assert!(md.contains("| Naksha text (BM25) |") && md.contains("| Naksha hybrid (RRF, k=60) |"), "{md}");
}

#[test]
fn rag_smoke_on_the_bundled_packages() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = packages_set(dir.path());
    set.queries = 12;
    let args = naksha_bench::rag::RagArgs { set, budgets: vec![32, 1500], limit: 4 };
    let r = naksha_bench::rag::run(&args).unwrap();
    assert_eq!((r.docs, r.queries, r.rows.len()), (36, 12, 2));
    assert!(r.retrieval.at_limit >= r.retrieval.at1 && r.retrieval.at1 > 0.3, "{:?}", r.retrieval);
    for row in &r.rows {
        assert_eq!(row.over_budget, 0, "{row:?}");
        assert!(row.tokens.2 <= row.budget && row.tokens.0 > 0.0, "{row:?}");
        assert!(row.answered > 0.9 && row.cited >= row.cited_first && row.latency.1 >= row.latency.0, "{row:?}");
    }
    // With room for every passage the answers cite the right package for most synopses.
    assert!(r.rows[1].cited > 0.5 && r.rows[1].contexts > r.rows[0].contexts, "{:?}", r.rows);
    let md = naksha_bench::rag::markdown(&r, &args, "t");
    assert!(md.contains("| 1500 |") && md.contains("hybrid search alone"), "{md}");
}

#[test]
fn debian_dataset_from_a_known_item_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = packages_set(dir.path());
    set.queries = 10;
    let ds = datasets::debian(&set).unwrap();
    assert_eq!((ds.len(), ds.num_queries(), ds.dim, ds.metric), (36, 10, 384, Metric::Cosine));
    let norm: f32 = ds.queries[..384].iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    let args = curve::AnnArgs {
        m: 8,
        ef_construction: 32,
        efs: vec![64],
        k: 5,
        int8: false,
        skip_peer: true,
        python_peers: vec![],
        filter_percents: vec![],
        filter_efs: vec![],
        filter_seed: 1,
    };
    let r = ann::run(&ds, &args).unwrap();
    assert!(r.filtered.is_empty());
    // 36 points: near-exact (ties between equally close packages may swap).
    assert!(r.engines[0].curve[0].recall > 0.9, "{:?}", r.engines[0].curve);
}

#[test]
fn corpus_vectors_come_from_the_cache_without_the_model() {
    let texts = ["a cached text for the corpus cache test", "and a second one"];
    let models = naksha_embed::testing::models_dir();
    let (first, dim) = naksha_bench::corpus::vectors(&models, naksha_embed::testing::MODEL, &texts).unwrap();
    assert_eq!((first.len(), dim), (2 * 384, 384));
    // A hit reads the file only: a models folder that does not exist is never opened.
    let missing = std::path::Path::new("/nonexistent/models");
    let (again, dim) = naksha_bench::corpus::vectors(missing, naksha_embed::testing::MODEL, &texts).unwrap();
    assert_eq!((again, dim), (first, 384));
    let other = ["a text that was never embedded here"];
    assert!(naksha_bench::corpus::vectors(missing, naksha_embed::testing::MODEL, &other).is_err());
}

#[test]
fn tenants_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let args = naksha_bench::tenants::TenantsArgs {
        counts: vec![12],
        points: 20,
        dim: 8,
        max_open: 4,
        hot: 3,
        hot_queries: 30,
        cold: 6,
        setup_clients: 2,
        server_exe: env!("CARGO_BIN_EXE_naksha-bench").into(),
    };
    let rows = naksha_bench::tenants::run(&args, dir.path()).unwrap();
    let r = &rows[0];
    assert_eq!(r.tenants, 12);
    assert!(r.startup_s > 0.0 && r.rss_start_mib > 1.0 && r.fds_start > 3 && r.cold_p50_ms > 0.0, "{r:?}");
    assert!(naksha_bench::tenants::markdown(&rows, &args, "t").contains("| 12 |"));
}

#[test]
fn snapshots_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let args = naksha_bench::snapshots::SnapshotArgs { points: 3000, dim: 8, reps: 1, dir: dir.path().to_path_buf() };
    let r = naksha_bench::snapshots::run(&args).unwrap();
    let whats: Vec<&str> = r.rows.iter().map(|row| row.what).collect();
    assert_eq!(whats.len(), 8, "{whats:?}");
    for base in ["cp -r", "cp -r + sync", "tar cf + sync", "tar xf", "tar xf + sync"] {
        assert!(whats.contains(&base), "{base}: {whats:?}");
    }
    // The archive holds the collection's segments, and every timing is real.
    let snap = &r.rows[0];
    assert!(snap.what.starts_with("naksha snapshot") && snap.bytes > r.dir_bytes / 2, "{:?}", r.rows);
    assert!(r.rows.iter().all(|row| row.secs > 0.0 && row.mbps() > 0.0), "{:?}", r.rows);
    assert!(r.cut_secs > 0.0);
    let md = naksha_bench::snapshots::markdown(&r, &args, "t");
    assert!(md.contains("| cp -r |") && md.contains("vs tar + sync"), "{md}");
    // The scratch folder is cleaned up.
    assert!(!dir.path().join("naksha-bench-snapshots").exists());
}

//! Full-text (BM25) and hybrid search through the collection API: the text
//! index follows the vector side through flush, merge, deletes, updates and
//! reopening; filters apply to both sides; fusion and modes.

use naksha_query::{
    Analyzer, AnalyzerKind, Collection, CollectionConfig, Database, EngineOptions, Filter, Fusion, Metric, Mode, Point,
    PointId, ScoredPoint, SearchRequest,
};
use serde_json::{json, Value};

use crate::fixtures::{manual_options, open};

const DOCS: [(&str, &str); 8] = [
    ("Running shoes", "Lightweight shoes for runners who run every day"),
    ("Garden hose", "A hose for watering the garden in summer"),
    ("Trail runner", "Shoes with grip for running on trails and mud"),
    ("Fox story", "The quick brown fox jumps over the lazy dog"),
    ("Dog leash", "A strong leash for a quick dog"),
    ("Rain jacket", "Keeps runners dry in the rain"),
    ("Coffee grinder", "Grinds coffee beans for espresso"),
    ("Tea kettle", "Boils water for tea on the stove"),
];

fn point(id: u64, title: &str, body: &str) -> Point {
    // A 2-d vector: the angle grows with the id, so vector order is id order from (1, 0).
    let a = id as f32 * 0.15;
    Point::new(PointId::Num(id), vec![a.cos(), a.sin()], json!({"even": id.is_multiple_of(2)}))
        .with_text(json!({"title": title, "body": body}))
}

fn collection(db: &naksha_query::Database, name: &str) -> std::sync::Arc<Collection> {
    let c = db
        .create_collection(name, CollectionConfig::new(2, Metric::Cosine).with_text_fields(&["title", "body"]))
        .unwrap();
    c.upsert(DOCS.iter().enumerate().map(|(i, (t, b))| point(i as u64, t, b)).collect()).unwrap();
    c
}

fn text(c: &Collection, q: &str, limit: usize) -> Vec<ScoredPoint> {
    c.search(&SearchRequest::text(q, limit).mode(Mode::Text)).unwrap()
}

fn ids(hits: &[ScoredPoint]) -> Vec<u64> {
    hits.iter()
        .map(|h| match h.id {
            PointId::Num(n) => n,
            PointId::Str(_) => u64::MAX,
        })
        .collect()
}

fn scored(hits: &[ScoredPoint]) -> Vec<(u64, f32)> {
    ids(hits).into_iter().zip(hits.iter().map(|h| h.score)).collect()
}

fn same(got: &[(u64, f32)], want: &[(u64, f32)], what: &str) {
    assert_eq!(ids_of(got), ids_of(want), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g.1 - w.1).abs() < 1e-5, "{what}: score {} vs {}", g.1, w.1);
    }
}

fn ids_of(v: &[(u64, f32)]) -> Vec<u64> {
    v.iter().map(|x| x.0).collect()
}

#[test]
fn text_results_are_the_same_in_memory_after_flush_merge_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let queries = ["run", "\"quick dog\"", "+shoes -trails", "water", "title:dog", "runner rain", "tea OR coffee"];
    let expected: Vec<Vec<(u64, f32)>>;
    {
        let options = EngineOptions { merge_min_segments: 2, ..manual_options() };
        let db = Database::open_with(dir.path(), options).unwrap();
        let c = collection(&db, "docs");
        expected = queries.iter().map(|q| scored(&text(&c, q, 10))).collect();
        let run = ids(&text(&c, "run", 10));
        assert_eq!(run.len(), 2, "stemming: run and running (runners stems to runner): {run:?}");
        assert_eq!(ids(&text(&c, "\"quick dog\"", 10)), vec![4]);
        assert_eq!(ids(&text(&c, "+shoes -trails", 10)), vec![0]);
        c.flush().unwrap();
        for (q, want) in queries.iter().zip(&expected) {
            same(&scored(&text(&c, q, 10)), want, &format!("after flush: {q}"));
        }
        // Half in a segment, half in the memtable: BM25 statistics are summed, so scores hold.
        let split = db
            .create_collection("split", CollectionConfig::new(2, Metric::Cosine).with_text_fields(&["title", "body"]))
            .unwrap();
        let all: Vec<Point> = DOCS.iter().enumerate().map(|(i, (t, b))| point(i as u64, t, b)).collect();
        split.upsert(all[..4].to_vec()).unwrap();
        split.flush().unwrap();
        split.upsert(all[4..].to_vec()).unwrap();
        for (q, want) in queries.iter().zip(&expected) {
            same(&scored(&text(&split, q, 10)), want, &format!("split: {q}"));
        }
        split.flush().unwrap();
        assert_eq!(split.merge().unwrap(), 1, "the two segments merge into one");
    }
    let db = open(dir.path());
    for name in ["docs", "split"] {
        let c = db.collection(name).unwrap();
        for (q, want) in queries.iter().zip(&expected) {
            same(&scored(&text(&c, q, 10)), want, &format!("{name} reopened: {q}"));
        }
    }
}

#[test]
fn deletes_and_updates_reach_the_text_index_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let c = collection(&db, "docs");
    let check = |c: &Collection, stage: &str| {
        assert_eq!(ids(&text(c, "espresso", 10)), Vec::<u64>::new(), "{stage}: replaced text is gone");
        assert_eq!(ids(&text(c, "matcha", 10)), vec![6], "{stage}: new text is found");
        assert_eq!(ids(&text(c, "hose", 10)), Vec::<u64>::new(), "{stage}: deleted point is gone");
        assert_eq!(ids(&text(c, "kettle", 10)), vec![7], "{stage}: others stay");
    };
    // In the memtable.
    c.upsert(vec![point(6, "Tea whisk", "Whisks matcha")]).unwrap();
    c.delete(vec![PointId::Num(1)]).unwrap();
    check(&c, "memtable");
    // Flushed, then changed again in segments.
    c.flush().unwrap();
    check(&c, "segment");
    c.upsert(vec![point(7, "Kettle", "A kettle for tea")]).unwrap();
    c.delete(vec![PointId::Num(3)]).unwrap();
    assert_eq!(ids(&text(&c, "fox", 10)), Vec::<u64>::new());
    assert_eq!(ids(&text(&c, "kettle", 10)), vec![7]);
    drop(c);
    drop(db);
    let db = open(dir.path());
    let c = db.collection("docs").unwrap();
    check(&c, "replayed");
    assert_eq!(ids(&text(&c, "fox", 10)), Vec::<u64>::new());
    c.merge().unwrap();
    c.flush().unwrap();
    check(&c, "merged");
    // A point without text fields is not in the text index but is in the vector one.
    c.upsert(vec![Point::new(PointId::Num(40), vec![1.0, 0.0], Value::Null)]).unwrap();
    assert!(text(&c, "kettle", 10).iter().all(|h| h.id != PointId::Num(40)));
    assert_eq!(c.search(&SearchRequest::new(vec![1.0, 0.0], 1)).unwrap()[0].id, PointId::Num(40));
}

#[test]
fn filters_apply_to_text_and_hybrid_sides() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let c = collection(&db, "docs");
    let even = Filter::from_json(json!({"must": [{"key": "even", "match": true}]})).unwrap();
    for stage in ["memtable", "segment"] {
        let hits = c.search(&SearchRequest::text("shoes runners", 10).mode(Mode::Text).filter(even.clone())).unwrap();
        assert_eq!(ids(&hits), vec![0, 2], "{stage}");
        let mut req = SearchRequest::new(vec![1.0, 0.0], 10).filter(even.clone());
        req.text = Some("dog".into());
        let hits = c.search(&req).unwrap();
        assert!(
            !hits.is_empty() && ids(&hits).iter().all(|id| id.is_multiple_of(2)),
            "{stage}: hybrid {:?}",
            ids(&hits)
        );
        c.flush().unwrap();
    }
}

#[test]
fn hybrid_fuses_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let c = collection(&db, "docs");
    // Vector side: nearest to (1, 0) is id 0, then 1, 2, ... Text side: only 3 and 4 mention a dog.
    let mut req = SearchRequest::new(vec![1.0, 0.0], 3);
    req.text = Some("dog".into());
    let vector_only = ids(&c.search(&req.clone().mode(Mode::Vector)).unwrap());
    assert_eq!(vector_only, vec![0, 1, 2]);
    let text_only = ids(&c.search(&req.clone().mode(Mode::Text)).unwrap());
    assert_eq!(text_only.len(), 2);
    // Default mode with a vector, text and text_fields is hybrid (RRF k = 60):
    // 0 gets 1/61; the top text hit also gets 1/61 plus its vector rank's share.
    let hybrid = c.search(&req).unwrap();
    let top_text = text_only[0];
    assert_eq!(ids(&hybrid)[0], top_text, "a hit on both sides wins: {hybrid:?}");
    let vector_rank = 1 + top_text as usize; // ids are in vector order
    let want = 1.0 / 61.0 + 1.0 / (60.0 + vector_rank as f32);
    assert!((hybrid[0].score - want).abs() < 1e-6, "{} vs {want}", hybrid[0].score);
    // Weighted: all on one side reproduces that side's order.
    let w1 = c.search(&req.clone().fusion(Fusion::Weighted { vector_weight: 1.0 })).unwrap();
    assert_eq!(ids(&w1), vector_only);
    // Weight 0: the text order on top (min-max puts a side's last candidate at 0, level with non-hits).
    let w0 = c.search(&req.clone().fusion(Fusion::Weighted { vector_weight: 0.0 })).unwrap();
    assert_eq!(ids(&w0)[0], text_only[0]);
    assert!((w0[0].score - 1.0).abs() < 1e-6);
    // exact works in every mode, and agrees here.
    for mode in [Mode::Vector, Mode::Text, Mode::Hybrid] {
        let r = req.clone().mode(mode);
        assert_eq!(ids(&c.search(&r.clone().exact(true)).unwrap()), ids(&c.search(&r).unwrap()), "{mode:?}");
    }
}

#[test]
fn highlights_and_text_options() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let c = collection(&db, "docs");
    let hits = c.search(&SearchRequest::text("quick dog", 2).mode(Mode::Text).highlight(true)).unwrap();
    let h = hits[0].highlights.as_ref().unwrap();
    assert!(h["body"].contains("<b>quick</b>") && h["body"].contains("<b>dog</b>"), "{h:?}");
    assert!(hits[0].text.is_none(), "text only when asked for");
    c.flush().unwrap();
    let hits = c.search(&SearchRequest::text("leash", 1).mode(Mode::Text).highlight(true)).unwrap();
    assert_eq!(hits[0].highlights.as_ref().unwrap()["title"], "Dog <b>leash</b>");

    // Simple analyzer, no stemming, and a boost on titles.
    let mut cfg = CollectionConfig::new(2, Metric::Cosine).with_text_fields(&["title", "body"]);
    cfg.text_analyzer = Analyzer { kind: AnalyzerKind::Simple, ..Analyzer::default() };
    cfg.text_boosts.insert("title".into(), 5.0);
    let s = db.create_collection("simple", cfg).unwrap();
    s.upsert(vec![point(1, "the tea", "about coffee"), point(2, "coffee", "all about the tea")]).unwrap();
    assert_eq!(ids(&text(&s, "the", 5)).len(), 2, "no stop words in the simple analyzer");
    assert_eq!(ids(&text(&s, "teas", 5)), Vec::<u64>::new(), "no stemming");
    assert_eq!(ids(&text(&s, "tea", 5)), vec![1, 2], "title boost");
    assert_eq!(ids(&text(&s, "coffee", 5)), vec![2, 1], "title boost");
}

#[test]
fn bad_text_requests_are_clear_client_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let c = collection(&db, "docs");
    let err = |r: SearchRequest, c: &Collection| {
        let e = c.search(&r).unwrap_err();
        assert!(e.is_client_error(), "{e}");
        e.to_string()
    };
    let e = err(SearchRequest::text("title:(dog", 5).mode(Mode::Text), &c);
    assert!(e.contains("text query"), "{e}");
    let e = err(SearchRequest::text("nosuchfield:dog", 5).mode(Mode::Text), &c);
    assert!(e.contains("nosuchfield"), "{e}");
    let e = err(SearchRequest::text("dog", 5).mode(Mode::Vector), &c);
    assert!(e.contains("embedding model"), "{e}");
    let e = err(SearchRequest::new(vec![1.0, 0.0], 5).mode(Mode::Text), &c);
    assert!(e.contains("need query text"), "{e}");
    let e = err(SearchRequest::new(vec![1.0, 0.0], 5).highlight(true), &c);
    assert!(e.contains("highlight"), "{e}");
    let e = err(SearchRequest::text("dog", 5).fusion(Fusion::Rrf { k: -1.0 }), &c);
    assert!(e.contains("fusion"), "{e}");
    // A collection without text fields says so.
    let plain = db.create_collection("plain", CollectionConfig::new(2, Metric::Cosine)).unwrap();
    let e = err(SearchRequest::text("dog", 5), &plain);
    assert!(e.contains("text_fields"), "{e}");
    // Bad text settings are refused at creation.
    let mut cfg = CollectionConfig::new(2, Metric::Cosine).with_text_fields(&["title"]);
    cfg.text_boosts.insert("body".into(), 2.0);
    assert!(db.create_collection("bad", cfg).unwrap_err().is_client_error());
    let cfg = CollectionConfig::new(2, Metric::Cosine).with_text_fields(&["title", "title"]);
    assert!(db.create_collection("bad", cfg).unwrap_err().is_client_error());
    // Nothing changed.
    assert_eq!(c.len(), DOCS.len());
}

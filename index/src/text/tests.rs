use std::sync::Arc;

use serde_json::json;

use super::*;

fn config() -> TextConfig {
    TextConfig { fields: vec!["title".into(), "body".into()], ..TextConfig::default() }
}

fn docs() -> Vec<Value> {
    vec![
        json!({"title": "Running shoes", "body": "Lightweight shoes for runners who run every day"}),
        json!({"title": "Garden hose", "body": "A hose for watering the garden"}),
        json!({"title": "Trail runner", "body": "Shoes with grip for running on trails and mud"}),
        json!({"body": "The quick brown fox jumps over the lazy dog"}),
        json!({"title": "Dog leash", "body": "A strong leash for a quick dog"}),
    ]
}

fn slots(hits: &[(f32, u32)]) -> Vec<u32> {
    hits.iter().map(|h| h.1).collect()
}

fn query(idx: &TextIndex, q: &str, k: usize) -> Vec<u32> {
    let q = idx.parse(q).unwrap();
    slots(&search(&[Part { index: idx, admitted: None }], &q, k).unwrap()[0])
}

#[test]
fn english_analysis_lowercases_drops_stop_words_and_stems() {
    let a = Analyzer::default();
    assert_eq!(a.terms("The Runners are RUNNING quickly").unwrap(), vec!["runner", "run", "quick"]);
    let simple = Analyzer { kind: AnalyzerKind::Simple, ..Analyzer::default() };
    assert_eq!(simple.terms("The Runners, running!").unwrap(), vec!["the", "runners", "running"]);
    let ws = Analyzer { kind: AnalyzerKind::Whitespace, ..Analyzer::default() };
    assert_eq!(ws.terms("C++ and Rust-lang").unwrap(), vec!["c++", "and", "rust-lang"]);
    let german = Analyzer { language: TextLanguage::German, ..Analyzer::default() };
    assert_eq!(german.terms("die Häuser").unwrap(), vec!["haus"]);
    let no_stem = Analyzer { stemming: false, ..Analyzer::default() };
    assert_eq!(no_stem.terms("the running").unwrap(), vec!["running"]);
}

#[test]
fn bm25_phrases_required_and_excluded_terms() {
    let dir = tempfile::tempdir().unwrap();
    let idx = TextIndex::build(&dir.path().join("text"), &config(), &docs()).unwrap();
    // Stemming: "run" finds running/runners; best match first.
    let hits = query(&idx, "run", 10);
    assert_eq!(hits.len(), 2);
    assert!(hits.contains(&0) && hits.contains(&2));
    // A phrase matches the words in order only.
    assert_eq!(query(&idx, "\"quick dog\"", 10), vec![4]);
    assert_eq!(query(&idx, "\"dog quick\"", 10), Vec::<u32>::new());
    // Required and excluded terms.
    assert_eq!(query(&idx, "+shoes -trails", 10), vec![0]);
    assert_eq!(query(&idx, "dog -leash", 10), vec![3]);
    // A dangling operator is a syntax error here (prose goes through the plain syntax).
    assert!(idx.parse("dog - leash +").is_err());
    // A field prefix.
    assert_eq!(query(&idx, "title:dog", 10), vec![4]);
    // Limits.
    assert_eq!(query(&idx, "shoes OR dog", 1).len(), 1);
    // Reopened from disk: the same answers.
    drop(idx);
    let idx = TextIndex::open(&dir.path().join("text"), &config()).unwrap();
    assert_eq!(query(&idx, "+shoes -trails", 10), vec![0]);
}

#[test]
fn bad_syntax_names_the_problem() {
    let idx = TextIndex::in_memory(&config()).unwrap();
    for bad in ["title:", "nosuchfield:word", "\"unclosed"] {
        match idx.parse(bad) {
            Err(Error::InvalidQuery(m)) => assert!(m.starts_with("text query"), "{m}"),
            other => panic!("{bad:?} parsed: {other:?}"),
        }
    }
    assert!(TextConfig { fields: vec![], ..config() }.validate().is_err());
    assert!(TextConfig { fields: vec!["a".into(), "a".into()], ..config() }.validate().is_err());
    let mut boosted = config();
    boosted.boosts.insert("nope".into(), 2.0);
    assert!(boosted.validate().is_err());
}

#[test]
fn admitted_slots_filter_before_the_top_k() {
    let idx = TextIndex::in_memory(&config()).unwrap();
    for (slot, d) in docs().iter().enumerate() {
        idx.append(slot as u32, d).unwrap();
    }
    let q = idx.parse("shoes dog").unwrap();
    let mut admitted = Bitset::new(5);
    admitted.insert(3);
    // k = 1: the filter applies before the cut, so slot 3 is found although it is not the best overall.
    let hits = search(&[Part { index: &idx, admitted: Some(Arc::new(admitted)) }], &q, 1).unwrap();
    assert_eq!(slots(&hits[0]), vec![3]);
    // Appends become visible at the next search.
    idx.append(5, &json!({"title": "Dog bowl"})).unwrap();
    assert!(query(&idx, "bowl", 10) == vec![5]);
}

#[test]
fn statistics_are_global_across_indexes() {
    // The same document scores the same alone in a big index or split across two.
    let all = TextIndex::in_memory(&config()).unwrap();
    let (a, b) = (TextIndex::in_memory(&config()).unwrap(), TextIndex::in_memory(&config()).unwrap());
    for (slot, d) in docs().iter().enumerate() {
        all.append(slot as u32, d).unwrap();
        (if slot < 2 { &a } else { &b }).append(slot as u32, d).unwrap();
    }
    let q = all.parse("quick dog shoes").unwrap();
    let whole = search(&[Part { index: &all, admitted: None }], &q, 10).unwrap().remove(0);
    let split = search(&[Part { index: &a, admitted: None }, Part { index: &b, admitted: None }], &q, 10).unwrap();
    let mut merged: Vec<(f32, u32)> = split.into_iter().flatten().collect();
    merged.sort_by(|x, y| y.0.total_cmp(&x.0));
    assert_eq!(slots(&merged), slots(&whole));
    for (x, y) in merged.iter().zip(&whole) {
        assert!((x.0 - y.0).abs() < 1e-5, "{x:?} vs {y:?}");
    }
}

#[test]
fn boosts_and_snippets() {
    let mut cfg = config();
    cfg.boosts.insert("title".into(), 5.0);
    let idx = TextIndex::in_memory(&cfg).unwrap();
    idx.append(0, &json!({"title": "apple", "body": "pear"})).unwrap();
    idx.append(1, &json!({"title": "pear", "body": "apple"})).unwrap();
    assert_eq!(query(&idx, "apple", 10), vec![0, 1]);
    let q = idx.parse("apple").unwrap();
    let html = idx.snippet(&q, "body", "I like an apple a day").unwrap();
    assert!(html.contains("<b>apple</b>"), "{html}");
}

#[test]
fn plain_syntax_reads_any_text_as_words() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TextConfig { boosts: [("title".to_owned(), 3.0)].into(), ..config() };
    let idx = TextIndex::build(&dir.path().join("text"), &cfg, &docs()).unwrap();
    let prose = "Which shoes don't slip in (mud? \"trail: AND";
    assert!(idx.parse(prose).is_err(), "the query language refuses it");
    let q = idx.parse_as(prose, Syntax::Plain).unwrap();
    let plain = slots(&search(&[Part { index: &idx, admitted: None }], &q, 10).unwrap()[0]);
    // Same terms, same ranking as the words typed without operators.
    assert_eq!(plain, query(&idx, "which shoes don t slip in mud trail", 10));
    assert_eq!(plain[0], 2, "trail runner: shoes, mud and a boosted title word");
    // Operators are words here: a minus does not exclude.
    for text in ["dog -leash", "dog - leash +"] {
        let q = idx.parse_plain(text).unwrap();
        assert_eq!(search(&[Part { index: &idx, admitted: None }], &q, 10).unwrap()[0].len(), 2, "{text}");
    }
    // Nothing left after analysis: a query that matches nothing, not an error.
    let q = idx.parse_plain("the ?! of").unwrap();
    assert!(search(&[Part { index: &idx, admitted: None }], &q, 10).unwrap()[0].is_empty());
    assert_eq!("plain".parse::<Syntax>().unwrap(), Syntax::Plain);
    assert!("lucene".parse::<Syntax>().is_err());
}

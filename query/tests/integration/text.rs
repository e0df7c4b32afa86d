//! Collections with an embedding model: vectors from text fields, text queries,
//! chunked documents, and text fields surviving flush, merge and WAL replay.

use naksha_embed::testing::{models, MODEL};
use naksha_query::{CollectionConfig, Database, Document, EngineOptions, Error, Metric, Point, PointId, SearchRequest};
use serde_json::{json, Value};

fn options() -> EngineOptions {
    EngineOptions { background: false, models: models(), ..EngineOptions::default() }
}

fn config() -> CollectionConfig {
    CollectionConfig::new(384, Metric::Cosine).with_embed(MODEL, &["title", "body"])
}

fn text_point(id: u64, title: &str, body: &str) -> Point {
    Point::new(PointId::Num(id), Vec::new(), json!({"n": id})).with_text(json!({"title": title, "body": body}))
}

fn top(db: &Database, query: &str) -> PointId {
    db.collection("docs").unwrap().search(&SearchRequest::text(query, 1)).unwrap()[0].id.clone()
}

#[test]
fn text_only_points_are_embedded_and_found_by_text() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = db.create_collection("docs", config()).unwrap();
    c.upsert(vec![
        text_point(1, "Firefox", "A web browser for browsing the internet"),
        text_point(2, "GCC", "The GNU compiler collection for C and C++"),
        text_point(3, "PostgreSQL", "An object-relational SQL database server"),
    ])
    .unwrap();
    assert_eq!(top(&db, "program to surf websites"), PointId::Num(1));
    assert_eq!(top(&db, "compile C code"), PointId::Num(2));
    // A point with a vector keeps it; the text is stored beside it.
    let v = c.embed_query("relational database").unwrap();
    c.upsert(vec![Point::new(PointId::Num(4), v.clone(), Value::Null).with_text(json!({"title": "own vector"}))])
        .unwrap();
    let hits = c.search(&SearchRequest { with_text: true, ..SearchRequest::new(v, 2) }).unwrap();
    assert_eq!(hits[0].id, PointId::Num(4));
    assert_eq!(hits[0].text, Some(json!({"title": "own vector"})));
    assert_eq!(c.get(&PointId::Num(1)).unwrap().unwrap().text["title"], "Firefox");

    // Text fields survive a flush (segment files) and a reopen (WAL replay for the rest).
    c.flush().unwrap();
    c.upsert(vec![text_point(5, "Vim", "A highly configurable text editor")]).unwrap();
    drop(c);
    drop(db);
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = db.collection("docs").unwrap();
    assert_eq!(c.get(&PointId::Num(1)).unwrap().unwrap().text["body"], "A web browser for browsing the internet");
    assert_eq!(c.get(&PointId::Num(5)).unwrap().unwrap().text["title"], "Vim");
    assert_eq!(top(&db, "editing text files"), PointId::Num(5));
    c.flush().unwrap();
    assert_eq!(c.merge().unwrap(), 0);
    assert_eq!(c.get(&PointId::Num(5)).unwrap().unwrap().text["title"], "Vim");
}

#[test]
fn bad_text_input_is_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    // Unknown model, and a dimension that does not match the model.
    let e =
        db.create_collection("x", CollectionConfig::new(384, Metric::Cosine).with_embed("nope", &["t"])).unwrap_err();
    assert!(matches!(e, Error::Embed(naksha_embed::Error::UnknownModel(_))) && e.is_client_error(), "{e}");
    let e =
        db.create_collection("y", CollectionConfig::new(128, Metric::Cosine).with_embed(MODEL, &["t"])).unwrap_err();
    assert!(e.to_string().contains("384"), "{e}");

    let c = db.create_collection("docs", config()).unwrap();
    let cases = [
        (Point::new(PointId::Num(9), Vec::new(), Value::Null), "none of the embed fields"),
        (text_point(9, "", "").with_text(json!({"title": 5})), "must be a string"),
        (Point::new(PointId::Num(9), Vec::new(), Value::Null).with_text(json!({"other": "x"})), "none of the embed"),
        (Point::new(PointId::Num(9), Vec::new(), Value::Null).with_text(json!(["x"])), "object of strings"),
    ];
    for (bad, msg) in cases {
        let e = c.upsert(vec![text_point(1, "fine", "fine"), bad]).unwrap_err();
        assert!(e.is_client_error() && e.to_string().contains(msg), "{e}");
    }
    assert_eq!(c.info().points, 0, "a rejected batch changed something");

    // A collection without a model needs vectors, and cannot take text queries.
    let plain = db.create_collection("plain", CollectionConfig::new(3, Metric::L2)).unwrap();
    let e = plain.upsert(vec![text_point(1, "a", "b")]).unwrap_err();
    assert!(e.to_string().contains("vector is required"), "{e}");
    let e = plain.search(&SearchRequest::text("hello", 3)).unwrap_err();
    assert!(e.is_client_error() && e.to_string().contains("no embedding model"), "{e}");
}

fn long_text(paragraphs: usize) -> String {
    (0..paragraphs)
        .map(|p| {
            format!(
                "Paragraph {p} is about topic number {p}. It has a few sentences of plain English text. \
                 The words are ordinary, and the paragraph ends here with a full stop."
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[test]
fn documents_are_chunked_replaced_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    let mut cfg = config();
    cfg.chunking = Some(naksha_embed::ChunkConfig { max_tokens: 64, overlap_tokens: 8 });
    let c = db.create_collection("docs", cfg).unwrap();
    let text = long_text(12);
    let doc = |text: &str| Document {
        id: "doc-1".into(),
        text: text.into(),
        title: Some("Guide".into()),
        payload: json!({"lang": "en"}),
    };
    let w = c.upsert_documents(vec![doc(&text)]).unwrap();
    assert_eq!(w.documents, 1);
    assert!(w.chunks >= 6, "{} chunks", w.chunks);
    let chars: Vec<char> = text.chars().collect();
    let mut covered_to = 0;
    for n in 0..w.chunks {
        let r = c.get(&PointId::Str(format!("doc-1#{n}"))).unwrap().unwrap();
        assert_eq!(r.payload["doc_id"], "doc-1");
        assert_eq!(r.payload["chunk"], n);
        assert_eq!(r.payload["lang"], "en");
        let (start, end) = (r.payload["start"].as_u64().unwrap() as usize, r.payload["end"].as_u64().unwrap() as usize);
        assert!(start <= covered_to, "gap before chunk {n}");
        covered_to = end;
        // The span points at exactly the stored chunk text.
        assert_eq!(chars[start..end].iter().collect::<String>(), r.text["text"].as_str().unwrap());
        assert_eq!(r.text["title"], "Guide");
    }
    assert_eq!(covered_to, chars.len());
    // Search by text lands in the right chunk.
    let hit = &c.search(&SearchRequest::text("topic number 7", 1)).unwrap()[0];
    let r = c.get(&hit.id).unwrap().unwrap();
    assert!(r.text["text"].as_str().unwrap().contains("topic number 7"), "{:?}", r.text);

    // Re-upserting a shorter version removes the chunks past its end.
    let w2 = c.upsert_documents(vec![doc(&long_text(2))]).unwrap();
    assert!(w2.chunks < w.chunks);
    assert!(c.get(&PointId::Str(format!("doc-1#{}", w2.chunks))).unwrap().is_none());
    assert_eq!(c.info().points, w2.chunks);
    // Deleting the document removes all its chunks.
    assert_eq!(c.delete_documents(&["doc-1".into(), "missing".into()]).unwrap(), w2.chunks);
    assert_eq!(c.info().points, 0);

    // Bad documents.
    for (bad, msg) in [
        (Document { text: "  ".into(), ..doc("x") }, "text is empty"),
        (Document { id: String::new(), ..doc("x") }, "empty or repeated"),
        (Document { payload: json!(3), ..doc("x") }, "payload must be an object"),
    ] {
        let e = c.upsert_documents(vec![bad]).unwrap_err();
        assert!(e.is_client_error() && e.to_string().contains(msg), "{e}");
    }
    let e = c.upsert_documents(vec![doc("a"), doc("b")]).unwrap_err();
    assert!(e.to_string().contains("repeated"), "{e}");
}

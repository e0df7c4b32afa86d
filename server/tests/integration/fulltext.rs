//! Full-text and hybrid search over HTTP and gRPC: text_fields at creation,
//! the three modes, fusion, highlights, a restart, and clear 400s.

use naksha_embed::testing::models_dir;
use naksha_server::grpc::pb;
use serde_json::{json, Value};

use crate::server::Server;

fn ids(v: &Value) -> Vec<Value> {
    v["results"].as_array().unwrap().iter().map(|h| h["id"].clone()).collect()
}

fn sorted(mut ids: Vec<Value>) -> Vec<Value> {
    ids.sort_by_key(|v| v.as_u64());
    ids
}

fn points() -> Value {
    json!({"points": [
        {"id": 1, "vector": [1.0, 0.0], "text": {"title": "Firefox", "body": "Mozilla web browser, fast and private"},
         "payload": {"section": "web"}},
        {"id": 2, "vector": [0.9, 0.1], "text": {"title": "GCC", "body": "The GNU compiler collection for C"},
         "payload": {"section": "devel"}},
        {"id": 3, "vector": [0.0, 1.0], "text": {"title": "Lynx", "body": "A text web browser for the terminal"},
         "payload": {"section": "web"}},
        {"id": 4, "vector": [0.5, 0.5], "text": {"title": "Clang", "body": "C and C++ compiler based on LLVM"},
         "payload": {"section": "devel"}}
    ]})
}

#[test]
fn text_and_hybrid_modes_over_http() {
    let data = tempfile::tempdir().unwrap();
    let mut s = Server::start(data.path(), &[]);
    let config = r#"{"vectors": {"dim": 2, "metric": "cosine"}, "text_fields": ["title", "body"],
                     "text_boosts": {"title": 2.0}, "payload_index": {"section": "keyword"}}"#;
    let (status, v) = s.send("PUT", "/v1/collections/pkgs", config);
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["config"]["text_fields"], json!(["title", "body"]));
    assert_eq!(s.send("POST", "/v1/collections/pkgs/points", &points().to_string()).0, 200);
    let q = |s: &Server, body: Value| {
        let (status, v) = s.send("POST", "/v1/collections/pkgs/query", &body.to_string());
        assert_eq!(status, 200, "{body}: {v}");
        v
    };
    // Text only: the default mode when no vector and no model.
    let v = q(&s, json!({"text": "web browser", "highlight": true}));
    assert_eq!(sorted(ids(&v)), vec![json!(1), json!(3)]);
    let firefox = v["results"].as_array().unwrap().iter().find(|h| h["id"] == 1).unwrap();
    assert_eq!(firefox["highlights"]["body"], "Mozilla <b>web</b> <b>browser</b>, fast and private");
    assert!(firefox["score"].as_f64().unwrap() > 0.0 && firefox.get("text").is_none());
    let v = q(&s, json!({"text": "compiler -LLVM", "mode": "text"}));
    assert_eq!(ids(&v), vec![json!(2)]);
    let v = q(&s, json!({"text": "\"web browser\"", "filter": {"must": [{"key": "section", "match": "web"}]}}));
    assert_eq!(sorted(ids(&v)), vec![json!(1), json!(3)]);
    let v = q(&s, json!({"text": "compiler OR browser", "filter": {"must": [{"key": "section", "match": "devel"}]}}));
    assert_eq!(sorted(ids(&v)), vec![json!(2), json!(4)]);
    // Hybrid with a vector given: text favours 3 (Lynx is "terminal"), the vector favours 1.
    let v = q(&s, json!({"text": "terminal browser", "vector": [0.0, 1.0], "limit": 2}));
    assert_eq!(ids(&v)[0], json!(3), "on top of both sides");
    let v = q(
        &s,
        json!({"text": "terminal", "vector": [1.0, 0.0], "limit": 4, "fusion": {"method": "weighted", "vector_weight": 1.0}}),
    );
    assert_eq!(ids(&v), vec![json!(1), json!(2), json!(4), json!(3)], "weight 1 is the vector order");
    let v = q(&s, json!({"text": "terminal", "vector": [1.0, 0.0], "mode": "vector", "limit": 1}));
    assert_eq!(ids(&v), vec![json!(1)]);
    // Restart: the text index comes back (memtable replayed from the WAL).
    drop(s);
    s = Server::start(data.path(), &[]);
    let v = q(&s, json!({"text": "compiler", "mode": "text"}));
    assert_eq!(ids(&v).len(), 2);
    // Deletes and updates reach the text side.
    s.send("POST", "/v1/collections/pkgs/points/delete", r#"{"ids": [2]}"#);
    let up =
        json!({"points": [{"id": 4, "vector": [0.5, 0.5], "text": {"title": "Clang", "body": "An LLVM front end"}}]});
    s.send("POST", "/v1/collections/pkgs/points", &up.to_string());
    assert_eq!(ids(&q(&s, json!({"text": "compiler", "mode": "text"}))), Vec::<Value>::new());

    // Clear refusals that change nothing.
    for (body, msg) in [
        (json!({"text": "title:(web", "mode": "text"}), "text query"),
        (json!({"text": "nosuch:web", "mode": "text"}), "nosuch"),
        (json!({"text": "web", "mode": "fuzzy"}), "unknown variant `fuzzy`"),
        (
            json!({"text": "web", "vector": [1, 0], "fusion": {"method": "max"}}),
            "unknown variant `max`, expected `rrf` or `weighted`",
        ),
        (
            json!({"text": "web", "vector": [1, 0], "fusion": {"method": "weighted", "vector_weight": 2}}),
            "vector_weight",
        ),
        (json!({"vector": [1, 0], "highlight": true}), "highlight"),
        (json!({"text": "web", "mode": "vector"}), "embedding model"),
    ] {
        let (status, v) = s.send("POST", "/v1/collections/pkgs/query", &body.to_string());
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(msg), "{body}: {v}");
    }
    for (config, msg) in [
        (
            r#"{"vectors": {"dim": 2, "metric": "l2"}, "text_fields": ["a"], "text_boosts": {"b": 2}}"#,
            "boost for \"b\"",
        ),
        (r#"{"vectors": {"dim": 2, "metric": "l2"}, "text_fields": ["a", "a"]}"#, "repeated"),
        (
            r#"{"vectors": {"dim": 2, "metric": "l2"}, "text_fields": ["a"], "text_analyzer": {"kind": "klingon"}}"#,
            "klingon",
        ),
        (r#"{"vectors": {"dim": 2, "metric": "l2"}, "text_analyzer": {"kind": "simple"}}"#, "need text_fields"),
    ] {
        let (status, v) = s.send("PUT", "/v1/collections/bad", config);
        assert_eq!(status, 400, "{config}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(msg), "{config}: {v}");
    }
    assert_eq!(s.get("/v1/collections/bad").0, 404);
    assert_eq!(s.get("/v1/collections/pkgs").1["points"], 3);
}

#[test]
fn hybrid_with_the_local_model() {
    let data = tempfile::tempdir().unwrap();
    let s = Server::start(data.path(), &[("NAKSHA__MODELS__DIR", models_dir().to_str().unwrap())]);
    let config =
        r#"{"embed": {"model": "all-minilm-l6-v2", "fields": ["title", "body"]}, "text_fields": ["title", "body"]}"#;
    assert_eq!(s.send("PUT", "/v1/collections/pkgs", config).0, 201);
    let mut pts = points();
    for p in pts["points"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("vector");
    }
    let (status, v) = s.send("POST", "/v1/collections/pkgs/points", &pts.to_string());
    assert_eq!(status, 200, "{v}");
    let q = |body: Value| s.send("POST", "/v1/collections/pkgs/query", &body.to_string()).1;
    // No shared word with the text ("surf the internet"): only the vector side finds Firefox and Lynx.
    let v = q(json!({"text": "surf the internet", "limit": 2}));
    assert_eq!(sorted(ids(&v)), vec![json!(1), json!(3)], "{v}");
    assert_eq!(ids(&q(json!({"text": "surf the internet", "mode": "text"}))), Vec::<Value>::new());
    // A word only the text side knows exactly: Clang is the only LLVM entry.
    let v = q(json!({"text": "LLVM", "limit": 1, "mode": "hybrid"}));
    assert_eq!(ids(&v), vec![json!(4)], "{v}");

    // gRPC: the same hybrid query, and text mode with highlights.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = pb::naksha_client::NakshaClient::connect(s.grpc_url.clone()).await.unwrap();
        let req = pb::QueryRequest {
            collection: "pkgs".into(),
            text: Some("LLVM compiler".into()),
            mode: pb::SearchMode::Text as i32,
            highlight: true,
            limit: Some(1),
            ..Default::default()
        };
        let r = c.query(req.clone()).await.unwrap().into_inner();
        assert_eq!(r.results[0].highlights["body"], "C and C++ <b>compiler</b> based on <b>LLVM</b>");
        let hybrid = pb::QueryRequest {
            mode: pb::SearchMode::Unspecified as i32,
            highlight: false,
            fusion: Some(pb::Fusion { method: Some(pb::fusion::Method::Rrf(pb::Rrf { k: Some(10.0) })) }),
            ..req.clone()
        };
        let r = c.query(hybrid).await.unwrap().into_inner();
        assert_eq!(r.results.len(), 1);
        let bad = pb::QueryRequest { text: Some("title:(".into()), ..req.clone() };
        let e = c.query(bad).await.unwrap_err();
        assert!(e.code() == tonic::Code::InvalidArgument && e.message().contains("text query"), "{e}");
        // The plain syntax reads the same text as words.
        let plain = pb::QueryRequest { text: Some("title:(".into()), syntax: pb::Syntax::Plain as i32, ..req };
        assert!(c.query(plain).await.is_ok());
    });
}

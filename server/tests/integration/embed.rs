//! Embeddings over HTTP and gRPC with the real model: models, embed, text-only
//! points, text queries, documents, and start-up failure on a broken model.

use std::process::Command;

use naksha_embed::testing::models_dir;
use naksha_server::grpc::pb;
use serde_json::{json, Value};

use crate::server::Server;

fn start(data: &std::path::Path) -> Server {
    let dir = models_dir();
    Server::start(data, &[("NAKSHA__MODELS__DIR", dir.to_str().unwrap())])
}

#[test]
fn models_and_embed_endpoints() {
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path());
    let (status, v) = s.get("/v1/models");
    assert_eq!(status, 200);
    assert_eq!(v["models"], json!([{"name": "all-minilm-l6-v2", "dim": 384, "max_tokens": 256, "device": "cpu"}]));

    let (status, v) =
        s.send("POST", "/v1/embed", r#"{"model": "all-minilm-l6-v2", "input": ["a web browser", "ein Webbrowser"]}"#);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["dim"], 384);
    let data_ = v["data"].as_array().unwrap();
    assert_eq!(data_.len(), 2);
    let norm: f64 = data_[0].as_array().unwrap().iter().map(|x| x.as_f64().unwrap().powi(2)).sum();
    assert!((norm - 1.0).abs() < 1e-4);

    for (body, msg) in [
        (r#"{"model": "nope", "input": ["x"]}"#, "unknown model"),
        (r#"{"model": "all-minilm-l6-v2", "input": []}"#, "1 to 2048"),
        (r#"{"model": "all-minilm-l6-v2"}"#, "input"),
    ] {
        let (status, v) = s.send("POST", "/v1/embed", body);
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(msg), "{v}");
    }
}

#[test]
fn text_only_points_and_text_queries() {
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path());
    // With embed, vectors.dim (the model's) and the metric (cosine) may be omitted.
    let (status, v) = s.send(
        "PUT",
        "/v1/collections/pkgs",
        r#"{"embed": {"model": "all-minilm-l6-v2", "fields": ["title", "body"]}}"#,
    );
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["config"]["vectors"]["dim"], 384);
    assert_eq!(v["config"]["vectors"]["metric"], "cosine");
    let (status, v) = s.send(
        "PUT",
        "/v1/collections/bad",
        r#"{"vectors": {"dim": 3, "metric": "l2"}, "embed": {"model": "all-minilm-l6-v2", "fields": ["t"]}}"#,
    );
    assert_eq!(status, 400, "{v}");

    let points = json!({"points": [
        {"id": 1, "text": {"title": "firefox", "body": "Mozilla's web browser"}, "payload": {"section": "web"}},
        {"id": 2, "text": {"title": "gcc", "body": "The GNU C compiler"}, "payload": {"section": "devel"}},
        {"id": "pg", "text": {"title": "postgresql", "body": "Object-relational SQL database"}, "payload": {"section": "database"}}
    ]});
    let (status, v) = s.send("POST", "/v1/collections/pkgs/points", &points.to_string());
    assert_eq!(status, 200, "{v}");
    // NDJSON takes text-only points too.
    let (status, v) = s.ndjson(
        "/v1/collections/pkgs/points",
        "{\"id\": 3, \"text\": {\"title\": \"vim\", \"body\": \"Text editor\"}}\n",
    );
    assert_eq!(status, 200, "{v}");

    let q = |body: Value| s.send("POST", "/v1/collections/pkgs/query", &body.to_string());
    let (status, v) = q(json!({"text": "browse the internet", "limit": 2, "with_text": true}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["id"], 1);
    assert_eq!(v["results"][0]["text"]["title"], "firefox");
    let (_, v) = q(json!({"text": "store rows in tables", "limit": 1, "mode": "vector"}));
    assert_eq!(v["results"][0]["id"], "pg");
    let (_, v) = q(json!({"text": "compiler", "limit": 1, "filter": {"must": [{"key": "section", "match": "web"}]}}));
    assert_eq!(v["results"][0]["id"], 1);
    let (status, v) = s.get("/v1/collections/pkgs/points/2");
    assert_eq!(status, 200);
    assert_eq!(v["text"]["body"], "The GNU C compiler");

    // Refusals: BM25 without text_fields, empty text, text on a collection without a model.
    let (status, v) = q(json!({"text": "x", "mode": "text"}));
    assert_eq!(status, 400, "{v}");
    let (status, _) = q(json!({"text": "  "}));
    assert_eq!(status, 400);
    let (status, v) = s.send(
        "POST",
        "/v1/collections/pkgs/points",
        r#"{"points": [{"id": 9, "text": {"other": "no embed field"}}]}"#,
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("embed fields"), "{v}");
    s.send("PUT", "/v1/collections/plain", r#"{"vectors": {"dim": 2, "metric": "l2"}}"#);
    let (status, v) = s.send("POST", "/v1/collections/plain/query", r#"{"text": "hello"}"#);
    assert_eq!(status, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("no embedding model"), "{v}");
    let (status, v) = s.send("POST", "/v1/collections/plain/points", r#"{"points": [{"id": 1, "text": {"t": "x"}}]}"#);
    assert_eq!(status, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("vector is required"), "{v}");
    let (_, v) = s.get("/v1/collections/pkgs");
    assert_eq!(v["points"], 4, "a rejected batch changed something");
}

#[test]
fn documents_are_chunked_and_replaced() {
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path());
    let (status, v) = s.send(
        "PUT",
        "/v1/collections/docs",
        r#"{"embed": {"model": "all-minilm-l6-v2", "fields": ["text"]}, "chunking": {"max_tokens": 32, "overlap_tokens": 4}}"#,
    );
    assert_eq!(status, 201, "{v}");
    let topics = ["cooking pasta", "repairing bicycles", "telescopes and stars", "growing tomatoes", "tax forms"];
    let text: String = topics
        .iter()
        .map(|t| format!("This section is about {t}. It explains {t} in some detail, over a few sentences."))
        .collect::<Vec<_>>()
        .join("\n\n");
    let body = json!({"documents": [{"id": "manual", "text": text, "title": "Manual", "payload": {"v": 1}}]});
    let (status, v) = s.send("POST", "/v1/collections/docs/documents", &body.to_string());
    assert_eq!(status, 200, "{v}");
    let chunks = v["chunks"].as_u64().unwrap();
    assert!(chunks >= 4, "{v}");
    // Chunk ids carry a '#', percent-encoded in the path.
    let (status, p) = s.get("/v1/collections/docs/points/manual%231");
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["payload"]["doc_id"], "manual");
    assert_eq!(p["payload"]["chunk"], 1);
    assert_eq!(p["payload"]["v"], 1);
    let (start, end) =
        (p["payload"]["start"].as_u64().unwrap() as usize, p["payload"]["end"].as_u64().unwrap() as usize);
    assert_eq!(&text[start..end], p["text"]["text"].as_str().unwrap());

    let (_, v) =
        s.send("POST", "/v1/collections/docs/query", r#"{"text": "astronomy", "limit": 1, "with_text": true}"#);
    assert!(v["results"][0]["text"]["text"].as_str().unwrap().contains("telescopes"), "{v}");

    // A shorter version replaces all chunks; delete removes the rest.
    let body = json!({"documents": [{"id": "manual", "text": "Now it is short."}]});
    let (status, v) = s.send("POST", "/v1/collections/docs/documents", &body.to_string());
    assert_eq!((status, v["chunks"].as_u64()), (200, Some(1)), "{v}");
    let (_, v) = s.get("/v1/collections/docs");
    assert_eq!(v["points"], 1);
    let (status, v) = s.send("POST", "/v1/collections/docs/documents/delete", r#"{"ids": ["manual"]}"#);
    assert_eq!((status, v["deleted"].as_u64()), (200, Some(1)));
    let (status, v) = s.send("POST", "/v1/collections/docs/documents", r#"{"documents": [{"id": "x", "text": ""}]}"#);
    assert_eq!(status, 400, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_embeds_and_queries_by_text() {
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path());
    let mut c = pb::naksha_client::NakshaClient::connect(s.grpc_url.clone()).await.unwrap();
    let models = c.list_models(pb::ListModelsRequest {}).await.unwrap().into_inner();
    assert_eq!(models.models[0].name, "all-minilm-l6-v2");
    let e = c
        .embed(pb::EmbedRequest { model: "all-minilm-l6-v2".into(), input: vec!["hello".into()] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((e.dim, e.data[0].values.len()), (384, 384));
    let err = c.embed(pb::EmbedRequest { model: "nope".into(), input: vec!["x".into()] }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let embed = |field: &str| pb::EmbedConfig { model: "all-minilm-l6-v2".into(), fields: vec![field.into()] };
    // With a model, the dimension and metric come from it.
    let config = pb::CollectionConfig { embed: Some(embed("t")), ..Default::default() };
    c.create_collection(pb::CreateCollectionRequest { name: "g".into(), config: Some(config) }).await.unwrap();
    let point = |n: u64, t: &str| pb::Point {
        id: Some(pb::PointId { kind: Some(pb::point_id::Kind::Num(n)) }),
        text: [("t".to_owned(), t.to_owned())].into(),
        ..Default::default()
    };
    c.upsert(pb::UpsertRequest { collection: "g".into(), points: vec![point(1, "a kitten"), point(2, "a truck")] })
        .await
        .unwrap();
    let r = c
        .query(pb::QueryRequest {
            collection: "g".into(),
            text: Some("small cat".into()),
            limit: Some(1),
            with_text: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results[0].id, point(1, "").id);
    assert_eq!(r.results[0].text["t"], "a kitten");

    // Documents: chunked, findable, replaced, deleted.
    let config = pb::CollectionConfig {
        embed: Some(embed("text")),
        chunking: Some(pb::ChunkConfig { max_tokens: Some(16), overlap_tokens: Some(2) }),
        ..Default::default()
    };
    c.create_collection(pb::CreateCollectionRequest { name: "d".into(), config: Some(config) }).await.unwrap();
    let doc = |text: &str, payload: Option<prost_types::Struct>| pb::UpsertDocumentsRequest {
        collection: "d".into(),
        documents: vec![pb::Document { id: "guide".into(), text: text.into(), title: Some("Guide".into()), payload }],
    };
    let number = |x: f64| prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(x)) };
    let payload = |k: &str, x: f64| prost_types::Struct { fields: [(k.to_owned(), number(x))].into() };
    let long =
        "Bicycles need oiled chains and pumped tyres.\n\nTelescopes gather starlight with mirrors and lenses.\n\n\
                Tomatoes grow best in warm sun with steady water.";
    let w = c.upsert_documents(doc(long, Some(payload("v", 1.0)))).await.unwrap().into_inner();
    assert!(w.documents == 1 && w.chunks >= 3, "{w:?}");
    let got = |n: u64| pb::GetPointRequest {
        collection: "d".into(),
        id: Some(pb::PointId { kind: Some(pb::point_id::Kind::Str(format!("guide#{n}"))) }),
    };
    let p = c.get_point(got(1)).await.unwrap().into_inner();
    let f = p.payload.unwrap().fields;
    use prost_types::value::Kind;
    assert_eq!(
        (f["doc_id"].kind.clone(), f["chunk"].kind.clone(), f["v"].kind.clone()),
        (Some(Kind::StringValue("guide".into())), Some(Kind::NumberValue(1.0)), Some(Kind::NumberValue(1.0)))
    );
    let q = pb::QueryRequest {
        collection: "d".into(),
        text: Some("astronomy".into()),
        limit: Some(1),
        with_text: true,
        ..Default::default()
    };
    let r = c.query(q).await.unwrap().into_inner();
    assert!(r.results[0].text["text"].contains("Telescopes"), "{r:?}");
    // A shorter version replaces every chunk; a payload with a non-finite number changes nothing.
    let w = c.upsert_documents(doc("Now it is short.", None)).await.unwrap().into_inner();
    assert_eq!(w.chunks, 1);
    assert_eq!(c.get_point(got(1)).await.unwrap_err().code(), tonic::Code::NotFound);
    let err = c.upsert_documents(doc("Other text.", Some(payload("v", f64::NAN)))).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let info = c.get_collection(pb::GetCollectionRequest { name: "d".into() }).await.unwrap().into_inner();
    assert_eq!(info.points, 1);
    let del = pb::DeleteDocumentsRequest { collection: "d".into(), ids: vec!["guide".into(), "unknown".into()] };
    assert_eq!(c.delete_documents(del).await.unwrap().into_inner().deleted, 1);
    let missing = pb::DeleteDocumentsRequest { collection: "nope".into(), ids: vec!["guide".into()] };
    assert_eq!(c.delete_documents(missing).await.unwrap_err().code(), tonic::Code::NotFound);
}

#[test]
fn a_broken_model_stops_start_up_naming_the_file() {
    let models = tempfile::tempdir().unwrap();
    let broken = models.path().join("half-installed");
    fs_err::create_dir_all(&broken).unwrap();
    fs_err::copy(models_dir().join("all-minilm-l6-v2/config.json"), broken.join("config.json")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_naksha"))
        .args(["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--models-dir")
        .arg(models.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("half-installed") && err.contains("tokenizer.json"), "{err}");

    // `naksha models list` reports the same problem.
    let out = Command::new(env!("CARGO_BIN_EXE_naksha"))
        .args(["models", "list", "--models-dir"])
        .arg(models.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokenizer.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_naksha"))
        .args(["models", "list", "--models-dir"])
        .arg(models_dir())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("all-minilm-l6-v2\tdim=384"));
}

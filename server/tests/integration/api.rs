//! Every endpoint and every error case of API.md, over real HTTP.

use serde_json::{json, Value};

use crate::server::Server;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn message(v: &Value) -> String {
    v["error"]["message"].as_str().unwrap_or("").to_owned()
}

const CONFIG: &str = r#"{"vectors": {"dim": 3, "metric": "l2", "hnsw": {"m": 16, "ef_construction": 200}, "quantization": "none"},
                         "payload_index": {"lang": "keyword", "year": "integer"}}"#;

fn seed(s: &Server) {
    assert_eq!(s.send("PUT", "/v1/collections/docs", CONFIG).0, 201);
    let body = json!({"points": [
        {"id": 1, "vector": [0.0, 0.0, 0.0], "payload": {"lang": "en", "year": 2019}},
        {"id": 2, "vector": [1.0, 0.0, 0.0], "payload": {"lang": "de", "year": 2021}},
        {"id": "doc-3", "vector": [2.0, 0.0, 0.0], "payload": {"lang": "en", "year": 2023}},
    ]});
    let (st, v) = s.send("POST", "/v1/collections/docs/points", &body.to_string());
    assert_eq!((st, v["upserted"].as_u64()), (200, Some(3)), "{v}");
}

fn count(s: &Server) -> u64 {
    s.get("/v1/collections/docs").1["points"].as_u64().unwrap()
}

#[test]
fn every_endpoint_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    assert_eq!(s.get("/healthz"), (200, json!({"status": "ok"})));
    seed(&s);
    // Same config again: fine; another config: 409.
    assert_eq!(s.send("PUT", "/v1/collections/docs", CONFIG).0, 200);
    let (st, v) = s.send("PUT", "/v1/collections/docs", r#"{"vectors": {"dim": 4, "metric": "l2"}}"#);
    assert_eq!((st, code(&v)), (409, "already_exists"));
    assert_eq!(s.get("/v1/collections").1, json!({"collections": [{"name": "docs", "points": 3}]}));
    let (st, info) = s.get("/v1/collections/docs");
    assert_eq!(st, 200);
    assert_eq!(info["config"]["vectors"]["dim"], 3);
    assert!(info["disk_bytes"].as_u64().is_some() && info["memory_bytes"].as_u64().is_some() && info["segments"] == 0);
    // NDJSON upsert.
    let (st, v) = s.ndjson(
        "/v1/collections/docs/points",
        "{\"id\": 4, \"vector\": [3, 0, 0], \"payload\": {\"lang\": \"fr\"}}\n\n{\"id\": 5, \"vector\": [4, 0, 0]}\n",
    );
    assert_eq!((st, v["upserted"].as_u64()), (200, Some(2)), "{v}");
    // Get.
    let (st, p) = s.get("/v1/collections/docs/points/doc-3");
    assert_eq!((st, &p["payload"]["year"]), (200, &json!(2023)));
    assert_eq!(p["vector"], json!([2.0, 0.0, 0.0]));
    let (st, v) = s.get("/v1/collections/docs/points/99");
    assert_eq!((st, code(&v)), (404, "not_found"));
    // Query: best first, with a filter, with offset.
    let (st, r) = s.send("POST", "/v1/collections/docs/query", r#"{"vector": [0.9, 0, 0], "limit": 2}"#);
    assert_eq!(st, 200, "{r}");
    let ids: Vec<&Value> = r["results"].as_array().unwrap().iter().map(|h| &h["id"]).collect();
    assert_eq!(ids, [&json!(2), &json!(1)]);
    assert!(r["took_ms"].as_f64().is_some() && r["results"][0]["payload"]["lang"] == "de");
    let q = json!({"vector": [0, 0, 0], "limit": 5, "mode": "vector",
                   "filter": {"must": [{"key": "lang", "match": "en"}, {"key": "year", "range": {"gte": 2020}}]}});
    let (_, r) = s.send("POST", "/v1/collections/docs/query", &q.to_string());
    assert_eq!(r["results"].as_array().unwrap().len(), 1);
    assert_eq!(r["results"][0]["id"], "doc-3");
    let (_, r) = s.send(
        "POST",
        "/v1/collections/docs/query",
        r#"{"vector": [0, 0, 0], "limit": 1, "offset": 1, "exact": true, "with_payload": false, "with_vector": true}"#,
    );
    assert_eq!(r["results"][0]["id"], 2);
    assert!(r["results"][0].get("payload").is_none() && r["results"][0]["vector"] == json!([1.0, 0.0, 0.0]));
    // Delete by id and by filter.
    let (st, v) = s.send("POST", "/v1/collections/docs/points/delete", r#"{"ids": [1, 42]}"#);
    assert_eq!((st, v), (200, json!({"deleted": 1})));
    let (_, v) = s.send(
        "POST",
        "/v1/collections/docs/points/delete",
        r#"{"filter": {"must": [{"key": "lang", "match": "fr"}]}}"#,
    );
    assert_eq!(v, json!({"deleted": 1}));
    assert_eq!(count(&s), 3);
    // Metrics.
    let (st, m) = s.get("/metrics");
    assert_eq!(st, 200);
    let m = m.as_str().unwrap().to_owned();
    assert!(
        m.contains(
            "naksha_http_requests_total{method=\"POST\",route=\"/v1/collections/{name}/query\",status=\"200\"} 3"
        ),
        "{m}"
    );
    assert!(m.contains("naksha_http_request_duration_seconds_bucket{"));
    assert!(m.contains("naksha_collection_points{tenant=\"default\",collection=\"docs\"} 3"));
    // Without authentication there is no identity to audit: writes leave no entries (and cost no extra fsync).
    let (st, v) = s.get("/v1/audit");
    assert_eq!((st, v["entries"].as_array().map(Vec::len)), (200, Some(0)), "{v}");
    assert!(
        m.contains("naksha_collection_wal_bytes{tenant=\"default\",collection=\"docs\"}")
            && m.contains("process_resident_memory_bytes")
    );
    // Delete the collection.
    assert_eq!(s.send("DELETE", "/v1/collections/docs", "").1, json!({"deleted": true}));
    let (st, v) = s.get("/v1/collections/docs");
    assert_eq!((st, code(&v)), (404, "not_found"));
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[("NAKSHA__SERVER__BODY_LIMIT_BYTES", "4096")]);
    seed(&s);
    let seq = s.get("/v1/collections/docs").1["seq"].clone();
    let cases: Vec<(&str, &str, String, u16, &str, &str)> = vec![
        (
            "POST",
            "/v1/collections/docs/points",
            r#"{"points": [{"id": 9, "vector": [1, 2"#.into(),
            400,
            "invalid_argument",
            "malformed JSON body: EOF",
        ),
        (
            "POST",
            "/v1/collections/docs/points",
            r#"{"points": [{"id": 9, "vector": [1, 2, 3]}, {"id": 10, "vector": [1, 2]}]}"#.into(),
            422,
            "unprocessable",
            "point 10: vector has 2 dimensions, the collection expects 3",
        ),
        (
            "POST",
            "/v1/collections/docs/points",
            // Beyond f32: refused by the (correctly rounding) parser, not cast to infinity.
            r#"{"points": [{"id": "x", "vector": [1e39, 0, 0]}]}"#.into(),
            400,
            "invalid_argument",
            "number out of range",
        ),
        (
            "POST",
            "/v1/collections/docs/points",
            r#"{"points": [{"id": 9, "vector": [1, 2, 3], "payload": [1]}]}"#.into(),
            400,
            "invalid_argument",
            "payload must be a JSON object",
        ),
        (
            "POST",
            "/v1/collections/docs/points",
            r#"{"points": [{"id": 9, "text": {"t": "hi"}}]}"#.into(),
            400,
            "invalid_argument",
            "the collection has no embedding model",
        ),
        (
            "POST",
            "/v1/collections/docs/points",
            r#"{"points": [{"id": 9}]}"#.into(),
            400,
            "invalid_argument",
            "vector is required",
        ),
        (
            "POST",
            "/v1/collections/docs/points",
            r#"{"points": [{"id": -1, "vector": [1, 2, 3]}]}"#.into(),
            400,
            "invalid_argument",
            "malformed JSON",
        ),
        (
            "POST",
            "/v1/collections/docs/points",
            format!(r#"{{"points": [{{"id": 1, "vector": [{}]}}]}}"#, vec!["1.0"; 3000].join(",")),
            413,
            "payload_too_large",
            "exceeds the limit of 4096 bytes",
        ),
        (
            "POST",
            "/v1/collections/nope/points",
            r#"{"points": []}"#.into(),
            404,
            "not_found",
            "collection \"nope\" not found",
        ),
        (
            "POST",
            "/v1/collections/docs/query",
            r#"{"text": "hello", "mode": "text"}"#.into(),
            400,
            "invalid_argument",
            "collection \"docs\" has no text_fields",
        ),
        (
            "POST",
            "/v1/collections/docs/query",
            r#"{"text": "hello"}"#.into(),
            400,
            "invalid_argument",
            "collection \"docs\" cannot search by text: it has no text_fields (BM25) and no embedding model",
        ),
        (
            "POST",
            "/v1/collections/docs/query",
            r#"{"vector": [1, 2]}"#.into(),
            422,
            "unprocessable",
            "query: vector has 2 dimensions",
        ),
        (
            "POST",
            "/v1/collections/docs/query",
            r#"{"vector": [1, 2, 3], "filter": {"must": [{"key": "a", "regex": ".*"}]}}"#.into(),
            400,
            "invalid_argument",
            "unknown condition \"regex\"",
        ),
        (
            "POST",
            "/v1/collections/docs/query",
            r#"{"vector": [1, 2, 3], "limit": 0}"#.into(),
            400,
            "invalid_argument",
            "limit",
        ),
        (
            "POST",
            "/v1/collections/docs/query",
            r#"{"vector": [1, 2, 3], "bogus": 1}"#.into(),
            400,
            "invalid_argument",
            "unknown field `bogus`",
        ),
        (
            "POST",
            "/v1/collections/docs/points/delete",
            r#"{"ids": [1], "filter": {}}"#.into(),
            400,
            "invalid_argument",
            "exactly one",
        ),
        ("PUT", "/v1/collections/bad%20name", CONFIG.into(), 400, "invalid_argument", "collection name"),
        (
            "PUT",
            "/v1/collections/t",
            r#"{"vectors": {"dim": 3, "metric": "l2"}, "text_fields": ["body"], "text_boosts": {"title": 2}}"#.into(),
            400,
            "invalid_argument",
            "boost for \"title\", which is not a text field",
        ),
        (
            "PUT",
            "/v1/collections/t",
            r#"{"vectors": {"dim": 0, "metric": "l2"}}"#.into(),
            400,
            "invalid_argument",
            "vectors.dim",
        ),
        (
            "PUT",
            "/v1/collections/t",
            r#"{"vectors": {"dim": 3, "metric": "hamming"}}"#.into(),
            400,
            "invalid_argument",
            "unknown variant `hamming`",
        ),
        ("GET", "/v1/nothing", String::new(), 404, "not_found", "no route for GET /v1/nothing"),
    ];
    for (method, path, body, status, want_code, want_msg) in cases {
        let (st, v) = if method == "GET" { s.get(path) } else { s.send(method, path, &body) };
        assert_eq!((st, code(&v)), (status, want_code), "{method} {path}: {v}");
        assert!(message(&v).contains(want_msg), "{method} {path}: {:?} should contain {want_msg:?}", message(&v));
    }
    let (st, v) = s.ndjson(
        "/v1/collections/docs/points",
        "{\"id\": 7, \"vector\": [1, 2, 3]}\n{\"id\": 8, \"vector\": [1, 2, 3]\n",
    );
    assert_eq!((st, code(&v)), (400, "invalid_argument"));
    assert!(message(&v).contains("NDJSON line 2"), "{v}");
    // Nothing changed.
    assert_eq!(count(&s), 3);
    assert_eq!(s.get("/v1/collections/docs").1["seq"], seq);
    assert_eq!(s.get("/v1/collections").1["collections"].as_array().unwrap().len(), 1);
}

#[test]
fn api_key_guards_every_route_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[("NAKSHA_API_KEY", "s3cret")]);
    seed(&s); // the fixture's client sends the key
    let anon = naksha_server::cli::Client::new(&s.url, None);
    let wrong = naksha_server::cli::Client::new(&s.url, Some("guess".into()));
    for client in [&anon, &wrong] {
        for path in ["/v1/collections", "/v1/collections/docs", "/metrics", "/v1/collections/docs/points/1"] {
            let (st, v) = client.request("GET", path, None).unwrap();
            assert_eq!((st, code(&v)), (401, "unauthenticated"), "{path}");
        }
        let (st, _) = client
            .request("POST", "/v1/collections/docs/points/delete", Some(("application/json", r#"{"ids": [1]}"#.into())))
            .unwrap();
        assert_eq!(st, 401);
    }
    assert_eq!(anon.request("GET", "/healthz", None).unwrap().0, 200);
    assert_eq!(anon.request("GET", "/readyz", None).unwrap().0, 200);
    assert_eq!(count(&s), 3, "rejected requests changed nothing");
}

#[test]
fn restart_keeps_data_and_shutdown_is_graceful() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    seed(&s);
    let logs = s.stop();
    assert!(logs.iter().any(|l| l.contains("shutdown complete")), "{logs:?}");
    let s = Server::start(dir.path(), &[]);
    assert_eq!(count(&s), 3);
    assert_eq!(s.get("/v1/collections/docs/points/doc-3").1["payload"]["year"], 2023);
}

#[test]
fn cli_imports_lists_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let naksha = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_naksha"))
            .args(args)
            .env("NAKSHA_URL", &s.url)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) =
        naksha(&["collections", "create", "pts", "--dim", "2", "--metric", "l2", "--index", "g=integer"]);
    assert!(ok, "{out}{err}");
    let file = dir.path().join("pts.jsonl");
    let lines: Vec<String> =
        (0..2500).map(|i| json!({"id": i, "vector": [i, 0], "payload": {"g": i % 5}}).to_string()).collect();
    fs_err::write(&file, lines.join("\n") + "\n{\"id\": \"bad\", \"vector\": [1]}\n").unwrap();
    let (ok, out, _) = naksha(&["import", file.to_str().unwrap(), "--collection", "pts", "--batch", "1000"]);
    // Batches of 1000, 1000 and 501; the last holds the bad point and is rejected whole.
    assert!(!ok, "a rejected batch makes the import fail");
    assert!(out.contains("imported 2000 points") && out.contains("501 errors"), "{out}");
    let (ok, out, _) = naksha(&["collections", "list"]);
    assert!(ok && out.contains("\"points\": 2000"), "{out}");
    let (ok, out, _) = naksha(&[
        "query",
        "--collection",
        "pts",
        "--vector",
        "[10.2, 0]",
        "--limit",
        "1",
        "--filter",
        r#"{"must": [{"key": "g", "match": 1}]}"#,
    ]);
    assert!(ok && out.contains("\"id\": 11"), "{out}");
    let (ok, _, err) = naksha(&["collections", "info", "nope"]);
    assert!(!ok && err.contains("404"), "{err}");
}

#[test]
fn openapi_document_covers_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let (st, doc) = s.get("/openapi.json");
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let routes = [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/v1/collections", "get"),
        ("/v1/collections/{name}", "put"),
        ("/v1/collections/{name}", "get"),
        ("/v1/collections/{name}", "delete"),
        ("/v1/collections/{name}/points", "post"),
        ("/v1/collections/{name}/points/{id}", "get"),
        ("/v1/collections/{name}/points/delete", "post"),
        ("/v1/collections/{name}/query", "post"),
        ("/v1/collections/{name}/rag", "post"),
        ("/v1/collections/{name}/documents", "post"),
        ("/v1/collections/{name}/documents/delete", "post"),
        ("/v1/models", "get"),
        ("/v1/embed", "post"),
        ("/v1/tenants", "get"),
        ("/v1/tenants", "post"),
        ("/v1/tenants/{tenant}", "get"),
        ("/v1/tenants/{tenant}", "patch"),
        ("/v1/tenants/{tenant}", "delete"),
        ("/v1/tenants/{tenant}/keys", "get"),
        ("/v1/tenants/{tenant}/keys", "post"),
        ("/v1/tenants/{tenant}/keys/{id}", "delete"),
        ("/v1/audit", "get"),
        ("/v1/jobs", "get"),
        ("/v1/jobs", "post"),
        ("/v1/jobs/{id}", "get"),
        ("/v1/jobs/{id}", "delete"),
        ("/v1/snapshots", "get"),
        ("/v1/snapshots", "post"),
        ("/v1/snapshots/restore", "post"),
        ("/v1/snapshots/s3", "get"),
        ("/v1/collections/{name}/snapshots", "get"),
        ("/v1/collections/{name}/snapshots", "post"),
        ("/v1/collections/{name}/snapshots/{id}", "get"),
        ("/v1/collections/{name}/snapshots/{id}", "delete"),
        ("/v1/collections/{name}/snapshots/{id}/restore", "post"),
    ];
    for (path, method) in routes {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} missing from /openapi.json");
    }
    assert_eq!(doc["paths"].as_object().unwrap().len(), 28, "undocumented or stale paths");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "QueryBody",
        "QueryOut",
        "RagBody",
        "RagOut",
        "UpsertBody",
        "PointIn",
        "ErrorBody",
        "CreateBody",
        "CollectionDetails",
        "EmbedBody",
        "DocumentsBody",
        "JobSpec",
        "JobView",
        "JobStatus",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    assert_eq!(
        doc["paths"]["/v1/collections/{name}/query"]["post"]["responses"]["422"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
}

/// SIGTERM while a large upsert is in flight: the request still completes
/// (graceful shutdown) and its points are there after a restart.
#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    assert_eq!(s.send("PUT", "/v1/collections/big", r#"{"vectors": {"dim": 64, "metric": "l2"}}"#).0, 201);
    let lines: String = (0..30_000)
        .map(|i| json!({"id": i, "vector": vec![i as f32; 64], "payload": {"i": i}}).to_string() + "\n")
        .collect();
    let client = naksha_server::cli::Client::new(&s.url, None);
    let request = std::thread::spawn(move || {
        client.request("POST", "/v1/collections/big/points", Some(("application/x-ndjson", lines)))
    });
    std::thread::sleep(std::time::Duration::from_millis(150));
    let logs = s.stop();
    let (status, v) = request.join().unwrap().expect("the in-flight request got a reply");
    assert_eq!((status, v["upserted"].as_u64()), (200, Some(30_000)), "{v}");
    assert!(logs.iter().any(|l| l.contains("shutdown complete")));
    let s = Server::start(dir.path(), &[]);
    assert_eq!(s.get("/v1/collections/big").1["points"], 30_000);
}

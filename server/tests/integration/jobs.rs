//! Ingestion jobs end to end against the real binary and real sources: files
//! in every format, an S3-compatible server (moto) and Postgres clusters of the
//! tests' own (`wal_level=logical`), including SIGKILLs of the server and a
//! Postgres restart in the middle of change data capture.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, FixedSizeListArray, Float32Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use naksha_embed::testing::models_dir;
use naksha_ingest::testing::{PgCluster, S3Server};
use serde_json::{json, Value};

use crate::server::Server;

fn start(data: &Path, import: &Path, extra: &[(&str, &str)]) -> Server {
    let dirs = format!("[{:?}]", import.display().to_string());
    let models = models_dir();
    let mut env = vec![
        ("NAKSHA__MODELS__DIR", models.to_str().unwrap().to_owned()),
        ("NAKSHA__JOBS__IMPORT_DIRS", dirs),
        ("NAKSHA__JOBS__RETRY_BACKOFF_MS", "100".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    env.extend(S3Server::env().iter().map(|(k, v)| (*k, v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(data, &env)
}

fn create_job(s: &Server, body: Value) -> String {
    let (status, v) = s.send("POST", "/v1/jobs", &body.to_string());
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["status"], "queued", "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// Poll a job until `done` holds (or it ends); returns its last view.
fn wait_job(s: &Server, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, v) = s.get(&format!("/v1/jobs/{id}"));
        assert_eq!(status, 200, "{v}");
        if done(&v) {
            return v;
        }
        let st = v["status"].as_str().unwrap_or("");
        assert!(!matches!(st, "failed" | "cancelled" | "succeeded"), "job ended before the condition: {v}");
        assert!(Instant::now() < deadline, "timed out waiting for job: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_end(s: &Server, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, v) = s.get(&format!("/v1/jobs/{id}"));
        if matches!(v["status"].as_str(), Some("failed" | "cancelled" | "succeeded")) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for the job to end: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(s: &Server, c: &str) -> u64 {
    let (status, v) = s.get(&format!("/v1/collections/{c}"));
    assert_eq!(status, 200, "{v}");
    v["points"].as_u64().unwrap()
}

fn point(s: &Server, c: &str, id: &str) -> (u16, Value) {
    s.get(&format!("/v1/collections/{c}/points/{id}"))
}

fn collection(s: &Server, name: &str, body: Value) {
    let (status, v) = s.send("PUT", &format!("/v1/collections/{name}"), &body.to_string());
    assert_eq!(status, 201, "{v}");
}

fn vectors4() -> Value {
    json!({"vectors": {"dim": 4, "metric": "l2"}})
}

fn embedded() -> Value {
    json!({"embed": {"model": "all-minilm-l6-v2", "fields": ["title", "body"]}, "text_fields": ["title", "body"]})
}

fn arrow_batch(ids: std::ops::Range<u64>) -> RecordBatch {
    let values = Float32Array::from_iter_values(ids.clone().flat_map(|i| [i as f32, 1.0, 2.0, 3.0]));
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let emb = FixedSizeListArray::try_new(item, 4, Arc::new(values), None).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("emb", emb.data_type().clone(), false),
    ]));
    let titles = StringArray::from_iter_values(ids.clone().map(|i| format!("title {i}")));
    RecordBatch::try_new(schema, vec![Arc::new(UInt64Array::from_iter_values(ids)), Arc::new(titles), Arc::new(emb)])
        .unwrap()
}

#[test]
fn file_jobs_read_every_format_and_set_bad_items_aside() {
    let (data, import) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dir = import.path();
    let mut jsonl = String::new();
    for i in 0..100 {
        jsonl.push_str(&format!("{{\"id\": {i}, \"title\": \"item {i}\", \"lang\": \"en\", \"v\": [{i}, 1, 2, 3]}}\n"));
    }
    // A bad JSON line, a wrong vector length, a missing id, a NaN.
    jsonl.push_str(
        "{not json\n{\"id\": 200, \"v\": [1, 2]}\n{\"v\": [1, 2, 3, 4]}\n{\"id\": 201, \"v\": \"[NaN, 1, 2, 3]\"}\n",
    );
    fs_err::write(dir.join("items.jsonl"), &jsonl).unwrap();
    let mut csv = String::from("id,title,lang,v\n");
    for i in 1000..1050 {
        csv.push_str(&format!("{i},row {i},de,\"[{i}, 1, 2, 3]\"\n"));
    }
    fs_err::write(dir.join("items.csv"), csv).unwrap();
    let b = arrow_batch(2000..2300);
    let mut w = parquet::arrow::ArrowWriter::try_new(
        fs_err::File::create(dir.join("items.parquet")).unwrap(),
        b.schema(),
        None,
    )
    .unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    let b = arrow_batch(3000..3200);
    let mut w =
        arrow_ipc::writer::FileWriter::try_new(fs_err::File::create(dir.join("items.arrow")).unwrap(), &b.schema())
            .unwrap();
    w.write(&b).unwrap();
    w.finish().unwrap();
    fs_err::create_dir(dir.join("sub")).unwrap();
    let b = arrow_batch(4000..4010);
    let mut w = arrow_ipc::writer::StreamWriter::try_new(
        fs_err::File::create(dir.join("sub/stream.arrows")).unwrap(),
        &b.schema(),
    )
    .unwrap();
    w.write(&b).unwrap();
    w.finish().unwrap();

    let s = start(data.path(), dir, &[]);
    collection(&s, "items", vectors4());
    let job = |path: &str, vector: &str, payload: Value| {
        json!({"collection": "items", "source": {"type": "file", "path": path},
               "mapping": {"id": "id", "payload": payload, "vector": vector}, "batch_size": 64})
    };
    let id = create_job(&s, job("items.jsonl", "v", json!(["title", "lang"])));
    let v = wait_end(&s, &id, 60);
    assert_eq!(v["status"], "succeeded", "{v}");
    let p = &v["progress"];
    assert_eq!(
        (p["read"].as_u64(), p["written"].as_u64(), p["failed"].as_u64()),
        (Some(104), Some(100), Some(4)),
        "{v}"
    );
    let errors = v["errors"].as_array().unwrap();
    let items: Vec<&str> = errors.iter().map(|e| e["item"].as_str().unwrap()).collect();
    assert_eq!(items, ["line 101", "line 102", "line 103", "line 104"], "{v}");
    let msgs: Vec<&str> = errors.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert!(msgs[0].contains("JSON"), "{msgs:?}");
    assert!(msgs[1].contains("dimension") || msgs[1].contains("expected 4"), "{msgs:?}");
    assert!(msgs[2].contains("missing id"), "{msgs:?}");
    assert!(msgs[3].to_lowercase().contains("finite") || msgs[3].contains("NaN"), "{msgs:?}");
    assert_eq!(p["total_bytes"].as_u64(), Some(jsonl.len() as u64));
    assert_eq!(p["bytes"].as_u64(), Some(jsonl.len() as u64));

    for (path, vector) in
        [("items.csv", "v"), ("items.parquet", "emb"), ("items.arrow", "emb"), ("sub/stream.arrows", "emb")]
    {
        let payload = if path.ends_with("csv") { json!(["title", "lang"]) } else { json!(["title"]) };
        let id = create_job(&s, job(path, vector, payload));
        let v = wait_end(&s, &id, 60);
        assert_eq!(v["status"], "succeeded", "{path}: {v}");
        assert_eq!(v["progress"]["failed"], 0, "{path}: {v}");
    }
    assert_eq!(count(&s, "items"), 100 + 50 + 300 + 200 + 10);
    let (status, p) = point(&s, "items", "2005");
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["vector"], json!([2005.0, 1.0, 2.0, 3.0]));
    assert_eq!(p["payload"], json!({"title": "title 2005"}));
    assert_eq!(point(&s, "items", "1049").1["payload"], json!({"title": "row 1049", "lang": "de"}));

    // Refused before the job starts: a mapped field the file lacks, paths outside the import dirs, no collection.
    let (status, v) = s.send("POST", "/v1/jobs", &job("items.parquet", "emb", json!(["titel"])).to_string());
    assert_eq!(status, 400, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("mapping.payload") && m.contains("\"titel\""), "{m}");
    for path in ["../items.jsonl", "/etc/passwd", "sub/../../x.jsonl"] {
        let (status, v) = s.send("POST", "/v1/jobs", &job(path, "v", json!([])).to_string());
        assert_eq!(status, 403, "{path}: {v}");
    }
    let (status, v) = s.send(
        "POST",
        "/v1/jobs",
        &json!({"collection": "nope", "source": {"type": "file", "path": "items.jsonl"}, "mapping": {"id": "id", "vector": "v"}})
            .to_string(),
    );
    assert_eq!(status, 404, "{v}");
    let (status, v) = s.send("POST", "/v1/jobs", r#"{"collection": "items", "source": {"type": "ftp"}}"#);
    assert_eq!(status, 400, "{v}");

    // Over the error budget the job fails, naming why.
    let mut body = job("items.jsonl", "v", json!([]));
    body["max_failed"] = json!(2);
    let id = create_job(&s, body);
    let v = wait_end(&s, &id, 60);
    assert_eq!(v["status"], "failed", "{v}");
    assert!(v["error"].as_str().unwrap().contains("error budget"), "{v}");
    let (status, v) = s.send("DELETE", &format!("/v1/jobs/{id}"), "");
    assert_eq!(status, 409, "{v}");
    let (status, v) = s.get("/v1/jobs");
    assert_eq!(status, 200);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 6, "{v}");
    let (_, m) = s.get("/metrics");
    let metrics = m.as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains("naksha_jobs{status=\"succeeded\"} 5"), "{metrics}");
    assert!(metrics.contains("naksha_job_items_failed_total{tenant=\"default\"}"), "{metrics}");
}

#[test]
fn embedding_file_job_resumes_after_sigkill_without_loss_or_duplicates() {
    let (data, import) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let n = 2000;
    let mut jsonl = String::new();
    for i in 0..n {
        jsonl
            .push_str(&format!("{{\"id\": {i}, \"title\": \"note number {i} about topic {}\", \"n\": {i}}}\n", i % 37));
    }
    fs_err::write(import.path().join("notes.jsonl"), jsonl).unwrap();
    let long = "Rivers carry water to the sea. ".repeat(120);
    let docs: String = (0..3)
        .map(|i| format!("{}\n", json!({"id": format!("doc{i}"), "body": long, "title": format!("Doc {i}")})))
        .collect();
    fs_err::write(import.path().join("docs.jsonl"), docs).unwrap();

    let s = start(data.path(), import.path(), &[]);
    collection(&s, "notes", embedded());
    let body = json!({"collection": "notes", "source": {"type": "file", "path": "notes.jsonl", "format": "jsonl"},
                      "mapping": {"id": "id", "text": ["title"], "payload": ["n"]}, "batch_size": 25});
    let id = create_job(&s, body);
    let v = wait_job(&s, &id, 120, |v| v["progress"]["written"].as_u64().unwrap_or(0) >= 300);
    assert_eq!(v["status"], "running", "{v}");
    drop(s); // SIGKILL mid-job

    let s = start(data.path(), import.path(), &[]);
    let v = wait_end(&s, &id, 300);
    assert_eq!(v["status"], "succeeded", "{v}");
    let p = &v["progress"];
    assert_eq!((p["read"].as_u64(), p["written"].as_u64(), p["failed"].as_u64()), (Some(n), Some(n), Some(0)), "{v}");
    assert_eq!(count(&s, "notes"), n);
    let (status, pt) = point(&s, "notes", "1999");
    assert_eq!(status, 200);
    assert_eq!(pt["payload"], json!({"n": 1999}));
    assert_eq!(pt["text"]["title"], "note number 1999 about topic 1");

    // Chunked documents: one document per row, cut by the collection's chunking.
    let body = json!({"collection": "notes", "source": {"type": "file", "path": "docs.jsonl"},
                      "mapping": {"id": "id", "text": ["body"], "title": "title", "chunk": true}});
    let id = create_job(&s, body);
    let v = wait_end(&s, &id, 120);
    assert_eq!(v["status"], "succeeded", "{v}");
    let chunks = v["progress"]["written"].as_u64().unwrap();
    assert!(chunks > 3, "{v}");
    assert_eq!(count(&s, "notes"), n + chunks);
    let (status, pt) = point(&s, "notes", "doc1%230");
    assert_eq!(status, 200, "{pt}");
    assert_eq!(pt["text"]["title"], "Doc 1");
}

async fn put(c: &aws_sdk_s3::Client, bucket: &str, key: &str, body: String) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into_bytes().into())
        .metadata("origin", "tests")
        .send()
        .await
        .unwrap();
}

fn rows(ids: std::ops::Range<u64>) -> String {
    ids.map(|i| format!("{}\n", json!({"id": i, "title": format!("row {i}"), "v": [i, 1, 2, 3]}))).collect()
}

#[test]
fn s3_jobs_are_incremental_resume_and_fail_clearly() {
    let s3 = S3Server::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt.block_on(s3.client());
    rt.block_on(async {
        c.create_bucket().bucket("data").send().await.unwrap();
        put(&c, "data", "rows/a.jsonl", rows(0..100)).await;
        put(&c, "data", "rows/b.jsonl", rows(100..200)).await;
        let page = "<html><head><title>Tides</title><script>var x;</script></head><body><h1>Tides</h1><p>The moon pulls the sea &amp; makes tides.</p></body></html>";
        put(&c, "data", "pages/tides.html", page.into()).await;
        put(&c, "data", "pages/rivers.md", "# Rivers\n\nRivers run to the sea.".into()).await;
        put(&c, "data", "pages/wind.txt", "Wind moves the waves.".into()).await;
        put(&c, "data", "pages/rain.json", json!({"title": "Rain", "text": "Rain falls from clouds.", "lang": "en"}).to_string()).await;
        put(&c, "data", "pages/image.bin", "not a document".into()).await;
        put(&c, "data", "big/rows.jsonl", (0..1200).map(|i| format!("{}\n", json!({"id": i, "title": format!("long note {i} on subject {}", i % 11)}))).collect()).await;
    });
    let (data, import) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = start(data.path(), import.path(), &[]);
    collection(&s, "rows", vectors4());
    let rows_job = json!({"collection": "rows",
        "source": {"type": "s3", "bucket": "data", "prefix": "rows/", "endpoint": s3.endpoint, "region": "us-east-1", "format": "jsonl"},
        "mapping": {"id": "id", "payload": ["title"], "vector": "v"}, "batch_size": 50});
    let v = wait_end(&s, &create_job(&s, rows_job.clone()), 60);
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["progress"]["written"], 200, "{v}");
    assert_eq!(count(&s, "rows"), 200);
    let (_, p) = point(&s, "rows", "150");
    assert_eq!(p["payload"]["title"], "row 150");
    assert_eq!(p["payload"]["s3"]["key"], "rows/b.jsonl");
    assert_eq!(p["payload"]["s3"]["metadata"], json!({"origin": "tests"}));

    // The same body again: nothing changed, nothing written.
    let v = wait_end(&s, &create_job(&s, rows_job.clone()), 60);
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!((v["progress"]["written"].as_u64(), v["progress"]["skipped"].as_u64()), (Some(0), Some(2)), "{v}");
    // One object changed (half its rows gone), one deleted, one added.
    rt.block_on(async {
        put(&c, "data", "rows/b.jsonl", rows(100..150)).await;
        c.delete_object().bucket("data").key("rows/a.jsonl").send().await.unwrap();
        put(&c, "data", "rows/c.jsonl", rows(300..310)).await;
    });
    let v = wait_end(&s, &create_job(&s, rows_job.clone()), 60);
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["progress"]["written"], 60, "{v}");
    assert_eq!(count(&s, "rows"), 60);
    assert_eq!(point(&s, "rows", "150").0, 404);
    assert_eq!(point(&s, "rows", "0").0, 404);
    assert_eq!(point(&s, "rows", "149").0, 200);
    assert_eq!(point(&s, "rows", "305").0, 200);

    // Documents: HTML stripped, JSON's text, key as id, other extensions ignored.
    collection(&s, "pages", embedded());
    let docs = json!({"collection": "pages",
        "source": {"type": "s3", "bucket": "data", "prefix": "pages/", "endpoint": s3.endpoint, "region": "us-east-1", "format": "documents"},
        "mapping": {"id": "key"}});
    let v = wait_end(&s, &create_job(&s, docs), 60);
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["progress"]["read"], 4, "{v}");
    let (status, p) = point(&s, "pages", "pages%2Ftides.html%230");
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["text"]["title"], "Tides");
    let chunk = p["text"]["text"].as_str().unwrap();
    assert!(chunk.contains("The moon pulls the sea & makes tides.") && !chunk.contains("var x"), "{chunk}");
    let (_, p) = point(&s, "pages", "pages%2Frain.json%230");
    assert_eq!(p["payload"]["lang"], "en");
    assert_eq!(p["payload"]["s3"]["key"], "pages/rain.json");

    // Resume after SIGKILL in the middle of a large object.
    collection(&s, "big", embedded());
    let big = json!({"collection": "big",
        "source": {"type": "s3", "bucket": "data", "prefix": "big/", "endpoint": s3.endpoint, "region": "us-east-1", "format": "jsonl"},
        "mapping": {"id": "id", "text": ["title"]}, "batch_size": 20});
    let id = create_job(&s, big);
    let v = wait_job(&s, &id, 120, |v| v["progress"]["written"].as_u64().unwrap_or(0) >= 200);
    assert_eq!(v["status"], "running", "{v}");
    drop(s);
    let s = start(data.path(), import.path(), &[]);
    let v = wait_end(&s, &id, 300);
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!((v["progress"]["written"].as_u64(), v["progress"]["failed"].as_u64()), (Some(1200), Some(0)), "{v}");
    assert_eq!(count(&s, "big"), 1200);

    // A missing bucket and an unreachable endpoint fail with clear messages and write nothing.
    let mut missing = rows_job.clone();
    missing["source"]["bucket"] = json!("no-such-bucket");
    let v = wait_end(&s, &create_job(&s, missing), 60);
    assert_eq!(v["status"], "failed", "{v}");
    assert!(v["error"].as_str().unwrap().contains("NoSuchBucket"), "{v}");
    let mut unreachable = rows_job;
    unreachable["source"]["endpoint"] = json!("http://127.0.0.1:9");
    unreachable["max_retries"] = json!(1);
    let v = wait_end(&s, &create_job(&s, unreachable), 120);
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["retries"], 1, "{v}");
    assert!(v["error"].as_str().unwrap().contains("gave up after 1 retries"), "{v}");
    assert_eq!(count(&s, "rows"), 60);
}

#[test]
fn postgres_snapshot_query_incremental_and_bad_credentials() {
    let pg = PgCluster::start();
    pg.sql(
        "CREATE TABLE items (id bigint PRIMARY KEY, title text, lang text, price numeric, emb real[], \
         updated_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO items (id, title, lang, price, emb) \
         SELECT i, 'item ' || i, 'en', i * 1.5, ARRAY[i, 1, 2, 3]::real[] FROM generate_series(1, 1200) i",
    );
    let (data, import) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bad = pg.url().replace(&pg.password, "wrong-password");
    let s = start(data.path(), import.path(), &[("PG_URL", &pg.url()), ("PG_BAD", &bad)]);
    for c in ["snap", "few", "sync"] {
        collection(&s, c, vectors4());
    }
    let src = |extra: Value| {
        let mut src = json!({"type": "postgres", "url": pg.url(), "table": "items"});
        for (k, v) in extra.as_object().unwrap() {
            src[k] = v.clone();
        }
        src
    };
    let mapping = json!({"id": "id", "text": ["title"], "payload": ["lang", "price"], "vector": "emb"});
    let id =
        create_job(&s, json!({"collection": "snap", "source": src(json!({})), "mapping": mapping, "batch_size": 100}));
    let v = wait_end(&s, &id, 60);
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["progress"]["written"], 1200, "{v}");
    assert_eq!(v["progress"]["total_items"], 1200, "{v}");
    assert_eq!(v["spec"]["source"]["url"], "(hidden)");
    assert!(!v.to_string().contains(&pg.password), "the password leaked: {v}");
    assert_eq!(count(&s, "snap"), 1200);
    let (_, p) = point(&s, "snap", "7");
    assert_eq!(p["payload"], json!({"lang": "en", "price": 10.5}));
    assert_eq!(p["vector"], json!([7.0, 1.0, 2.0, 3.0]));

    // A query instead of a table, the URL from the server's environment.
    let q = json!({"type": "postgres", "url_env": "PG_URL", "query": "SELECT id, title, emb FROM items WHERE id % 100 = 0"});
    let v = wait_end(
        &s,
        &create_job(&s, json!({"collection": "few", "source": q, "mapping": {"id": "id", "vector": "emb"}})),
        60,
    );
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(count(&s, "few"), 12);

    // A mapped column the table lacks is refused before the job starts.
    let (status, v) = s.send(
        "POST",
        "/v1/jobs",
        &json!({"collection": "snap", "source": src(json!({})), "mapping": {"id": "id", "payload": ["nosuch"], "vector": "emb"}}).to_string(),
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("\"nosuch\""), "{v}");

    // Incremental sync on a cursor column, until cancelled.
    let body = json!({"collection": "sync", "source": src(json!({"mode": "incremental", "cursor_column": "updated_at", "poll_secs": 0.2})),
                      "mapping": mapping, "batch_size": 250});
    let id = create_job(&s, body);
    wait_job(&s, &id, 60, |v| v["progress"]["written"] == 1200 && v["lag"]["seconds"] == 0.0);
    pg.sql("UPDATE items SET lang = 'fr', updated_at = now() + interval '1 second' WHERE id <= 5; \
            INSERT INTO items (id, title, lang, price, emb, updated_at) VALUES (1201, 'new', 'de', 1, ARRAY[1,1,1,1]::real[], now() + interval '1 second')");
    let deadline = Instant::now() + Duration::from_secs(30);
    while point(&s, "sync", "1201").0 != 200 || point(&s, "sync", "3").1["payload"]["lang"] != "fr" {
        assert!(Instant::now() < deadline, "incremental sync did not pick up the changes");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count(&s, "sync"), 1201);
    let (status, v) = s.send("DELETE", &format!("/v1/jobs/{id}"), "");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "cancelled", "{v}");

    // Wrong credentials and an unreachable host: failed, clear, no secret shown.
    let wrong = json!({"type": "postgres", "url_env": "PG_BAD", "table": "items"});
    let v = wait_end(&s, &create_job(&s, json!({"collection": "snap", "source": wrong, "mapping": mapping})), 60);
    assert_eq!(v["status"], "failed", "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!v.to_string().contains("wrong-password"), "{v}");
    let gone = json!({"type": "postgres", "url": "postgres://postgres:pw@127.0.0.1:9/postgres", "table": "items"});
    let v = wait_end(
        &s,
        &create_job(&s, json!({"collection": "snap", "source": gone, "mapping": mapping, "max_retries": 1})),
        60,
    );
    assert_eq!(v["status"], "failed", "{v}");
    assert!(v["error"].as_str().unwrap().contains("gave up after 1 retries"), "{v}");
    assert_eq!(count(&s, "snap"), 1200);
}

/// The collection equals the table, row for row.
fn assert_mirrors(s: &Server, pg: &PgCluster) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rows = pg.sql("SELECT id || '|' || title || '|' || lang FROM products ORDER BY id");
        let rows: Vec<(String, String, String)> = rows
            .lines()
            .map(|l| {
                let mut f = l.splitn(3, '|');
                (f.next().unwrap().into(), f.next().unwrap().into(), f.next().unwrap().into())
            })
            .collect();
        let same = count(s, "products") == rows.len() as u64
            && rows.iter().all(|(id, title, lang)| {
                let (status, p) = point(s, "products", id);
                status == 200 && p["text"]["title"] == title.as_str() && p["payload"]["lang"] == lang.as_str()
            });
        if same {
            return;
        }
        assert!(Instant::now() < deadline, "the collection never matched the table ({} rows)", rows.len());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn cdc_mirrors_inserts_updates_and_deletes_through_kills_and_restarts() {
    let pg = PgCluster::start();
    pg.sql(
        "CREATE TABLE products (id bigint PRIMARY KEY, title text NOT NULL, body text, lang text); \
         INSERT INTO products SELECT i, 'product ' || i, 'a sturdy thing number ' || i, 'en' FROM generate_series(1, 40) i",
    );
    let (data, import) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = start(data.path(), import.path(), &[]);
    collection(&s, "products", embedded());
    let body = json!({"collection": "products",
        "source": {"type": "postgres", "url": pg.url(), "table": "products", "mode": "cdc", "poll_secs": 0.1,
                   "publication": "naksha_pub", "slot": "naksha_products"},
        "mapping": {"id": "id", "text": ["title", "body"], "payload": ["lang"]}, "batch_size": 50});
    let id = create_job(&s, body);
    wait_job(&s, &id, 60, |v| v["progress"]["written"].as_u64() >= Some(40) && v["lag"]["seconds"] == 0.0);
    assert_eq!(count(&s, "products"), 40);
    let before = point(&s, "products", "1").1["vector"].clone();

    pg.sql("UPDATE products SET title = 'volcanic eruptions and lava flows' WHERE id = 1");
    pg.sql("INSERT INTO products SELECT i, 'product ' || i, 'new', 'de' FROM generate_series(41, 60) i");
    pg.sql("DELETE FROM products WHERE id BETWEEN 2 AND 5");
    pg.sql("BEGIN; INSERT INTO products VALUES (999, 'never', 'rolled back', 'xx'); ROLLBACK;");
    assert_mirrors(&s, &pg);
    assert_eq!(point(&s, "products", "999").0, 404);
    let after = point(&s, "products", "1").1["vector"].clone();
    assert_ne!(before, after, "a changed text is embedded again");
    let v = s.get(&format!("/v1/jobs/{id}")).1;
    assert_eq!(v["status"], "running", "{v}");
    assert!(v["lag"]["bytes"].is_u64(), "{v}");

    // SIGKILL while changes stream in; the restarted server resumes from the slot.
    let writer = {
        let pg_sql = pg_sql_fn(&pg);
        std::thread::spawn(move || {
            pg_sql(&[
                "DO $$ BEGIN FOR i IN 100..199 LOOP \
                 INSERT INTO products VALUES (i, 'streamed ' || i, 'b', 'it'); COMMIT; PERFORM pg_sleep(0.01); \
                 END LOOP; END $$",
                "UPDATE products SET lang = 'es' WHERE id % 7 = 0",
                "DELETE FROM products WHERE id % 10 = 3",
            ])
        })
    };
    std::thread::sleep(Duration::from_millis(400));
    drop(s);
    writer.join().unwrap();
    let s = start(data.path(), import.path(), &[]);
    assert_mirrors(&s, &pg);

    // Postgres restarts mid-stream: the job reconnects and carries on.
    pg.sql("INSERT INTO products SELECT i, 'before restart ' || i, 'c', 'pt' FROM generate_series(300, 320) i");
    pg.restart();
    pg.sql("INSERT INTO products SELECT i, 'after restart ' || i, 'c', 'nl' FROM generate_series(321, 340) i; \
            UPDATE products SET title = 'renamed ' || id WHERE id BETWEEN 300 AND 305; DELETE FROM products WHERE id = 310");
    assert_mirrors(&s, &pg);
    let v = s.get(&format!("/v1/jobs/{id}")).1;
    assert_eq!(v["status"], "running", "{v}");

    // Cancelling drops the job's replication slot.
    assert_eq!(pg.sql("SELECT count(*) FROM pg_replication_slots"), "1");
    let (status, v) = s.send("DELETE", &format!("/v1/jobs/{id}"), "");
    assert_eq!((status, v["status"].as_str()), (200, Some("cancelled")), "{v}");
    assert_eq!(pg.sql("SELECT count(*) FROM pg_replication_slots"), "0");
}

/// `pg.sql` as an owned closure (for a writer thread).
fn pg_sql_fn(pg: &PgCluster) -> impl FnOnce(&[&str]) + Send + 'static {
    let url = pg.url();
    move |statements: &[&str]| {
        let mut cmd = std::process::Command::new("psql");
        cmd.args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-qAt"]);
        for sql in statements {
            cmd.args(["-c", sql]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

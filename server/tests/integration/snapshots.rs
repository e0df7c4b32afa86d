//! Snapshots, downloads, restores and S3 backups end to end (#21): the real
//! binary, a real S3-compatible server (moto) on loopback, archives damaged
//! on purpose, tenants kept apart, scheduled backups with retention, and the
//! server killed in every phase.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use naksha_ingest::testing::S3Server;
use naksha_server::cli::Client;
use serde_json::{json, Value};

use crate::server::Server;

const ADMIN: &str = "snapshot-admin-key-0123456789";

fn start(data: &Path, s3: &S3Server, extra: &[(&str, &str)]) -> Server {
    let mut env: Vec<(&str, String)> = vec![
        ("NAKSHA__BACKUP__S3_BUCKET", "backups".into()),
        ("NAKSHA__BACKUP__S3_ENDPOINT", s3.endpoint.clone()),
        ("NAKSHA__BACKUP__S3_PART_MIB", "5".into()),
        // No background flush: an original and its restored copy then hold the same memtable, and answer alike.
        ("NAKSHA__STORAGE__FLUSH_POINTS", "100000".into()),
    ];
    env.extend(S3Server::env().iter().map(|(k, v)| (*k, v.to_string())));
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(data, &env)
}

fn bucket(s3: &S3Server) -> (tokio::runtime::Runtime, aws_sdk_s3::Client) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt.block_on(s3.client());
    let _ = rt.block_on(c.create_bucket().bucket("backups").send());
    (rt, c)
}

fn collection(c: &Client, name: &str, dim: usize) {
    let body = json!({"vectors": {"dim": dim, "metric": "cosine"}, "text_fields": ["body"],
                      "payload_index": {"tag": "keyword"}});
    let (st, v) =
        c.request("PUT", &format!("/v1/collections/{name}"), Some(("application/json", body.to_string()))).unwrap();
    assert_eq!(st, 201, "{v}");
}

const WORDS: [&str; 6] = ["harbor", "lantern", "meadow", "saffron", "glacier", "orchard"];

/// `n` points from `first`, `dim`-dimensional, in NDJSON batches; returns the last seq.
fn fill(c: &Client, name: &str, first: u64, n: u64, dim: usize) -> u64 {
    let mut seq = 0;
    let mut i = first;
    while i < first + n {
        let end = (i + 1000).min(first + n);
        let body: String = (i..end)
            .map(|j| {
                let v: Vec<f32> = (0..dim)
                    .map(|d| ((j.wrapping_mul(2_654_435_761) ^ (d as u64 * 40_503)) % 1009) as f32 - 504.0)
                    .collect();
                let text = format!("{} {} item{j}", WORDS[(j % 6) as usize], WORDS[(j / 6 % 6) as usize]);
                format!(
                    "{}\n",
                    json!({"id": j, "vector": v, "payload": {"tag": format!("t{}", j % 4)}, "text": {"body": text}})
                )
            })
            .collect();
        let (st, v) =
            c.request("POST", &format!("/v1/collections/{name}/points"), Some(("application/x-ndjson", body))).unwrap();
        assert_eq!(st, 200, "{v}");
        seq = v["seq"].as_u64().unwrap();
        i = end;
    }
    seq
}

/// The answers to a fixed set of queries (vector, filtered, text, hybrid), ids and scores.
fn answers(c: &Client, name: &str, dim: usize) -> Vec<Value> {
    let q: Vec<f32> = (0..dim).map(|d| (d % 5) as f32 - 2.0).collect();
    let bodies = [
        json!({"vector": q, "limit": 10}),
        json!({"vector": q, "limit": 10, "filter": {"must": [{"key": "tag", "match": "t1"}]}}),
        json!({"text": "lantern meadow", "mode": "text", "limit": 10}),
        json!({"vector": q, "text": "saffron", "mode": "hybrid", "limit": 10}),
    ];
    bodies
        .iter()
        .map(|b| {
            let (st, v) = c
                .request("POST", &format!("/v1/collections/{name}/query"), Some(("application/json", b.to_string())))
                .unwrap();
            assert_eq!(st, 200, "{v}");
            let hits = v["results"].as_array().unwrap();
            assert!(!hits.is_empty(), "{b}: {v}");
            // Ties may come in any order (a flush after the cut reorders them): every score, and the
            // ids of the hits not tied with the last one.
            let scores: Vec<Value> = hits.iter().map(|h| h["score"].clone()).collect();
            let last = scores.last().cloned();
            let mut ids: Vec<String> =
                hits.iter().filter(|h| Some(&h["score"]) != last.as_ref()).map(|h| h["id"].to_string()).collect();
            ids.sort();
            json!({"scores": scores, "ids": ids})
        })
        .collect()
}

fn post(c: &Client, path: &str, body: Value) -> (u16, Value) {
    c.request("POST", path, Some(("application/json", body.to_string()))).unwrap()
}

fn points(c: &Client, name: &str) -> u64 {
    let (st, v) = c.request("GET", &format!("/v1/collections/{name}"), None).unwrap();
    assert_eq!(st, 200, "{v}");
    v["points"].as_u64().unwrap()
}

fn upload(c: &Client, path: &str, bytes: &[u8], dir: &Path) -> Result<Value, String> {
    let file = dir.join("upload.tar");
    fs_err::write(&file, bytes).unwrap();
    c.upload(path, &file).map_err(|e| e.to_string())
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<String>) {
        for e in fs_err::read_dir(d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let bad = name.ends_with(".partial")
                || name.ends_with(".restoring")
                || name.ends_with(".tmp")
                || name.starts_with(".staging-")
                || name.starts_with("in-");
            if bad {
                out.push(e.path().display().to_string());
            }
            if e.path().is_dir() {
                walk(&e.path(), out);
            }
        }
    }
    walk(dir, &mut out);
    out
}

#[test]
fn snapshots_download_restore_and_go_to_s3_over_the_api() {
    let s3 = S3Server::start();
    let (rt, bucket_client) = bucket(&s3);
    let (data, restore_dir, work) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dirs = format!("[{:?}]", restore_dir.path().display().to_string());
    let s = start(data.path(), &s3, &[("NAKSHA__BACKUP__RESTORE_DIRS", &dirs)]);
    let c = &s.client;
    const DIM: usize = 64;
    collection(c, "docs", DIM);

    // A snapshot taken while a writer keeps upserting holds a prefix of its batches, cut at its seq.
    // The cut comes after the writer's first batch; the writer goes on until it has written one after
    // the cut, and at least 40 (20 000 points: an archive over the 5 MiB multipart part below).
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let (written, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let writer = {
        let (url, written, stop) = (s.url.clone(), written.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = Client::new(&url, None);
            let mut seqs = Vec::new();
            while seqs.len() < 40 || !stop.load(Ordering::SeqCst) {
                seqs.push(fill(&c, "docs", seqs.len() as u64 * 500, 500, DIM));
                written.fetch_add(1, Ordering::SeqCst);
            }
            seqs
        })
    };
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while written.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "the writer stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(1);
    let (st, cut) = post(c, "/v1/collections/docs/snapshots", json!({}));
    assert_eq!(st, 201, "{cut}");
    wait_for(written.load(Ordering::SeqCst) + 1);
    stop.store(true, Ordering::SeqCst);
    let seqs = writer.join().unwrap();
    let at = cut["seq"].as_u64().unwrap();
    let batches = seqs.iter().filter(|s| **s <= at).count() as u64;
    assert!(batches >= 1 && batches < seqs.len() as u64, "the snapshot was not taken during the writes: {cut}");
    assert_eq!(cut["points"].as_u64(), Some(batches * 500), "{cut} vs seqs {seqs:?}");
    let (st, v) = post(
        c,
        &format!("/v1/collections/docs/snapshots/{}/restore", cut["id"].as_str().unwrap()),
        json!({"target": "cut"}),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!((v["seq"].as_u64(), v["points"].as_u64()), (Some(at), Some(batches * 500)), "{v}");
    assert_eq!(points(c, "cut"), batches * 500);

    // A quiet snapshot, downloaded, then restored by upload, by path and from the node's own copy.
    let before = answers(c, "docs", DIM);
    let (st, snap) = post(c, "/v1/collections/docs/snapshots", json!({}));
    assert_eq!(st, 201, "{snap}");
    let id = snap["id"].as_str().unwrap().to_owned();
    for k in ["id", "collection", "seq", "size_bytes", "sha256", "created_at"] {
        assert!(!snap[k].is_null(), "{k}: {snap}");
    }
    let (st, list) = c.request("GET", "/v1/collections/docs/snapshots", None).unwrap();
    assert_eq!((st, list["snapshots"].as_array().unwrap().len()), (200, 2), "{list}");
    let archive = work.path().join("docs.tar");
    let n = c.download(&format!("/v1/collections/docs/snapshots/{id}"), &archive).unwrap();
    assert_eq!(Some(n), snap["size_bytes"].as_u64());
    let bytes = fs_err::read(&archive).unwrap();
    let (_, sha) = naksha_query::snapshot::hash_file(&archive).unwrap();
    assert_eq!(sha, snap["sha256"].as_str().unwrap());

    let v = upload(c, "/v1/snapshots/restore?target=uploaded", &bytes, work.path()).unwrap();
    assert_eq!(v["collection"], "uploaded", "{v}");
    assert_eq!(v["sha256"], snap["sha256"], "{v}");
    fs_err::write(restore_dir.path().join("docs.tar"), &bytes).unwrap();
    let (st, v) = post(c, "/v1/snapshots/restore", json!({"path": "docs.tar", "target": "by_path", "sha256": sha}));
    assert_eq!(st, 201, "{v}");
    let (st, v) = post(c, &format!("/v1/collections/docs/snapshots/{id}/restore"), json!({"target": "local"}));
    assert_eq!(st, 201, "{v}");
    for name in ["uploaded", "by_path", "local"] {
        assert_eq!(answers(c, name, DIM), before, "{name} answers as docs did");
        assert_eq!(points(c, name), points(c, "docs"));
    }

    // Refusals change nothing.
    let (st, v) = post(c, &format!("/v1/collections/docs/snapshots/{id}/restore"), json!({"target": "docs"}));
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("already_exists")), "{v}");
    let (st, v) = post(c, "/v1/snapshots/restore", json!({"path": "../docs.tar", "target": "x1"}));
    assert_eq!(st, 403, "{v}");
    let (st, v) =
        post(c, "/v1/snapshots/restore", json!({"path": "docs.tar", "target": "x1", "sha256": "00".repeat(32)}));
    assert_eq!(st, 400, "{v}");
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    for (what, b) in [("flipped", &flipped[..]), ("truncated", &bytes[..bytes.len() / 3]), ("junk", &b"not a tar"[..])]
    {
        let e = upload(c, "/v1/snapshots/restore?target=x2", b, work.path()).unwrap_err();
        assert!(e.starts_with("400"), "{what}: {e}");
        assert_eq!(c.request("GET", "/v1/collections/x2", None).unwrap().0, 404, "{what}");
    }
    let future = rewrite_version(&bytes, 7);
    let e = upload(c, "/v1/snapshots/restore?target=x3", &future, work.path()).unwrap_err();
    assert!(e.contains("format version 7 is newer"), "{e}");
    assert_eq!(c.request("GET", "/v1/collections/docs/snapshots/nope", None).unwrap().0, 404);

    // To S3 (a multipart upload: the archive is larger than the 5 MiB part), listed, restored from there.
    assert!(bytes.len() > 5 << 20, "{} bytes: too small for a multipart upload", bytes.len());
    let (st, up) = post(c, "/v1/collections/docs/snapshots", json!({"upload": "s3"}));
    assert_eq!(st, 201, "{up}");
    let key = up["s3_key"].as_str().unwrap().to_owned();
    assert_eq!(key, format!("naksha/default/docs/{}.tar", up["id"].as_str().unwrap()));
    let head = rt.block_on(bucket_client.head_object().bucket("backups").key(&key).send()).unwrap();
    assert_eq!(head.metadata().unwrap()["sha256"], up["sha256"].as_str().unwrap());
    assert_eq!(head.content_length(), up["size_bytes"].as_i64());
    let (st, listed) = c.request("GET", "/v1/snapshots/s3", None).unwrap();
    assert_eq!(st, 200, "{listed}");
    assert_eq!(
        listed["snapshots"].as_array().unwrap().iter().map(|o| o["key"].clone()).collect::<Vec<_>>(),
        [json!(key)]
    );
    let (st, v) = post(c, "/v1/snapshots/restore", json!({"s3": {"key": key}, "target": "from_s3"}));
    assert_eq!(st, 201, "{v}");
    assert_eq!(answers(c, "from_s3", DIM), before);
    let (st, v) =
        post(c, "/v1/snapshots/restore", json!({"s3": {"key": "naksha/default/docs/none.tar"}, "target": "x4"}));
    assert_eq!(st, 404, "{v}");
    let (st, v) = post(c, "/v1/snapshots/restore", json!({"s3": {"key": "naksha/other/docs/a.tar"}, "target": "x4"}));
    assert_eq!(st, 404, "{v}");

    // Every collection at once; a deleted collection comes back from its snapshot; deletes.
    let (st, all) = post(c, "/v1/snapshots", json!({}));
    assert_eq!(st, 201, "{all}");
    assert_eq!(all["snapshots"].as_array().unwrap().len(), 6, "{all}");
    assert_eq!(c.request("DELETE", "/v1/collections/docs", None).unwrap().0, 200);
    let (st, v) = post(c, &format!("/v1/collections/docs/snapshots/{id}/restore"), json!({"target": "docs"}));
    assert_eq!(st, 201, "{v}");
    assert_eq!(answers(c, "docs", DIM), before);
    assert_eq!(c.request("DELETE", &format!("/v1/collections/docs/snapshots/{id}"), None).unwrap().0, 200);
    assert_eq!(c.request("DELETE", &format!("/v1/collections/docs/snapshots/{id}"), None).unwrap().0, 404);

    let (_, metrics) = s.get("/metrics");
    let text = metrics.as_str().unwrap();
    for op in ["create", "restore", "upload", "download", "s3_download"] {
        assert!(text.contains(&format!("naksha_snapshot_operations_total{{op=\"{op}\",outcome=\"ok\"}}")), "{op}");
    }
    assert!(text.contains("naksha_snapshot_operations_total{op=\"restore\",outcome=\"error\"}"));
    assert!(leftovers(data.path()).is_empty(), "{:?}", leftovers(data.path()));
    drop(s.stop());
}

/// The archive with its manifest's format version replaced (the files untouched).
fn rewrite_version(bytes: &[u8], version: u32) -> Vec<u8> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = tar::Builder::new(Vec::new());
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if path == naksha_query::snapshot::MANIFEST_ENTRY {
            let mut m: Value = serde_json::from_slice(&data).unwrap();
            m["format_version"] = json!(version);
            data = serde_json::to_vec(&m).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        out.append_data(&mut h, &path, data.as_slice()).unwrap();
    }
    out.into_inner().unwrap()
}

fn admin(s: &Server, tenant: Option<&str>) -> Client {
    Client::new(&s.url, Some(ADMIN.into())).with_tenant(tenant.map(str::to_owned))
}

#[test]
fn scheduled_backups_follow_the_schedule_keep_tenants_apart_and_prune() {
    let s3 = S3Server::start();
    let (rt, bucket_client) = bucket(&s3);
    let data = tempfile::tempdir().unwrap();
    // Three firings 3 s apart, starting 8 s from now, then none for 51 s: what follows the
    // firings (listing, restoring a listed backup) cannot race a new upload or its pruning.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let schedule = format!("{},{},{} * * * * *", (now + 8) % 60, (now + 11) % 60, (now + 14) % 60);
    let fired = Instant::now() + Duration::from_secs(17);
    let s = start(
        data.path(),
        &s3,
        &[
            ("NAKSHA_API_KEY", ADMIN),
            ("NAKSHA__BACKUP__SCHEDULE", &schedule),
            ("NAKSHA__BACKUP__KEEP_DAILY", "1"),
            ("NAKSHA__BACKUP__KEEP_WEEKLY", "0"),
        ],
    );
    let root = admin(&s, None);
    let (st, v) = post(&root, "/v1/tenants", json!({"name": "acme"}));
    assert_eq!(st, 201, "{v}");
    let acme = admin(&s, Some("acme"));
    collection(&root, "mine", 4);
    collection(&acme, "theirs", 4);
    fill(&root, "mine", 0, 50, 4);
    fill(&acme, "theirs", 0, 70, 4);
    let (st, key) = post(&root, "/v1/tenants/acme/keys", json!({"role": "tenant_admin"}));
    assert_eq!(st, 201, "{key}");
    let acme_key = Client::new(&s.url, Some(key["key"].as_str().unwrap().into()));

    // The firings each upload under scheduled/, and retention (keep_daily 1) leaves one per collection.
    let objects = || -> Vec<String> {
        let out = rt.block_on(bucket_client.list_objects_v2().bucket("backups").send()).unwrap();
        let mut keys: Vec<String> = out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
        keys.sort();
        keys
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let uploads = |s: &Server| -> u64 {
        let (_, m) = s.client.request("GET", "/metrics", None).unwrap();
        let text = m.as_str().unwrap_or_default().to_owned();
        text.lines()
            .find(|l| l.starts_with("naksha_snapshot_operations_total{op=\"upload\",outcome=\"ok\"}"))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    loop {
        let keys = objects();
        let pruned = keys.len() == 2
            && keys[0].starts_with("naksha/acme/theirs/scheduled/")
            && keys[1].starts_with("naksha/default/mine/scheduled/");
        // At least two firings saw both collections, so retention had something to prune.
        if Instant::now() > fired && uploads(&s) >= 4 && pruned {
            break;
        }
        assert!(Instant::now() < deadline, "scheduled backups did not settle: {keys:?}, {} uploads", uploads(&s));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Each tenant sees only its own backups, and cannot name another's.
    let (st, v) = acme_key.request("GET", "/v1/snapshots/s3", None).unwrap();
    assert_eq!(st, 200, "{v}");
    let listed: Vec<&str> =
        v["snapshots"].as_array().unwrap().iter().map(|o| o["collection"].as_str().unwrap()).collect();
    assert_eq!(listed, ["theirs"], "{v}");
    assert!(v["snapshots"][0]["scheduled"].as_bool().unwrap());
    let theirs = v["snapshots"][0]["key"].as_str().unwrap().to_owned();
    let (_, v) = root.request("GET", "/v1/snapshots/s3", None).unwrap();
    let mine = v["snapshots"][0]["key"].as_str().unwrap().to_owned();
    let (st, v) = post(&acme_key, "/v1/snapshots/restore", json!({"s3": {"key": mine}, "target": "stolen"}));
    assert_eq!(st, 404, "{v}");
    let (st, v) =
        post(&acme_key, "/v1/snapshots/restore", json!({"s3": {"key": mine, "bucket": "backups"}, "target": "stolen"}));
    assert_eq!(st, 403, "{v}");
    let (st, v) = acme_key.request("GET", "/v1/collections/mine/snapshots", None).unwrap();
    assert_eq!(st, 404, "{v}");
    // A tenant restores its own scheduled backup.
    let (st, v) = post(&acme_key, "/v1/snapshots/restore", json!({"s3": {"key": theirs}, "target": "back"}));
    assert_eq!(st, 201, "{v}");
    assert_eq!(points(&acme_key, "back"), 70);
    // Scheduled backups are audited, under the tenant they concern.
    let (st, audit) = root.request("GET", "/v1/audit?action=snapshots.scheduled", None).unwrap();
    assert_eq!(st, 200, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["tenant"] == "acme" && e["outcome"] == "ok"), "{audit}");
    assert!(entries.iter().any(|e| e["tenant"] == "default" && e["outcome"] == "ok"), "{audit}");
    drop(s.stop());
    // The local archives of scheduled snapshots are gone once uploaded.
    assert!(leftovers(data.path()).is_empty(), "{:?}", leftovers(data.path()));
}

fn snapshot_files(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs_err::read_dir(data.join("snapshots/docs")).into_iter().flatten().flatten() {
        out.push(e.path());
    }
    out.sort();
    out
}

#[test]
fn a_kill_in_any_phase_leaves_no_partial_snapshot_restore_or_upload() {
    let s3 = S3Server::start();
    let (rt, bucket_client) = bucket(&s3);
    let (data, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = start(data.path(), &s3, &[]);
    collection(&s.client, "docs", 64);
    fill(&s.client, "docs", 0, 12_000, 64);
    let (st, snap) = post(&s.client, "/v1/collections/docs/snapshots", json!({}));
    assert_eq!(st, 201, "{snap}");
    let id = snap["id"].as_str().unwrap().to_owned();
    let archive = work.path().join("docs.tar");
    s.client.download(&format!("/v1/collections/docs/snapshots/{id}"), &archive).unwrap();
    let before = answers(&s.client, "docs", 64);
    let files = snapshot_files(data.path());
    drop(s.stop());

    let check = |s: &Server, phase: &str| {
        assert_eq!(answers(&s.client, "docs", 64), before, "{phase}: the original changed");
        assert_eq!(snapshot_files(data.path()), files, "{phase}: snapshots");
        let (_, list) = s.client.request("GET", "/v1/collections", None).unwrap();
        let names: Vec<&str> =
            list["collections"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["docs"], "{phase}: {list}");
        assert!(leftovers(data.path()).is_empty(), "{phase}: {:?}", leftovers(data.path()));
    };
    // An injected crash (abort, as SIGKILL) at each step of a snapshot and a restore.
    for (fault, action) in [
        ("snapshot.pack=crash", "snapshot"),
        ("snapshot.before_publish=crash", "snapshot"),
        ("restore.write=crash@2", "restore"),
        ("restore.before_rename=crash", "restore"),
    ] {
        let s = start(data.path(), &s3, &[("NAKSHA_FAULTS", fault)]);
        let r = match action {
            "snapshot" => s
                .client
                .request("POST", "/v1/collections/docs/snapshots", Some(("application/json", "{}".into())))
                .map(|r| r.0),
            _ => s.client.upload("/v1/snapshots/restore?target=copy", &archive).map(|_| 201),
        };
        assert!(r.is_err() || r.as_ref().is_ok_and(|st| *st >= 500), "{fault}: {r:?}");
        drop(s);
        let s = start(data.path(), &s3, &[]);
        check(&s, fault);
        drop(s.stop());
    }
    // SIGKILL at random moments of a snapshot, an upload to S3 and a restore by upload.
    // Kill delays spread over each operation (a snapshot of this collection takes some 100 ms to 1 s here).
    for (round, delay) in [40u64, 150, 90, 300, 220, 600].into_iter().enumerate() {
        let s = start(data.path(), &s3, &[]);
        let url = s.url.clone();
        let path = archive.clone();
        let req = std::thread::spawn(move || {
            let c = Client::new(&url, None);
            match round % 3 {
                0 => c
                    .request("POST", "/v1/collections/docs/snapshots", Some(("application/json", "{}".into())))
                    .map(|r| r.0),
                1 => c
                    .request(
                        "POST",
                        "/v1/collections/docs/snapshots",
                        Some(("application/json", r#"{"upload": "s3"}"#.into())),
                    )
                    .map(|r| r.0),
                _ => c.upload("/v1/snapshots/restore?target=copy", &path).map(|_| 201),
            }
        });
        std::thread::sleep(Duration::from_millis(delay));
        drop(s); // SIGKILL
        let finished = req.join().unwrap();
        let s = start(data.path(), &s3, &[]);
        // Whatever finished before the kill is complete, everything else is gone. A restore
        // can finish with its reply lost to the kill: then it is visible, and whole.
        if round % 3 == 2 {
            let (st, v) = s.client.request("GET", "/v1/collections/copy", None).unwrap();
            if st == 200 {
                assert_eq!(answers(&s.client, "copy", 64), before, "round {round}: a visible restore is partial");
                assert_eq!(s.client.request("DELETE", "/v1/collections/copy", None).unwrap().0, 200);
            } else {
                assert_eq!(st, 404, "{v}");
                assert!(!matches!(finished, Ok(201)), "round {round}: an acknowledged restore is gone");
            }
        }
        let (_, list) = s.client.request("GET", "/v1/collections/docs/snapshots", None).unwrap();
        for snap in list["snapshots"].as_array().unwrap().iter().filter(|x| x["id"] != id.as_str()) {
            let sid = snap["id"].as_str().unwrap();
            let (st, v) =
                post(&s.client, &format!("/v1/collections/docs/snapshots/{sid}/restore"), json!({"target": "probe"}));
            assert_eq!(st, 201, "round {round}: a listed snapshot does not restore: {v}");
            assert_eq!(s.client.request("DELETE", "/v1/collections/probe", None).unwrap().0, 200);
            assert_eq!(
                s.client.request("DELETE", &format!("/v1/collections/docs/snapshots/{sid}"), None).unwrap().0,
                200
            );
        }
        let listed = rt.block_on(bucket_client.list_objects_v2().bucket("backups").send()).unwrap();
        for o in listed.contents() {
            let key = o.key().unwrap().to_owned();
            let (st, v) = post(&s.client, "/v1/snapshots/restore", json!({"s3": {"key": key}, "target": "probe"}));
            assert_eq!(st, 201, "round {round}: an object in the bucket does not restore: {v}");
            assert_eq!(s.client.request("DELETE", "/v1/collections/probe", None).unwrap().0, 200);
            rt.block_on(bucket_client.delete_object().bucket("backups").key(&key).send()).unwrap();
        }
        check(&s, &format!("SIGKILL round {round}"));
        drop(s.stop());
    }
}

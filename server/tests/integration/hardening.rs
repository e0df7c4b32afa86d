//! #17, as an attacker and an unlucky operator would try it: hostile filters,
//! ids, media types, Host and Origin headers, slow and idle connections,
//! oversize declarations, too many connections, and a disk that fills up.
//! Every case failed on the main before #17 (each is named where it is checked).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::Server;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn addr(s: &Server) -> String {
    s.url.trim_start_matches("http://").to_owned()
}

/// Send raw bytes on a fresh connection and read the reply until the server
/// closes it or `wait` passes.
fn raw(s: &Server, request: &[u8], wait: Duration) -> String {
    let mut c = TcpStream::connect(addr(s)).unwrap();
    c.set_read_timeout(Some(wait)).unwrap();
    c.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Status line and JSON body of a raw reply.
fn parse(reply: &str) -> (u16, Value) {
    let status = reply.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Whether the server closed `c` within `within` (read returns EOF or a reset).
fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
    c.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a reply (408 or similar) before the close
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

fn points(s: &Server) -> u64 {
    s.get("/v1/collections/h").1["points"].as_u64().unwrap()
}

#[test]
fn hostile_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &[
            ("NAKSHA__SERVER__BODY_LIMIT_BYTES", "4194304"),
            ("NAKSHA__SERVER__MAX_CONNECTIONS", "6"),
            ("NAKSHA__SERVER__HEADER_READ_TIMEOUT_SECS", "1"),
            ("NAKSHA__SERVER__BODY_READ_TIMEOUT_SECS", "1"),
        ],
    );
    assert_eq!(s.send("PUT", "/v1/collections/h", r#"{"vectors": {"dim": 2, "metric": "l2"}}"#).0, 201);
    let seed = json!({"points": [
        {"id": 1, "vector": [1, 0], "payload": {"lang": "en"}},
        {"id": 2, "vector": [0, 1], "payload": {"lang": "de"}},
        {"id": "777", "vector": [1, 1], "payload": {"lang": "en"}},
    ]});
    assert_eq!(s.send("POST", "/v1/collections/h/points", &seed.to_string()).0, 200);

    // Filters that are not filters: arrays deleted everything (or the matches) before.
    for body in [
        r#"{"filter": []}"#,
        r#"{"filter": [[]]}"#,
        r#"{"filter": [[{"key": "lang", "match": "en"}]]}"#,
        r#"{"filter": {}}"#,
        r#"{"filter": {"must": []}}"#,
        r#"{"filter": {"must": [{}]}}"#,
        r#"{"all": false}"#,
        r#"{"ids": [1], "all": true}"#,
    ] {
        let (st, v) = s.send("POST", "/v1/collections/h/points/delete", body);
        assert_eq!((st, code(&v)), (400, "invalid_argument"), "{body}: {v}");
    }
    let (st, v) = s.send("POST", "/v1/collections/h/query", r#"{"vector": [1, 0], "filter": []}"#);
    assert_eq!((st, code(&v)), (400, "invalid_argument"), "a query with an array as filter: {v}");
    assert_eq!(points(&s), 3);

    // Ids: one rule, and every accepted id fetchable.
    for id in [json!(""), json!("x".repeat(513))] {
        let body = json!({"points": [{"id": id, "vector": [1, 1]}]}).to_string();
        let (st, v) = s.send("POST", "/v1/collections/h/points", &body);
        assert_eq!((st, code(&v)), (400, "invalid_argument"), "{v}");
    }
    let long = "y".repeat(512);
    let body = json!({"points": [{"id": long, "vector": [2, 2]}]}).to_string();
    assert_eq!(s.send("POST", "/v1/collections/h/points", &body).0, 200);
    assert_eq!(s.get(&format!("/v1/collections/h/points/{long}")).0, 200);
    assert_eq!(s.get("/v1/collections/h/points/777").0, 404, "all digits: the numeric id 777");
    let (st, v) = s.get("/v1/collections/h/points/777?id_type=string");
    assert_eq!((st, &v["id"]), (200, &json!("777")), "the string id \"777\" is fetchable: {v}");
    assert_eq!(s.get("/v1/collections/h/points/1?id_type=number").0, 200);
    assert_eq!(s.get("/v1/collections/h/points/x?id_type=number").0, 400);
    // Payloads: bounded in depth and size per point.
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({ "a": deep });
    }
    let body = json!({"points": [{"id": 9, "vector": [1, 1], "payload": {"d": deep}}]}).to_string();
    let (st, v) = s.send("POST", "/v1/collections/h/points", &body);
    assert_eq!((st, code(&v)), (400, "invalid_argument"), "{v}");
    let body = json!({"points": [{"id": 9, "vector": [1, 1], "payload": {"n": vec![1; 300_000]}}]}).to_string();
    let (st, v) = s.send("POST", "/v1/collections/h/points", &body);
    assert_eq!((st, code(&v)), (400, "invalid_argument"), "a 300k-number payload: {v}");
    // Memory is accounted honestly: a 900 kB payload shows in memory_bytes.
    let before = s.get("/v1/collections/h").1["memory_bytes"].as_u64().unwrap();
    let body = json!({"points": [{"id": 10, "vector": [1, 1], "payload": {"s": "z".repeat(900_000)}}]}).to_string();
    assert_eq!(s.send("POST", "/v1/collections/h/points", &body).0, 200);
    let after = s.get("/v1/collections/h").1["memory_bytes"].as_u64().unwrap();
    assert!(after >= before + 900_000, "memory_bytes {before} -> {after}");

    // Every error status has the JSON body: 404 route, 405, 414, 415, bad path encoding.
    let (st, v) = s.get("/v1/nope");
    assert_eq!((st, code(&v)), (404, "not_found"));
    let (st, v) = s.client.request("DELETE", "/v1/collections/h/points", None).unwrap();
    assert_eq!((st, code(&v)), (405, "method_not_allowed"), "{v}");
    let (st, v) = s.get(&format!("/v1/collections/h/points/{}", "q".repeat(9000)));
    assert_eq!((st, code(&v)), (414, "uri_too_long"), "{v}");
    let (st, v) = s.get("/v1/collections/h/points/%FF%FE");
    assert_eq!((st, code(&v)), (400, "invalid_argument"), "{v}");
    let (st, v) = s.get("/v1/collections/h/points/1?bogus=1");
    assert_eq!((st, code(&v)), (400, "invalid_argument"), "{v}");

    // Browsers: text/plain (no preflight) is refused; so are foreign origins and hosts.
    let port = addr(&s).rsplit(':').next().unwrap().to_owned();
    let body = r#"{"ids": [1]}"#;
    let post = |headers: &str| {
        let req = format!(
            "POST /v1/collections/h/points/delete HTTP/1.1\r\n{headers}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        parse(&raw(&s, req.as_bytes(), Duration::from_secs(5)))
    };
    let (st, v) = post(&format!("host: 127.0.0.1:{port}\r\ncontent-type: text/plain"));
    assert_eq!((st, code(&v)), (415, "unsupported_media_type"), "{v}");
    let (st, v) = post(&format!("host: 127.0.0.1:{port}\r\ncontent-type: application/x-www-form-urlencoded"));
    assert_eq!((st, code(&v)), (415, "unsupported_media_type"), "{v}");
    let (st, v) =
        post(&format!("host: 127.0.0.1:{port}\r\ncontent-type: application/json\r\norigin: https://evil.example"));
    assert_eq!((st, code(&v)), (403, "permission_denied"), "cross-site request: {v}");
    let (st, v) = post(&format!("host: rebind.evil.example:{port}\r\ncontent-type: application/json"));
    assert_eq!((st, code(&v)), (403, "permission_denied"), "DNS rebinding: {v}");
    assert_eq!(points(&s), 5, "refused requests changed nothing");
    let (st, _) = post(&format!("host: localhost:{port}\r\ncontent-type: application/json"));
    assert_eq!(st, 200, "the server's own name is accepted");

    // A declared 10 GiB body is refused at once, not read.
    let started = Instant::now();
    let req = format!(
        "POST /v1/collections/h/points HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        10u64 << 30
    );
    let (st, v) = parse(&raw(&s, req.as_bytes(), Duration::from_secs(10)));
    assert_eq!((st, code(&v)), (413, "payload_too_large"), "{v}");
    assert!(started.elapsed() < Duration::from_secs(3), "413 took {:?}", started.elapsed());

    // Slow and idle connections are closed: nothing sent, partial headers,
    // idle keep-alive, a stalled body (answered 408). First let the client's
    // pooled keep-alive connections time out, so only these count.
    std::thread::sleep(Duration::from_millis(1500));
    let mut silent = TcpStream::connect(addr(&s)).unwrap();
    let mut partial = TcpStream::connect(addr(&s)).unwrap();
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").unwrap();
    let mut idle = TcpStream::connect(addr(&s)).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut stalled = TcpStream::connect(addr(&s)).unwrap();
    stalled
        .write_all(b"POST /v1/collections/h/points HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"points\": [")
        .unwrap();
    // Meanwhile the connection limit (6) holds: these four plus two more fill it.
    let extra: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr(&s)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (st, v) = parse(&raw(&s, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", Duration::from_secs(5)));
    assert_eq!((st, code(&v)), (503, "unavailable"), "one connection over the limit: {v}");
    for (name, c) in [("silent", &mut silent), ("partial headers", &mut partial), ("idle keep-alive", &mut idle)] {
        assert!(closed_within(c, Duration::from_secs(5)), "{name} connection still open");
    }
    let mut reply = String::new();
    stalled.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = stalled.read_to_string(&mut reply);
    assert_eq!(parse(&reply).0, 408, "stalled body: {reply}");
    drop(extra);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s.get("/healthz").0, 200, "the server answers again once connections are gone");

    // The explicit bulk delete.
    let (st, v) = s.send("POST", "/v1/collections/h/points/delete", r#"{"all": true}"#);
    assert_eq!((st, v["deleted"].as_u64()), (200, Some(4)), "{v}");
    let logs = s.stop();
    assert!(logs.iter().any(|l| l.contains("shutdown complete")));
}

/// Mounts a small tmpfs for the test's lifetime (root only, as CI runs).
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs to mount a small tmpfs (run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path, _dir: dir }
    }

    /// Fill the disk with a file, then free `leave` bytes of it.
    fn fill(&self, leave: u64) -> std::path::PathBuf {
        let filler = self.path.join("filler");
        let mut f = fs_err::File::create(&filler).unwrap();
        let chunk = vec![7u8; 1 << 16];
        while f.write_all(&chunk).is_ok() {}
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(leave)).unwrap();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The disk fills up under writes: refused batches change nothing (before, the
/// batch that hit ENOSPC answered 500 yet was durable), the background worker
/// backs off and logs per state change (before: "File exists" many times per
/// millisecond), writes resume when space does, and the restart that follows
/// opens the data directory (before: "corrupt file ... header truncated").
#[test]
fn a_full_disk_refuses_cleanly_and_recovers() {
    let disk = SmallDisk::mount(24);
    let data = disk.path.join("data");
    let env = [("NAKSHA__STORAGE__FLUSH_POINTS", "200")];
    let s = Server::start(&data, &env);
    assert_eq!(s.send("PUT", "/v1/collections/h", r#"{"vectors": {"dim": 64, "metric": "l2"}}"#).0, 201);
    let batch = |b: u64| {
        let pts: Vec<Value> = (b * 100..b * 100 + 100)
            .map(|i| json!({"id": i, "vector": vec![(i % 97) as f32 + 1.0; 64], "payload": {"b": b}}))
            .collect();
        json!({ "points": pts }).to_string()
    };
    let filler = disk.fill(1 << 20);
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for b in 0..400 {
        let (st, v) = s.send("POST", "/v1/collections/h/points", &batch(b));
        match st {
            200 => acked.push(b),
            503 => {
                assert_eq!(code(&v), "unavailable", "{v}");
                refused.push(b);
                if refused.len() >= 5 {
                    break;
                }
            }
            other => panic!("batch {b}: {other} {v}"),
        }
    }
    assert!(!acked.is_empty() && refused.len() >= 5, "acked {} refused {}", acked.len(), refused.len());
    let (st, v) = s.get("/v1/collections/h");
    assert_eq!(st, 200);
    assert_eq!(v["points"].as_u64().unwrap(), acked.len() as u64 * 100, "refused batches left nothing behind");
    assert_eq!(s.get("/readyz").0, 200, "reads are still served");
    // Space returns: writes resume (after the flush back-off) and the collection heals.
    fs_err::remove_file(&filler).unwrap();
    let next = 1000;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, v) = s.send("POST", "/v1/collections/h/points", &batch(next));
        if st == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "writes never resumed: {st} {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    acked.push(next);
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.get("/v1/collections/h").1["status"] != "ok" {
        assert!(Instant::now() < deadline, "never healthy again: {}", s.get("/v1/collections/h").1);
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs = s.stop();
    let failures = logs.iter().filter(|l| l.contains("retrying with back-off")).count();
    assert!(failures <= 10, "{failures} failure lines: the worker does not back off");
    assert!(!logs.iter().any(|l| l.contains("File exists")), "rotation left a file behind");
    // The graceful restart opens the directory and finds exactly the acknowledged batches.
    let s = Server::start(&data, &env);
    assert_eq!(s.get("/v1/collections/h").1["points"].as_u64().unwrap(), acked.len() as u64 * 100);
    for b in [acked[0], *acked.last().unwrap()] {
        assert_eq!(s.get(&format!("/v1/collections/h/points/{}", b * 100 + 7)).0, 200, "batch {b}");
    }
    for b in &refused {
        assert_eq!(s.get(&format!("/v1/collections/h/points/{}", b * 100 + 7)).0, 404, "refused batch {b} appeared");
    }
    drop(s.stop());
}

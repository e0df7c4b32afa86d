//! RAG over HTTP (whole and server-sent events) and gRPC (server stream), with
//! the real model: answers cite the right document at exact spans; bad
//! requests are clear 400s; a failing generator is a 502.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use naksha_embed::testing::models_dir;
use naksha_server::grpc::pb;
use serde_json::{json, Value};

use crate::chat_server::{ChatServer, Reply};
use crate::server::Server;

const PING: &str = "The ping utility sends ICMP echo requests to a host. It reports the round-trip time of each \
reply. Packet loss is shown as a percentage at the end.";
const TAR: &str = "Tar packs many files into one archive. It keeps permissions and timestamps. The -x option \
extracts files again.";

fn start(data: &std::path::Path) -> Server {
    let s = Server::start(data, &[("NAKSHA__MODELS__DIR", models_dir().to_str().unwrap())]);
    let config = r#"{"embed": {"model": "all-minilm-l6-v2", "fields": ["title", "text"]},
                     "text_fields": ["title", "text"], "chunking": {"max_tokens": 24, "overlap_tokens": 4}}"#;
    assert_eq!(s.send("PUT", "/v1/collections/docs", config).0, 201);
    let body = json!({"documents": [
        {"id": "ping", "text": PING, "payload": {"section": "net"}},
        {"id": "tar", "text": TAR, "payload": {"section": "utils"}}
    ]});
    let (status, v) = s.send("POST", "/v1/collections/docs/documents", &body.to_string());
    assert_eq!(status, 200, "{v}");
    s
}

fn span(text: &str, c: &Value) -> String {
    let (start, end) = (c["start"].as_u64().unwrap() as usize, c["end"].as_u64().unwrap() as usize);
    text.chars().skip(start).take(end - start).collect()
}

/// `(event, data)` pairs of a `text/event-stream` body.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = Some(n.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str(d.trim()).unwrap());
                }
            }
            Some((name?, data?))
        })
        .collect()
}

#[test]
fn rag_over_http_whole_and_streamed() {
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path());
    let ask = |body: Value| s.send("POST", "/v1/collections/docs/rag", &body.to_string());
    let (status, v) = ask(json!({"question": "How does ping report packet loss?"}));
    assert_eq!(status, 200, "{v}");
    assert!(v["answer"].as_str().unwrap().contains("shown as a percentage at the end. ["), "{v}");
    let first = &v["citations"][0];
    assert_eq!(first["doc_id"], "ping");
    assert_eq!(span(PING, first), first["text"].as_str().unwrap());
    assert!(first["id"].as_str().unwrap().starts_with("ping#"));
    assert!(v["contexts"].as_u64().unwrap() >= 1 && v["context_tokens"].as_u64().unwrap() <= 1500);
    assert!(v["took_ms"].as_f64().unwrap() > 0.0);
    // A filter that leaves only the other document.
    let (_, v) = ask(json!({"question": "How does ping report packet loss?",
                            "filter": {"must": [{"key": "section", "match": "utils"}]}}));
    assert!(v["citations"].as_array().unwrap().iter().all(|c| c["doc_id"] == "tar"), "{v}");

    // Streamed: tokens, then citations, then done; the tokens make the answer.
    let (status, body) = ask(json!({"question": "How do I extract files from an archive?", "stream": true}));
    assert_eq!(status, 200);
    let ev = events(body.as_str().unwrap());
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    let tokens = names.iter().take_while(|n| **n == "token").count();
    assert!(tokens >= 1 && names[tokens..] == ["citations", "done"], "{names:?}");
    let answer: String = ev[..tokens].iter().map(|(_, d)| d["text"].as_str().unwrap()).collect();
    assert!(answer.contains("-x option"), "{answer}");
    let citations = ev[tokens].1["citations"].as_array().unwrap();
    assert!(citations.iter().any(|c| c["doc_id"] == "tar" && span(TAR, c) == c["text"].as_str().unwrap()));
    assert!(ev[tokens + 1].1["contexts"].as_u64().unwrap() >= 1);
}

#[test]
fn rag_refuses_bad_requests_and_reports_generator_failures() {
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path());
    let ask = |path: &str, body: Value| s.send("POST", path, &body.to_string());
    let rag = "/v1/collections/docs/rag";
    for (body, want) in [
        (json!({"question": ""}), "question is empty"),
        (json!({"question": "q", "max_context_tokens": 0}), "max_context_tokens must be between"),
        (json!({"question": "q", "limit": 0}), "limit must be between"),
        (json!({"question": "q", "generator": {"kind": "llama"}}), "unknown variant `llama`"),
        (json!({"question": "q", "generator": {"kind": "openai", "model": "m"}}), "missing field `base_url`"),
        (
            json!({"question": "q", "generator": {"kind": "openai", "base_url": "http://169.254.169.254/v1", "model": "m"}}),
            "not in the server's server.generator_hosts",
        ),
        (json!({"question": "q", "stream": "yes"}), "expected a boolean"),
        (json!({"question": "q", "bogus": 1}), "unknown field `bogus`"),
    ] {
        let (status, v) = ask(rag, body.clone());
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(want), "{body}: {v}");
    }
    let (status, v) = ask("/v1/collections/nope/rag", json!({"question": "q"}));
    assert_eq!(status, 404, "{v}");
    assert_eq!(s.send("PUT", "/v1/collections/plain", r#"{"vectors": {"dim": 2, "metric": "cosine"}}"#).0, 201);
    for stream in [false, true] {
        let (status, v) = ask("/v1/collections/plain/rag", json!({"question": "q", "stream": stream}));
        assert_eq!(status, 400, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("no embedding model"), "{v}");
    }
    // An allowed host where nothing listens: 502, whole; an error event, streamed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let generator =
        json!({"kind": "openai", "base_url": format!("http://{closed}/v1"), "model": "m", "max_retries": 0});
    let (status, v) = ask(rag, json!({"question": "ping", "generator": generator}));
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["code"], "bad_gateway");
    assert!(v["error"]["message"].as_str().unwrap().contains("cannot reach"), "{v}");
    let (status, body) = ask(rag, json!({"question": "ping", "generator": generator, "stream": true}));
    assert_eq!(status, 200);
    let ev = events(body.as_str().unwrap());
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].0, "error");
    assert_eq!(ev[0].1["error"]["code"], "bad_gateway");
    // The plain text syntax on /query takes prose the query language refuses.
    let prose = json!({"text": "doesn't \"ping (loss:", "mode": "text"});
    assert_eq!(ask("/v1/collections/docs/query", prose.clone()).0, 400);
    let mut plain = prose;
    plain["syntax"] = "plain".into();
    let (status, v) = ask("/v1/collections/docs/query", plain);
    assert_eq!(status, 200, "{v}");
    assert!(v["results"][0]["id"].as_str().unwrap().starts_with("ping#"), "{v}");
}

#[test]
fn rag_over_grpc_streams_tokens_citations_and_done() {
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = pb::naksha_client::NakshaClient::connect(s.grpc_url.clone()).await.unwrap();
        let req = pb::RagRequest {
            collection: "docs".into(),
            question: "How does ping report packet loss?".into(),
            ..Default::default()
        };
        let mut stream = c.rag(req.clone()).await.unwrap().into_inner();
        let mut answer = String::new();
        let mut citations = Vec::new();
        let mut done = None;
        while let Some(ev) = stream.message().await.unwrap() {
            match ev.event.unwrap() {
                pb::rag_event::Event::Token(t) => answer.push_str(&t),
                pb::rag_event::Event::Citations(c) => citations = c.citations,
                pb::rag_event::Event::Done(d) => done = Some(d),
            }
        }
        assert!(answer.contains("shown as a percentage at the end. ["), "{answer}");
        assert_eq!(citations[0].doc_id, "ping");
        let (start, end) = (citations[0].start as usize, citations[0].end as usize);
        assert_eq!(PING.chars().skip(start).take(end - start).collect::<String>(), citations[0].text);
        assert!(done.unwrap().contexts >= 1);
        let e = c.rag(pb::RagRequest { question: " ".into(), ..req.clone() }).await.unwrap_err();
        assert!(e.code() == tonic::Code::InvalidArgument && e.message().contains("question is empty"), "{e}");
        let e = c.rag(pb::RagRequest { collection: "nope".into(), ..req }).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
    });
}

#[test]
fn a_client_that_hangs_up_stops_the_generator() {
    // 200 pieces 50 ms apart: ten seconds of answer unless the work stops.
    let chat = ChatServer::start(vec![Reply::Drip(vec!["word "; 200], 50)]);
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path());
    let body = json!({"question": "ping", "stream": true,
                      "generator": {"kind": "openai", "base_url": chat.base_url, "model": "m"}})
    .to_string();
    let mut conn = TcpStream::connect(s.url.trim_start_matches("http://")).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        conn,
        "POST /v1/collections/docs/rag HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    while !(line.starts_with("event:") && line.contains("token")) {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended before a token");
    }
    // The first token arrived: hang up.
    drop(reader);
    conn.shutdown(std::net::Shutdown::Both).unwrap();
    drop(conn);
    let hung_up = Instant::now();
    while chat.hang_ups.load(Ordering::SeqCst) == 0 {
        assert!(hung_up.elapsed() < Duration::from_secs(5), "the generator kept streaming after the client left");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(chat.requests().len(), 1, "one generator call, not retried");
    // The server is fine afterwards.
    assert_eq!(s.send("POST", "/v1/collections/docs/rag", &json!({"question": "ping"}).to_string()).0, 200);
}

#[test]
fn cli_asks_and_prints_citations() {
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path());
    let naksha = |args: &[&str]| {
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_naksha")).args(args).env("NAKSHA_URL", &s.url).output();
        let out = out.unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = naksha(&["rag", "--collection", "docs", "--question", "How do I extract files from an archive?"]);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("The -x option extracts files again. ["), "{out}");
    let cited: Vec<&str> = lines[1..].iter().copied().filter(|l| l.starts_with('[')).collect();
    assert!(!cited.is_empty() && cited.iter().all(|l| l.contains(" (text characters ")), "{out}");
    assert!(
        cited.iter().any(|l| l.contains("\"tar#") && l.ends_with(": The -x option extracts files again.")),
        "{out}"
    );
    assert!(out.trim_end().ends_with("ms)") && out.contains("context tokens"), "{out}");
    let filter = r#"{"must": [{"key": "section", "match": "net"}]}"#;
    let (ok, out) = naksha(&["rag", "--collection", "docs", "--question", "extract an archive", "--filter", filter]);
    assert!(ok && !out.contains("tar#"), "{out}");
    let (ok, out) = naksha(&["rag", "--collection", "docs", "--question", "q", "--max-context-tokens", "0"]);
    assert!(!ok && out.contains("max_context_tokens must be between"), "{out}");
    let (ok, out) = naksha(&["rag", "--collection", "docs", "--question", "q", "--filter", "{"]);
    assert!(!ok && out.contains("--filter must be JSON"), "{out}");
}

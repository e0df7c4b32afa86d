//! RAG over real collections with the real model: extractive answers and their
//! citations, the token budget, de-duplication, filters, and the
//! OpenAI-compatible generator against a chat-completions server on loopback.

use std::collections::HashMap;

#[allow(dead_code)]
#[path = "support/chat_server.rs"]
mod chat_server;

use naksha_embed::testing::{model, models, MODEL};
use naksha_query::{Collection, CollectionConfig, Database, Document, EngineOptions, Filter, Metric, Point, PointId};
use naksha_rag::{
    Citation, Error, GeneratorConfig, OpenAiConfig, Passage, Rag, RagEvent, RagRequest, MIN_CONTEXT_TOKENS,
};
use serde_json::json;

use chat_server::{ChatServer, Reply};

fn options() -> EngineOptions {
    EngineOptions { background: false, models: models(), ..EngineOptions::default() }
}

/// Topic documents of several sentences each; chunked small so most have several chunks.
const DOCS: [(&str, &str, &str); 6] = [
    (
        "ping",
        "net",
        "The ping utility sends ICMP echo requests to a host. It reports the round-trip time of each reply. \
      Packet loss is shown as a percentage at the end.\n\nThe flood mode sends packets as fast as the network allows. \
      Only the superuser may use it.",
    ),
    (
        "gcc",
        "dev",
        "GCC is the GNU compiler collection. It compiles C, C++ and Fortran into machine code. \
      Optimisation levels range from -O0 to -O3.\n\nWarnings are enabled with -Wall. \
      Link-time optimisation merges the program before code generation.",
    ),
    (
        "postgres",
        "db",
        "PostgreSQL is an object-relational database server. It stores tables on disk and answers \
      SQL queries. Write-ahead logging makes committed transactions durable after a crash.\n\n\
      Replication streams the log to standby servers. Vacuum reclaims space left by deleted rows.",
    ),
    (
        "vlc",
        "video",
        "VLC is a media player. It plays almost any audio and video file, DVDs and network streams. \
      Subtitles can be loaded from a separate file. The player can also convert files between formats.",
    ),
    (
        "gimp",
        "graphics",
        "GIMP edits photos and raster images. Layers and masks let you combine pictures. \
      Filters sharpen, blur or distort an image. Colour correction fixes white balance and exposure.",
    ),
    (
        "tar",
        "utils",
        "Tar packs many files into one archive. It keeps permissions and timestamps. \
      Archives are often compressed with gzip or xz. The -x option extracts files again.",
    ),
];

fn docs_collection(db: &Database) -> std::sync::Arc<Collection> {
    let mut cfg = CollectionConfig::new(384, Metric::Cosine)
        .with_embed(MODEL, &["title", "text"])
        .with_text_fields(&["title", "text"]);
    cfg.chunking = Some(naksha_embed::ChunkConfig { max_tokens: 24, overlap_tokens: 4 });
    let c = db.create_collection("docs", cfg).unwrap();
    let docs = DOCS
        .iter()
        .map(|(id, section, text)| Document {
            id: (*id).into(),
            text: (*text).into(),
            title: None,
            payload: json!({"section": section}),
        })
        .collect();
    let w = c.upsert_documents(docs).unwrap();
    assert!(w.chunks > 2 * DOCS.len(), "{} chunks", w.chunks);
    c
}

fn doc_text(id: &str) -> &'static str {
    DOCS.iter().find(|d| d.0 == id).unwrap().2
}

/// The characters `start..end` of `text`.
fn span(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}

fn assert_spans_exact(citations: &[Citation]) {
    for c in citations {
        assert_eq!(c.field, "text");
        assert_eq!(span(doc_text(&c.doc_id), c.start, c.end), c.text, "{c:?}");
    }
}

fn assert_passages_exact(passages: &[Passage]) {
    for p in passages {
        let len = p.text.chars().count();
        assert_eq!(span(doc_text(&p.doc_id), p.start, p.start + len), p.text, "{p:?}");
    }
}

#[test]
fn extractive_answers_quote_the_right_document_with_exact_spans() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = docs_collection(&db);
    let cases = [
        ("How is packet loss reported by ping?", "ping", "percentage"),
        ("Which optimisation levels does the compiler have?", "gcc", "-O3"),
        ("What makes committed transactions durable after a crash?", "postgres", "Write-ahead logging"),
        ("How do I extract files from an archive?", "tar", "-x option"),
        ("can it load subtitles", "vlc", "Subtitles"),
    ];
    for (question, doc, phrase) in cases {
        let a = c.rag(&RagRequest::new(question)).unwrap();
        assert!(a.answer.contains(phrase), "{question}: {}", a.answer);
        assert!(!a.citations.is_empty() && a.citations.len() <= 3, "{question}: {a:?}");
        assert!(a.citations.iter().any(|x| x.doc_id == doc && x.text.contains(phrase)), "{question}: {a:?}");
        assert_spans_exact(&a.citations);
        // Every citation is quoted in the answer, marked [n] in order.
        for (n, cit) in a.citations.iter().enumerate() {
            let flat: Vec<&str> = cit.text.split_whitespace().collect();
            assert!(a.answer.contains(&format!("{} [{}]", flat.join(" "), n + 1)), "{}", a.answer);
            assert_eq!(cit.id, PointId::Str(format!("{}#{}", cit.doc_id, chunk_of(&c, &cit.id))));
        }
        assert!(a.contexts >= 1 && a.context_tokens <= 1500);
        assert!(a.took_ms > 0.0);
    }
}

fn chunk_of(c: &Collection, id: &PointId) -> u64 {
    c.get(id).unwrap().unwrap().payload["chunk"].as_u64().unwrap()
}

#[test]
fn the_token_budget_is_never_exceeded_and_duplicates_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = docs_collection(&db);
    // The same text again under another id: a near-duplicate of every chunk.
    let copy = Document { id: "ping-copy".into(), text: doc_text("ping").into(), title: None, payload: json!({}) };
    c.upsert_documents(vec![copy]).unwrap();
    let m = model();
    for budget in [MIN_CONTEXT_TOKENS, 20, 33, 60, 150, 1500] {
        for limit in [1, 3, 8, 20] {
            let req = RagRequest { limit, max_context_tokens: budget, ..RagRequest::new("ping packet loss flood") };
            let passages = c.rag_context(&req).unwrap();
            assert!(!passages.is_empty() && passages.len() <= limit, "budget {budget}, limit {limit}");
            let counted: usize = passages.iter().map(|p| m.count_tokens(&p.text).unwrap()).sum();
            assert_eq!(counted, passages.iter().map(|p| p.tokens).sum::<usize>());
            assert!(counted <= budget, "{counted} tokens > budget {budget}");
            assert_passages_exact(&passages.iter().filter(|p| p.doc_id != "ping-copy").cloned().collect::<Vec<_>>());
            let texts: Vec<&str> = passages.iter().map(|p| p.text.as_str()).collect();
            for (i, t) in texts.iter().enumerate() {
                assert!(!texts[..i].contains(t), "duplicate passage {t:?}");
            }
            let a = c.rag(&req).unwrap();
            assert_eq!(a.context_tokens, counted);
            assert_eq!(a.contexts, passages.len());
        }
    }
    // A big budget still takes each ping chunk once, from one of the two copies.
    let wide = c.rag_context(&RagRequest { limit: 20, ..RagRequest::new("ping packet loss flood") }).unwrap();
    let mut seen = HashMap::new();
    for p in wide.iter().filter(|p| p.doc_id.starts_with("ping")) {
        *seen.entry(p.text.clone()).or_insert(0) += 1;
    }
    assert!(!seen.is_empty() && seen.values().all(|&n| n == 1), "{seen:?}");
}

#[test]
fn filters_restrict_what_is_cited_and_plain_points_cite_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = docs_collection(&db);
    let req = RagRequest {
        filter: Some(Filter::from_json(json!({"must": [{"key": "section", "match": "db"}]})).unwrap()),
        ..RagRequest::new("How is packet loss reported by ping?")
    };
    let a = c.rag(&req).unwrap();
    assert!(a.citations.iter().all(|x| x.doc_id == "postgres"), "{a:?}");
    // A filter nothing matches: no contexts, an empty answer, not an error.
    let none = RagRequest {
        filter: Some(Filter::from_json(json!({"must": [{"key": "section", "match": "none"}]})).unwrap()),
        ..RagRequest::new("ping")
    };
    let a = c.rag(&none).unwrap();
    assert_eq!((a.answer.as_str(), a.contexts, a.citations.len()), ("", 0, 0));

    // Points that are not document chunks: the longest text field is quoted, doc_id is the point id.
    let cfg = CollectionConfig::new(384, Metric::Cosine).with_embed(MODEL, &["title", "body"]);
    let p = db.create_collection("packages", cfg).unwrap();
    let body = "Reads and sends email, manages several accounts. Calendars and address books are included.";
    p.upsert(vec![
        Point::new(PointId::Num(2), vec![], json!({})).with_text(json!({"title": "thunderbird", "body": body})),
        Point::new(PointId::Num(3), vec![], json!({})).with_text(json!({"title": "gimp", "body": "Edits photos."})),
    ])
    .unwrap();
    let a = p.rag(&RagRequest::new("Which program manages email accounts?")).unwrap();
    let first = &a.citations[0];
    assert_eq!((first.doc_id.as_str(), first.field.as_str()), ("2", "body"), "{a:?}");
    assert_eq!(span(body, first.start, first.end), first.text);
}

#[test]
fn bad_requests_are_refused_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = docs_collection(&db);
    let openai = |base_url: &str| {
        GeneratorConfig::Openai(OpenAiConfig {
            base_url: base_url.into(),
            model: "m".into(),
            api_key_env: None,
            timeout_ms: 1000,
            max_retries: 0,
            temperature: 0.0,
            max_tokens: None,
        })
    };
    let cases = [
        (RagRequest::new("  "), "question is empty"),
        (RagRequest { max_context_tokens: 0, ..RagRequest::new("q") }, "max_context_tokens must be between"),
        (RagRequest { limit: 0, ..RagRequest::new("q") }, "limit must be between"),
        (
            RagRequest { generator: GeneratorConfig::Extractive { max_sentences: 0 }, ..RagRequest::new("q") },
            "max_sentences",
        ),
        (RagRequest { generator: openai("https://api.example.com/v1"), ..RagRequest::new("q") }, "http:// URL"),
    ];
    for (req, want) in cases {
        match c.rag(&req) {
            Err(e @ Error::InvalidArgument(_)) => assert!(e.to_string().contains(want), "{e}"),
            other => panic!("{want}: {other:?}"),
        }
    }
    // No model: RAG cannot count tokens or rank sentences.
    let plain = db.create_collection("plain", CollectionConfig::new(2, Metric::Cosine)).unwrap();
    let e = plain.rag(&RagRequest::new("q")).unwrap_err();
    assert!(e.is_client_error() && e.to_string().contains("no embedding model"), "{e}");
    // Unknown generator kinds fail to parse, naming the kinds.
    let e = serde_json::from_value::<GeneratorConfig>(json!({"kind": "llama"})).unwrap_err().to_string();
    assert!(e.contains("extractive") && e.contains("openai"), "{e}");
    let g: GeneratorConfig =
        serde_json::from_value(json!({"kind": "openai", "base_url": "http://h/v1", "model": "m"})).unwrap();
    assert!(matches!(g, GeneratorConfig::Openai(OpenAiConfig { timeout_ms: 60_000, max_retries: 2, .. })));
}

fn openai_request(server: &ChatServer, timeout_ms: u64, max_retries: u32) -> RagRequest {
    RagRequest {
        generator: GeneratorConfig::Openai(OpenAiConfig {
            base_url: server.base_url.clone(),
            model: "test-model".into(),
            api_key_env: None,
            timeout_ms,
            max_retries,
            temperature: 0.0,
            max_tokens: Some(64),
        }),
        limit: 3,
        ..RagRequest::new("What makes committed transactions durable?")
    }
}

#[test]
fn openai_generator_whole_and_streamed_answers_with_citations() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = docs_collection(&db);
    let server = ChatServer::start(vec![
        Reply::Answer("Write-ahead logging [1]. See also [3] and [1, 2]; [7] is out of range."),
        Reply::Stream(vec!["Write-ahead ", "logging", " [2]", "."]),
    ]);
    let req = openai_request(&server, 5_000, 0);
    let contexts = c.rag_context(&req).unwrap();
    assert_eq!(contexts.len(), 3);
    let a = c.rag(&req).unwrap();
    assert_eq!(a.answer, "Write-ahead logging [1]. See also [3] and [1, 2]; [7] is out of range.");
    let cited: Vec<&PointId> = a.citations.iter().map(|x| &x.id).collect();
    assert_eq!(cited, vec![&contexts[0].id, &contexts[2].id, &contexts[1].id]);
    assert_spans_exact(&a.citations);
    assert_eq!(a.citations[0].text, contexts[0].text);
    // What the endpoint was sent: the model, numbered passages, the question, no streaming.
    let sent = &server.requests()[0];
    assert_eq!(sent.body["model"], "test-model");
    assert_eq!(sent.body["stream"], false);
    assert_eq!(sent.body["max_tokens"], 64);
    let user = sent.body["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains(&format!("[1] {}", contexts[0].text.trim())), "{user}");
    assert!(
        user.contains("[3] ")
            && !user.contains("[4] ")
            && user.ends_with("Question: What makes committed transactions durable?")
    );
    assert_eq!(sent.authorization, None);

    // Streaming: the tokens arrive in order, then the citations.
    let mut events = Vec::new();
    let a = c
        .rag_stream(&req, &mut |e| {
            events.push(e);
            true
        })
        .unwrap();
    assert_eq!(server.requests()[1].body["stream"], true);
    assert_eq!(a.answer, "Write-ahead logging [2].");
    let tokens: Vec<RagEvent> =
        ["Write-ahead ", "logging", " [2]", "."].iter().map(|t| RagEvent::Token((*t).into())).collect();
    assert_eq!(events[..4], tokens[..]);
    assert_eq!(events[4], RagEvent::Citations(a.citations.clone()));
    assert_eq!(a.citations.len(), 1);
    assert_eq!(a.citations[0].id, contexts[1].id);
}

#[test]
fn openai_generator_retries_fails_clearly_times_out_and_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = docs_collection(&db);
    // A 503 and then a 500 are retried; the third attempt answers.
    let flaky = ChatServer::start(vec![Reply::Status(503), Reply::Status(500), Reply::Answer("ok [1]")]);
    assert_eq!(c.rag(&openai_request(&flaky, 5_000, 2)).unwrap().answer, "ok [1]");
    assert_eq!(flaky.requests().len(), 3);
    // Out of retries: the last failure, with the status, and how many attempts.
    let down = ChatServer::start(vec![Reply::Status(502)]);
    let e = c.rag(&openai_request(&down, 5_000, 1)).unwrap_err();
    assert!(matches!(e, Error::Generator(_)) && !e.is_client_error(), "{e}");
    assert!(e.to_string().contains("answered 502") && e.to_string().contains("2 attempts"), "{e}");
    // A 401 is not retried.
    let denied = ChatServer::start(vec![Reply::Status(401)]);
    let e = c.rag(&openai_request(&denied, 5_000, 3)).unwrap_err();
    assert!(e.to_string().contains("answered 401") && e.to_string().contains("scripted failure"), "{e}");
    assert_eq!(denied.requests().len(), 1);
    // Too slow: each attempt is cut at timeout_ms.
    let slow = ChatServer::start(vec![Reply::Slow(3_000)]);
    let started = std::time::Instant::now();
    let e = c.rag(&openai_request(&slow, 300, 1)).unwrap_err();
    assert!(e.to_string().contains("within 300 ms"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_millis(2_500), "{:?}", started.elapsed());
    // A stream that ends without [DONE] is an error, not a silently short answer.
    let cut = ChatServer::start(vec![Reply::Truncated(vec!["half an ", "answer"])]);
    let e = c.rag_stream(&openai_request(&cut, 5_000, 0), &mut |_| true).unwrap_err();
    assert!(e.to_string().contains("without [DONE]"), "{e}");
    // Nobody listening on the port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let mut req = openai_request(&flaky, 2_000, 0);
    if let GeneratorConfig::Openai(o) = &mut req.generator {
        o.base_url = closed;
    }
    assert!(c.rag(&req).unwrap_err().to_string().contains("cannot reach"));
    // The API key comes from the named environment variable, as a bearer token.
    let keyed = ChatServer::start(vec![Reply::Answer("ok")]);
    let mut req = openai_request(&keyed, 5_000, 0);
    if let GeneratorConfig::Openai(o) = &mut req.generator {
        o.api_key_env = Some("NAKSHA_RAG_TEST_KEY".into());
    }
    let e = c.rag(&req).unwrap_err();
    assert!(e.is_client_error() && e.to_string().contains("NAKSHA_RAG_TEST_KEY is not set"), "{e}");
    // No other test reads this variable.
    std::env::set_var("NAKSHA_RAG_TEST_KEY", "sk-test");
    let a = c.rag(&req).unwrap();
    assert_eq!((a.answer.as_str(), a.citations.len()), ("ok", 0));
    assert_eq!(keyed.requests()[0].authorization.as_deref(), Some("Bearer sk-test"));
    // A streaming caller that goes away stops the work, and the generator's connection is closed.
    let long = ChatServer::start(vec![Reply::Drip(vec!["one "; 100], 20)]);
    let mut got = 0;
    let e = c
        .rag_stream(&openai_request(&long, 5_000, 0), &mut |_| {
            got += 1;
            got < 2
        })
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    assert_eq!(got, 2);
    let left = std::time::Instant::now();
    while long.hang_ups.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(left.elapsed() < std::time::Duration::from_secs(5), "the chat stream went on");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The extractive generator stops too.
    let e = c.rag_stream(&RagRequest::new("ping packet loss"), &mut |_| false).unwrap_err();
    assert!(matches!(e, Error::Cancelled));
}

//! The API contracts checked by tools that know nothing of Naksha: the OpenAPI
//! document validated as OpenAPI 3.1 (openapi-spec-validator), a property-based
//! run against it (schemathesis: no 5xx, every reply as the document says), and
//! a generic gRPC client that learns the whole API by reflection and calls
//! every method. The tools come from scripts/install-api-tools.sh (scripts/test.sh runs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::server::Server;

fn tools() -> PathBuf {
    let venv = std::env::var("NAKSHA_API_TOOLS_VENV").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/naksha/venv-api-tools")
    });
    assert!(
        venv.join("bin/schemathesis").exists(),
        "the API tools are not installed in {}: run scripts/install-api-tools.sh (scripts/test.sh does)",
        venv.display()
    );
    venv
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let tail = text.lines().rev().take(80).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    (out.status.success(), tail)
}

/// A server with the real model and a seeded collection `docs`.
fn seeded(dir: &Path, key: Option<&str>) -> Server {
    let models = naksha_embed::testing::models_dir();
    let mut env = vec![("NAKSHA__MODELS__DIR", models.to_str().unwrap())];
    if let Some(k) = key {
        env.push(("NAKSHA_API_KEY", k));
    }
    let s = Server::start(dir, &env);
    let config = r#"{"embed": {"model": "all-minilm-l6-v2", "fields": ["title", "body"]},
                     "text_fields": ["title", "body"], "payload_index": {"lang": "keyword"}}"#;
    assert_eq!(s.send("PUT", "/v1/collections/docs", config).0, 201);
    let seed = json!({"points": [
        {"id": 1, "text": {"title": "firefox", "body": "a web browser"}, "payload": {"lang": "en"}},
        {"id": "doc-2", "text": {"title": "gimp", "body": "edit photos"}, "payload": {"lang": "de"}},
    ]});
    assert_eq!(s.send("POST", "/v1/collections/docs/points", &seed.to_string()).0, 200);
    s
}

/// The document validates as OpenAPI 3.1, names every operation once, and
/// describes the engine's types instead of bare objects.
#[test]
fn the_openapi_document_is_valid_and_typed() {
    let venv = tools();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let (status, doc) = s.get("/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
    let file = dir.path().join("openapi.json");
    fs_err::write(&file, doc.to_string()).unwrap();
    let (ok, out) = run(Command::new(venv.join("bin/openapi-spec-validator")).arg(&file));
    assert!(ok, "openapi-spec-validator:\n{out}");

    let mut ids = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ids.push(
                op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId")).to_owned(),
            );
            assert!(op["responses"]["default"].is_object(), "{method} {path}: errors undocumented");
        }
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate operation ids: {ids:?}");
    // No schema is a bare `object` without properties, except free-form payloads.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    fn bare(v: &Value, at: &str, found: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if o.get("type") == Some(&json!("object"))
                    && !o.contains_key("properties")
                    && !o.contains_key("additionalProperties")
                {
                    found.push(at.to_owned());
                }
                for (k, v) in o {
                    bare(v, &format!("{at}.{k}"), found);
                }
            }
            Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| bare(v, &format!("{at}[{i}]"), found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    bare(&doc, "$", &mut found);
    assert!(found.is_empty(), "untyped objects: {found:?}");
    let filter = &schemas["Filter"];
    assert_eq!(filter["properties"]["must"]["items"]["$ref"], "#/components/schemas/Condition");
    let condition = schemas["Condition"]["oneOf"].as_array().unwrap();
    assert!(condition.iter().any(|c| c["properties"]["must"]["items"]["$ref"] == "#/components/schemas/Condition"));
    let codes = schemas["ErrorDetail"]["properties"]["code"]["enum"].as_array().unwrap();
    assert!(codes.contains(&json!("unprocessable")) && codes.contains(&json!("not_found")), "{codes:?}");
    let query = &doc["paths"]["/v1/collections/{name}/query"]["post"];
    let body = &query["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(body, "#/components/schemas/QueryBody");
    assert!(schemas["QueryBody"]["example"].is_object());
    drop(s.stop());
}

/// Property-based API tests: schemathesis sends what the OpenAPI document
/// allows, and much it does not, to every operation of a live server with the
/// real model, for a bounded time: no reply may be a 5xx, and every reply's
/// status, content type and body must be as the document says. DELETE is left
/// out so the seeded collection stays for the others. One worker: with two,
/// hypothesis parses lambdas' source from two threads at once, which CPython
/// 3.11 before 3.11.9 can fail with a spurious "AST constructor recursion
/// depth mismatch" SystemError (cpython gh-106905), a failure of the tool and
/// not of the server.
#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let venv = tools();
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path(), None);
    let config_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/schemathesis.toml");
    let checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";
    let (ok, out) = run(Command::new(venv.join("bin/schemathesis"))
        .arg("--config-file")
        .arg(&config_file)
        .args(["run", &format!("{}/openapi.json", s.url)])
        .args(["--checks", checks, "--max-time", "90", "--seed", "17", "--workers", "1"])
        .args(["--exclude-method", "DELETE", "--no-color", "--request-timeout", "30"])
        .current_dir(dir.path()));
    assert!(ok, "schemathesis found problems:\n{out}");
    assert!(out.contains("passed"), "schemathesis ran no test case:\n{out}");
    assert_eq!(s.get("/healthz").0, 200);
    drop(s.stop());
}

/// A client with no generated code learns the API by reflection (with the
/// key, as reflection requires one when the server has one) and calls every
/// method of naksha.v1.Naksha.
#[test]
fn a_reflection_client_lists_and_calls_every_grpc_method() {
    let venv = tools();
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path(), Some("k3y"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/grpc_reflect.py");
    let target = s.grpc_url.trim_start_matches("http://").to_owned();
    let (ok, out) = run(Command::new(venv.join("bin/python")).arg(&script).arg(&target).arg("k3y"));
    assert!(ok, "grpc_reflect.py:\n{out}");
    assert!(out.contains("called all 22 methods"), "{out}");
    drop(s.stop());
}

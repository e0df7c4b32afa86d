//! Tenants, keys and roles, JWTs, quotas and rate limits, the audit log and
//! TLS, end to end against the real binary.
//!
//! The isolation and role tests walk every route of the OpenAPI document and
//! every method of the proto's descriptor, so a new route or method without a
//! case here fails them.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use naksha_server::cli::Client;
use naksha_server::grpc::pb::naksha_client::NakshaClient;
use naksha_server::grpc::pb::{self, point_id::Kind};
use serde_json::{json, Value};

use crate::server::Server;

const ADMIN: &str = "the-bootstrap-admin-key";
/// Only tenant B's data holds this text; no reply to tenant A may contain it.
const MARK: &str = "tenant-b-private-marker";

fn client(s: &Server, key: &str) -> Client {
    Client::new(&s.url, Some(key.to_owned()))
}

fn call(c: &Client, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    c.request(method, path, body.map(|b| ("application/json", b.to_string()))).unwrap()
}

fn admin_in(s: &Server, tenant: &str) -> Client {
    client(s, ADMIN).with_tenant(Some(tenant.to_owned()))
}

fn create_tenant(s: &Server, name: &str, quotas: Value) {
    let (st, v) = call(&client(s, ADMIN), "POST", "/v1/tenants", Some(&json!({"name": name, "quotas": quotas})));
    assert_eq!(st, 201, "{v}");
}

/// A key of `tenant`; returns (id, key text).
fn make_key(s: &Server, tenant: &str, body: Value) -> (String, String) {
    let (st, v) = call(&client(s, ADMIN), "POST", &format!("/v1/tenants/{tenant}/keys"), Some(&body));
    assert_eq!(st, 201, "{v}");
    (v["id"].as_str().unwrap().to_owned(), v["key"].as_str().unwrap().to_owned())
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// Every (method, path template) of the OpenAPI document but the open health routes.
fn routes(s: &Server) -> Vec<(String, String)> {
    let (st, doc) = call(&client(s, ADMIN), "GET", "/openapi.json", None);
    assert_eq!(st, 200);
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "patch", "delete"] {
            if ops.get(method).is_some() && path != "/healthz" && path != "/readyz" {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(out.len() >= 24, "{out:?}");
    // Creating a collection last: it makes one in the caller's own tenant.
    out.sort_by_key(|(m, p)| (m == "PUT" && p == "/v1/collections/{name}", p.clone(), m.clone()));
    out
}

/// A request body for a route (`None` for routes without one). A new route
/// with a body must be added here.
fn body_for(method: &str, path: &str) -> Option<Value> {
    if method == "GET" || method == "DELETE" {
        return None;
    }
    Some(match (method, path) {
        ("PUT", "/v1/collections/{name}") => json!({"vectors": {"dim": 2, "metric": "cosine"}}),
        ("POST", "/v1/collections/{name}/points") => json!({"points": [{"id": 1, "vector": [0.5, 0.5]}]}),
        ("POST", "/v1/collections/{name}/points/delete") => json!({"ids": [1, "p2"]}),
        ("POST", "/v1/collections/{name}/query") => json!({"vector": [1.0, 0.0], "limit": 10}),
        ("POST", "/v1/collections/{name}/rag") => json!({"question": "what is private?"}),
        ("POST", "/v1/collections/{name}/documents") => json!({"documents": [{"id": "d", "text": "hello"}]}),
        ("POST", "/v1/collections/{name}/documents/delete") => json!({"ids": ["d"]}),
        ("POST", "/v1/embed") => json!({"model": "all-minilm-l6-v2", "input": ["x"]}),
        ("POST", "/v1/tenants") => json!({"name": "made-by-a"}),
        ("PATCH", "/v1/tenants/{tenant}") => json!({"quotas": {"max_points": 1}}),
        ("POST", "/v1/tenants/{tenant}/keys") => json!({"role": "reader"}),
        // A job whose source is unreachable: accepted, then it fails on its own.
        ("POST", "/v1/jobs") => json!({"collection": "c",
            "source": {"type": "postgres", "url": "postgres://nobody@127.0.0.1:9/none", "table": "t"},
            "mapping": {"id": "id", "vector": "v"}, "max_retries": 0}),
        ("POST", "/v1/collections/{name}/snapshots" | "/v1/snapshots") => json!({}),
        ("POST", "/v1/collections/{name}/snapshots/{id}/restore") => json!({"target": "stolen"}),
        ("POST", "/v1/snapshots/restore") => json!({"s3": {"key": "naksha/tb/secret/x.tar"}, "target": "stolen"}),
        other => panic!("no request body for {other:?}: add one to body_for"),
    })
}

/// What a walk targets: another tenant's real resources, or names that exist nowhere.
struct Target<'a> {
    collection: &'a str,
    point: &'a str,
    tenant: &'a str,
    key_id: &'a str,
    job: &'a str,
}

fn fill(path: &str, t: &Target) -> String {
    let path = path.replace("{name}", t.collection).replace("{tenant}", t.tenant);
    if path.contains("/keys/") {
        path.replace("{id}", t.key_id)
    } else if path.starts_with("/v1/jobs/") {
        path.replace("{id}", t.job)
    } else {
        path.replace("{id}", t.point)
    }
}

fn b_is_untouched(s: &Server, b_key: &str) {
    let b = admin_in(s, "tb");
    let (st, v) = call(&b, "GET", "/v1/collections/secret", None);
    assert_eq!((st, v["points"].as_u64()), (200, Some(2)), "{v}");
    let (st, v) = call(&b, "GET", "/v1/collections/secret/points/1", None);
    assert_eq!((st, v["payload"]["owner"].as_str()), (200, Some(MARK)), "{v}");
    let (st, v) = call(&client(s, ADMIN), "GET", "/v1/tenants/tb", None);
    assert_eq!((st, v["quotas"]["max_points"].as_u64()), (200, Some(1000)), "{v}");
    let (st, v) = call(&client(s, ADMIN), "GET", "/v1/tenants/tb/keys", None);
    assert_eq!((st, v["keys"].as_array().map(Vec::len)), (200, Some(1)), "{v}");
    assert_eq!(call(&client(s, b_key), "GET", "/v1/collections/secret", None).0, 200, "B's key still works");
    let (st, v) = call(&b, "GET", "/v1/jobs", None);
    let jobs = v["jobs"].as_array().unwrap();
    assert_eq!((st, jobs.len()), (200, 1), "{v}");
    assert_ne!(jobs[0]["status"], "cancelled", "{v}");
}

fn request<T>(msg: T, key: &str, tenant: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
    if let Some(t) = tenant {
        r.metadata_mut().insert("x-naksha-tenant", t.parse().unwrap());
    }
    r
}

fn num(n: u64) -> Option<pb::PointId> {
    Some(pb::PointId { kind: Some(Kind::Num(n)) })
}

/// Call one gRPC method against the target; the reply as text, or the status.
async fn grpc_call(
    c: &mut NakshaClient<tonic::transport::Channel>,
    method: &str,
    t: &Target<'_>,
    key: &str,
    tenant: Option<&str>,
) -> Result<String, tonic::Status> {
    let coll = t.collection.to_owned();
    macro_rules! r {
        ($m:expr) => {
            request($m, key, tenant)
        };
    }
    macro_rules! text {
        ($e:expr) => {
            $e.await.map(|r| format!("{:?}", r.into_inner()))
        };
    }
    match method {
        "CreateCollection" => {
            let vectors = pb::VectorsConfig { dim: Some(2), metric: pb::Metric::Cosine as i32, ..Default::default() };
            let config = pb::CollectionConfig { vectors: Some(vectors), ..Default::default() };
            text!(c.create_collection(r!(pb::CreateCollectionRequest { name: coll, config: Some(config) })))
        }
        "ListCollections" => text!(c.list_collections(r!(pb::ListCollectionsRequest {}))),
        "GetCollection" => text!(c.get_collection(r!(pb::GetCollectionRequest { name: coll }))),
        "DeleteCollection" => text!(c.delete_collection(r!(pb::DeleteCollectionRequest { name: coll }))),
        "Upsert" => {
            let p = pb::Point { id: num(1), vector: vec![0.5, 0.5], ..Default::default() };
            text!(c.upsert(r!(pb::UpsertRequest { collection: coll, points: vec![p] })))
        }
        "GetPoint" => text!(c.get_point(r!(pb::GetPointRequest { collection: coll, id: num(1) }))),
        "Delete" => text!(c.delete(r!(pb::DeleteRequest {
            collection: coll,
            ids: vec![num(1).unwrap()],
            ..Default::default()
        }))),
        "Query" => {
            text!(c.query(r!(pb::QueryRequest { collection: coll, vector: vec![1.0, 0.0], ..Default::default() })))
        }
        "Rag" => {
            let mut stream = c
                .rag(r!(pb::RagRequest { collection: coll, question: "what?".into(), ..Default::default() }))
                .await?
                .into_inner();
            let mut out = String::new();
            while let Some(e) = stream.message().await? {
                out += &format!("{e:?}");
            }
            Ok(out)
        }
        "ListModels" => text!(c.list_models(r!(pb::ListModelsRequest {}))),
        "Embed" => text!(c.embed(r!(pb::EmbedRequest { model: "all-minilm-l6-v2".into(), input: vec!["x".into()] }))),
        "UpsertDocuments" => {
            let d = pb::Document { id: "d".into(), text: "hello".into(), ..Default::default() };
            text!(c.upsert_documents(r!(pb::UpsertDocumentsRequest { collection: coll, documents: vec![d] })))
        }
        "DeleteDocuments" => {
            text!(c.delete_documents(r!(pb::DeleteDocumentsRequest { collection: coll, ids: vec!["d".into()] })))
        }
        "CreateTenant" => {
            text!(c.create_tenant(r!(pb::CreateTenantRequest { name: "made-by-a".into(), quotas: None })))
        }
        "ListTenants" => text!(c.list_tenants(r!(pb::ListTenantsRequest {}))),
        "GetTenant" => text!(c.get_tenant(r!(pb::GetTenantRequest { name: t.tenant.into() }))),
        "UpdateTenant" => {
            let quotas = Some(pb::Quotas { max_points: Some(1), ..Default::default() });
            text!(c.update_tenant(r!(pb::UpdateTenantRequest { name: t.tenant.into(), quotas })))
        }
        "DeleteTenant" => text!(c.delete_tenant(r!(pb::DeleteTenantRequest { name: t.tenant.into() }))),
        "CreateKey" => {
            let req =
                pb::CreateKeyRequest { tenant: t.tenant.into(), role: pb::Role::Reader as i32, ..Default::default() };
            text!(c.create_key(r!(req)))
        }
        "ListKeys" => text!(c.list_keys(r!(pb::ListKeysRequest { tenant: t.tenant.into() }))),
        "RevokeKey" => {
            text!(c.revoke_key(r!(pb::RevokeKeyRequest { tenant: t.tenant.into(), id: t.key_id.into() })))
        }
        "ListAudit" => text!(c.list_audit(r!(pb::ListAuditRequest::default()))),
        other => panic!("no case for gRPC method {other}: add one to grpc_call"),
    }
}

/// The methods of naksha.v1.Naksha, from the compiled descriptor.
fn grpc_methods() -> Vec<String> {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(naksha_server::grpc::FILE_DESCRIPTOR_SET).unwrap();
    let service = set.file.iter().flat_map(|f| &f.service).find(|s| s.name() == "Naksha").unwrap();
    service.method.iter().map(|m| m.name().to_owned()).collect()
}

fn status_code(r: &Result<String, tonic::Status>) -> (tonic::Code, String) {
    match r {
        Ok(_) => (tonic::Code::Ok, String::new()),
        Err(e) => (e.code(), crate::grpc::error_code(e)),
    }
}

/// Tenant A's keys of every role, on every HTTP route and gRPC method, aimed
/// at tenant B's collection, points, documents and keys (and, for admins'
/// header, at B itself): never B's data, never a change to B, and the same
/// answer whether or not the resource exists in B.
#[tokio::test(flavor = "multi_thread")]
async fn tenant_keys_never_reach_another_tenant_on_any_route_or_method() {
    let dir = tempfile::tempdir().unwrap();
    let models = naksha_embed::testing::models_dir();
    let s = tokio::task::spawn_blocking({
        let (p, m) = (dir.path().to_owned(), models.display().to_string());
        move || Server::start(&p, &[("NAKSHA_API_KEY", ADMIN), ("NAKSHA__MODELS__DIR", &m)])
    })
    .await
    .unwrap();
    create_tenant(&s, "ta", json!({}));
    create_tenant(&s, "tb", json!({"max_points": 1000}));
    let b = admin_in(&s, "tb");
    let config = json!({"vectors": {"dim": 2, "metric": "cosine"}, "text_fields": ["body"]});
    assert_eq!(call(&b, "PUT", "/v1/collections/secret", Some(&config)).0, 201);
    let points = json!({"points": [
        {"id": 1, "vector": [1.0, 0.0], "payload": {"owner": MARK}, "text": {"body": MARK}},
        {"id": "p2", "vector": [0.0, 1.0], "payload": {"owner": MARK}}]});
    assert_eq!(call(&b, "POST", "/v1/collections/secret/points", Some(&points)).0, 200);
    let (b_key_id, b_key) = make_key(&s, "tb", json!({"role": "writer"}));
    let a_keys: Vec<(&str, String)> = vec![
        ("reader", make_key(&s, "ta", json!({"role": "reader"})).1),
        ("writer", make_key(&s, "ta", json!({"role": "writer"})).1),
        ("tenant_admin", make_key(&s, "ta", json!({"role": "tenant_admin"})).1),
        ("scoped writer", make_key(&s, "ta", json!({"role": "writer", "collections": ["mine"]})).1),
    ];
    // B's own job (its source is unreachable, so it fails and stays listed).
    let job = json!({"collection": "secret", "source": {"type": "postgres", "url": "postgres://b@127.0.0.1:9/b", "table": "t"},
        "mapping": {"id": "id", "vector": "v"}, "max_retries": 0});
    let (st, v) = call(&b, "POST", "/v1/jobs", Some(&job));
    assert_eq!(st, 202, "{v}");
    let b_job = v["id"].as_str().unwrap().to_owned();
    let real = Target { collection: "secret", point: "1", tenant: "tb", key_id: &b_key_id, job: &b_job };
    let fake = Target { collection: "nowhere", point: "999", tenant: "tnone", key_id: "000000000000", job: "job_none" };
    let routes = routes(&s);
    let mut checked = 0;
    for (role, key) in &a_keys {
        for header in [false, true] {
            for (method, path) in &routes {
                let body = body_for(method, path);
                let mut answers = Vec::new();
                for (t, tenant_header) in [(&real, "tb"), (&fake, "tnone")] {
                    let c = client(&s, key).with_tenant(header.then(|| tenant_header.to_owned()));
                    let (st, v) = call(&c, method, &fill(path, t), body.as_ref());
                    let text = v.to_string();
                    assert!(!text.contains(MARK), "{role} {method} {path} (header {header}) saw B's data: {text}");
                    assert!(!text.contains(&b_key_id) || path.contains("{id}"), "{role} {method} {path}: {text}");
                    let targets_b = path.contains('{') || header;
                    let creates_own = method == "PUT" && !header && *role == "tenant_admin";
                    if targets_b && !creates_own {
                        assert!(st >= 400, "{role} {method} {path} (header {header}) succeeded: {st} {text}");
                    }
                    answers.push((st, code(&v).to_owned()));
                }
                assert_eq!(answers[0], answers[1], "{role} {method} {path} (header {header}): an existence oracle");
                checked += 1;
            }
            // What the tenant_admin made in its own tenant goes, so the next pass starts equal.
            for name in ["secret", "nowhere"] {
                call(&admin_in(&s, "ta"), "DELETE", &format!("/v1/collections/{name}"), None);
            }
        }
    }
    assert_eq!(checked, a_keys.len() * 2 * routes.len());
    b_is_untouched(&s, &b_key);

    let mut methods = grpc_methods();
    // Creating a collection last: it makes one in the caller's own tenant.
    methods.sort_by_key(|m| m == "CreateCollection");
    assert!(methods.len() >= 22, "{methods:?}");
    let mut c =
        NakshaClient::new(tonic::transport::Channel::from_shared(s.grpc_url.clone()).unwrap().connect().await.unwrap());
    for (role, key) in &a_keys {
        for header in [false, true] {
            for m in &methods {
                let mut answers = Vec::new();
                for (t, h) in [(&real, "tb"), (&fake, "tnone")] {
                    let r = grpc_call(&mut c, m, t, key, header.then_some(h)).await;
                    if let Ok(text) = &r {
                        assert!(!text.contains(MARK), "{role} {m} (header {header}) saw B's data: {text}");
                        let harmless = matches!(m.as_str(), "ListCollections" | "ListModels" | "Embed")
                            || (m == "CreateCollection" && *role == "tenant_admin");
                        assert!(harmless && !header, "{role} {m} (header {header}) succeeded against B: {text}");
                    }
                    answers.push(status_code(&r));
                }
                assert_eq!(answers[0], answers[1], "{role} {m} (header {header}): an existence oracle");
            }
            for name in ["secret", "nowhere"] {
                call(&admin_in(&s, "ta"), "DELETE", &format!("/v1/collections/{name}"), None);
            }
        }
    }
    b_is_untouched(&s, &b_key);
    drop(s.stop());
}

/// The lowest role each route needs, written out here independently of the
/// server's table: each role is allowed or refused (403) exactly as listed.
fn least_role(method: &str, path: &str) -> usize {
    const READER: usize = 0;
    const WRITER: usize = 1;
    const TENANT_ADMIN: usize = 2;
    const ADMIN_ROLE: usize = 3;
    match (method, path) {
        ("GET", "/v1/collections" | "/v1/collections/{name}" | "/v1/collections/{name}/points/{id}") => READER,
        ("POST", "/v1/collections/{name}/query" | "/v1/collections/{name}/rag" | "/v1/embed") => READER,
        ("GET", "/v1/models" | "/openapi.json" | "/v1/jobs" | "/v1/jobs/{id}") => READER,
        ("POST", "/v1/jobs") | ("DELETE", "/v1/jobs/{id}") => WRITER,
        ("POST", "/v1/collections/{name}/points" | "/v1/collections/{name}/points/delete") => WRITER,
        ("POST", "/v1/collections/{name}/documents" | "/v1/collections/{name}/documents/delete") => WRITER,
        ("PUT" | "DELETE", "/v1/collections/{name}") => TENANT_ADMIN,
        ("GET", "/v1/tenants/{tenant}" | "/v1/tenants/{tenant}/keys") => TENANT_ADMIN,
        ("POST", "/v1/tenants/{tenant}/keys") | ("DELETE", "/v1/tenants/{tenant}/keys/{id}") => TENANT_ADMIN,
        (_, p) if p.starts_with("/v1/snapshots") || p.starts_with("/v1/collections/{name}/snapshots") => TENANT_ADMIN,
        ("GET", "/v1/tenants" | "/v1/audit" | "/metrics") => ADMIN_ROLE,
        ("POST", "/v1/tenants") | ("PATCH" | "DELETE", "/v1/tenants/{tenant}") => ADMIN_ROLE,
        other => panic!("no expected role for {other:?}: add the route to least_role"),
    }
}

/// Each role on each route of its own tenant; then a key limited to one
/// collection, and the collection list it sees.
#[test]
fn each_role_is_allowed_exactly_its_routes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[("NAKSHA_API_KEY", ADMIN)]);
    create_tenant(&s, "tm", json!({}));
    let own = admin_in(&s, "tm");
    for name in ["c", "other"] {
        let config = json!({"vectors": {"dim": 2, "metric": "cosine"}});
        assert_eq!(call(&own, "PUT", &format!("/v1/collections/{name}"), Some(&config)).0, 201);
    }
    let points = json!({"points": [{"id": 1, "vector": [1.0, 0.0]}]});
    assert_eq!(call(&own, "POST", "/v1/collections/c/points", Some(&points)).0, 200);
    let (admin_key_id, admin_key) = make_key(&s, "tm", json!({"role": "admin"}));
    let keys = [
        make_key(&s, "tm", json!({"role": "reader"})).1,
        make_key(&s, "tm", json!({"role": "writer"})).1,
        make_key(&s, "tm", json!({"role": "tenant_admin"})).1,
        admin_key,
    ];
    let t = Target { collection: "c", point: "1", tenant: "tm", key_id: "000000000000", job: "job_none" };
    for (method, path) in routes(&s) {
        for (rank, key) in keys.iter().enumerate() {
            let body = match (method.as_str(), path.as_str()) {
                ("POST", "/v1/tenants") => Some(json!({"name": format!("made-{rank}")})),
                ("PATCH", _) => Some(json!({"quotas": {}})),
                _ => body_for(&method, &path),
            };
            let target = if method == "DELETE" && path == "/v1/collections/{name}" {
                Target { collection: "gone", ..t }
            } else if method == "DELETE" && path == "/v1/tenants/{tenant}" {
                Target { tenant: "tnone", ..t }
            } else {
                Target { ..t }
            };
            let (st, v) = call(&client(&s, key), &method, &fill(&path, &target), body.as_ref());
            if rank >= least_role(&method, &path) {
                assert!(st != 403 && st != 401, "rank {rank} refused {method} {path}: {st} {v}");
            } else {
                assert_eq!((st, code(&v)), (403, "permission_denied"), "rank {rank} allowed {method} {path}: {v}");
            }
        }
    }
    // A key limited to `c`: `other` is refused (before any lookup), and lists show only `c`.
    let (_, scoped) = make_key(&s, "tm", json!({"role": "writer", "collections": ["c"]}));
    let sc = client(&s, &scoped);
    let (st, v) = call(&sc, "GET", "/v1/collections", None);
    let names: Vec<&str> = v["collections"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!((st, names), (200, vec!["c"]));
    for name in ["other", "absent"] {
        let (st, v) = call(&sc, "POST", &format!("/v1/collections/{name}/points"), Some(&points));
        assert_eq!((st, code(&v)), (403, "permission_denied"), "{name}: {v}");
    }
    assert_eq!(call(&sc, "POST", "/v1/collections/c/points", Some(&points)).0, 200);
    // A scoped key cannot mint a wider one, a tenant_admin no admin.
    let (_, ta) = make_key(&s, "tm", json!({"role": "tenant_admin", "collections": ["c"]}));
    let (st, _) = call(&client(&s, &ta), "POST", "/v1/tenants/tm/keys", Some(&json!({"role": "reader"})));
    assert_eq!(st, 403);
    let (st, _) =
        call(&client(&s, &ta), "POST", "/v1/tenants/tm/keys", Some(&json!({"role": "admin", "collections": ["c"]})));
    assert_eq!(st, 403);
    let (st, v) =
        call(&client(&s, &ta), "POST", "/v1/tenants/tm/keys", Some(&json!({"role": "reader", "collections": ["c"]})));
    assert_eq!(st, 201, "{v}");
    // An admin-role key of a tenant reaches any tenant with the header.
    let (st, _) = call(&client(&s, &keys[3]).with_tenant(Some("made-3".into())), "GET", "/v1/collections", None);
    assert_eq!(st, 200);
    assert!(!admin_key_id.is_empty());
    drop(s.stop());
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn jwt(alg: jsonwebtoken::Algorithm, key: &jsonwebtoken::EncodingKey, claims: Value) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, key).unwrap()
}

/// Revocation and expiry take effect at once and across restarts; JWTs are
/// accepted only with a good signature, a configured algorithm and a future `exp`.
#[test]
fn keys_revoke_and_expire_and_jwts_are_checked_across_restarts() {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    fs_err::create_dir_all(&keys).unwrap();
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem"], &keys);
    openssl(&["pkey", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub.pem"], &keys);
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ec.pem"], &keys);
    openssl(&["pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub.pem"], &keys);
    let secret = "an-hs256-shared-secret-of-32-bytes!";
    fs_err::write(keys.join("hs.secret"), format!("{secret}\n")).unwrap();
    let publics = format!("[\"{}\", \"{}\"]", keys.join("rsa.pub.pem").display(), keys.join("ec.pub.pem").display());
    let admin_file = keys.join("admin.key");
    fs_err::write(&admin_file, format!("{ADMIN}\n")).unwrap();
    let data = dir.path().join("data");
    let secret_file = keys.join("hs.secret");
    let env = [
        ("NAKSHA_API_KEY_FILE", admin_file.to_str().unwrap()),
        ("NAKSHA__AUTH__JWT_SECRET_FILE", secret_file.to_str().unwrap()),
        ("NAKSHA__AUTH__JWT_PUBLIC_KEY_FILES", &publics),
    ];
    let mut s = Server::start(&data, &env);
    create_tenant(&s, "tj", json!({}));
    let c = json!({"vectors": {"dim": 2, "metric": "cosine"}});
    assert_eq!(
        call(&admin_in(&s, "tj"), "PUT", "/v1/collections/docs", Some(&c)).0,
        201,
        "the admin key came from a file"
    );
    let (revoked_id, revoked) = make_key(&s, "tj", json!({"role": "reader"}));
    let (_, kept) = make_key(&s, "tj", json!({"role": "reader"}));
    let expiry = naksha_server::tenancy::clock::now() + 2;
    let (_, expiring) = make_key(&s, "tj", json!({"role": "reader", "expires_at": expiry}));
    let ok = |s: &Server, k: &str| call(&client(s, k), "GET", "/v1/collections/docs", None).0;
    assert_eq!((ok(&s, &revoked), ok(&s, &kept), ok(&s, &expiring)), (200, 200, 200));
    let (st, _) = call(&client(&s, ADMIN), "DELETE", &format!("/v1/tenants/tj/keys/{revoked_id}"), None);
    assert_eq!(st, 200);
    assert_eq!(ok(&s, &revoked), 401, "revocation takes effect at once");
    let (_, v) = call(&client(&s, ADMIN), "GET", "/v1/tenants/tj/keys", None);
    let listed = v["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|k| k.get("key").is_none() && k["prefix"].as_str().unwrap().starts_with("nk_")));
    assert!(listed.iter().any(|k| k["last_used"].is_string()), "last use is recorded: {v}");
    // Signed tokens.
    let exp = naksha_server::tenancy::clock::now() + 600;
    let claims = |tenant: &str, role: &str, exp: i64| json!({"tenant": tenant, "role": role, "exp": exp, "sub": "svc"});
    let hs = EncodingKey::from_secret(secret.as_bytes());
    let rsa = EncodingKey::from_rsa_pem(&fs_err::read(keys.join("rsa.pem")).unwrap()).unwrap();
    let ec = EncodingKey::from_ec_pem(&fs_err::read(keys.join("ec.pem")).unwrap()).unwrap();
    let good = [
        jwt(Algorithm::HS256, &hs, claims("tj", "reader", exp)),
        jwt(Algorithm::RS256, &rsa, claims("tj", "reader", exp)),
        jwt(Algorithm::ES256, &ec, claims("tj", "reader", exp)),
    ];
    for t in &good {
        assert_eq!(ok(&s, t), 200, "{t}");
    }
    let reader = &good[0];
    let (st, v) = call(&client(&s, reader), "PUT", "/v1/collections/x", Some(&c));
    assert_eq!((st, code(&v)), (403, "permission_denied"), "the role claim counts");
    let wrong_secret = EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes");
    let rsa_pub_as_secret = EncodingKey::from_secret(&fs_err::read(keys.join("rsa.pub.pem")).unwrap());
    let tampered = {
        let mut parts: Vec<String> = good[1].split('.').map(str::to_owned).collect();
        let mut sig = parts[2].clone().into_bytes();
        sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
        parts[2] = String::from_utf8(sig).unwrap();
        parts.join(".")
    };
    let b64 = |v: &Value| naksha_server::tenancy::secret::base64url(v.to_string().as_bytes());
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims("tj", "admin", exp)));
    let bad = [
        jwt(Algorithm::HS256, &wrong_secret, claims("tj", "reader", exp)),
        jwt(Algorithm::HS256, &hs, claims("tj", "reader", naksha_server::tenancy::clock::now() - 120)),
        jwt(Algorithm::HS256, &rsa_pub_as_secret, claims("tj", "admin", exp)),
        jwt(Algorithm::HS384, &hs, claims("tj", "reader", exp)),
        jwt(Algorithm::HS256, &hs, claims("no-such-tenant", "reader", exp)),
        jwt(Algorithm::HS256, &hs, json!({"tenant": "tj", "role": "reader"})),
        tampered,
        none,
        "a.b.c".to_owned(),
    ];
    for t in &bad {
        let (st, v) = call(&client(&s, t), "GET", "/v1/collections/docs", None);
        assert_eq!((st, code(&v)), (401, "unauthenticated"), "{t}");
    }
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(ok(&s, &expiring), 401, "expired");
    // A restart keeps tenants, keys and revocations.
    drop(s.stop());
    s = Server::start(&data, &env);
    assert_eq!((ok(&s, &revoked), ok(&s, &kept), ok(&s, &expiring), ok(&s, reader)), (401, 200, 401, 200));
    let (_, v) = call(&client(&s, ADMIN), "GET", "/v1/audit?tenant=tj&action=keys.revoke", None);
    assert_eq!(v["entries"].as_array().unwrap().len(), 1, "{v}");
    let log = fs_err::read_to_string(data.join("audit/audit.log")).unwrap();
    assert!(!log.contains(&kept) && !log.contains(ADMIN) && !log.contains(secret), "no secret in the audit log");
    let registry = fs_err::read_to_string(data.join("tenancy/registry.jsonl")).unwrap();
    assert!(!registry.contains(&kept) && !registry.contains(&revoked), "keys are stored as hashes");
    // A data directory with tenants refuses to start without authentication.
    drop(s.stop());
    let out = Command::new(env!("CARGO_BIN_EXE_naksha"))
        .args(["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("NAKSHA_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no admin key"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Size quotas refuse exactly past the limit and nothing is written; racing
/// writers cannot overshoot; rates answer 429 with Retry-After; usage shows in
/// the tenant and in /metrics; every refusal is audited.
#[test]
fn quotas_and_rate_limits_hold_at_the_edges() {
    let dir = tempfile::tempdir().unwrap();
    let models = naksha_embed::testing::models_dir();
    let s = Server::start(dir.path(), &[("NAKSHA_API_KEY", ADMIN), ("NAKSHA__MODELS__DIR", models.to_str().unwrap())]);
    create_tenant(&s, "tq", json!({"max_collections": 1, "max_points": 10}));
    let (_, key) = make_key(&s, "tq", json!({"role": "tenant_admin"}));
    let k = client(&s, &key);
    let config = json!({"vectors": {"dim": 2, "metric": "cosine"}});
    assert_eq!(call(&k, "PUT", "/v1/collections/a", Some(&config)).0, 201);
    assert_eq!(call(&k, "PUT", "/v1/collections/a", Some(&config)).0, 200, "the same collection again is no new one");
    let (st, v) = call(&k, "PUT", "/v1/collections/b", Some(&config));
    assert_eq!((st, code(&v)), (403, "quota_exceeded"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("max_collections"), "{v}");
    assert_eq!(call(&k, "GET", "/v1/collections/b", None).0, 404, "nothing was created");
    // Eight writers race for ten slots with three points each: three win.
    let url = s.url.clone();
    let wins: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8u64)
            .map(|w| {
                let (url, key) = (url.clone(), key.clone());
                scope.spawn(move || {
                    let pts: Vec<Value> =
                        (0..3).map(|i| json!({"id": w * 10 + i, "vector": [1.0, i as f32]})).collect();
                    let (st, v) = call(
                        &Client::new(&url, Some(key)),
                        "POST",
                        "/v1/collections/a/points",
                        Some(&json!({"points": pts})),
                    );
                    assert!(st == 200 || (st == 403 && code(&v) == "quota_exceeded"), "{st} {v}");
                    usize::from(st == 200)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(wins, 3);
    let points = |s: &Server| call(&client(s, ADMIN), "GET", "/v1/tenants/tq", None).1["usage"]["points"].as_u64();
    assert_eq!(points(&s), Some(9));
    let one = |id: u64| json!({"points": [{"id": id, "vector": [0.3, 0.7]}]});
    assert_eq!(call(&k, "POST", "/v1/collections/a/points", Some(&one(500))).0, 200, "exactly at the limit");
    let (st, v) = call(&k, "POST", "/v1/collections/a/points", Some(&one(501)));
    assert_eq!((st, code(&v)), (403, "quota_exceeded"), "one over: {v}");
    assert_eq!(call(&k, "POST", "/v1/collections/a/points", Some(&one(500))).0, 200, "overwriting adds nothing");
    assert_eq!(call(&k, "GET", "/v1/collections/a/points/501", None).0, 404, "nothing partially written");
    assert_eq!(points(&s), Some(10));
    // Disk bytes: once reached, writes stop.
    let (st, _) = call(
        &client(&s, ADMIN),
        "PATCH",
        "/v1/tenants/tq",
        Some(&json!({"quotas": {"max_points": null, "max_disk_bytes": 1}})),
    );
    assert_eq!(st, 200);
    let (st, v) = call(&k, "POST", "/v1/collections/a/points", Some(&one(600)));
    assert_eq!((st, code(&v)), (403, "quota_exceeded"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("max_disk_bytes"));
    // Requests per second: a burst of the limit, then 429 with Retry-After.
    let (st, _) = call(
        &client(&s, ADMIN),
        "PATCH",
        "/v1/tenants/tq",
        Some(&json!({"quotas": {"max_disk_bytes": null, "requests_per_second": 3}})),
    );
    assert_eq!(st, 200);
    std::thread::sleep(Duration::from_millis(1100));
    let statuses: Vec<u16> = (0..5).map(|_| call(&k, "GET", "/v1/collections", None).0).collect();
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].iter().all(|&st| st == 429), "{statuses:?}");
    let raw = raw_request(&s, &format!("GET /v1/collections HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"));
    assert!(raw.starts_with("HTTP/1.1 429") && raw.to_ascii_lowercase().contains("retry-after: 1"), "{raw}");
    assert!(raw.contains("rate_limited"));
    assert_eq!(
        call(&client(&s, ADMIN).with_tenant(Some("tq".into())), "GET", "/v1/collections", None).0,
        200,
        "admins are not limited"
    );
    // Embedding tokens per minute.
    let (st, _) = call(
        &client(&s, ADMIN),
        "PATCH",
        "/v1/tenants/tq",
        Some(&json!({"quotas": {"requests_per_second": null, "embed_tokens_per_minute": 30}})),
    );
    assert_eq!(st, 200);
    let embed = json!({"model": "all-minilm-l6-v2", "input": ["one two three four five six seven eight"]});
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (st, v) = call(&k, "POST", "/v1/embed", Some(&embed));
        seen.push((st, code(&v).to_owned()));
    }
    assert_eq!(seen[0].0, 200, "{seen:?}");
    assert!(seen.iter().any(|(st, c)| *st == 429 && c == "rate_limited"), "{seen:?}");
    let big = json!({"model": "all-minilm-l6-v2", "input": ["word ".repeat(200)]});
    let (st, v) = call(&k, "POST", "/v1/embed", Some(&big));
    assert_eq!((st, code(&v)), (403, "quota_exceeded"), "one request over the whole minute's budget: {v}");
    // Usage and metrics.
    let (_, t) = call(&client(&s, ADMIN), "GET", "/v1/tenants/tq", None);
    assert_eq!(t["usage"]["collections"], 1);
    assert!(t["counters"]["rate_limited"].as_u64().unwrap() >= 3, "{t}");
    assert!(t["counters"]["embed_tokens"].as_u64().unwrap() > 0, "{t}");
    let (_, m) = call(&client(&s, ADMIN), "GET", "/metrics", None);
    let m = m.as_str().unwrap().to_owned();
    assert!(m.contains("naksha_tenant_rate_limited_total{tenant=\"tq\"}"), "{m}");
    assert!(m.contains("naksha_collection_points{tenant=\"tq\",collection=\"a\"} 10"), "{m}");
    // Audit: each refusal, with the key id and no secret.
    let (_, a) = call(&client(&s, ADMIN), "GET", "/v1/audit?tenant=tq&limit=1000", None);
    let entries = a["entries"].as_array().unwrap();
    let outcomes: BTreeSet<(&str, &str)> =
        entries.iter().map(|e| (e["action"].as_str().unwrap(), e["code"].as_str().unwrap_or("ok"))).collect();
    for want in [
        ("collections.create", "quota_exceeded"),
        ("points.upsert", "quota_exceeded"),
        ("collections.list", "rate_limited"),
        ("points.upsert", "ok"),
    ] {
        assert!(outcomes.contains(&want), "{want:?} not in {outcomes:?}");
    }
    assert!(entries.iter().all(|e| e["client"].as_str().is_some_and(|c| c.starts_with("127.0.0.1:"))));
    assert!(!a.to_string().contains(&key));
    drop(s.stop());
}

fn raw_request(s: &Server, text: &str) -> String {
    let mut conn = std::net::TcpStream::connect(s.url.trim_start_matches("http://")).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    conn.write_all(text.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Malformed credentials, huge headers, unknown tenants and bad bodies get a
/// clear 4xx and change nothing; failed authentication is audited.
#[test]
fn bad_credentials_and_input_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[("NAKSHA_API_KEY", ADMIN)]);
    create_tenant(&s, "tx", json!({}));
    let (id, key) = make_key(&s, "tx", json!({"role": "writer"}));
    let long = "k".repeat(20_000);
    let forged = format!("nk_{id}_{}", "A".repeat(43));
    for bad in
        ["", "nk_", "nk__", "nk_zz_zz", &forged, &format!("{key}x"), &key[..key.len() - 1], &long, "Basic abc", "null"]
    {
        let (st, v) = call(&client(&s, bad), "GET", "/v1/collections", None);
        assert_eq!((st, code(&v)), (401, "unauthenticated"), "{bad:.40}");
    }
    let raw = raw_request(
        &s,
        &format!(
            "GET /v1/collections HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
            "x".repeat(200_000)
        ),
    );
    let status: u16 = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    assert!((400..500).contains(&status) || raw.is_empty(), "huge header: {raw:.200}");
    let a = client(&s, ADMIN);
    for (method, path, body) in [
        ("POST", "/v1/tenants", json!({"name": "bad name"})),
        ("POST", "/v1/tenants", json!({"name": "default"})),
        ("POST", "/v1/tenants", json!({"name": "tx"})),
        ("POST", "/v1/tenants", json!({"name": "ty", "quotas": {"max_pointz": 1}})),
        ("POST", "/v1/tenants", json!({"name": "ty", "quotas": {"requests_per_second": -1}})),
        ("PATCH", "/v1/tenants/tx", json!({"quotas": {"max_points": "many"}})),
        ("POST", "/v1/tenants/tx/keys", json!({"role": "owner"})),
        ("POST", "/v1/tenants/tx/keys", json!({"role": "reader", "expires_at": "2001-01-01T00:00:00Z"})),
        ("POST", "/v1/tenants/tx/keys", json!({"role": "reader", "expires_at": "soon"})),
        ("POST", "/v1/tenants/tx/keys", json!({"role": "reader", "collections": []})),
        ("POST", "/v1/tenants/tx/keys", json!({"role": "reader", "collections": ["no/slash"]})),
        ("POST", "/v1/tenants/nosuch/keys", json!({"role": "reader"})),
        ("DELETE", "/v1/tenants/default", json!({})),
        ("GET", "/v1/audit?limit=0", json!({})),
        ("GET", "/v1/audit?since=yesterday", json!({})),
    ] {
        let (st, v) = call(&a, method, path, Some(&body));
        assert!((400..500).contains(&st) && !code(&v).is_empty(), "{method} {path} {body}: {st} {v}");
    }
    let (st, v) = call(&client(&s, ADMIN).with_tenant(Some("nosuch".into())), "GET", "/v1/collections", None);
    assert_eq!((st, code(&v)), (404, "not_found"), "{v}");
    let (_, v) = call(&a, "GET", "/v1/tenants", None);
    assert_eq!(v["tenants"].as_array().unwrap().len(), 1, "nothing was created: {v}");
    let (_, v) = call(&a, "GET", "/v1/tenants/tx/keys", None);
    assert_eq!(v["keys"].as_array().unwrap().len(), 1, "{v}");
    let (_, v) = call(&a, "GET", "/v1/audit?action=collections.list&limit=1000", None);
    let failures = v["entries"].as_array().unwrap().iter().filter(|e| e["outcome"] == "unauthenticated").count();
    assert!(failures >= 9, "failed authentications are audited: {v}");
    assert!(!v.to_string().contains(&key[10..]), "no secret in the audit log");
    drop(s.stop());
}

/// Deleting a tenant removes its collections, keys and files durably (also
/// across a restart); 200 small tenants are opened on demand and closed when idle.
#[test]
fn tenants_are_deleted_durably_and_opened_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let env =
        [("NAKSHA_API_KEY", ADMIN), ("NAKSHA__TENANTS__MAX_OPEN", "8"), ("NAKSHA__TENANTS__IDLE_CLOSE_SECS", "1")];
    let mut s = Server::start(dir.path(), &env);
    let config = json!({"vectors": {"dim": 2, "metric": "cosine"}});
    for i in 0..40 {
        let t = format!("t{i}");
        create_tenant(&s, &t, json!({}));
        let c = admin_in(&s, &t);
        assert_eq!(call(&c, "PUT", "/v1/collections/docs", Some(&config)).0, 201);
        let pts = json!({"points": [{"id": i, "vector": [1.0, i as f32]}]});
        assert_eq!(call(&c, "POST", "/v1/collections/docs/points", Some(&pts)).0, 200);
    }
    let open = |s: &Server| -> f64 {
        let m = call(&client(s, ADMIN), "GET", "/metrics", None).1;
        let m = m.as_str().unwrap().to_owned();
        m.lines().find_map(|l| l.strip_prefix("naksha_tenants_open ")).unwrap().parse().unwrap()
    };
    assert!(open(&s) <= 8.0, "at most max_open tenants stay open");
    // Every tenant still answers, each with its own point.
    for i in 0..40u64 {
        let (st, v) = call(
            &admin_in(&s, &format!("t{i}")),
            "POST",
            "/v1/collections/docs/query",
            Some(&json!({"vector": [1.0, 0.0], "limit": 5})),
        );
        assert_eq!(st, 200, "{v}");
        let ids: Vec<u64> = v["results"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, vec![i]);
    }
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(open(&s), 0.0, "idle tenants are closed");
    let (_, key) = make_key(&s, "t3", json!({"role": "reader"}));
    let (st, _) = call(&client(&s, ADMIN), "DELETE", "/v1/tenants/t3", None);
    assert_eq!(st, 200);
    assert!(!dir.path().join("tenants/t3").exists(), "its files are gone");
    assert_eq!(call(&client(&s, &key), "GET", "/v1/collections", None).0, 401, "its keys are gone");
    assert_eq!(call(&admin_in(&s, "t3"), "GET", "/v1/collections", None).0, 404);
    create_tenant(&s, "t3", json!({}));
    let (_, v) = call(&admin_in(&s, "t3"), "GET", "/v1/collections", None);
    assert_eq!(v["collections"], json!([]), "a new tenant of the same name starts empty");
    drop(s.stop());
    s = Server::start(dir.path(), &env);
    let (_, v) = call(&client(&s, ADMIN), "GET", "/v1/tenants", None);
    assert_eq!(v["tenants"].as_array().unwrap().len(), 40);
    assert_eq!(call(&client(&s, &key), "GET", "/v1/collections", None).0, 401);
    let (st, v) = call(&admin_in(&s, "t39"), "GET", "/v1/collections/docs", None);
    assert_eq!((st, v["points"].as_u64()), (200, Some(1)), "a cold tenant opens on its first request");
    drop(s.stop());
}

/// HTTPS and gRPC over TLS with a certificate from files, replaced on SIGHUP.
#[test]
fn tls_serves_both_apis_and_reloads_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    fs_err::create_dir_all(&certs).unwrap();
    let make = |name: &str| {
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            &certs,
        )
    };
    make("one");
    make("two");
    fs_err::copy(certs.join("one.pem"), certs.join("cert.pem")).unwrap();
    fs_err::copy(certs.join("one.key"), certs.join("key.pem")).unwrap();
    let (cert, key) = (certs.join("cert.pem"), certs.join("key.pem"));
    let s = Server::start_tls(
        &dir.path().join("data"),
        &[
            ("NAKSHA__SERVER__TLS_CERT_FILE", cert.to_str().unwrap()),
            ("NAKSHA__SERVER__TLS_KEY_FILE", key.to_str().unwrap()),
        ],
        &certs.join("one.pem"),
    );
    let https = s.url.replace("http://", "https://");
    let curl = |ca: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(certs.join(ca))
            .arg(format!("{https}/healthz"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("one.pem"), "200");
    let alpn = |port: &str| {
        let out = Command::new("openssl")
            .args(["s_client", "-alpn", "h2", "-connect", &format!("127.0.0.1:{port}"), "-CAfile"])
            .arg(certs.join("one.pem"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let grpc_port = s.grpc_url.rsplit(':').next().unwrap().to_owned();
    let out = alpn(&grpc_port);
    assert!(out.contains("ALPN protocol: h2") && out.contains("Verify return code: 0"), "{out}");
    // A real gRPC client over TLS (grpcio from the API tools): reflection lists the services.
    let venv = std::env::var("NAKSHA_API_TOOLS_VENV").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/naksha/venv-api-tools")
    });
    let script = "import sys, grpc\n\
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase\n\
creds = grpc.ssl_channel_credentials(open(sys.argv[2], 'rb').read())\n\
print(sorted(ProtoReflectionDescriptorDatabase(grpc.secure_channel(sys.argv[1], creds)).get_services()))\n";
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", script, &format!("localhost:{grpc_port}")])
        .arg(certs.join("one.pem"))
        .output()
        .expect("the API tools' python (scripts/install-api-tools.sh)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("naksha.v1.Naksha"), "gRPC over TLS: {text}");
    fs_err::copy(certs.join("two.pem"), &cert).unwrap();
    fs_err::copy(certs.join("two.key"), &key).unwrap();
    s.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(curl("two.pem"), "200", "the new certificate is served");
    assert_ne!(curl("one.pem"), "200", "the old one is not");
    drop(s.stop());
}

fn cli(s: &Server, key: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_naksha"))
        .args(args)
        .env("NAKSHA_URL", &s.url)
        .env("NAKSHA_API_KEY", key)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// `naksha tenants ...` and `naksha keys ...` against a running server.
#[test]
fn the_cli_manages_tenants_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[("NAKSHA_API_KEY", ADMIN)]);
    let (ok, out) =
        cli(&s, ADMIN, &["tenants", "create", "acme", "--max-points", "100", "--requests-per-second", "50"]);
    assert!(ok && out.contains("\"max_points\": 100"), "{out}");
    let (ok, out) = cli(&s, ADMIN, &["tenants", "list"]);
    assert!(ok && out.starts_with("acme\t"), "{out}");
    let (ok, out) = cli(&s, ADMIN, &["keys", "create", "acme", "--role", "writer", "--collections", "docs,faq"]);
    assert!(ok && out.contains("shown only now"), "{out}");
    let created: Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    let (id, key) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());
    assert_eq!(created["collections"], json!(["docs", "faq"]));
    let (ok, out) = cli(&s, ADMIN, &["keys", "list", "acme"]);
    assert!(ok && out.contains(id) && out.contains("writer") && !out.contains(key), "{out}");
    let (ok, out) = cli(&s, ADMIN, &["tenants", "update", "acme", "--max-points", "5"]);
    assert!(ok && out.contains("\"max_points\": 5"), "{out}");
    let (ok, out) = cli(&s, ADMIN, &["tenants", "info", "acme"]);
    assert!(ok && out.contains("\"usage\""), "{out}");
    let (ok, out) = cli(&s, key, &["collections", "list"]);
    assert!(ok, "a tenant key lists its own (empty) tenant: {out}");
    let (ok, out) = cli(&s, ADMIN, &["collections", "create", "docs", "--dim", "2", "--tenant", "acme"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&s, key, &["collections", "list"]);
    assert!(ok && out.contains("docs"), "{out}");
    let (ok, out) = cli(&s, key, &["tenants", "list"]);
    assert!(!ok && out.contains("403"), "{out}");
    let (ok, out) = cli(&s, ADMIN, &["keys", "revoke", "acme", id]);
    assert!(ok && out.contains("revoked"), "{out}");
    let (ok, out) = cli(&s, key, &["collections", "list"]);
    assert!(!ok && out.contains("401"), "{out}");
    let (ok, out) = cli(&s, ADMIN, &["tenants", "delete", "acme"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&s, ADMIN, &["tenants", "info", "acme"]);
    assert!(!ok && out.contains("404"), "{out}");
    drop(s.stop());
}

//! The gRPC API end to end: naksha.v1, health, reflection, errors, auth.

use naksha_server::grpc::pb::naksha_client::NakshaClient;
use naksha_server::grpc::pb::{self, point_id::Kind};
use tonic::Code;

use crate::server::Server;

async fn channel(url: &str) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(url.to_owned()).unwrap().connect().await.unwrap()
}

fn id(n: u64) -> Option<pb::PointId> {
    Some(pb::PointId { kind: Some(Kind::Num(n)) })
}

/// A JSON object as a `google.protobuf.Struct`.
pub fn pb_struct(v: serde_json::Value) -> prost_types::Struct {
    fn value(v: serde_json::Value) -> prost_types::Value {
        use prost_types::value::Kind as K;
        let kind = match v {
            serde_json::Value::Null => K::NullValue(0),
            serde_json::Value::Bool(b) => K::BoolValue(b),
            serde_json::Value::Number(n) => K::NumberValue(n.as_f64().unwrap()),
            serde_json::Value::String(s) => K::StringValue(s),
            serde_json::Value::Array(a) => {
                K::ListValue(prost_types::ListValue { values: a.into_iter().map(value).collect() })
            }
            o @ serde_json::Value::Object(_) => K::StructValue(pb_struct(o)),
        };
        prost_types::Value { kind: Some(kind) }
    }
    let serde_json::Value::Object(o) = v else { panic!("not an object") };
    prost_types::Struct { fields: o.into_iter().map(|(k, v)| (k, value(v))).collect() }
}

fn point(n: u64, v: [f32; 2], payload: Option<serde_json::Value>) -> pb::Point {
    pb::Point { id: id(n), vector: v.to_vec(), payload: payload.map(pb_struct), text: Default::default() }
}

/// A condition `key == value` (a string).
pub fn matches(key: &str, value: &str) -> pb::Condition {
    let value = prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(value.into())) };
    pb::Condition {
        condition: Some(pb::condition::Condition::Field(pb::FieldCondition {
            key: key.into(),
            test: Some(pb::field_condition::Test::Match(value)),
        })),
    }
}

/// The API error code in a status's details.
pub fn error_code(e: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    e.get_details_error_info().map(|i| i.reason).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_operations_health_and_reflection() {
    let dir = tempfile::tempdir().unwrap();
    let s = tokio::task::spawn_blocking({
        let p = dir.path().to_owned();
        move || Server::start(&p, &[])
    })
    .await
    .unwrap();
    let mut c = NakshaClient::connect(s.grpc_url.clone()).await.unwrap();
    let info = c
        .create_collection(pb::CreateCollectionRequest {
            name: "g".into(),
            config: Some(pb::CollectionConfig {
                vectors: Some(pb::VectorsConfig { dim: Some(2), metric: pb::Metric::L2 as i32, ..Default::default() }),
                payload_index: [("k".to_owned(), pb::FieldType::Keyword as i32)].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(info.created);
    let config = info.config.unwrap();
    let vectors = config.vectors.unwrap();
    assert_eq!((vectors.dim, vectors.metric, vectors.hnsw.unwrap().m), (Some(2), pb::Metric::L2 as i32, Some(16)));
    assert_eq!(config.payload_index["k"], pb::FieldType::Keyword as i32);
    assert_eq!(info.status, pb::CollectionStatus::Ok as i32);
    let up = c
        .upsert(pb::UpsertRequest {
            collection: "g".into(),
            points: vec![
                point(1, [0.0, 0.0], Some(serde_json::json!({"k": "a", "n": 7, "x": 0.5, "tags": ["t", true, null]}))),
                point(2, [1.0, 0.0], Some(serde_json::json!({"k": "b"}))),
                point(3, [2.0, 0.0], None),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up.upserted, 3);
    let q = pb::QueryRequest { collection: "g".into(), vector: vec![0.9, 0.0], limit: Some(2), ..Default::default() };
    let r = c.query(q.clone()).await.unwrap().into_inner();
    assert_eq!(r.results.iter().map(|h| h.id.clone()).collect::<Vec<_>>(), vec![id(2), id(1)]);
    assert_eq!(r.results[0].payload, Some(pb_struct(serde_json::json!({"k": "b"}))));
    // Payloads round-trip through Struct: integers stay integers (HTTP shows the same JSON).
    assert_eq!(
        r.results[1].payload,
        Some(pb_struct(serde_json::json!({"k": "a", "n": 7, "x": 0.5, "tags": ["t", true, null]})))
    );
    let filtered = pb::QueryRequest {
        filter: Some(pb::Filter { must: vec![matches("k", "a")], ..Default::default() }),
        ..q.clone()
    };
    assert_eq!(c.query(filtered).await.unwrap().into_inner().results.len(), 1);
    // Nested filters and ranges are messages too.
    let range = pb::Condition {
        condition: Some(pb::condition::Condition::Field(pb::FieldCondition {
            key: "n".into(),
            test: Some(pb::field_condition::Test::Range(pb::Range { gte: Some(7.0), ..Default::default() })),
        })),
    };
    let nested = pb::Filter {
        should: vec![pb::Condition {
            condition: Some(pb::condition::Condition::Nested(pb::Filter { must: vec![range], ..Default::default() })),
        }],
        ..Default::default()
    };
    let hits = c.query(pb::QueryRequest { filter: Some(nested), ..q.clone() }).await.unwrap().into_inner().results;
    assert_eq!(hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>(), vec![id(1)]);
    let p = c.get_point(pb::GetPointRequest { collection: "g".into(), id: id(3) }).await.unwrap().into_inner();
    assert_eq!((p.vector, p.payload), (vec![2.0, 0.0], None));
    let d = c.delete(pb::DeleteRequest {
        collection: "g".into(),
        ids: vec![pb::PointId { kind: Some(Kind::Num(3)) }],
        filter: None,
        all: false,
    });
    assert_eq!(d.await.unwrap().into_inner().deleted, 1);
    // An empty filter deletes nothing: bulk deletes need `all` (#17).
    let d = c.delete(pb::DeleteRequest {
        collection: "g".into(),
        ids: vec![],
        filter: Some(pb::Filter::default()),
        all: false,
    });
    let e = d.await.unwrap_err();
    assert_eq!((e.code(), error_code(&e).as_str()), (Code::InvalidArgument, "invalid_argument"));
    // Unknown enum values are refused, not read as the default.
    let e = c.query(pb::QueryRequest { mode: 42, ..q.clone() }).await.unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().contains("mode"), "{e:?}");
    let list = c.list_collections(pb::ListCollectionsRequest {}).await.unwrap().into_inner();
    assert_eq!((list.collections[0].name.as_str(), list.collections[0].points), ("g", 2));

    // Errors carry the same messages as HTTP, with gRPC codes.
    let e = c
        .upsert(pb::UpsertRequest {
            collection: "g".into(),
            points: vec![point(9, [1.0, 2.0], None), pb::Point { id: id(10), vector: vec![1.0], ..Default::default() }],
        })
        .await
        .unwrap_err();
    assert_eq!((e.code(), error_code(&e).as_str()), (Code::InvalidArgument, "unprocessable"));
    assert!(e.message().contains("point 10: vector has 1 dimensions"), "{}", e.message());
    let e = c.get_point(pb::GetPointRequest { collection: "g".into(), id: id(9) }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "the rejected batch changed nothing");
    let e = c
        .query(pb::QueryRequest { mode: pb::SearchMode::Text as i32, text: Some("hi".into()), ..q.clone() })
        .await
        .unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().contains("has no text_fields"));
    let e = c.query(pb::QueryRequest { collection: "nope".into(), ..q.clone() }).await.unwrap_err();
    assert_eq!((e.code(), error_code(&e).as_str()), (Code::NotFound, "not_found"));
    let e = c
        .create_collection(pb::CreateCollectionRequest {
            name: "g".into(),
            config: Some(pb::CollectionConfig {
                vectors: Some(pb::VectorsConfig { dim: Some(3), metric: pb::Metric::L2 as i32, ..Default::default() }),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!((e.code(), error_code(&e).as_str()), (Code::AlreadyExists, "already_exists"));
    let e = c.create_collection(pb::CreateCollectionRequest { name: "h".into(), config: None }).await.unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().contains("config is required"), "{e:?}");
    let e = c
        .upsert(pb::UpsertRequest {
            collection: "g".into(),
            points: vec![pb::Point { id: None, vector: vec![1.0, 1.0], ..Default::default() }],
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("point id is required"));

    // Standard health service.
    let mut h = tonic_health::pb::health_client::HealthClient::new(channel(&s.grpc_url).await);
    let st = h
        .check(tonic_health::pb::HealthCheckRequest { service: "naksha.v1.Naksha".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    // Reflection lists the service.
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
        server_reflection_response::MessageResponse, ServerReflectionRequest,
    };
    let mut refl = ServerReflectionClient::new(channel(&s.grpc_url).await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    let msg = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(l)) = msg.message_response else {
        panic!("unexpected reflection reply")
    };
    assert!(l.service.iter().any(|s| s.name == "naksha.v1.Naksha"), "{:?}", l.service);
    drop(c);
    tokio::task::spawn_blocking(move || s.stop()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_requires_the_api_key_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = tokio::task::spawn_blocking({
        let p = dir.path().to_owned();
        move || Server::start(&p, &[("NAKSHA_API_KEY", "k3y")])
    })
    .await
    .unwrap();
    let mut c = NakshaClient::connect(s.grpc_url.clone()).await.unwrap();
    let e = c.list_collections(pb::ListCollectionsRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut req = tonic::Request::new(pb::ListCollectionsRequest {});
    req.metadata_mut().insert("authorization", "Bearer k3y".parse().unwrap());
    assert!(c.list_collections(req).await.is_ok());
    let mut h = tonic_health::pb::health_client::HealthClient::new(channel(&s.grpc_url).await);
    assert!(
        h.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.is_ok(),
        "health needs no key"
    );
    // Reflection describes the whole API: it needs the key too (#17).
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
        ServerReflectionRequest,
    };
    let list = || ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut refl = ServerReflectionClient::new(channel(&s.grpc_url).await);
    let e = refl.server_reflection_info(tokio_stream::iter(vec![list()])).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut req = tonic::Request::new(tokio_stream::iter(vec![list()]));
    req.metadata_mut().insert("authorization", "Bearer k3y".parse().unwrap());
    assert!(refl.server_reflection_info(req).await.is_ok());
    tokio::task::spawn_blocking(move || drop(s)).await.unwrap();
}

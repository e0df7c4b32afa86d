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

fn point(n: u64, v: [f32; 2], payload: &str) -> pb::Point {
    pb::Point { id: id(n), vector: v.to_vec(), payload_json: payload.into(), text_json: String::new() }
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
            config_json: r#"{"vectors": {"dim": 2, "metric": "l2"}, "payload_index": {"k": "keyword"}}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(info.created && info.config_json.contains("\"dim\":2"));
    let up = c
        .upsert(pb::UpsertRequest {
            collection: "g".into(),
            points: vec![
                point(1, [0.0, 0.0], r#"{"k": "a"}"#),
                point(2, [1.0, 0.0], r#"{"k": "b"}"#),
                point(3, [2.0, 0.0], ""),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up.upserted, 3);
    let q = pb::QueryRequest { collection: "g".into(), vector: vec![0.9, 0.0], limit: 2, ..Default::default() };
    let r = c.query(q.clone()).await.unwrap().into_inner();
    assert_eq!(r.results.iter().map(|h| h.id.clone()).collect::<Vec<_>>(), vec![id(2), id(1)]);
    assert_eq!(r.results[0].payload_json, r#"{"k":"b"}"#);
    let filtered = pb::QueryRequest { filter_json: r#"{"must": [{"key": "k", "match": "a"}]}"#.into(), ..q.clone() };
    assert_eq!(c.query(filtered).await.unwrap().into_inner().results.len(), 1);
    let p = c.get_point(pb::GetPointRequest { collection: "g".into(), id: id(3) }).await.unwrap().into_inner();
    assert_eq!((p.vector, p.payload_json), (vec![2.0, 0.0], String::new()));
    let d = c.delete(pb::DeleteRequest {
        collection: "g".into(),
        ids: vec![pb::PointId { kind: Some(Kind::Num(3)) }],
        filter_json: String::new(),
        all: false,
    });
    assert_eq!(d.await.unwrap().into_inner().deleted, 1);
    // An empty filter deletes nothing: bulk deletes need `all` (#17).
    for filter_json in ["{}", "[]"] {
        let d = c.delete(pb::DeleteRequest {
            collection: "g".into(),
            ids: vec![],
            filter_json: filter_json.into(),
            all: false,
        });
        assert_eq!(d.await.unwrap_err().code(), Code::InvalidArgument, "{filter_json}");
    }
    let list = c.list_collections(pb::ListCollectionsRequest {}).await.unwrap().into_inner();
    assert_eq!((list.collections[0].name.as_str(), list.collections[0].points), ("g", 2));

    // Errors carry the same messages as HTTP, with gRPC codes.
    let e = c
        .upsert(pb::UpsertRequest {
            collection: "g".into(),
            points: vec![
                point(9, [1.0, 2.0], ""),
                pb::Point { id: id(10), vector: vec![1.0], payload_json: String::new(), text_json: String::new() },
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("point 10: vector has 1 dimensions"), "{}", e.message());
    let e = c.get_point(pb::GetPointRequest { collection: "g".into(), id: id(9) }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "the rejected batch changed nothing");
    let e = c.query(pb::QueryRequest { mode: "text".into(), text: "hi".into(), ..q.clone() }).await.unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().contains("has no text_fields"));
    let e = c.query(pb::QueryRequest { collection: "nope".into(), ..q.clone() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .create_collection(pb::CreateCollectionRequest {
            name: "g".into(),
            config_json: r#"{"vectors": {"dim": 3, "metric": "l2"}}"#.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let e = c
        .upsert(pb::UpsertRequest {
            collection: "g".into(),
            points: vec![pb::Point {
                id: None,
                vector: vec![1.0, 1.0],
                payload_json: String::new(),
                text_json: String::new(),
            }],
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

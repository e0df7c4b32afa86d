"""A generic gRPC client driven only by server reflection (no generated code,
no .proto files): lists the services, builds every message type from the
descriptors the server returns, and calls every method of naksha.v1.Naksha
with requests written as proto3 JSON. Exits non-zero on the first surprise.

    python grpc_reflect.py HOST:PORT [API_KEY]

Run by server/tests/integration/contract.rs against a live server.
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

SERVICE = "naksha.v1.Naksha"


class _Details(grpc.ClientCallDetails):
    def __init__(self, d, metadata):
        self.method, self.timeout, self.credentials = d.method, d.timeout, d.credentials
        self.wait_for_ready, self.compression = d.wait_for_ready, d.compression
        self.metadata = metadata


class Auth(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer KEY` to every call (reflection's included)."""

    def __init__(self, key):
        self.pair = ("authorization", f"Bearer {key}")

    def _with_key(self, d):
        return _Details(d, list(d.metadata or []) + [self.pair])

    def intercept_unary_unary(self, cont, d, req):
        return cont(self._with_key(d), req)

    def intercept_unary_stream(self, cont, d, req):
        return cont(self._with_key(d), req)

    def intercept_stream_stream(self, cont, d, reqs):
        return cont(self._with_key(d), reqs)


def main() -> None:
    target = sys.argv[1]
    key = sys.argv[2] if len(sys.argv) > 2 else ""
    metadata = ()
    channel = grpc.insecure_channel(target)
    if key:
        channel = grpc.intercept_channel(channel, Auth(key))
    db = ProtoReflectionDescriptorDatabase(channel)
    services = set(db.get_services())
    assert SERVICE in services, services
    assert "grpc.health.v1.Health" in services, services
    pool = descriptor_pool.DescriptorPool(db)
    service = pool.FindServiceByName(SERVICE)
    methods = {m.name: m for m in service.methods}
    called = []

    def call(name, request, expect=grpc.StatusCode.OK):
        m = methods[name]
        req_cls = message_factory.GetMessageClass(m.input_type)
        resp_cls = message_factory.GetMessageClass(m.output_type)
        req = json_format.ParseDict(request, req_cls())
        path = f"/{SERVICE}/{name}"
        kw = dict(request_serializer=req_cls.SerializeToString, response_deserializer=resp_cls.FromString)
        try:
            if m.server_streaming:
                stub = channel.unary_stream(path, **kw)
                out = [json_format.MessageToDict(r, preserving_proto_field_name=True) for r in stub(req, metadata=metadata, timeout=60)]
            else:
                stub = channel.unary_unary(path, **kw)
                out = json_format.MessageToDict(stub(req, metadata=metadata, timeout=60), preserving_proto_field_name=True)
        except grpc.RpcError as e:
            assert e.code() == expect, f"{name}: {e.code()} {e.details()}"
            called.append(name)
            return e
        assert expect == grpc.StatusCode.OK, f"{name}: expected {expect}, got a reply {out}"
        called.append(name)
        print(f"{name}: {json.dumps(out)[:200]}")
        return out

    config = {
        "vectors": {"dim": 384, "metric": "METRIC_COSINE", "hnsw": {"m": 8}},
        "embed": {"model": "all-minilm-l6-v2", "fields": ["body"]},
        "text_fields": ["body"],
        "payload_index": {"lang": "FIELD_TYPE_KEYWORD"},
    }
    info = call("CreateCollection", {"name": "refl", "config": config})
    assert info["created"] and info["config"]["vectors"]["hnsw"]["ef"] == 128, info
    assert info["status"] == "COLLECTION_STATUS_OK", info
    assert any(c["name"] == "refl" for c in call("ListCollections", {})["collections"])
    points = [
        {"id": {"num": "1"}, "text": {"body": "A cat sleeps on the warm windowsill."}, "payload": {"lang": "en", "n": 1}},
        {"id": {"str": "two"}, "text": {"body": "Trucks carry freight on the highway."}, "payload": {"lang": "fr"}},
    ]
    assert call("Upsert", {"collection": "refl", "points": points})["upserted"] == "2"
    p = call("GetPoint", {"collection": "refl", "id": {"str": "two"}})
    assert p["payload"] == {"lang": "fr"} and len(p["vector"]) == 384, p
    q = call("Query", {
        "collection": "refl", "text": "kitten", "limit": 1, "mode": "SEARCH_MODE_HYBRID",
        "fusion": {"weighted": {"vector_weight": 0.7}},
        "filter": {"must": [{"field": {"key": "lang", "match": "en"}}]},
    })
    assert q["results"][0]["id"] == {"num": "1"} and q["results"][0]["payload"]["n"] == 1, q
    events = call("Rag", {"collection": "refl", "question": "Where does the cat sleep?",
                          "generator": {"extractive": {"max_sentences": 1}}})
    kinds = [next(iter(e)) for e in events]
    assert kinds[-2:] == ["citations", "done"] and "token" in kinds, kinds
    models = call("ListModels", {})["models"]
    assert models[0]["name"] == "all-minilm-l6-v2", models
    e = call("Embed", {"model": "all-minilm-l6-v2", "input": ["hello"]})
    assert e["dim"] == 384 and len(e["data"][0]["values"]) == 384
    w = call("UpsertDocuments", {"collection": "refl", "documents": [
        {"id": "guide", "title": "Guide", "text": "Telescopes gather starlight.", "payload": {"lang": "en"}}]})
    assert w["documents"] == "1", w
    assert call("DeleteDocuments", {"collection": "refl", "ids": ["guide"]})["deleted"] == "1"
    d = call("Delete", {"collection": "refl", "filter": {"must": [{"field": {"key": "lang", "match": "fr"}}]}})
    assert d["deleted"] == "1", d
    # Errors: the codes of the HTTP API's classification.
    call("GetCollection", {"name": "nope"}, expect=grpc.StatusCode.NOT_FOUND)
    call("Delete", {"collection": "refl", "filter": {}}, expect=grpc.StatusCode.INVALID_ARGUMENT)
    info = call("GetCollection", {"name": "refl"})
    assert info["points"] == "1", info
    assert call("DeleteCollection", {"name": "refl"})["deleted"] is True

    # Tenants, keys and the audit log (the key given is the bootstrap admin key).
    t = call("CreateTenant", {"name": "reflco", "quotas": {"max_points": "5", "requests_per_second": 50}})
    assert t["quotas"]["max_points"] == "5", t
    assert any(x["name"] == "reflco" for x in call("ListTenants", {})["tenants"])
    t = call("UpdateTenant", {"name": "reflco", "quotas": {"max_points": "7"}})
    assert t["quotas"] == {"max_points": "7"}, t
    k = call("CreateKey", {"tenant": "reflco", "role": "ROLE_WRITER", "collections": ["docs"]})
    assert k["key"].startswith("nk_") and k["info"]["role"] == "ROLE_WRITER", k
    keys = call("ListKeys", {"tenant": "reflco"})["keys"]
    assert [x["id"] for x in keys] == [k["info"]["id"]] and "key" not in keys[0], keys
    details = call("GetTenant", {"name": "reflco"})
    assert details["usage"].get("collections", "0") == "0", details
    assert call("RevokeKey", {"tenant": "reflco", "id": k["info"]["id"]})["revoked"] is True
    call("RevokeKey", {"tenant": "reflco", "id": k["info"]["id"]}, expect=grpc.StatusCode.NOT_FOUND)
    audit = call("ListAudit", {"tenant": "reflco", "limit": 100})["entries"]
    assert {"keys.create", "keys.revoke"} <= {e["action"] for e in audit}, audit
    assert call("DeleteTenant", {"name": "reflco"})["deleted"] is True
    call("GetTenant", {"name": "reflco"}, expect=grpc.StatusCode.NOT_FOUND)

    missing = set(methods) - set(called)
    assert not missing, f"methods not called: {missing}"
    print(f"called all {len(methods)} methods of {SERVICE} through reflection")


if __name__ == "__main__":
    main()

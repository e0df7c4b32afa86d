#!/usr/bin/env python3
"""The Python pipeline peer for `naksha-bench sources`: the usual hand-written
ingestion service, psycopg -> sentence-transformers -> HTTP upsert in batches.

Reads rows (id, title) from Postgres with a server-side cursor, embeds each
batch with sentence-transformers (PyTorch, CPU), and upserts the vectors into
a Naksha collection over HTTP (one JSON request per batch, acknowledged once
durable). Prints one JSON line with the timing.
"""
import argparse
import json
import time
import urllib.request

import psycopg
import torch
from sentence_transformers import SentenceTransformer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--collection", required=True)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    model = SentenceTransformer(args.model, device="cpu")
    model.encode(["warm up"] * 8)
    endpoint = f"{args.url}/v1/collections/{args.collection}/points"
    n = 0
    t = time.perf_counter()
    with psycopg.connect(args.pg) as conn, conn.cursor(name="rows") as cur:
        cur.itersize = args.batch
        cur.execute(f"SELECT id, title FROM {args.table} ORDER BY id")
        while True:
            rows = cur.fetchmany(args.batch)
            if not rows:
                break
            vectors = model.encode([r[1] for r in rows], batch_size=64, convert_to_numpy=True)
            points = [{"id": r[0], "vector": v.tolist(), "payload": {"title": r[1]}} for r, v in zip(rows, vectors)]
            req = urllib.request.Request(endpoint, data=json.dumps({"points": points}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req) as res:
                res.read()
            n += len(rows)
    secs = time.perf_counter() - t
    print(json.dumps({"engine": f"psycopg {psycopg.__version__} + sentence-transformers "
                      f"{__import__('sentence_transformers').__version__} (torch {torch.__version__}, "
                      f"{torch.get_num_threads()} threads) + HTTP upsert, batch {args.batch}",
                      "secs": secs, "rows": n}))


if __name__ == "__main__":
    main()

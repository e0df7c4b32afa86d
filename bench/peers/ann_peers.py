"""Build one peer HNSW index and sweep ef, for `naksha-bench ann --peers python`.

Reads base/query vectors (fvecs) and ground truth (ivecs) written by the Rust
command, builds the index with the given threads, then for each ef runs all
queries with ONE thread. Queries go to the library as one batch so that each is
answered by C++ one at a time, with no Python overhead per query (fairer to the
peer than a Python loop). Prints one JSON object on stdout.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        return np.zeros((0, 0), dtype=dtype)
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)[:, 1:]
    return np.ascontiguousarray(rows.view(dtype) if dtype != np.int32 else rows)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def recall(truth, got, k):
    hits = 0
    for t, g in zip(truth, got):
        hits += len(set(t[:k].tolist()) & set(int(x) for x in g[:k]))
    return hits / (len(truth) * k)


class Hnswlib:
    def __init__(self, dim, metric, m, efc, threads, n):
        import hnswlib

        self.index = hnswlib.Index(space="l2" if metric == "l2" else "ip", dim=dim)
        self.index.init_index(max_elements=n, M=m, ef_construction=efc, random_seed=42)
        self.threads = threads

    def build(self, base):
        self.index.add_items(base, np.arange(len(base)), num_threads=self.threads)

    def search(self, queries, k, ef):
        self.index.set_ef(max(ef, k))
        labels, _ = self.index.knn_query(queries, k=k, num_threads=1)
        return labels


class Faiss:
    def __init__(self, dim, metric, m, efc, threads, n):
        import faiss

        self.faiss = faiss
        faiss.omp_set_num_threads(threads)
        kind = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.index = faiss.IndexHNSWFlat(dim, m, kind)
        self.index.hnsw.efConstruction = efc

    def build(self, base):
        self.index.add(base)
        self.faiss.omp_set_num_threads(1)

    def search(self, queries, k, ef):
        self.index.hnsw.efSearch = max(ef, k)
        _, labels = self.index.search(queries, k)
        return labels


class Usearch:
    def __init__(self, dim, metric, m, efc, threads, n):
        from usearch.index import Index

        self.index = Index(ndim=dim, metric="l2sq" if metric == "l2" else "ip", dtype="f32",
                           connectivity=m, expansion_add=efc, expansion_search=64)
        self.threads = threads

    def build(self, base):
        self.index.add(np.arange(len(base)), base, threads=self.threads)

    def search(self, queries, k, ef):
        self.index.expansion_search = max(ef, k)
        return self.index.search(queries, k, threads=1).keys


PEERS = {"hnswlib": Hnswlib, "faiss": Faiss, "usearch": Usearch}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--engine", choices=sorted(PEERS), required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--metric", choices=["l2", "cosine", "dot"], required=True)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--efs", default="10,16,24,32,48,64,96,128,192,256,400")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    base = read_vecs(a.base, np.float32)
    queries = read_vecs(a.queries, np.float32)
    truth = read_vecs(a.truth, np.int32)
    rss0 = rss_bytes()
    t = time.perf_counter()
    peer = PEERS[a.engine](base.shape[1], a.metric, a.m, a.ef_construction, a.threads, len(base))
    peer.build(base)
    build_secs = time.perf_counter() - t
    rss = rss_bytes() - rss0
    curve = []
    for ef in (int(e) for e in a.efs.split(",")):
        t = time.perf_counter()
        got = peer.search(queries, a.k, ef)
        secs = time.perf_counter() - t
        curve.append({"ef": ef, "recall": recall(truth, got, a.k), "qps": len(queries) / secs})
    json.dump({"engine": a.engine, "build_secs": build_secs, "rss_bytes": max(rss, 0), "curve": curve}, sys.stdout)


if __name__ == "__main__":
    main()

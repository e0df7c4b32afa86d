"""Build one peer HNSW index and sweep ef, for `naksha-bench ann --peers hnswlib,faiss`.

Reads base/query vectors (fvecs) and ground truth (ivecs) written by the Rust
command, builds the index with the given threads, then for each ef runs all
queries with ONE thread. Queries go to the library as one batch so that each is
answered by C++ one at a time, with no Python overhead per query (fairer to the
peer than a Python loop). Prints one JSON object on stdout.

With --labels and --filtered, the same sweep runs again under each filter: a
point is admitted when its bucket (one byte per point) is below the filter's
percentage. hnswlib gets its filter function (a Python callable per visited
node: that is its API), faiss an IDSelectorBitmap (checked in C++).
usearch is measured in-process by the Rust command instead: its predicate
search is not in the Python binding.
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

    def filter_for(self, mask):
        return mask.tolist().__getitem__

    def search_filtered(self, queries, k, ef, admit):
        self.index.set_ef(max(ef, k))
        try:
            labels, _ = self.index.knn_query(queries, k=k, num_threads=1, filter=admit)
            return labels
        except RuntimeError:
            # Some query found fewer than k admitted points: ask one by one and keep what each found.
            return [self._one(q, k, admit) for q in queries]

    def _one(self, q, k, admit):
        for kk in range(k, 0, -1):
            try:
                return self.index.knn_query(q, k=kk, num_threads=1, filter=admit)[0][0]
            except RuntimeError:
                continue
        return []


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

    def filter_for(self, mask):
        bits = np.packbits(mask, bitorder="little")
        # The selector points into `bits`: keep both alive together.
        return bits, self.faiss.IDSelectorBitmap(len(mask), self.faiss.swig_ptr(bits))

    def search_filtered(self, queries, k, ef, selector):
        params = self.faiss.SearchParametersHNSW(sel=selector[1], efSearch=max(ef, k))
        _, labels = self.index.search(queries, k, params=params)
        return labels


PEERS = {"hnswlib": Hnswlib, "faiss": Faiss}


def sweep(search, queries, truth, k, efs):
    curve = []
    for ef in efs:
        t = time.perf_counter()
        got = search(queries, k, ef)
        secs = time.perf_counter() - t
        curve.append({"ef": ef, "recall": recall(truth, got, k), "qps": len(queries) / secs})
    return curve


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
    p.add_argument("--labels", help="one byte per base point: its filter bucket (0..99)")
    p.add_argument("--filtered", default="", help="PERCENT:TRUTH.ivecs,... filtered sweeps")
    p.add_argument("--filter-efs", default="", help="ef values of the filtered sweeps (default: --efs)")
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
    efs = [int(e) for e in a.efs.split(",")]
    curve = sweep(peer.search, queries, truth, a.k, efs)
    filtered = []
    filter_efs = [int(e) for e in a.filter_efs.split(",")] if a.filter_efs else efs
    if a.filtered:
        labels = np.fromfile(a.labels, dtype=np.uint8)
        for spec in a.filtered.split(","):
            percent, path = spec.split(":", 1)
            # Built once per filter, outside the timed sweep (as Naksha's bitset is).
            prepared = peer.filter_for(labels < int(percent))
            search = lambda q, k, ef, prepared=prepared: peer.search_filtered(q, k, ef, prepared)
            filtered.append({"percent": int(percent), "curve": sweep(search, queries, read_vecs(path, np.int32), a.k, filter_efs)})
    out = {"engine": a.engine, "build_secs": build_secs, "rss_bytes": max(rss, 0), "curve": curve, "filtered": filtered}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

"""BM25 peer for `naksha-bench quality`: bm25s on the same texts and queries.

Usage: bm25_peer.py DIR, where DIR holds corpus.jsonl ({"id", "text"} per line)
and queries.jsonl (one JSON string per line). Writes DIR/results.json:
{"engine": ..., "index_secs": ..., "query_secs": ..., "results": [[id, ...], ...]},
the top 100 corpus ids per query (only documents with a positive score).

Analysis as in Naksha's default: English stop words, Snowball English stemmer.
bm25s's default scoring ("lucene" variant, k1 = 1.5, b = 0.75).
"""

import json
import sys
import time
from pathlib import Path

import bm25s
import Stemmer


def main() -> None:
    d = Path(sys.argv[1])
    ids, texts = [], []
    with open(d / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            ids.append(r["id"])
            texts.append(r["text"])
    with open(d / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line) for line in f if line.strip()]
    stemmer = Stemmer.Stemmer("english")
    t = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    index_secs = time.perf_counter() - t
    t = time.perf_counter()
    k = min(100, len(texts))
    q_tokens = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, show_progress=False)
    docs, scores = retriever.retrieve(q_tokens, k=k, show_progress=False, n_threads=1)
    query_secs = time.perf_counter() - t
    results = [[ids[int(i)] for i, s in zip(row, srow) if s > 0] for row, srow in zip(docs, scores)]
    out = {
        "engine": f"bm25s {bm25s.__version__} (lucene, k1=1.5, b=0.75)",
        "index_secs": index_secs,
        "query_secs": query_secs,
        "results": results,
    }
    (d / "results.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The embedding peer for `naksha-bench embed`: sentence-transformers (PyTorch, CPU).

Reads texts (one JSON string per line), embeds them once to warm up on a slice,
then times one pass over all of them with the model's own batching. Writes the
vectors as little-endian f32 (n x dim) and prints one JSON line with the timing.
"""
import argparse
import json
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    with open(args.texts, encoding="utf-8") as f:
        texts = [json.loads(line) for line in f]
    model = SentenceTransformer(args.model, device="cpu")
    model.encode(texts[:64], batch_size=args.batch)
    t = time.perf_counter()
    vectors = model.encode(texts, batch_size=args.batch, convert_to_numpy=True)
    secs = time.perf_counter() - t
    vectors.astype("<f4").tofile(args.out)
    print(json.dumps({"engine": f"sentence-transformers {__import__('sentence_transformers').__version__} "
                      f"(torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch})",
                      "secs": secs, "docs": len(texts), "dim": int(vectors.shape[1])}))


if __name__ == "__main__":
    main()

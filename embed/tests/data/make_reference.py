#!/usr/bin/env python3
"""Make embed/tests/data/reference.jsonl: texts and their sentence-transformers vectors.

The exactness test (embed/tests/exactness.rs) embeds the same texts with Naksha and
requires cosine >= 0.999 to these vectors. Run once when the model or the text set
changes; the output is committed.

    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers==6.2.0 torch==2.15.0 zstandard
    /tmp/st/bin/python embed/tests/data/make_reference.py \
        --model naksha-models/all-minilm-l6-v2 --corpus ../shared/data/debian-descriptions.jsonl.zst

Texts (200): Debian package descriptions of every length (40 of them longer than the
model's 256-token limit, so truncation is exercised), one-line synopses, non-ASCII
descriptions from the corpus, hand-written text in other scripts, and edge cases
(empty, whitespace only, one letter, emoji, very long runs).
"""
import argparse
import io
import json
import random

import zstandard
from sentence_transformers import SentenceTransformer

EXTRA = [
    "",
    " ",
    "a",
    "Hello, World!",
    "\t tabs\tand\nnewlines \n\n everywhere ",
    "🙂🚀 emoji only 🎉",
    "word " * 600,
    "https://example.org/path?query=1&lang=en#frag",
    "fn main() { println!(\"{}\", 1 + 2); }",
    "UPPER CASE SHOUTING ABOUT THE KERNEL",
    "Größenänderung der Dateisysteme während des Betriebs",
    "Gestionnaire de paquets très rapide écrit en Rust",
    "Утилита для резервного копирования файлов",
    "一个快速的全文搜索引擎",
    "高速な全文検索エンジンです",
    "빠른 벡터 검색 데이터베이스",
    "محرك بحث سريع للنصوص",
    "Ένα γρήγορο εργαλείο συμπίεσης",
    "Naïve café façade résumé coöperate",
    "Zürich – Straße — “quoted” ‘text’ … ©®™",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", default="embed/tests/data/reference.jsonl")
    args = ap.parse_args()

    with open(args.corpus, "rb") as f:
        text = zstandard.ZstdDecompressor().stream_reader(f).read().decode("utf-8")
    records = [json.loads(line) for line in io.StringIO(text)]
    rng = random.Random(7)
    long_ = sorted(records, key=lambda r: -len(r["text"]))[:2000]
    non_ascii = [r for r in records if not r["text"].isascii()]
    texts = [r["text"] for r in rng.sample(long_, 40)]
    texts += [r["text"] for r in rng.sample(records, 70)]
    texts += [r["title"] for r in rng.sample(records, 40)]
    texts += [r["text"] for r in rng.sample(non_ascii, 30)]
    texts += EXTRA
    assert len(texts) == 200, len(texts)

    model = SentenceTransformer(args.model, device="cpu")
    vectors = model.encode(texts, batch_size=32, convert_to_numpy=True)
    tok = model.tokenizer
    with open(args.out, "w", encoding="utf-8") as out:
        for t, v in zip(texts, vectors):
            n = len(tok(t)["input_ids"])
            out.write(json.dumps({"text": t, "tokens": n, "vector": [round(float(x), 6) for x in v]},
                                 ensure_ascii=False) + "\n")
    print(f"wrote {len(texts)} vectors to {args.out}; {sum(len(tok(t)['input_ids']) > 256 for t in texts)} over 256 tokens")


if __name__ == "__main__":
    main()

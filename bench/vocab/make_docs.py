#!/usr/bin/env python3
"""Writes a documents folder (the `tinyforge ingest` contract: part-NNNNN.parquet with id,
text, lang, source; zstd) from the real corpus in the data cache, for the vocab benchmark.

    python3 bench/vocab/make_docs.py OUT_DIR [MEGABYTES]

A deterministic mix of about one third each: Chinese poetry (Song ci, Tang poems), English
(State of the Union addresses), Rust standard library source. Texts are NFC.
"""

import glob
import json
import os
import sys
import unicodedata

import pyarrow as pa
import pyarrow.parquet as pq

RAW = os.path.expanduser(os.environ.get("TINYFORGE_DATA", "~/.cache/tinyforge")) + "/raw"


def chinese():
    for pattern in ["songci/ci.song.*.json", "quantangshi/poet.tang.*.json"]:
        for path in sorted(glob.glob(f"{RAW}/chinese-poetry/package/dist/{pattern}")):
            for record in json.load(open(path, encoding="utf-8")):
                title = record.get("rhythmic") or record.get("title") or ""
                yield "\n".join([title] + record.get("paragraphs", [])), "zh", "chinese-poetry"


def english():
    for path in sorted(glob.glob(f"{RAW}/sotu/package/data/*.txt")):
        yield open(path, encoding="utf-8").read(), "en", "sotu"


def code():
    root = f"{RAW}/rust-src/usr/src/rustc-1.63.0/library"
    for path in sorted(glob.glob(f"{root}/**/*.rs", recursive=True)):
        yield open(path, encoding="utf-8", errors="replace").read(), "code", "rust-src"


def main():
    out = sys.argv[1]
    budget = int(float(sys.argv[2]) * 1e6) if len(sys.argv) > 2 else 30_000_000
    os.makedirs(out, exist_ok=True)
    rows = {"id": [], "text": [], "lang": [], "source": []}
    for source in [chinese(), english(), code()]:
        used = 0
        for text, lang, name in source:
            text = unicodedata.normalize("NFC", text)
            if not text.strip():
                continue
            rows["id"].append(len(rows["id"]))
            rows["text"].append(text)
            rows["lang"].append(lang)
            rows["source"].append(name)
            used += len(text.encode("utf-8"))
            if used >= budget // 3:
                break
    table = pa.table(
        {
            "id": pa.array(rows["id"], pa.uint64()),
            "text": pa.array(rows["text"], pa.string()),
            "lang": pa.array(rows["lang"], pa.string()),
            "source": pa.array(rows["source"], pa.string()),
        }
    )
    # Interleave sources across parts so every shard sees every language.
    order = sorted(range(table.num_rows), key=lambda i: (i * 2654435761) % 2**32)
    table = table.take(order)
    parts = 4
    step = (table.num_rows + parts - 1) // parts
    for p in range(parts):
        pq.write_table(
            table.slice(p * step, step),
            f"{out}/part-{p:05}.parquet",
            compression="zstd",
            row_group_size=2000,
        )
    total = sum(len(t.encode("utf-8")) for t in rows["text"])
    print(json.dumps({"documents": table.num_rows, "bytes": total, "parts": parts}))


if __name__ == "__main__":
    main()

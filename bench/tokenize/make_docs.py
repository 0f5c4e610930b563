#!/usr/bin/env python3
"""Writes a documents folder (the `tinyforge ingest` contract: part-NNNNN.parquet with columns
id, text, lang, source; zstd inside) from the real corpus in the data cache.

    python3 bench/tokenize/make_docs.py OUT_DIR [MEGABYTES]

A deterministic mix, about a third each: Chinese poetry (Song ci, Tang poems), English (State of
the Union addresses, split into paragraphs), Rust standard library source. Texts are NFC.
Used by bench/tokenize and bench/read until `tinyforge ingest` output is the default input.
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
        for path in sorted(glob.glob(f"{RAW}/chinese-poetry/package/dist/**/{pattern}", recursive=True)):
            for record in json.load(open(path, encoding="utf-8")):
                title = record.get("rhythmic") or record.get("title") or ""
                yield "\n".join([title] + record.get("paragraphs", [])), "zh", "chinese-poetry"


def english():
    for path in sorted(glob.glob(f"{RAW}/sotu/package/data/*.txt")):
        for paragraph in open(path, encoding="utf-8").read().split("\n\n"):
            yield paragraph, "en", "sotu"


def code():
    root = glob.glob(f"{RAW}/rust-src/usr/src/rustc-*/library")[0]
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
            text = unicodedata.normalize("NFC", text).strip()
            if not text:
                continue
            rows["id"].append(len(rows["id"]))
            rows["text"].append(text)
            rows["lang"].append(lang)
            rows["source"].append(name)
            used += len(text.encode("utf-8"))
            if used >= budget // 3:
                break
    table = pa.table({
        "id": pa.array(rows["id"], pa.uint64()),
        "text": pa.array(rows["text"], pa.string()),
        "lang": pa.array(rows["lang"], pa.string()),
        "source": pa.array(rows["source"], pa.string()),
    })
    # Interleave the sources so every part (and every shard) sees every language.
    order = sorted(range(table.num_rows), key=lambda i: (i * 2654435761) % 2**32)
    table = table.take(order)
    parts = 4
    step = (table.num_rows + parts - 1) // parts
    for p in range(parts):
        pq.write_table(table.slice(p * step, step), f"{out}/part-{p:05}.parquet",
                       compression="zstd", row_group_size=2000)
    total = sum(len(t.encode("utf-8")) for t in rows["text"])
    print(f"{table.num_rows} documents, {total / 1e6:.1f} MB of text -> {out}")


if __name__ == "__main__":
    main()

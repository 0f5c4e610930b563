#!/usr/bin/env python3
"""The paper's counting method (RethinkTinyLM step 1-2) as one Python process: Hugging Face
`tokenizers` `encode_batch` over the documents, ids summed with `collections.Counter`.

    python3 bench/vocab/peer.py DOCS_DIR TOKENIZER_JSON OUT_COUNTS_JSON

Prints a JSON line with the timing of the counting (Parquet read + encode + count; the
tokenizer load is excluded, as in tinyforge's `count_s`).
"""

import collections
import glob
import json
import sys
import time

import pyarrow.compute as pc
import pyarrow.parquet as pq
from tokenizers import Tokenizer


def main():
    docs, tokenizer_path, out = sys.argv[1:4]
    tok = Tokenizer.from_file(tokenizer_path)
    start = time.perf_counter()
    counter = collections.Counter()
    documents = nbytes = 0
    for path in sorted(glob.glob(f"{docs}/*.parquet")):
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=1000, columns=["text"]):
            column = batch.column(0)
            nbytes += pc.sum(pc.binary_length(column)).as_py() or 0
            texts = [t for t in column.to_pylist() if t is not None]
            documents += len(texts)
            for encoding in tok.encode_batch(texts, add_special_tokens=False):
                counter.update(encoding.ids)
    seconds = time.perf_counter() - start
    with open(out, "w") as f:
        json.dump({str(k): v for k, v in counter.items()}, f)
    total = sum(counter.values())
    print(json.dumps({"documents": documents, "bytes": nbytes, "total_tokens": total,
                      "count_s": seconds}))


if __name__ == "__main__":
    main()

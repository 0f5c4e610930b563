#!/usr/bin/env python3
"""The Megatron-LM way to tokenize (tools/preprocess_data.py + MMapIndexedDataset): read the
documents, HF `tokenizers` encode_batch, append EOS, write a NumPy .bin of token ids and an .idx
(magic MMIDIDX, sizes, pointers, document index).

    python3 bench/tokenize/peer.py DOCS_DIR tokenizer.json OUT_PREFIX > report.json
"""
import glob
import json
import struct
import sys
import time

import numpy as np
import pyarrow.parquet as pq
from tokenizers import Tokenizer

BATCH = 1024


def main():
    docs_dir, tokenizer_path, prefix = sys.argv[1:4]
    start = time.perf_counter()
    tokenizer = Tokenizer.from_file(tokenizer_path)
    eos = tokenizer.token_to_id("<|endoftext|>")
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    # Megatron: uint16 when the vocabulary fits, int32 otherwise.
    dtype, code = (np.uint16, 8) if vocab < 65500 else (np.int32, 4)
    sizes, documents, text_bytes = [], 0, 0
    with open(prefix + ".bin", "wb") as out:
        for path in sorted(glob.glob(f"{docs_dir}/*.parquet")):
            parquet = pq.ParquetFile(path)
            for batch in parquet.iter_batches(batch_size=BATCH, columns=["text"]):
                texts = batch.column(0).to_pylist()
                text_bytes += sum(len(t.encode("utf-8")) for t in texts)
                for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
                    ids = np.array(encoding.ids + [eos], dtype=dtype)
                    out.write(ids.tobytes(order="C"))
                    sizes.append(len(ids))
                documents += len(texts)
    sizes = np.array(sizes, dtype=np.int32)
    pointers = np.zeros(len(sizes), dtype=np.int64)
    np.cumsum(sizes[:-1].astype(np.int64) * np.dtype(dtype).itemsize, out=pointers[1:])
    doc_idx = np.arange(len(sizes) + 1, dtype=np.int64)
    with open(prefix + ".idx", "wb") as idx:
        idx.write(b"MMIDIDX\x00\x00")
        idx.write(struct.pack("<Q", 1))
        idx.write(struct.pack("<B", code))
        idx.write(struct.pack("<Q", len(sizes)))
        idx.write(struct.pack("<Q", len(doc_idx)))
        idx.write(sizes.tobytes(order="C"))
        idx.write(pointers.tobytes(order="C"))
        idx.write(doc_idx.tobytes(order="C"))
    seconds = time.perf_counter() - start
    print(json.dumps({"documents": documents, "tokens": int(sizes.sum()), "text_bytes": text_bytes,
                      "seconds": seconds, "dtype": np.dtype(dtype).name}))


if __name__ == "__main__":
    main()

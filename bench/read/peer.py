#!/usr/bin/env python3
"""NumPy memmap over the uncompressed Megatron-style .bin (bench/tokenize/peer.py): a sequential
scan and random training windows, one thread, the way Megatron's MMapIndexedDataset reads.

    python3 bench/read/peer.py PREFIX DTYPE [SEQ_LEN] [WINDOWS] > report.json
"""
import json
import sys
import time

import numpy as np


def main():
    prefix, dtype = sys.argv[1], np.dtype(sys.argv[2])
    seq_len = int(sys.argv[3]) if len(sys.argv) > 3 else 2048
    windows = int(sys.argv[4]) if len(sys.argv) > 4 else 200_000
    start = time.perf_counter()
    tokens = np.memmap(prefix + ".bin", dtype=dtype, mode="r")
    open_s = time.perf_counter() - start

    # Sequential: copy out chunks of 4096 tokens (the shard reader's default frame is 2048) in order.
    start, cpu = time.perf_counter(), time.thread_time()
    fold, chunk = 0, 4096
    for at in range(0, len(tokens), chunk):
        piece = np.array(tokens[at:at + chunk])
        fold += int(piece[len(piece) // 2])
    sequential_s, sequential_cpu_s = time.perf_counter() - start, time.thread_time() - cpu

    units = (len(tokens) - 1) // seq_len
    rng = np.random.default_rng(0)
    picks = rng.integers(0, units, size=windows)
    start, cpu = time.perf_counter(), time.thread_time()
    for unit in picks:
        at = int(unit) * seq_len
        window = np.array(tokens[at:at + seq_len + 1])
        fold += int(window[seq_len // 2])
    random_s, random_cpu_s = time.perf_counter() - start, time.thread_time() - cpu
    print(json.dumps({
        "tokens": len(tokens), "open_s": open_s, "sequential_s": sequential_s,
        "sequential_tokens_per_s": len(tokens) / sequential_s,
        "sequential_tokens_per_cpu_s": len(tokens) / sequential_cpu_s, "seq_len": seq_len,
        "windows": windows, "random_s": random_s, "random_windows_per_s": windows / random_s,
        "random_windows_per_cpu_s": windows / random_cpu_s,
        "checksum_fold": fold,
    }))


if __name__ == "__main__":
    main()

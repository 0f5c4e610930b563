"""The NumPy peer of `tinyforge sample --select unit-softmax`: read the loss table with pyarrow,
Gumbel keys (loss / tau + Gumbel noise), argpartition for the top k, shuffle, write the ids as
little-endian u32 (what tinyforge writes). It does not check the table for missing or
duplicated units, which tinyforge does.

usage: peer_numpy.py LOSSES.parquet OUT.u32 FRACTION BATCH_UNITS [TEMPERATURE]
"""

import sys
import time

import numpy as np
import pyarrow.parquet as pq


def main():
    losses_path, out_path, fraction, batch = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    tau = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    t0 = time.perf_counter()
    table = pq.read_table(losses_path, columns=["unit_id", "loss"])
    units = table.column("unit_id").to_numpy()
    loss = table.column("loss").to_numpy()
    del table
    t1 = time.perf_counter()
    n = len(loss)
    k = int(fraction * n) // batch * batch
    rng = np.random.default_rng(7)
    keys = loss.astype(np.float64) / tau
    keys += rng.gumbel(size=n)
    chosen = np.argpartition(-keys, k - 1)[:k]
    del keys
    selected = units[chosen]
    rng.shuffle(selected)
    t2 = time.perf_counter()
    selected.astype("<u4").tofile(out_path)
    t3 = time.perf_counter()
    print(f"numpy: rows {n} selected {k} read {t1 - t0:.2f}s select {t2 - t1:.2f}s write {t3 - t2:.2f}s", file=sys.stderr)


if __name__ == "__main__":
    main()

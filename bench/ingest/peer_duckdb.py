"""The peer: DuckDB's read_json -> Parquet (zstd), the same job minus cleaning.

usage: peer_duckdb.py IN.jsonl OUT.parquet THREADS
"""

import sys
import time

import duckdb

src, dst, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
start = time.perf_counter()
con.execute(
    f"COPY (SELECT id, text, source, author FROM read_json('{src}', format = 'newline_delimited', "
    "columns = {id: 'UBIGINT', source: 'VARCHAR', author: 'VARCHAR', text: 'VARCHAR'})) "
    f"TO '{dst}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE_BYTES '16MB')"
)
rows = con.execute(f"SELECT count(*) FROM read_parquet('{dst}')").fetchone()[0]
print(f"duckdb rows={rows} seconds={time.perf_counter() - start:.3f}", file=sys.stderr)

"""The peer: DuckDB reading the JSONL and writing zstd Parquet, at three depths of the job.

usage: peer_duckdb.py MODE IN.jsonl OUT.parquet THREADS [MIN_CHARS]

MODE
  convert  read_json -> Parquet: the conversion alone, none of tinyforge's cleaning.
  dedup    + documents shorter than MIN_CHARS dropped and exact duplicates removed (first
           occurrence kept): on an input that needs no normalisation (the bench's is already
           NFC, without control characters) this writes the same documents tinyforge does.
  clean    + control characters removed (newline and tab kept), Unicode NFC, surrounding
           spaces trimmed, before the length rule and deduplication: the cleaning tinyforge
           does, as DuckDB SQL can say it. Language identification, which DuckDB lacks, is the
           one part of tinyforge's job no mode does.
"""

import sys
import time

import duckdb

mode, src, dst, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
min_chars = int(sys.argv[5]) if len(sys.argv) > 5 else 16
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
read = (
    f"read_json('{src}', format = 'newline_delimited', "
    "columns = {id: 'UBIGINT', source: 'VARCHAR', author: 'VARCHAR', text: 'VARCHAR'})"
)
if mode == "convert":
    query = f"SELECT id, text, source, author FROM {read}"
else:
    text = "text"
    if mode == "clean":
        # RE2 in regexp_replace was the fastest way measured (translate() was slower).
        text = (
            "trim(nfc_normalize(regexp_replace(text, "
            "'[\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F\\x{FEFF}]', '', 'g')))"
        )
    elif mode != "dedup":
        sys.exit(f"unknown mode {mode!r}: convert, dedup or clean")
    query = (
        f"SELECT id, text, source, author FROM "
        f"(SELECT id, source, author, {text} AS text FROM {read}) "
        f"WHERE length(text) >= {min_chars} "
        "QUALIFY row_number() OVER (PARTITION BY hash(text) ORDER BY id) = 1"
    )
start = time.perf_counter()
con.execute(f"COPY ({query}) TO '{dst}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE_BYTES '16MB')")
rows = con.execute(f"SELECT count(*) FROM read_parquet('{dst}')").fetchone()[0]
print(f"duckdb {mode} rows={rows} seconds={time.perf_counter() - start:.3f}", file=sys.stderr)
print(rows)

"""Builds the benchmark input: real text as JSONL, one record per document.

All Tang and Song poems of chinese-poetry (title + lines), the Song ci, and the State of the
Union addresses, as {"id", "source", "author", "text"} lines. About 150 MB.
usage: make_jsonl.py RAW_DIR OUT.jsonl
"""

import glob
import json
import sys

raw, out = sys.argv[1], sys.argv[2]
count = 0
with open(out, "w", encoding="utf-8") as f:
    def emit(source, author, text):
        global count
        f.write(json.dumps({"id": count, "source": source, "author": author, "text": text}, ensure_ascii=False))
        f.write("\n")
        count += 1

    dist = f"{raw}/chinese-poetry/package/dist"
    for path in sorted(glob.glob(f"{dist}/quantangshi/poet.*.json")) + sorted(glob.glob(f"{dist}/songci/ci.song.*.json")):
        for poem in json.load(open(path, encoding="utf-8")):
            title = poem.get("title") or poem.get("rhythmic") or ""
            emit("chinese-poetry", poem.get("author"), "\n".join([title] + list(poem.get("paragraphs") or [])))
    for path in sorted(glob.glob(f"{raw}/sotu/package/data/*.txt")):
        emit("sotu", path.rsplit("/", 1)[-1], open(path, encoding="utf-8").read())
print(f"{count} records -> {out}", file=sys.stderr)

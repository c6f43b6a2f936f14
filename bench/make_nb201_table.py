"""Write dartsviz/data/nb201_cifar10.npz, the NAS-Bench-201 table that dartsviz.truth reads,
from the shared CSV (one row per cell, in the benchmark's index order).

    python bench/make_nb201_table.py [CSV] [--out FILE]     # write it, print its size and sha256
    python bench/make_nb201_table.py [CSV] --check          # the shipped file is what CSV gives

The file holds one array per CSV column except `arch`, row r being the cell at position r of
`all_genotypes()` (r = sum(op_column[e] * 5 ** (5 - e)), the first edge's op varying slowest):
`index` (int16, the benchmark's index) and the accuracies (%) and seconds as int32 in
thousandths (`scale` = 1000), which keeps the CSV's 3 decimals exactly. The zip entries carry a
fixed date, so the same CSV gives the same bytes (with the same zlib). After writing, paste the
printed sha256 into TABLE_SHA256 in dartsviz/truth.py.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import sys
import zipfile
from decimal import Decimal

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from dartsviz import truth                                          # noqa: E402
from dartsviz.spaces.nb201.genotype import PRIMITIVES, parse_genotype   # noqa: E402

CSV = os.path.join(os.path.dirname(ROOT), "shared", "data", "nb201", "cifar10_200ep_and_12ep.csv")
SCALE = 1000                                   # thousandths: the CSV has at most 3 decimals


def arrays_from_csv(path: str) -> dict:
    """The table's arrays, rows in all_genotypes() order; refuses a CSV that does not cover the space once."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cells = len(PRIMITIVES) ** 6
    if len(rows) != cells:
        raise SystemExit(f"{path}: {len(rows)} rows, expected {cells}")
    missing = [c for c in ("index", "arch", *truth.COLUMNS) if c not in rows[0]]
    if missing:
        raise SystemExit(f"{path}: no column {missing[0]!r}")
    order = [0] * cells
    seen = set()
    for i, r in enumerate(rows):
        pos = 0
        for col in parse_genotype(r["arch"]).index_of_ops():
            pos = pos * len(PRIMITIVES) + col
        if pos in seen:
            raise SystemExit(f"{path}: cell {r['arch']} appears twice")
        seen.add(pos)
        order[pos] = i
    out = {"index": np.array([int(rows[i]["index"]) for i in order], dtype=np.int16)}    # (15625,)
    for c in truth.COLUMNS:
        v = [Decimal(rows[i][c]) * SCALE for i in order]
        if any(x != x.to_integral_value() for x in v):
            raise SystemExit(f"{path}: column {c} has more than 3 decimals")
        out[c] = np.array([int(x) for x in v], dtype=np.int32)                            # (15625,)
    out["scale"] = np.array(SCALE, dtype=np.int32)                                         # ()
    return out


def npz_bytes(arrays: dict) -> bytes:
    """An .npz (what np.load reads) whose bytes depend on the arrays only: fixed entry dates."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, a in arrays.items():
            npy = io.BytesIO()
            np.lib.format.write_array(npy, a, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, npy.getvalue(), compresslevel=9)
    return buf.getvalue()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("csv", nargs="?", default=CSV, help=f"the shared table (default {CSV})")
    p.add_argument("--out", default=str(truth.TABLE_PATH), help="where to write (default: the package's file)")
    p.add_argument("--check", action="store_true", help="compare the shipped file with CSV, write nothing")
    args = p.parse_args(argv)
    arrays = arrays_from_csv(args.csv)
    data = npz_bytes(arrays)
    sha = hashlib.sha256(data).hexdigest()
    if args.check:
        t = truth.load()                                       # the shipped file, checksum checked
        same = all(np.array_equal(getattr(t, truth.FIELD_OF[c]), arrays[c] / SCALE) for c in truth.COLUMNS)
        same = same and np.array_equal(t.bench_index, arrays["index"])
        print(f"{'same' if same else 'DIFFERENT'} arrays as {args.csv}; rebuilt bytes "
              f"{'equal' if sha == truth.TABLE_SHA256 else 'differ from'} the shipped file's (sha256 {sha})")
        return 0 if same else 1
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.out)
    truth.load(args.out, sha256=None)                          # it reads back: rows, columns
    print(f"wrote {args.out}: {len(data):,} bytes, {len(arrays['index']):,} cells, sha256 {sha}")
    if sha != truth.TABLE_SHA256:
        print("paste this sha256 into TABLE_SHA256 in dartsviz/truth.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())

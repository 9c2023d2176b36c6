"""Writing numbers out: attention patterns and tables as CSV, NPY and NPZ (no Qt).

CSV files label rows and columns with the tokens' text (the csv module quotes what needs it,
so leading spaces and commas survive); numbers are written with 9 significant digits, which
round-trips float32 exactly. NPZ files hold the array together with the token texts and ids.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PATTERN_SUFFIXES = (".csv", ".npy", ".npz")


class ExportError(Exception):
    """A file that cannot be written, or data that cannot go into the asked format."""


@dataclass
class Table:
    """A table a dock offers for export: column names and rows of plain values."""

    columns: list[str]
    rows: list[list] = field(default_factory=list)


def number(x) -> str:
    """A float as CSV text: 9 significant digits (float32 round-trips), nan as empty."""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x)).lower()
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return "" if f != f else format(f, ".9g")
    return "" if x is None else str(x)


def _write_text(path, text: str):
    try:
        Path(path).write_text(text, encoding="utf-8", newline="")
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}") from None


def _csv_text(rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")  # RFC 4180; a token with \r is then quoted
    w.writerows(rows)
    return buf.getvalue()


def matrix_csv(matrix, row_labels: Sequence[str], col_labels: Sequence[str], corner="") -> str:
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape != (len(row_labels), len(col_labels)):
        raise ExportError(f"a {m.shape} matrix does not fit {len(row_labels)}x{len(col_labels)}")
    rows = [[corner, *col_labels]]
    rows += [[row_labels[i], *map(number, m[i])] for i in range(m.shape[0])]
    return _csv_text(rows)


def layer_csv(patterns, labels: Sequence[str]) -> str:
    """(H, T, T) -> one block of T rows per head: head, query token, then one column per key."""
    p = np.asarray(patterns)
    if p.ndim != 3 or p.shape[1:] != (len(labels), len(labels)):
        raise ExportError(f"a {p.shape} array is not (heads, {len(labels)}, {len(labels)})")
    rows = [["head", "query\\key", *labels]]
    for h in range(p.shape[0]):
        rows += [[str(h), labels[i], *map(number, p[h, i])] for i in range(p.shape[1])]
    return _csv_text(rows)


def table_csv(table: Table) -> str:
    return _csv_text([list(table.columns)] + [[number(v) for v in r] for r in table.rows])


def write_table(path, table: Table):
    _write_text(path, table_csv(table))


def write_pattern(path, array, tokens: Sequence[str], token_ids=None, meta: dict | None = None):
    """One head's (T, T) pattern or a layer's (H, T, T) patterns, by the file's extension:

    .csv  token texts as the header and first column (a layer: one block per head)
    .npy  the array only
    .npz  'attention' plus 'tokens', 'token_ids' and every meta entry (layer, head, model…)
    """
    path = Path(path)
    a = np.asarray(array, dtype=np.float32)
    suffix = path.suffix.lower()
    if suffix not in PATTERN_SUFFIXES:
        raise ExportError(f"cannot write {path.name}: use one of {', '.join(PATTERN_SUFFIXES)}")
    tokens = [str(t) for t in tokens]
    if suffix == ".csv":
        if a.ndim == 2:
            _write_text(path, matrix_csv(a, tokens, tokens, "query\\key"))
        else:
            _write_text(path, layer_csv(a, tokens))
        return path
    try:
        if suffix == ".npy":
            np.save(path, a)
        else:
            extra = {k: np.asarray(v) for k, v in (meta or {}).items() if v is not None}
            ids = np.asarray([] if token_ids is None else token_ids, dtype=np.int64)
            np.savez(
                path, attention=a, tokens=np.asarray(tokens, dtype=str), token_ids=ids, **extra
            )
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def read_matrix_csv(path) -> tuple[list[str], list[str], np.ndarray]:
    """Read back what matrix_csv wrote: (row labels, column labels, values)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    cols = rows[0][1:]
    labels = [r[0] for r in rows[1:]]
    values = np.array([[float(x) if x else np.nan for x in r[1:]] for r in rows[1:]])
    return labels, cols, values

"""All-or-nothing file writes: the content goes to a temporary file in the same folder, then a
rename puts it in place, so a reader (or a killed process, or a full disk) sees the old file or the
new one, never half of one."""

from __future__ import annotations

import csv
import io
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping


@contextmanager
def replaced_atomically(path: Path | str, suffix: str = ".tmp") -> Iterator[Path]:
    """``with replaced_atomically(path) as tmp: write(tmp)``: whatever is written to ``tmp`` replaces
    ``path`` in one rename when the block ends; a failed write (an exception, a full disk) leaves the
    previous file as it was and no temporary one. ``suffix`` ends the temporary name, for writers
    that insist on one (``np.savez`` appends ``.npz`` otherwise)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with replaced_atomically(path) as tmp:
        tmp.write_text(text, newline="")  # as given: the CSV writer's line endings stay as they are


def write_json_atomic(path: Path, data: Any, indent: int | None = 2, sort_keys: bool = True) -> None:
    write_text_atomic(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n")


def write_csv_atomic(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """A header of every key that occurs (in first-seen order), a row per mapping."""
    rows = list(rows)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())

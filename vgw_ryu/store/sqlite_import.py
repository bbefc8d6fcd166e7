"""Reading the policy from a database of vgw_ryu before 0.2 (SQLite), to import it.

Earlier versions kept the state document, its revision and the id map in one SQLite
file at ``--vgw-db``. The controller now keeps the policy in OVSDB; at start it finds
such a file, reads it here, moves it aside and writes its state into the new database.
No Ryu here.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SQLITE_MAGIC = b"SQLite format 3\x00"


def is_sqlite(path: Path) -> bool:
    """True if ``path`` is a SQLite file (by its header)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def read(path: Path) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """(state document, revision, id map) of an old vgw_ryu SQLite database.

    Raises ValueError, naming the file, if it is not one.
    """
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise ValueError(f"cannot open {path}: {e}") from None
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        for key in ("schema", "revision", "state", "ids"):
            if key not in meta:
                raise ValueError(f"{path} is not a vgw_ryu database (no {key!r})")
        return (json.loads(meta["state"]), int(meta["revision"]), json.loads(meta["ids"]))
    except (sqlite3.Error, ValueError) as e:
        raise ValueError(f"{path} is not a readable vgw_ryu database: {e}") from None
    finally:
        db.close()

#!/usr/bin/env python3
"""Waits until COUNT readings are rows in OUT/warehouse.db and lines in OUT/archive/**/*.gz.

Used by backlog_drain.sh. One process, one SQLite connection, each archive object read once
as it appears (objects are renamed into place complete): the wait must neither take the CPU
the pipeline it times needs, as a sqlite3 and a zcat every 20 ms did, nor add time of its own
after the drain.

  wait_stored.py OUT COUNT [TIMEOUT_SECONDS]
"""
import gzip
import os
import sqlite3
import sys
import time

POLL_SECONDS = 0.005


def rows(db):
    # max(rowid), not COUNT(*): a B-tree lookup, not a scan; the sink never deletes rows.
    try:
        return db.execute("SELECT max(rowid) FROM readings").fetchone()[0] or 0
    except sqlite3.Error:
        return 0  # the sink has not created the table yet


def main():
    out, count = sys.argv[1], int(sys.argv[2])
    deadline = time.monotonic() + (float(sys.argv[3]) if len(sys.argv) > 3 else 600)
    db_path = os.path.join(out, "warehouse.db")
    archive = os.path.join(out, "archive")
    db = None
    stored_rows, lines, counted = 0, 0, set()
    # Both sinks are watched together, each object read once as it appears: reading the whole
    # archive only after the last row would add its decompression to the timed drain.
    while stored_rows < count or lines < count:
        if db is None and os.path.exists(db_path):
            db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        if db is not None and stored_rows < count:
            stored_rows = rows(db)
        for root, _, files in os.walk(archive):
            for name in files:
                path = os.path.join(root, name)
                if name.endswith(".gz") and path not in counted:
                    with gzip.open(path, "rb") as f:
                        lines += sum(1 for _ in f)
                    counted.add(path)
        if stored_rows >= count and lines >= count:
            break
        if time.monotonic() > deadline:
            sys.exit(f"only {stored_rows} rows and {lines} archived lines of {count} in time")
        time.sleep(POLL_SECONDS)


main()

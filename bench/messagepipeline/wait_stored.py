#!/usr/bin/env python3
"""Waits until COUNT readings are rows in OUT/warehouse.db and acked by the archive sink.

Used by backlog_drain.sh, which then counts the archive's lines itself (after the timing). One
process, one SQLite connection polled cheaply (max(rowid)); the archive sink's acks (it acks a
reading once its object is written and synced) are read from the pipeline's /metrics, and only
once every row is in: the wait must not take the CPU the pipeline it times needs, as a sqlite3
and a zcat every 20 ms did, nor would decompressing every object as it appears.

It prints "ready" once started, before the pipeline it waits for is: the interpreter's own start
(~0.1-0.2 s here, with these imports) must not count as drain time.

  wait_stored.py OUT COUNT OPS_PORT [SERVICE [TIMEOUT_SECONDS]]   (SERVICE: icestore)
"""
import os
import sqlite3
import sys
import time
import urllib.request

POLL_SECONDS = 0.005


def rows(db):
    # max(rowid), not COUNT(*): a B-tree lookup, not a scan; the sink never deletes rows.
    try:
        return db.execute("SELECT max(rowid) FROM readings").fetchone()[0] or 0
    except sqlite3.Error:
        return 0  # the sink has not created the table yet


def archived(port, service):
    want = f'dataflow_messages_acked_total{{service="{service}"}}'
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            name, _, value = line.rpartition(" ")
            if name == want:
                return int(float(value))
    return 0


def main():
    out, count, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    service = sys.argv[4] if len(sys.argv) > 4 else "icestore"
    deadline = time.monotonic() + (float(sys.argv[5]) if len(sys.argv) > 5 else 600)
    db_path = os.path.join(out, "warehouse.db")
    db = None
    stored_rows = 0
    print("ready", flush=True)
    while stored_rows < count:
        if db is None and os.path.exists(db_path):
            db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        if db is not None:
            stored_rows = rows(db)
        if time.monotonic() > deadline:
            sys.exit(f"only {stored_rows} of {count} rows in time")
        if stored_rows < count:
            time.sleep(POLL_SECONDS)
    while (acked := archived(port, service)) < count:
        if time.monotonic() > deadline:
            sys.exit(f"the archive acked only {acked} of {count} readings in time")
        time.sleep(POLL_SECONDS)


main()

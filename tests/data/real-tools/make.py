#!/usr/bin/env python3
"""Writes the CSV fixtures of tests/real_tools.rs with the real tools, and what dropfolder must
store from each (NAME.expected.json: id -> attributes, as JSON).

Run from the repository root, in a venv with the tools (Java 17 for Spark):

    python3 -m venv /tmp/real-tools && /tmp/real-tools/bin/pip install pyspark pandas duckdb
    /tmp/real-tools/bin/python tests/data/real-tools/make.py

The tests read only the committed files; this script is how they were made.
"""
import csv
import datetime as dt
import glob
import gzip
import io
import json
import os
import shutil
import subprocess
import tempfile

OUT = os.path.dirname(os.path.abspath(__file__))

NAMES = [
    'The "Best" Shop',
    "Smith, Jo",
    'He said "hi", then left',
    "Zoë Ünïcode ✓",
    "two\nlines",
    "plain",
    '"quoted at both ends"',
    "semi;colon",
    "tab\there",
    "ends with a quote\"",
]
SCORES = [1.5e300, 1e21, -0.0, 0.1 + 0.2, 12345.6, 3.0, -7.25, 1e-7, 2.5, 1e16]
BASE = dt.datetime(2021, 6, 25, 13, 55, 42)
# Fractions of every width: none, milliseconds, microseconds, a tenth.
FRACTIONS = [0, 500000, 123456, 120000, 0, 7, 100000, 999999, 0, 10]


def rows(n=40):
    out = []
    for i in range(n):
        out.append(
            {
                "id": f"c{i:03d}",
                "name": NAMES[i % len(NAMES)] + ("" if i < len(NAMES) else f" #{i}"),
                "score": SCORES[i % len(SCORES)] * (1 if i < 20 else -1),
                "active": i % 3 == 0,
                "updated": BASE
                + dt.timedelta(days=i, microseconds=FRACTIONS[i % len(FRACTIONS)]),
            }
        )
    return out


def attributes(row, timestamps):
    """What dropfolder stores for a row: every non-empty cell, numbers as JSON numbers."""
    out = {"name": row["name"], "score": row["score"], "active": row["active"]}
    out["updated"] = timestamps[row["id"]]
    return out


def read_back(path, key, **dialect):
    """The `updated` text as the tool wrote it, per id (read with Python's csv module)."""
    with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as f:
        return {r[key]: r["updated"] for r in csv.DictReader(f, **dialect)}


def check_timestamps(texts, data, key="id", unit=1):
    """The tool's timestamp text must mean the source instant, to `unit` microseconds (it is
    stored as a string)."""
    for row in data:
        text = texts[str(row[key])]
        parsed = dt.datetime.fromisoformat(text.replace("T", " ").replace("Z", "+00:00"))
        source = row["updated"]
        source = source.replace(microsecond=source.microsecond // unit * unit)
        assert parsed.replace(tzinfo=None) == source, (text, row["updated"])


def write_expected(name, expected):
    with open(os.path.join(OUT, name + ".expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")


def spark():
    """Spark's CSV writer with its default options: quotes escaped with a backslash."""
    from pyspark.sql import SparkSession
    from pyspark.sql.types import (BooleanType, DoubleType, StringType,
                                   StructField, StructType, TimestampType)

    session = (
        SparkSession.builder.master("local[1]")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    schema = StructType(
        [
            StructField("id", StringType()),
            StructField("name", StringType()),
            StructField("score", DoubleType()),
            StructField("active", BooleanType()),
            StructField("updated", TimestampType()),
        ]
    )
    data = rows()
    frame = session.createDataFrame(
        [(r["id"], r["name"], r["score"], r["active"], r["updated"]) for r in data], schema
    )
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "out")
        frame.coalesce(1).write.csv(target, header=True, compression="gzip")
        (part,) = glob.glob(os.path.join(target, "part-00000-*.csv.gz"))
        dest = os.path.join(OUT, "spark-part-00000.csv.gz")
        shutil.copyfile(part, dest)
    session.stop()
    texts = read_back(dest, "id", escapechar="\\", doublequote=False)
    # Spark's default timestampFormat keeps milliseconds.
    check_timestamps(texts, data, unit=1000)
    write_expected("spark-part-00000", {r["id"]: attributes(r, texts) for r in data})


def pandas_files():
    """pandas.to_csv with a numeric id that pandas writes as a float (`1000.0`), and a
    timestamp column of object dtype (as read from JSON or an API), which pandas writes value
    by value: no fraction, or all six digits."""
    import pandas as pd

    data = rows()
    frame = pd.DataFrame(data)
    frame["id"] = [1000.0 + i for i in range(len(data))]
    frame["updated"] = [pd.Timestamp(t) for t in frame["updated"]]
    frame["updated"] = frame["updated"].astype(object)
    dest = os.path.join(OUT, "pandas.csv.gz")
    frame.to_csv(dest, index=False, compression="gzip")
    texts = read_back(dest, "id")
    # Read back, the id is `1000.0`; dropfolder stores a numeric id in one canonical text.
    texts = {str(int(float(k))): v for k, v in texts.items()}
    by_id = [dict(r, id=str(1000 + i)) for i, r in enumerate(data)]
    check_timestamps(texts, by_id)
    write_expected("pandas", {r["id"]: attributes(r, texts) for r in by_id})

    # A value containing a bare carriage return: pandas quotes only what has the delimiter,
    # the quote or its line terminator ("\n"), so the \r is written bare.
    bare = pd.DataFrame({"id": ["c1", "c2"], "name": ["before\rafter", "fine"]})
    bare.to_csv(os.path.join(OUT, "pandas-bare-cr.csv.gz"), index=False, compression="gzip")

    # Excel's "CSV UTF-8": a byte order mark and CRLF line ends.
    excel = pd.DataFrame(data)
    dest = os.path.join(OUT, "excel-bom-crlf.csv.gz")
    excel.to_csv(
        dest,
        index=False,
        encoding="utf-8-sig",
        lineterminator="\r\n",
        compression="gzip",
        date_format="%Y-%m-%d %H:%M:%S.%f",
    )
    texts = read_back(dest, "id")
    check_timestamps(texts, data)
    write_expected("excel-bom-crlf", {r["id"]: attributes(r, texts) for r in data})


def duckdb_file():
    """DuckDB's COPY ... TO: timestamps with as many fraction digits as they need."""
    import duckdb

    data = rows()
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t (id VARCHAR, name VARCHAR, score DOUBLE, active BOOLEAN, updated TIMESTAMP)"
    )
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
        [(r["id"], r["name"], r["score"], r["active"], r["updated"]) for r in data],
    )
    dest = os.path.join(OUT, "duckdb.csv.gz")
    con.execute(f"COPY (SELECT * FROM t ORDER BY id) TO '{dest}' (HEADER, COMPRESSION gzip)")
    texts = read_back(dest, "id")
    check_timestamps(texts, data)
    write_expected("duckdb", {r["id"]: attributes(r, texts) for r in data})


def multi_member():
    """A file in three gzip members, as `gzip` makes them and `cat` joins them."""
    data = rows(30)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", "name", "score", "active", "updated"])
    for r in data:
        writer.writerow(
            [r["id"], r["name"], repr(r["score"]), str(r["active"]).lower(), r["updated"].isoformat(sep=" ")]
        )
    lines = text.getvalue().splitlines(keepends=True)
    # Split between records only (a quoted value may hold a line break): 1+10, 10, 10 records.
    parts, current, count = [], "", 0
    for line in lines:
        current += line
        if current.count('"') % 2 == 0:
            count += 1
            if count in (11, 21):
                parts.append(current)
                current = ""
    parts.append(current)
    members = b"".join(
        subprocess.run(["gzip", "-cn"], input=p.encode(), capture_output=True, check=True).stdout
        for p in parts
    )
    dest = os.path.join(OUT, "multi-member.csv.gz")
    with open(dest, "wb") as f:
        f.write(members)
    texts = read_back(dest, "id")
    check_timestamps(texts, data)
    write_expected("multi-member", {r["id"]: attributes(r, texts) for r in data})


if __name__ == "__main__":
    spark()
    pandas_files()
    duckdb_file()
    multi_member()

"""Postgres profile: the feature tables loaded with COPY, swapped in atomically in one transaction.

A load writes into `<table>__load`, indexes it, then drops the old table and renames the new one
inside the same transaction: readers see the old tables or the new ones, never a mix, and a failed
load rolls back to the previous tables.
"""

from __future__ import annotations

import contextlib
import io

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from salesforecast.errors import StoreError

INDEXES: dict[str, dict[str, list[str]]] = {
    "sales_features": {
        "idx_sales_date": ["date"],
        "idx_sales_store_dept": ["store", "dept"],
        "idx_sales_store_dept_date": ["store", "dept", "date"],
        "idx_sales_store_dept_key": ["store_dept", "date"],
    },
    "store_features": {
        "idx_store_date": ["date"],
        "idx_store_store_date": ["store", "date"],
    },
}


def _pg_type(dtype: object) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "timestamptz"
    if pd.api.types.is_datetime64_dtype(dtype):
        return "timestamp"
    if pd.api.types.is_integer_dtype(dtype):
        return {1: "smallint", 2: "smallint", 4: "integer"}.get(
            pd.api.types.pandas_dtype(dtype).itemsize, "bigint"
        )
    if pd.api.types.is_float_dtype(dtype):
        return "double precision"
    return "text"


def connect(dsn: str, **kwargs: object) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        safe = conninfo_to_dict(dsn)
        safe.pop("password", None)
        raise StoreError(
            f"cannot connect to PostgreSQL at {safe.get('host', 'localhost')}:"
            f"{safe.get('port', 5432)}/{safe.get('dbname', '')} ({str(exc).strip()}); "
            "set SALESFORECAST_PG_DSN or start the server"
        ) from exc


def ensure_database(dsn: str) -> None:
    """Create the DSN's database when it is missing (connecting through the `postgres` database)."""
    params = conninfo_to_dict(dsn)
    dbname = params.get("dbname") or "postgres"
    admin = psycopg.conninfo.make_conninfo(dsn, dbname="postgres")
    with connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            # Another process may create it at the same moment.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def _copy(cur: psycopg.Cursor, table: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    pacsv.write_csv(arrow, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(sql.Identifier(table), columns)
    with cur.copy(statement) as copy:
        view = buffer.getbuffer()
        for offset in range(0, len(view), 1 << 20):
            copy.write(view[offset : offset + (1 << 20)])


def write_tables(dsn: str, tables: dict[str, pd.DataFrame]) -> None:
    """Replace every table in one transaction; on any error the previous tables stay."""
    ensure_database(dsn)
    with connect(dsn) as conn, conn.transaction(), conn.cursor() as cur:
        for name, frame in tables.items():
            staging = f"{name}__load"
            cols = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_pg_type(t)))
                for c, t in frame.dtypes.items()
            )
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(staging)))
            cur.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(staging), cols))
            _copy(cur, staging, frame)
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
            cur.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(staging), sql.Identifier(name))
            )
            for index, columns in INDEXES.get(name, {}).items():
                cur.execute(
                    sql.SQL("CREATE INDEX {} ON {} ({})").format(
                        sql.Identifier(index),
                        sql.Identifier(name),
                        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
                    )
                )
            cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))


def read_table(dsn: str, name: str) -> pd.DataFrame:
    with connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(name)))
        columns = [d.name for d in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=columns)

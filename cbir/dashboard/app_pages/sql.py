"""SQL: read-only queries in a SQL editor (Ctrl+Enter runs), a schema browser read from the database, ready
examples, and results as a table, as thumbnails (when a column holds image ids) and as a simple chart.

The editor is streamlit-code-editor (Ace through react-ace, release 0.1.22 of December 2024): it bundles Ace
with its pgsql highlighting, so nothing is fetched from outside the server (the Monaco wrappers,
streamlit-monaco and streamlit-monaco-editor, load Monaco from a CDN at run time); its built-in "submit"
command is bound to Ctrl+Enter (Cmd+Enter on a Mac) and returns the text to Python; it takes completions
(the tables, columns and functions below). streamlit-ace does much the same but was last released in 2021.
It works with Streamlit 1.67 in headless Chromium (tests/test_browser_sql.py types a query and runs it with
the shortcut).
"""

from __future__ import annotations

import numbers

import pandas as pd
import streamlit as st
from code_editor import code_editor

from cbir.config import settings
from cbir.dashboard import ui
from cbir.dashboard.login import session_owner
from cbir.errors import CbirError
from cbir.storage.console import EXAMPLES, SqlResult, run_readonly
from cbir.storage.schema import Function, Table, console_schema

OWN = "(write your own)"
EDITOR_KEY = "sql_editor"  # session_state: the editor's last event ({"id", "type", "text", ...})
STARTER = "SELECT category, count(*) AS images FROM images GROUP BY category ORDER BY images DESC"
MAX_THUMBNAILS = 60
MAX_BARS = 50
RUN_BUTTON = [
    {
        "name": "Run (Ctrl+Enter)",
        "feather": "Play",
        "primary": True,
        "hasText": True,
        "showWithIcon": True,
        "alwaysOn": True,
        "commands": ["submit"],
        "style": {"bottom": "0.44rem", "right": "0.4rem"},
    }
]


@st.cache_data(ttl=30, show_spinner="Reading the schema...")
def schema(home: str, database_url: str | None, reader_url: str | None) -> tuple[list[Table], list[Function]]:
    """The console's tables and functions, re-read at most every 30 s (row counts change with ingests); the
    arguments only key the cache, so another database is another entry."""
    return console_schema()


def use_example() -> None:
    if st.session_state.sql_example != OWN:
        st.session_state.sql_text = EXAMPLES[st.session_state.sql_example]


def completions(tables: list[Table], functions: list[Function]) -> list[dict]:
    """What the editor offers while typing, beside SQL keywords: table, column and function names."""
    words = {t.name: "table" for t in tables}
    words |= {c.name: "column" for t in tables for c in t.columns if c.name not in words}
    words |= {f.signature.split("(")[0]: "function" for f in functions if not f.internal}
    return [{"caption": w, "value": w, "meta": kind, "name": w, "score": 400} for w, kind in words.items()]


def column_table(table: Table) -> str:
    """A table's columns as a markdown table (plain text, so the browser's find-in-page finds them)."""
    lines = ["| column | type | meaning |", "|---|---|---|"]
    for c in table.columns:
        meaning = c.comment.replace("|", "\\|")
        lines.append(f"| `{c.name}` | {c.type} | {meaning} |")
    return "\n".join(lines)


def show_schema(tables: list[Table], functions: list[Function]) -> None:
    st.subheader("Schema")
    st.caption("Read from the database (COMMENT ON); row counts are exact.")
    for table in tables:
        with st.expander(f"{table.name} · {table.rows:,} row{'' if table.rows == 1 else 's'}"):
            st.caption(table.comment or "(no comment)")
            st.markdown(column_table(table))
    with st.expander(f"Functions · {sum(not f.internal for f in functions)}"):
        for f in functions:
            if not f.internal:
                st.markdown(f"`{f.signature}` → `{f.result}`")
                st.caption(f.comment)


def run_submitted(row_limit: int, timeout_s: int) -> None:
    """Run the editor's text once per Ctrl+Enter (or Run click); every event keeps the text for the next rerun."""
    event = st.session_state.get(EDITOR_KEY) or {}
    if not event.get("id") or event["id"] == st.session_state.get("sql_seen"):
        return
    st.session_state.sql_seen = event["id"]
    st.session_state.sql_text = event["text"]
    if event["type"] != "submit":
        return
    st.session_state.pop("sql_result", None)
    try:
        st.session_state.sql_result = run_readonly(
            event["text"], row_limit=row_limit, timeout_ms=timeout_s * 1000, session=session_owner()
        )
    except CbirError as exc:
        ui.show_error(exc)


def is_number(value: object) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)  # numpy's and Decimal included


def number_columns(frame: pd.DataFrame, skip: set[str]) -> list[str]:
    """Columns whose every value is a number (ids left out: charting them means nothing)."""
    ids = {c for c in frame.columns if c == "id" or c.endswith("_id")}
    return [c for c in frame.columns if c not in skip | ids and len(frame) and frame[c].map(is_number).all()]


def text_columns(frame: pd.DataFrame, skip: set[str]) -> list[str]:
    """Columns of text (NULLs allowed), those named like category first; paths left out (one bar each)."""
    found = [
        c
        for c in frame.columns
        if c not in skip
        and "path" not in c
        and frame[c].map(lambda v: v is None or isinstance(v, str)).all()
        and frame[c].notna().any()
    ]
    return sorted(found, key=lambda c: "category" not in c)


def show_chart(frame: pd.DataFrame, skip: set[str]) -> bool:
    """A bar chart of the first number per category (a column named like category first; mean when a
    category repeats), else a scatter of two numbers; False when the result has neither shape."""
    numbers = number_columns(frame, skip)
    texts = text_columns(frame, skip | set(numbers))
    if numbers and texts:
        category, value = texts[0], numbers[0]
        data = frame.assign(**{value: pd.to_numeric(frame[value])}).groupby(category, sort=False)[value].mean()
        label = f"mean {value}" if data.size < len(frame) else value
        st.bar_chart(data.head(MAX_BARS).reset_index(), x=category, y=value, horizontal=True, sort=False, y_label=label)
        return True
    if len(numbers) >= 2:
        st.scatter_chart(frame.assign(**{c: pd.to_numeric(frame[c]) for c in numbers[:2]}), x=numbers[0], y=numbers[1])
        return True
    return False


def caption_of(row: pd.Series, skip: set[str]) -> str:
    """A thumbnail's caption: the row's short values (long ones, such as paths, are in the table)."""
    parts = []
    for name, value in row.items():
        if name in skip or value is None:
            continue
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        if len(text) <= 40:
            parts.append(f"{name}={text}" if not isinstance(value, str) else text)
    return " · ".join(parts)


def show_thumbnails(frame: pd.DataFrame, column: str) -> None:
    firsts = frame.dropna(subset=[column]).drop_duplicates(subset=[column]).head(MAX_THUMBNAILS)
    ids = [int(v) for v in firsts[column]]
    captions = {int(r[column]): f"#{int(r[column])} " + caption_of(r, {column}) for _, r in firsts.iterrows()}
    if len(firsts) == MAX_THUMBNAILS:
        st.caption(f"The first {MAX_THUMBNAILS} images of `{column}`.")
    with ui.connection() as conn:
        ui.thumbnail_grid(conn, ids, captions, columns=6)


def show_result(result: SqlResult) -> None:
    frame = ui.result_frame(result.columns, result.rows)
    st.write(f"{len(frame):,} rows" + (f" (stopped at the row limit of {len(frame):,})" if result.truncated else ""))
    image_columns = [frame.columns[n] for n in result.image_columns]
    names = ["Table"] + (["Thumbnails"] if image_columns and len(frame) else []) + ["Chart"]
    tabs = dict(zip(names, st.tabs(names), strict=True))
    with tabs["Table"]:
        st.dataframe(frame, hide_index=True)
        st.download_button("Download CSV", frame.to_csv(index=False).encode(), "cbir-query.csv", "text/csv")
    if "Thumbnails" in tabs:
        with tabs["Thumbnails"]:
            show_thumbnails(frame, image_columns[0])
    with tabs["Chart"]:
        if not show_chart(frame, set(image_columns)):
            st.caption("A chart needs a text column and a number, or two numbers.")


s = settings()
tables, functions = schema(str(s.home), s.database_url, s.reader_url)
st.title("SQL")
st.caption(
    "Each query runs as the read-only role `cbir_reader`, in a read-only transaction with a statement timeout: "
    "the database itself refuses writes and DDL. Tables it can read: "
    + ", ".join(f"`{t.name}`" for t in tables)
    + ". Nearest neighbours through the HNSW index: `SELECT * FROM cbir_neighbors(image_id, k, model)`."
)
left, right = st.columns([3, 1])
with right:
    show_schema(tables, functions)
with left:
    st.session_state.setdefault("sql_text", STARTER)
    a, b, c = st.columns([3, 1, 1])
    a.selectbox("Example", [OWN, *EXAMPLES], key="sql_example", on_change=use_example)
    row_limit = b.number_input("Row limit", min_value=1, max_value=100_000, value=1000, step=100)
    timeout_s = c.number_input("Timeout (s)", min_value=1, max_value=300, value=5)
    run_submitted(int(row_limit), int(timeout_s))
    code_editor(
        st.session_state.sql_text,
        lang="pgsql",
        key=EDITOR_KEY,
        height=[8, 30],
        allow_reset=True,
        response_mode=["blur"],
        buttons=RUN_BUTTON,
        completions=completions(tables, functions),
        options={"wrap": True},
    )
    st.caption("Ctrl+Enter (Cmd+Enter on a Mac) or Run executes the query.")
    result = st.session_state.get("sql_result")
    if result is not None:
        show_result(result)

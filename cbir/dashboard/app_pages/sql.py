"""SQL: read-only queries against the cbir tables, with ready examples, a results table and a CSV download."""

import streamlit as st

from cbir.dashboard import ui
from cbir.storage.console import EXAMPLES, run_readonly

OWN = "(write your own)"


def use_example() -> None:
    if st.session_state.sql_example != OWN:
        st.session_state.sql_text = EXAMPLES[st.session_state.sql_example]


st.title("SQL")
st.caption(
    "Each query runs as the read-only role `cbir_reader`, in a read-only transaction with a statement timeout: "
    "the database itself refuses writes and DDL. Tables: `images`, `image_paths`, `models`, `embeddings`, "
    "`projections`, `projection_points`, `projection_scores`."
)
st.selectbox("Example", [OWN, *EXAMPLES], key="sql_example", on_change=use_example)
text = st.text_area("Query", key="sql_text", height=240, placeholder="SELECT category, count(*) FROM images GROUP BY 1")
a, b, _ = st.columns([1, 1, 3])
row_limit = a.number_input("Row limit", min_value=1, max_value=100_000, value=1000, step=100)
timeout_s = b.number_input("Timeout (s)", min_value=1, max_value=300, value=5)

if st.button("Run", type="primary"):
    st.session_state.pop("sql_result", None)
    st.session_state.sql_result = run_readonly(text, row_limit=int(row_limit), timeout_ms=int(timeout_s) * 1000)

result = st.session_state.get("sql_result")
if result is not None:
    frame = ui.result_frame(result.columns, result.rows)
    st.write(f"{len(frame):,} rows" + (f" (stopped at the row limit of {len(frame):,})" if result.truncated else ""))
    st.dataframe(frame, hide_index=True)
    st.download_button("Download CSV", frame.to_csv(index=False).encode(), "cbir-query.csv", "text/csv")

"""Inspector: where retrieval fails, from stored `cbir eval` results (nothing is recomputed here)."""

from pathlib import Path

import streamlit as st

from cbir.dashboard import ui
from cbir.storage import evaluations as inspector

NONE = "(none)"
ANY = "(any category)"

st.title("Inspector")
with ui.connection() as conn:
    runs = inspector.latest_runs(conn)

if not runs:
    st.info("No evaluation results yet. From a terminal run `cbir eval --model MODEL`, then reload this page.")
    st.stop()

by_label = {run.label: run for run in runs}
left, right = st.columns(2)
run = by_label[left.selectbox("Model", list(by_label))]
others = [label for label in by_label if label != run.label]
other_label = right.selectbox("Compare with", [NONE, *others])
other_run = by_label.get(other_label)
shown = [run] + ([other_run] if other_run else [])

st.subheader("Overall and per category")
st.dataframe(
    [{"model": r.model, "scope": scope, **getattr(r, scope)} for r in shown for scope in ("overall", "macro")],
    hide_index=True,
)
with ui.connection() as conn:
    per_category = inspector.categories(conn, run.id)
    if other_run:
        st.caption(f"Per category: A = {run.model}, B = {other_run.model}; largest gain of B first.")
        st.dataframe(inspector.compare(conn, run.id, other_run.id), hide_index=True, height=300)
    else:
        st.caption("Worst first (full-ranking mAP); click a column to sort.")
        st.dataframe(per_category, hide_index=True, height=300)

st.subheader("Most confused category pairs")
names = [c["category"] for c in per_category]
only = st.selectbox("Queries of category", [ANY, *sorted(names)])
with ui.connection() as conn:
    pairs = inspector.confusions(conn, run.id, category=None if only == ANY else only)
st.caption(
    f"A -> B: top-{run.k} neighbours of A's queries that are in B; rate = share of A's neighbours, "
    "lift = rate / B's share of the collection (1 = chance)."
)
st.dataframe(pairs, hide_index=True, height=300)
if not pairs:
    st.stop()

chosen = st.selectbox("Pair", pairs, format_func=lambda p: f"{p['category']} -> {p['other']} ({p['neighbours']})")
a, b = chosen["category"], chosen["other"]
columns = st.columns(len(shown))
for column, r in zip(columns, shown, strict=True):
    with column, ui.connection() as conn:
        counts = inspector.pair(conn, r.id, a, b)
        st.markdown(f"**{r.model}**: " + (f"{counts['neighbours']} {b} neighbours" if counts else f"no {b} neighbours"))
        for example in inspector.examples(conn, r.id, a, b, limit=6):
            captions = {example.query_id: f"query ({a})\n{Path(example.query_path).name}"}
            captions |= {image: f"#{rank} {b}, d={distance:.3f}" for image, rank, distance in example.wrong}
            ids = [example.query_id] + [image for image, _, _ in example.wrong]
            ui.thumbnail_grid(conn, ids, captions, columns=6)
            st.divider()

"""Duplicates: the same bytes at several paths, near-duplicate and resized groups, and an upload's source."""

from pathlib import Path

import streamlit as st

from cbir.dashboard import ui
from cbir.retrieval import copies

st.title("Duplicates")
with ui.connection() as conn:
    models, _ = ui.models(conn)
    model = copies.model_for(conn, None) if models else None

if model is None:
    st.info("Nothing stored yet: run `cbir ingest PATH --model phash` first, then reload.")
    st.stop()

left, right = st.columns(2)
name = left.selectbox("Model", models, index=models.index(model.name))
threshold = right.number_input("Largest distance between copies", min_value=0.0, value=copies.default_threshold(name))

with ui.connection() as conn:
    model = copies.model_for(conn, name)
    exact = copies.exact_duplicates(conn)
    groups = copies.near_duplicates(conn, model, threshold)

a, b, c = st.columns(3)
a.metric("Exact duplicates", len(exact))
b.metric("Near-duplicate groups", len(groups))
c.metric("Resized versions", sum(g.kind == "resized" for g in groups))

upload = st.file_uploader("Where did this image come from?")
if upload is not None:
    with ui.connection() as conn:
        found = copies.sources(conn, model, upload.getvalue(), threshold)
    if not found:
        st.warning(f"No stored image within {threshold:g} of this upload under {model.name}.")
    for s in found:
        st.markdown(("Same bytes as" if s.exact else f"Distance {s.distance:g} from") + f" image {s.id}:")
        st.code("\n".join(s.paths), language=None)

for kind, title in (
    ("exact", "Same bytes, several paths"),
    ("resized", "Resized versions"),
    ("near", "Near-duplicates"),
):
    shown = exact if kind == "exact" else [g for g in groups if g.kind == kind]
    if not shown:
        continue
    st.subheader(f"{title} ({len(shown)})")
    for group in shown[:20]:
        ids = [m.id for m in group.members]
        captions = {m.id: f"{m.width}x{m.height}\n{Path(m.path).name}" for m in group.members}
        if kind == "exact":
            captions = {m.id: "\n".join(m.paths) for m in group.members}
        with ui.connection() as conn:
            ui.thumbnail_grid(conn, ids, captions, columns=6)
        st.divider()

"""Duplicates: the same bytes at several paths, near-duplicate and resized groups, and an upload's source with
the evidence (matched region outlined on both pictures, the edit found)."""

from pathlib import Path

import streamlit as st

from cbir.dashboard import copies_view, ui
from cbir.retrieval import copies, search, verify

st.title("Duplicates")
with ui.connection() as conn:
    models, _ = ui.models(conn)
    model = copies.model_for(conn, None) if models else None

if model is None:
    st.info("Nothing stored yet: run `cbir ingest PATH --model phash` first, then reload.")
    st.stop()

left, middle, right, far = st.columns(4)
name = left.selectbox("Model", models, index=models.index(model.name))
threshold = middle.number_input("Largest distance between copies", min_value=0.0, value=copies.default_threshold(name))
min_inliers = right.number_input("Keypoints that must agree for a copy", min_value=1, value=verify.MIN_INLIERS, step=1)
min_agreement = far.number_input(
    "Share of keypoint matches that must agree", min_value=0.0, max_value=1.0, value=verify.MIN_AGREEMENT, step=0.05
)

st.subheader("The source of a copy")
upload = st.file_uploader("Where did this image come from?")
checked = st.toggle("Check candidates by matching keypoints", value=True)
if upload is not None:
    with ui.connection() as conn:
        models_used = copies.copy_models(conn)
        found = copies.sources(conn, upload.getvalue(), models_used, None, checked, int(min_inliers), min_agreement)
        copy = search.query_picture(conn, upload.getvalue()) if found.sources else None
        if not found.sources:
            st.warning(f"No copy of this upload is stored (searched under {', '.join(found.models)}).")
        for s in found.sources:
            if s.exact:
                st.markdown(f"**Same bytes as image {s.id}**:")
            else:
                evidence = f"{s.inliers} keypoints agree, {s.match.agreement:.0%} of matches; " if s.match else ""
                st.markdown(
                    f"**Copy of image {s.id}: {s.transform}** ({evidence}nearest under {s.model} "
                    f"as '{s.variant}', distance {s.distance:.3g})"
                )
            if s.match is not None:
                shown_copy, shown_original = copies_view.evidence(copy, search.stored_picture(conn, s.id), s.match)
                a, b = st.columns(2)
                a.image(shown_copy, caption="Your upload: the part found in the stored image", width="stretch")
                b.image(shown_original, caption=f"Image {s.id}: the part your upload shows", width="stretch")
            st.code("\n".join(s.paths), language=None)
    if found.rejected:
        st.caption(
            f"{len(found.rejected)} look-alikes rejected (a copy needs {int(min_inliers)} agreeing keypoints, "
            f"{min_agreement:.0%} of its matches): "
            + ", ".join(f"image {r.id} ({r.inliers or 0})" for r in found.rejected)
        )
    st.caption(f"Answered in {found.seconds:.2f} s.")

st.divider()
split = st.toggle("Split look-alike groups from true copies (matches keypoints of every member; slower)")
with ui.connection() as conn:
    model = copies.model_for(conn, name)
    exact = copies.exact_duplicates(conn)
    groups = copies.near_duplicates(conn, model, threshold)
    if split:
        with st.spinner("Matching keypoints..."):
            groups = copies.verify_groups(conn, groups, int(min_inliers), min_agreement)

a, b, c, d = st.columns(4)
a.metric("Exact duplicates", len(exact))
b.metric("Near-duplicate groups", sum(g.kind != "look-alike" for g in groups))
c.metric("Resized versions", sum(g.kind == "resized" for g in groups))
if split:
    d.metric("Look-alike groups", sum(g.kind == "look-alike" for g in groups))

for kind, title in (
    ("exact", "Same bytes, several paths"),
    ("resized", "Resized versions"),
    ("near", "Near-duplicates"),
    ("look-alike", "Look-alikes, not copies (too few keypoints agree with the first image)"),
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
        for m in group.members:
            if m.inliers is not None:
                captions[m.id] += f"\n{m.inliers} keypoints agree" + (f": {m.transform}" if m.transform else "")
        with ui.connection() as conn:
            ui.thumbnail_grid(conn, ids, captions, columns=6)
        st.divider()

"""Search: query by upload, by a stored image or by a path (or by a box dragged on the uploaded or stored
picture); the nearest images as a grid of thumbnails and their distances by rank, then heatmaps of why the
query and a chosen result match.

The distances chart is also the session's first Plotly chart, so the browser loads plotly.js here, after
the results are shown, rather than when the analyst then opens the Map (benchmarks/dashboard.py)."""

import hashlib
from datetime import date, datetime
from pathlib import Path

import streamlit as st

from cbir.dashboard import charts, heatmaps, login, ui
from cbir.retrieval import export, tagging
from cbir.retrieval.paths import allowed_path
from cbir.retrieval.search import lookup, query_picture, stored_picture
from cbir.storage import collection, metadata, tags
from cbir.storage.neighbours import PhotoFilter

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "dng"]
ALL = "(all categories)"
UNKNOWN = "(unknown)"
ANY_CAMERA = "(any camera)"
ANY_TAG = "(any tag)"

st.title("Search")
with ui.connection() as conn:
    models, default = ui.models(conn)
    categories = collection.categories(conn)
    cameras = metadata.cameras(conn)
    tag_names = tags.names(conn)

if not models:
    st.info("Nothing to search yet: run `cbir ingest PATH --model MODEL` first, then reload.")
    st.stop()

left, right = st.columns([2, 1])
with right:
    model = ui.pick_model(models, default)
    k = st.slider("Results (k)", 1, 50, 10)
    only = st.selectbox("Only category", [ALL, *categories])
    after, before = st.columns(2)
    taken_after: date | None = after.date_input("Taken on or after", value=None, min_value=date(1826, 1, 1))
    taken_before: date | None = before.date_input("Taken before", value=None, min_value=date(1826, 1, 1))
    camera = st.selectbox("Camera", [ANY_CAMERA, *cameras]) if cameras else ANY_CAMERA
    only_tag = st.selectbox("Only tag", [ANY_TAG, *tag_names]) if tag_names else ANY_TAG
with left:
    source = st.radio("Query by", ["Upload", "Stored image", "Path"], horizontal=True)
    query: bytes | int | str | None = None
    query_category = None
    if source == "Upload":
        upload = st.file_uploader("Image", type=UPLOAD_TYPES)
        query = upload.getvalue() if upload else None
        label = st.selectbox("Its category, if known (for precision@k)", [UNKNOWN, *categories])
        query_category = None if label == UNKNOWN else label
    elif source == "Stored image":
        category = st.selectbox("Category", categories) if categories else None
        with ui.connection() as conn:
            rows = collection.images_in(conn, category)
        picked = st.selectbox("Image", rows, format_func=lambda r: Path(r.path).name)
        query = picked.id if picked else None
    else:
        typed = st.text_input("Image path (on the server, in a folder given to cbir ingest)").strip()
        if typed:
            with ui.connection() as conn:
                query = str(allowed_path(conn, typed))  # anything else on the server: refused in one line

if query is None:
    st.info("Upload an image, pick a stored one, or give a path.")
    st.stop()

region = None
if source != "Path" and left.toggle("Search a region of the image", help="Drag a box on the picture"):
    with ui.connection() as conn:
        picture = query_picture(conn, query)
    with left:
        key = "region-" + (str(query) if isinstance(query, int) else hashlib.sha256(query).hexdigest()[:16])
        region = ui.region_box(picture, key)
        if region is None:
            st.caption("Drag a box on the picture to search that part of it.")
    if region:
        left.caption(f"Searching the box {region} (left, top, right, bottom) of {picture.width}x{picture.height} px.")
        query = ui.crop_png(picture, region)

if not isinstance(query, int):
    ui.embedder(model)  # a new image may need the model: load it once per server, not per query
with ui.connection() as conn:
    only_category = None if only == ALL else only
    photo = PhotoFilter(
        taken_after=datetime.combine(taken_after, datetime.min.time()) if taken_after else None,
        taken_before=datetime.combine(taken_before, datetime.min.time()) if taken_before else None,
        camera=None if camera == ANY_CAMERA else camera,
        tag=None if only_tag == ANY_TAG else only_tag,
    )
    answer = lookup(conn, query, k=k, model=model, category=only_category, query_category=query_category, photo=photo)
st.session_state[ui.ANSWER_KEY] = answer

shown, stats = st.columns([1, 4])
if answer.thumbnail:
    shown.image(answer.thumbnail, caption="query", width=160)
with stats:
    a, b, c = st.columns(3)
    a.metric("Results", len(answer.hits))
    b.metric("Query category", answer.category or "unknown")
    if answer.precision is not None:
        c.metric(f"precision@{len(answer.hits)}", f"{answer.precision:.2f}")
    st.caption(
        f"{answer.seconds * 1000:.0f} ms with {answer.model}; cosine distance, 0 = same direction."
        + (" The query image itself is left out of its results." if answer.image_id else "")
    )

if not answer.hits:
    st.warning("No stored images match this filter.")
    st.stop()
with ui.connection() as conn:
    ui.thumbnail_grid(
        conn,
        [h.id for h in answer.hits],
        {h.id: f"#{n} · {h.distance:.4f} · {h.category or '-'}  \n{h.path}" for n, h in enumerate(answer.hits, 1)},
    )
with st.form("tag_results"):
    ranks = st.multiselect(
        "Results to tag", range(1, len(answer.hits) + 1), default=list(range(1, len(answer.hits) + 1))
    )
    new_tag = st.text_input("Tag", max_chars=64, placeholder="e.g. review")
    if st.form_submit_button("Tag them"):
        chosen_ids = [answer.hits[r - 1].id for r in ranks]
        with ui.connection() as conn:
            added = tagging.tag(new_tag, chosen_ids, who=login.who(), conn=conn)
        st.success(f"tagged {added} more images {new_tag!r}")
with ui.connection() as conn:
    csv_text = export.export_text(conn, [h.id for h in answer.hits], "csv", {h.id: h.distance for h in answer.hits})
st.download_button("Download the results (CSV)", csv_text, file_name="results.csv", mime="text/csv")
st.plotly_chart(
    charts.distances_figure(answer.hits, answer.category), key="distances", config={"displayModeBar": False}
)

with st.expander("Why did these match?", expanded=True):
    chosen = st.selectbox(
        "Result",
        range(len(answer.hits)),
        format_func=lambda n: f"result {n + 1} · {answer.hits[n].distance:.4f} · {Path(answer.hits[n].path).name}",
    )
    hit = answer.hits[chosen]
    with ui.connection() as conn:
        pictures = query_picture(conn, query), stored_picture(conn, hit.id)
    heatmaps.show_match(answer.model, *pictures, labels=("query", f"result {chosen + 1}"))

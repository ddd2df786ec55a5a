"""Map: the whole collection in 2-D (UMAP) with a legend of categories (hide, isolate), other colourings, a
search box that highlights, the latest query placed among its neighbours; select marks to see the images."""

import numpy as np
import streamlit as st

from cbir.analysis import projection
from cbir.dashboard import charts, map_marks, ui
from cbir.errors import CbirError
from cbir.storage import collection, projections, staleness

MAX_SHOWN = 60
VIEW_KEY = "map_view"  # session_state: {(model, map id, version): (x0, x1, y0, y1)} after "Zoom to the selection"

st.title("Map")
with ui.connection() as conn:
    models, default = ui.models(conn)

if not models:
    st.info("Nothing to map yet: run `cbir ingest PATH --model MODEL`, then `cbir project`.")
    st.stop()
model = ui.pick_model(models, default)

with ui.connection() as conn:
    current = projections.latest(conn, model)
    stale = staleness.stale_map(conn, current.id) if current else None
    generation = staleness.generation(conn)
if current is None:
    st.info(f"No map yet for {model}. Run `cbir project --model {model}` in a terminal, or fit it here.")
    if st.button("Fit the map now (UMAP; can take minutes)"):
        with st.spinner("Fitting UMAP for each n_neighbors and scoring trustworthiness..."), ui.connection() as conn:
            projection.project(conn, model, progress=False)
        st.rerun()
    st.stop()

if stale:
    st.warning(f"This map was made before {stale.summary()}: refit it (below) or run `cbir project --model {model}`.")
url = ui.database()[1]
version = f"{current.created_at} {generation}"
points = ui.map_points(url, current.id, version)  # removed images: points re-read
answer = st.session_state.get(ui.ANSWER_KEY)
if answer is not None and answer.model != model:
    answer = None
query_xy, neighbours_xy = None, None
if answer is not None:
    try:
        query_xy = ui.query_position(points, answer)
    except CbirError as exc:
        st.warning(f"The latest query cannot be placed on this map: {exc}")
    rows = points.rows([h.id for h in answer.hits])
    neighbours_xy = np.column_stack([points.x[rows[rows >= 0]], points.y[rows[rows >= 0]]])

left, right = st.columns([1, 2])
choices = ui.COLOUR_BY if answer is not None else ui.COLOUR_BY[:-1]  # the last needs a query
colour_by = left.selectbox("Colour by", choices, key="map_colour")
find = right.text_input(
    "Highlight", placeholder="a category or part of a path, e.g. elephant", key="map_find", max_chars=200
).strip()
try:
    colouring, scale = ui.map_colouring(colour_by, current.id, version, points, answer, model)
except CbirError as exc:
    st.info(f"{exc}; coloured by category instead.")
    colour_by, (colouring, scale) = "category", ui.map_colouring("category", current.id, version, points, None)

view_key = (model, current.id, version)
view = st.session_state.get(VIEW_KEY, {}).get(view_key)
query_key = answer.vector.tobytes() if scale and answer is not None else None
colour_key = (current.id, version, colour_by, colouring.title, query_key)
shown = ui.map_layers(colour_key, points, colouring, view)
drawn = sum(layer.images for layer in shown)
caption = f"{drawn:,} images" + ("" if view is None else f" in this view (of {len(points):,})")
if find:
    matched = points.rows(ui.matches(url, current.id, version, find))
    matched = matched[matched >= 0]
    if view is not None:
        matched = np.intersect1d(matched, ui.in_view(points, view))
    if (highlight := map_marks.highlight_layer(points, matched, f"matches '{find}'")) is not None:
        shown = [*shown, highlight]
    caption += f"; {len(matched):,} match '{find}' (yellow)"
fitted = f"fitted {current.created_at:%Y-%m-%d %H:%M}"
if current.params.get("placed"):
    fitted += (
        f" on {current.params['fitted']:,} images, the other {current.params['placed']:,} placed by their neighbours"
    )
notes = [f"{caption}, UMAP n_neighbors={current.n_neighbors}, min_dist={current.min_dist:g}, {fitted}."]
if any(not layer.single for layer in shown):
    marks = sum(len(layer.x) for layer in shown)
    notes.append(f"Each of the {marks:,} marks is the images of one {colouring.title} in a small cell.")
if query_xy:
    notes.append("The red star is the latest query, ringed points its neighbours.")
notes.append("Click a legend entry to hide it, double-click to show only it; drag a box or lasso to see the images.")
st.caption(" ".join(notes))
event = st.plotly_chart(
    charts.map_figure(shown, neighbours_xy, query_xy, colouring.title, scale, view),
    on_select="rerun",
    selection_mode=("points", "box", "lasso"),
    key="map",
    config={"displaylogo": False},
)

selected = points.ids[map_marks.selected_rows(shown, event.selection.points)]
if len(selected) or view is not None:
    title, zoom, whole = st.columns([4, 1, 1])
    if len(selected):
        more = f" (first {MAX_SHOWN} shown)" if len(selected) > MAX_SHOWN else ""
        title.subheader(f"{len(selected):,} selected{more}")
    if len(selected) > 1 and zoom.button("Zoom to the selection", help="Redraw only this part, in finer detail"):
        rows = points.rows(selected)
        st.session_state.setdefault(VIEW_KEY, {})[view_key] = map_marks.bounds(points.x[rows], points.y[rows])
        st.rerun()
    if view is not None and whole.button("Whole map"):
        st.session_state[VIEW_KEY].pop(view_key, None)
        st.rerun()
if len(selected):
    shown_ids = [int(i) for i in selected[:MAX_SHOWN]]
    with ui.connection() as conn:
        paths = {r[0]: r[1] for r in collection.images_with_paths(conn, shown_ids)}
        rows = points.rows(shown_ids)
        captions = {
            i: f"{points.category(r) or '-'}  \n{paths.get(i, '')}" for i, r in zip(shown_ids, rows, strict=True)
        }
        ui.thumbnail_grid(conn, shown_ids, captions, columns=6)

with st.expander("Refit the map (after adding images)"):
    choice = st.selectbox("n_neighbors", ["auto", *projection.GRID], help="auto: keep the most trustworthy")
    if st.button("Refit now (UMAP; can take minutes)"):
        with st.spinner("Fitting UMAP and scoring trustworthiness..."), ui.connection() as conn:
            projection.project(conn, model, n_neighbors=choice, progress=False)
        st.rerun()

if current.scores:
    st.subheader("Trustworthiness vs n_neighbors")
    st.plotly_chart(charts.trustworthiness_figure(current.scores, current.n_neighbors), key="trust")
    st.caption(
        "scikit-learn's trustworthiness (1 = every map neighbour is a true neighbour) of each UMAP fit tried; "
        f"the best was kept. Scored on {current.params['trustworthiness']['sample']:,} points, "
        f"{current.params['trustworthiness']['n_neighbors']} neighbours each."
    )

"""Map: the whole collection in 2-D (UMAP), coloured by category; select points to see their thumbnails."""

import streamlit as st

from cbir.analysis import projection
from cbir.dashboard import charts, ui
from cbir.errors import CbirError
from cbir.storage import projections

MAX_SHOWN = 60

st.title("Map")
with ui.connection() as conn:
    models, default = ui.models(conn)

if not models:
    st.info("Nothing to map yet: run `cbir ingest PATH --model MODEL`, then `cbir project`.")
    st.stop()
model = ui.pick_model(models, default)

with ui.connection() as conn:
    current = projections.latest(conn, model)
if current is None:
    st.info(f"No map yet for {model}. Run `cbir project --model {model}` in a terminal, or fit it here.")
    if st.button("Fit the map now (UMAP; can take minutes)"):
        with st.spinner("Fitting UMAP for each n_neighbors and scoring trustworthiness..."), ui.connection() as conn:
            projection.project(conn, model, progress=False)
        st.rerun()
    st.stop()

url = ui.database()[1]
points = ui.map_points(url, current.id, str(current.created_at))
answer = st.session_state.get(ui.ANSWER_KEY)
neighbours: list[int] = []
query_xy = None
if answer is not None and answer.model == model:
    neighbours = [h.id for h in answer.hits]
    try:
        query_xy = ui.query_position(current, points, answer)
    except CbirError as exc:
        st.warning(f"The latest query cannot be placed on this map: {exc}")

st.caption(
    f"{len(points):,} images, UMAP n_neighbors={current.n_neighbors}, min_dist={current.min_dist:g}, "
    f"metric {current.metric}, fitted {current.created_at:%Y-%m-%d %H:%M}. "
    + ("The red star is the latest query, ringed points its neighbours. " if query_xy else "")
    + "Drag a box or lasso to see the images."
)
event = st.plotly_chart(
    charts.map_figure(points, neighbours, query_xy),
    on_select="rerun",
    selection_mode=("box", "lasso"),
    key="map",
    config={"displaylogo": False},
)

selected = [int(points.ids[p["point_index"]]) for p in event.selection.points if p.get("curve_number", 0) == 0]
if selected:
    st.subheader(f"{len(selected):,} selected" + (f" (first {MAX_SHOWN} shown)" if len(selected) > MAX_SHOWN else ""))
    shown = selected[:MAX_SHOWN]
    captions = {
        i: f"{points.categories[points.position[i]] or '-'}  \n{points.paths[points.position[i]]}" for i in shown
    }
    with ui.connection() as conn:
        ui.thumbnail_grid(conn, shown, captions, columns=6)

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

"""Inspector: where retrieval fails, from stored `cbir eval` results (nothing is recomputed here).

Pictures first: per-category bars (or, with two models, their per-category mAP against each other) beside
the table, and a confusion chart of the most confused categories; clicking a cell shows that pair below.
A "View" switch opens the Suspects view instead (cbir/dashboard/suspects_view.py): images that are probably
in the wrong folder, from stored `cbir suspects` runs.
"""

from pathlib import Path

import streamlit as st

from cbir.dashboard import charts, heatmaps, suspects_view, ui
from cbir.retrieval.search import stored_picture
from cbir.storage import evaluations as inspector
from cbir.storage import staleness

NONE = "(none)"
ANY = "(any category)"
ONLY_KEY, PAIR_KEY, CHART_KEY = "inspector_only", "inspector_pair", "inspector_confusion"
BARS = {"precision_at_1": "precision@1", "map_at_k": "mAP@k", "map": "mAP"}
MAX_CELLS = 30  # categories in the confusion chart at most (30 x 30 cells fit a wide page)


def pick_clicked_pair() -> None:
    """A click on a confusion cell picks that pair, and A's confusions in the filter so the pair is listed."""
    picked = charts.clicked_pair(st.session_state[CHART_KEY]["selection"]["points"])
    if picked is not None:
        st.session_state[ONLY_KEY] = picked[0]
        st.session_state[PAIR_KEY] = picked


def confusion_chart(run: inspector.Run, n_categories: int, current: tuple[str, str] | None, around: str | None) -> None:
    """The confusion chart of the run's most confused categories (or of `around`'s), a ring on the pair shown."""
    limit = n_categories
    if n_categories > 5:
        limit = st.slider("Categories in the chart", 5, min(MAX_CELLS, n_categories), min(15, n_categories))
    with ui.connection() as conn:
        matrix = inspector.confusion_matrix(conn, run.id, limit, around)
    if len(matrix.categories) < 2:
        return
    which = (
        f"{around} and the {len(matrix.categories) - 1} categories it is most confused with"
        if around
        else f"the {len(matrix.categories)} categories with the most wrong neighbours, given or received"
    )
    st.caption(
        f"Rows: the queries' category A; columns: the category B of their top-{run.k} neighbours; colour: the "
        f"share of A's neighbours in B ({which}). The grey diagonal is A's own share (precision@k), kept off the "
        "colour scale so it does not wash out the confusions. Click a cell to see that pair below; the ringed "
        "cell is the one shown."
    )
    st.plotly_chart(
        charts.confusion_figure(matrix, run.k, current),
        on_select=pick_clicked_pair,
        selection_mode=("points",),
        key=CHART_KEY,
        width="content",
        config={"displaylogo": False, "displayModeBar": False},
    )


st.title("Inspector")
VIEWS = {"confusions": "Confused categories", "suspects": "Suspects (wrong folder?)"}
if st.radio("View", list(VIEWS), format_func=VIEWS.get, horizontal=True, key="inspector_view") == "suspects":
    suspects_view.show()
    st.stop()
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
with ui.connection() as conn:
    stale = [(r, staleness.stale_run(conn, r.id)) for r in shown]
for r, changes in stale:
    if changes:
        st.warning(f"Run {r.id} ({r.model}) was made before {changes.summary()}: re-run `cbir eval --model {r.model}`.")

st.subheader("Overall and per category")
st.dataframe(
    [{"model": r.model, "scope": scope, **getattr(r, scope)} for r in shown for scope in ("overall", "macro")],
    hide_index=True,
)
table, picture = st.columns([3, 2])
with ui.connection() as conn:
    per_category = inspector.categories(conn, run.id)
    if other_run:
        compared = inspector.compare(conn, run.id, other_run.id)
        table.caption(f"Per category: A = {run.model}, B = {other_run.model}; largest gain of B first.")
        table.dataframe(compared, hide_index=True, height=300)
        picture.plotly_chart(charts.compare_figure(compared, run.model, other_run.model), key="inspector_compare")
        picture.caption("One point per category: above the dashed diagonal B has the higher mAP, below it A.")
    else:
        table.caption("Worst first (full-ranking mAP); click a column to sort.")
        table.dataframe(per_category, hide_index=True, height=300)
        key = picture.radio("Bars", list(BARS), format_func=BARS.get, horizontal=True, key="inspector_bars")
        picture.plotly_chart(charts.category_bars_figure(per_category, key, BARS[key]), key="inspector_bar_chart")

st.subheader("Most confused category pairs")
chart_box = st.container()  # filled last, so its ring marks the pair the selectbox below ends up on
names = [c["category"] for c in per_category]
if st.session_state.get(ONLY_KEY, ANY) not in [ANY, *names]:  # a category the other model's run had
    st.session_state.pop(ONLY_KEY)
only = st.selectbox("Queries of category", [ANY, *sorted(names)], key=ONLY_KEY)
with ui.connection() as conn:
    pairs = inspector.confusions(conn, run.id, category=None if only == ANY else only)
st.caption(
    f"A -> B: top-{run.k} neighbours of A's queries that are in B; rate = share of A's neighbours, "
    "lift = rate / B's share of the collection (1 = chance)."
)
st.dataframe(pairs, hide_index=True, height=300)
counts = {(p["category"], p["other"]): p["neighbours"] for p in pairs}
if st.session_state.get(PAIR_KEY) not in counts:  # another filter than the picked pair's
    st.session_state.pop(PAIR_KEY, None)
chosen = st.selectbox("Pair", list(counts), format_func=lambda p: f"{p[0]} -> {p[1]} ({counts[p]})", key=PAIR_KEY)
with chart_box:
    confusion_chart(run, len(names), chosen, None if only == ANY else only)
if chosen is None:
    st.stop()

a, b = chosen
columns = st.columns(len(shown))
for column, r in zip(columns, shown, strict=True):
    with column, ui.connection() as conn:
        pair = inspector.pair(conn, r.id, a, b)
        st.markdown(f"**{r.model}**: " + (f"{pair['neighbours']} {b} neighbours" if pair else f"no {b} neighbours"))
        examples = inspector.examples(conn, r.id, a, b, limit=6)
        for example in examples:
            captions = {example.query_id: f"query ({a})\n{Path(example.query_path).name}"}
            captions |= {image: f"#{rank} {b}, d={distance:.3f}" for image, rank, distance in example.wrong}
            ids = [example.query_id] + [image for image, _, _ in example.wrong]
            ui.thumbnail_grid(conn, ids, captions, columns=6)
            st.divider()
        if examples:
            first = examples[0]
            wrong_id, rank, _ = first.wrong[0]
            with st.expander(f"Why did the first {a} query match its #{rank} {b} neighbour?"):
                pictures = stored_picture(conn, first.query_id), stored_picture(conn, wrong_id)
                heatmaps.show_match(r.model, *pictures, labels=(f"query ({a})", f"#{rank} ({b})"))

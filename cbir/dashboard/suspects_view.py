"""The Inspector's Suspects view: images that are probably in the wrong folder, from stored `cbir suspects` runs.

Ranked thumbnails with their folder, the suggested folder and the neighbours that gave the suggestion; the
table sorts by score, uniqueness or representativeness (cbir.analysis.suspects says how each is computed).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cbir.analysis import suspects as analysis
from cbir.dashboard import ui
from cbir.storage import staleness
from cbir.storage import suspects as stored
from cbir.storage.models import resolve_model

ORDER_LABELS = {
    "score": "most suspect first",
    "uniqueness": "most unique first",
    "representativeness": "most typical first",
}
ANY = "(any category)"
EVIDENCE = 5  # neighbours shown beside each suspect


def score_now(model: str) -> None:
    with st.spinner(f"Scoring every image of {model} by its neighbours..."), ui.connection() as conn:
        analysis.score_model(conn, resolve_model(conn, model), progress=False)
    st.rerun()


def pick_run() -> stored.SuspectRun | None:
    """The run shown: the newest of the chosen model (an offer to score one when none is stored)."""
    with ui.connection() as conn:
        runs = stored.latest_runs(conn)
        models, default = ui.models(conn)
    if not runs:
        st.info("No suspect scores yet. From a terminal run `cbir suspects --model MODEL`, or score one here.")
        if models and st.button(f"Score {default or models[0]} now", key="suspects_score"):
            score_now(default or models[0])
        return None
    by_label = {run.label: run for run in runs}
    return by_label[st.selectbox("Suspects of", list(by_label), key="suspects_run")]


def show_suspect(conn, rank: int, row: stored.Scored, places: dict[int, tuple[str, str | None]]) -> None:
    """One suspect: its thumbnail and folder, the suggestion, and the nearest neighbours that voted."""
    suggested = row.suggested or "-"
    st.markdown(
        f"**#{rank}** `{Path(row.path).name}` in **{row.category or '-'}** -> suggested **{suggested}** "
        f"(score {row.score:.2f}, {row.support:.0%} of the weighted votes)"
    )
    voters = list(zip(row.neighbours, row.distances, strict=True))[:EVIDENCE]
    captions = {row.id: f"suspect #{rank}: {row.category or '-'}\n{row.path}"}
    captions |= {n: f"{places.get(n, ('', '?'))[1] or '-'}, d={d:.3f}" for n, d in voters}
    ui.thumbnail_grid(conn, [row.id] + [n for n, _ in voters], captions, columns=EVIDENCE + 1)


def show() -> None:
    run = pick_run()
    if run is None:
        return
    with ui.connection() as conn:
        changes = staleness.stale_suspects(conn, run.id)
        categories = stored.run_categories(conn, run.id)
    if changes:
        st.warning(f"Run {run.id} ({run.model}) was made before {changes.summary()}: score again for current folders.")
        if st.button("Score again", key="suspects_rescore"):
            score_now(run.model)
    left, middle, right = st.columns([2, 2, 1])
    order = left.radio("Sort", list(ORDER_LABELS), format_func=ORDER_LABELS.get, horizontal=True, key="suspects_sort")
    category = middle.selectbox("Folder", [ANY, *categories], key="suspects_category")
    shown = right.number_input("Shown", 1, 200, 12, key="suspects_shown")
    with ui.connection() as conn:
        rows = stored.ranked(conn, run.id, int(shown), order, None if category == ANY else category)
        places = stored.places(conn, {n for r in rows for n in r.neighbours})
    st.caption(
        f"{run.images:,} images scored by their {run.k} nearest neighbours under {run.model} (near copies left out): "
        "score = similarity-weighted share of neighbours outside the image's folder; suggested = the other folder "
        "with the most weight; uniqueness = distance to the k-th neighbour; representativeness = cosine to the "
        "folder's mean vector."
    )
    st.dataframe(
        [
            {
                "id": r.id,
                "folder": r.category,
                "suggested": r.suggested,
                "score": r.score,
                "uniqueness": r.uniqueness,
                "representativeness": r.representativeness,
                "path": r.path,
            }
            for r in rows
        ],
        hide_index=True,
        key="suspects_table",
    )
    with ui.connection() as conn:
        for rank, row in enumerate(rows, 1):
            show_suspect(conn, rank, row, places)
            st.divider()

"""Home: what is in the collection, and what to do when it is empty."""

import streamlit as st

from cbir.dashboard import app, ui
from cbir.indexing import sync
from cbir.storage import collection, db

st.title("cbir: reverse image search")

with ui.connection() as conn:
    info = collection.summary(conn)

st.caption(f"Database: {db.database_location(ui.database()[1])}")

if info.empty:
    st.info(
        "The collection is empty. Add images from a terminal, then reload this page:\n\n"
        "```bash\ncbir ingest PATH_TO_IMAGES --model MODEL\ncbir project   # the 2-D map\n```\n\n"
        "Each folder's name becomes its images' category."
    )
    st.stop()

a, b, c, d = st.columns(4)
a.metric("Images", f"{info.images:,}")
b.metric("Paths", f"{info.paths:,}")
c.metric("Categories", f"{sum(1 for name, _ in info.categories if name is not None):,}")
d.metric("Models", len(info.models))

st.subheader("Models")
st.dataframe(info.models, hide_index=True)

st.subheader("Categories")
st.dataframe(
    [{"category": name or "(none)", "images": n} for name, n in info.categories],
    hide_index=True,
    height=300,
)
st.subheader("Folders")
st.caption("Whether the stored paths still exist on disk: checked when asked, since it lists every folder.")
if st.button("Check the folders for files that are gone"):
    with st.spinner("Listing the folders..."), ui.connection() as conn:
        st.session_state["home_folders"] = sync.check_folders(conn)
if (checks := st.session_state.get("home_folders")) is not None:
    st.dataframe(
        [{"folder": c.folder, "stored paths": c.stored, "gone from disk": c.missing, "folder found": c.available}
         for c in checks],
        hide_index=True,
    )  # fmt: skip
    if gone := [c for c in checks if c.missing]:
        st.warning(
            f"{sum(c.missing for c in gone):,} stored paths no longer exist. This makes the collection match its "
            "folders again (new files ingested, moves followed, deleted files forgotten; a missing folder is "
            "refused by sync, so remove it if it was deleted on purpose):"
        )
        st.code("\n".join(c.command for c in gone), language="bash")
    else:
        st.success("Every stored path exists on disk.")

st.page_link(app.page_path("search.py"), label="Search the collection", icon=":material/image_search:")

"""Home: what is in the collection, and what to do when it is empty."""

import streamlit as st

from cbir.dashboard import app, ui
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
st.page_link(app.page_path("search.py"), label="Search the collection", icon=":material/image_search:")

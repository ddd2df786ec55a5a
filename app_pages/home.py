"""Home: what is in the collection, and what to do when it is empty."""

import streamlit as st

from cbir import collection, ui
from cbir.config import CbirError

st.title("cbir: reverse image search")

try:
    with ui.connection() as conn:
        info = collection.summary(conn, url=ui.database()[1])
except CbirError as exc:
    ui.fail(exc)

st.caption(f"Database: {info.database}")

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
st.page_link("app_pages/search.py", label="Search the collection", icon=":material/image_search:")

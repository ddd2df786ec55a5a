"""The cbir dashboard: `streamlit run streamlit_app.py` (or `cbir serve`). Pages live in pages/."""

import streamlit as st

# Other pages append themselves here; the first is the default.
PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/search.py", title="Search", icon=":material/image_search:"),
    st.Page("pages/map.py", title="Map", icon=":material/scatter_plot:"),
    st.Page("pages/inspector.py", title="Inspector", icon=":material/troubleshoot:"),
    st.Page("pages/duplicates.py", title="Duplicates", icon=":material/content_copy:"),
    st.Page("pages/sql.py", title="SQL", icon=":material/database:"),
]

st.set_page_config(page_title="cbir", page_icon=":material/image_search:", layout="wide")
st.navigation(PAGES).run()

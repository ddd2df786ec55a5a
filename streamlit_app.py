"""The cbir dashboard: `streamlit run streamlit_app.py` (or `cbir serve`).

Pages live in app_pages/, not pages/: a folder named pages/ beside this script switches on Streamlit's old
automatic page list, which took over the navigation on a fresh server's first request (see the README).
"""

import streamlit as st

# Other pages append themselves here; the first is the default.
PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/search.py", title="Search", icon=":material/image_search:"),
    st.Page("app_pages/map.py", title="Map", icon=":material/scatter_plot:"),
    st.Page("app_pages/inspector.py", title="Inspector", icon=":material/troubleshoot:"),
    st.Page("app_pages/duplicates.py", title="Duplicates", icon=":material/content_copy:"),
    st.Page("app_pages/sql.py", title="SQL", icon=":material/database:"),
]

st.set_page_config(page_title="cbir", page_icon=":material/image_search:", layout="wide")
st.navigation(PAGES).run()

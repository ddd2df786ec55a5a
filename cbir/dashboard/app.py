"""The cbir dashboard's entry script: `cbir serve` runs this file with Streamlit (a clone's top-level
`streamlit_app.py` calls `main` too, so `streamlit run streamlit_app.py` works as well).

Every `CbirError` a page raises (an unknown model, too few images for a map, a stopped database) is shown
here as one line instead of a traceback, so pages need no error handling of their own.

Nothing of a page runs before `login.admitted()` says this session may see it (cbir.auth.policy: with no
user configured, a loopback server opens without a login as before).

Pages live in app_pages/, not pages/: a folder named pages/ beside the entry script switches on Streamlit's
old automatic page list, which took over the navigation on a fresh server's first request (see the README).
"""

from pathlib import Path

import streamlit as st

from cbir.dashboard import login, ui
from cbir.errors import CbirError

PAGES_DIR = Path(__file__).resolve().parent / "app_pages"
# (file, title, icon); the first is the default page.
PAGES = (
    ("home.py", "Home", ":material/home:"),
    ("search.py", "Search", ":material/image_search:"),
    ("map.py", "Map", ":material/scatter_plot:"),
    ("inspector.py", "Inspector", ":material/troubleshoot:"),
    ("duplicates.py", "Duplicates", ":material/content_copy:"),
    ("sql.py", "SQL", ":material/database:"),
)


def page_path(file: str) -> str:
    """A page's absolute path, for st.page_link."""
    return str(PAGES_DIR / file)


def main() -> None:
    st.set_page_config(page_title="cbir", page_icon=":material/image_search:", layout="wide")
    pages = [
        st.Page(page_path(file), title=title, icon=icon, default=n == 0) for n, (file, title, icon) in enumerate(PAGES)
    ]
    try:
        if not login.admitted():  # before any page: a direct URL (/sql, /map) shows the login form only
            st.navigation(pages, position="hidden")  # keeps the URL's page, opened once logged in
            return
        navigation = st.navigation(pages)
        login.logout_button()
        navigation.run()
    except CbirError as exc:  # anything a user can cause: one line, never a traceback
        ui.show_error(exc)


if __name__ == "__main__":
    main()

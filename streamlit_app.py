"""`streamlit run streamlit_app.py` from a clone; the dashboard itself is cbir/dashboard/app.py (`cbir serve`)."""

from cbir.dashboard.app import main

main()

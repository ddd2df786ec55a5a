"""The Streamlit dashboard: app.py (entry script and page list), app_pages/ (one file per page, widgets only),
ui.py (cached pool, model and map; thumbnail grid; one-line errors) and charts.py (Plotly figures)."""

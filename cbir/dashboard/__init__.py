"""The Streamlit dashboard; pages only lay out widgets and call the cbir API.

- app: the entry script `cbir serve` runs (the login door, then the page list)
- app_pages/: one file per page (home, search, map, duplicates, inspector, sql), widgets only
- charts: the Plotly figures (the map, trustworthiness, distances by rank, the Inspector's charts)
- copies_view: the evidence of a verified copy drawn (matched region outlined, agreeing keypoints)
- heatmaps: why two images match, drawn as contribution maps over them
- login: the login form and st.login, before any page runs (the rule is cbir.auth.policy's)
- map_marks: the Map's marks without Plotly (what colours mean, which images a mark stands for)
- ui: the cached pool, model and map, the thumbnail grid and the one-line errors pages share
"""

__all__ = ["app", "charts", "copies_view", "heatmaps", "login", "map_marks", "ui"]

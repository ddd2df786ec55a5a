"""Dashboard pages through Streamlit's AppTest, run from the same entry script `cbir serve` runs."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import numpy as np
from streamlit.testing.v1 import AppTest

from support import ROOT

APP = str(ROOT / "cbir" / "dashboard" / "app.py")
TIMEOUT = 120  # the first run of a page loads torch and the model


def page(name: str) -> AppTest:
    """A fresh session on one page (home, search, map, inspector, duplicates, sql), run without exceptions."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if name != "home":
        at.switch_page(f"app_pages/{name}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def labelled(widgets, label: str):
    """The widget with this label (pages lay widgets out in columns, so positions are not stable)."""
    return next(w for w in widgets if w.label == label)


def texts(at: AppTest) -> str:
    """Every text a page shows: markdown, captions, info, errors and warnings."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.info] + [e.value for e in at.error] + [e.value for e in at.warning]
    return "\n".join(str(p) for p in parts)


def submit_sql(at: AppTest, text: str) -> AppTest:
    """What Ctrl+Enter (or Run) in the SQL page's editor sends: a new "submit" event carrying the editor's text."""
    event = {"id": uuid.uuid4().hex[:8], "type": "submit", "lang": "pgsql", "text": text, "selected": "", "cursor": {}}
    at.session_state["sql_editor"] = event
    return at.run()


def figures(at: AppTest) -> dict[str, dict[str, Any]]:
    """The page's Plotly figures (as sent to the browser) by their widget key, in page order."""
    return {chart.key: json.loads(chart.proto.spec) for chart in at.get("plotly_chart")}


def values(field: list | dict) -> list:
    """A trace's data: plotly sends numpy arrays as base64 typed arrays ({"dtype", "bdata"})."""
    if isinstance(field, dict):
        return np.frombuffer(base64.b64decode(field["bdata"]), dtype=field["dtype"]).tolist()
    return field

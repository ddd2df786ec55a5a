"""The command that starts the dashboard's Streamlit server: one place for its options, so `cbir serve` and the
tests (and benchmarks) run the very same server. Streamlit-free: building the command imports nothing of it.

Headless always: otherwise Streamlit's first run asks for an e-mail address on stdin (cbir serve opens the
browser itself once the server answers). The options are flags, not a config file, so an installed wheel runs
exactly as a clone does (a .streamlit/config.toml in the working folder still adds to them).
"""

from __future__ import annotations

import sys
from pathlib import Path

from cbir.config import settings

APP = Path(__file__).resolve().with_name("app.py")  # the entry script (cbir/dashboard/app.py)


def streamlit_command(host: str, port: int, script: str | Path = APP) -> list[str]:
    """`python -m streamlit run script` listening on host:port with cbir's options."""
    upload_mb = max(1, settings().max_upload_bytes // (1024 * 1024))
    return [
        *(sys.executable, "-m", "streamlit", "run", str(script)),
        *("--server.address", host, "--server.port", str(port), "--server.headless", "true"),
        *("--server.maxUploadSize", str(upload_mb), "--browser.gatherUsageStats", "false"),
        *("--client.toolbarMode", "viewer"),  # no "Deploy" button
    ]

#!/usr/bin/env bash
# One-command demo (`make demo`): environment, embedded database, a sample collection, its map, the dashboard.
#
#   CBIR_DEMO_DATA  folder of images to ingest (default: Caltech-101, downloaded once from CaltechDATA and
#                   checked against the MD5 the publisher lists)
#   CBIR_MODEL      model for the embeddings (default facebook/dinov2-small from the Hugging Face Hub; when
#                   the Hub is unreachable, the built-in pretrained efficientnet-lite0, said in one line)
#   CBIR_HOME       where the embedded database and the download live (default ~/.local/share/cbir)
#   CBIR_DEMO_PORT  dashboard port (default 8501)
set -euo pipefail
cd "$(dirname "$0")/.."

CALTECH_URL="https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip?download=1"
CALTECH_MD5="3138e1922a9193bfa496528edbbc45d0"
HOME_DIR="${CBIR_HOME:-$HOME/.local/share/cbir}"
PY=.venv/bin/python
step() { printf '\n==> %s\n' "$*"; }

step "environment (.venv)"
make setup

download_caltech() {
  local dest="$HOME_DIR/demo" zip="$HOME_DIR/demo/caltech-101.zip"
  if [ -d "$dest/101_ObjectCategories" ]; then
    echo "$dest/101_ObjectCategories"
    return
  fi
  mkdir -p "$dest"
  if [ ! -f "$zip" ]; then
    echo "downloading Caltech-101 (131 MB, CC BY 4.0) from $CALTECH_URL" >&2
    curl -fL --progress-bar -o "$zip.part" "$CALTECH_URL" && mv "$zip.part" "$zip"
  fi
  local got
  got=$("$PY" -c 'import hashlib, sys; print(hashlib.md5(open(sys.argv[1], "rb").read()).hexdigest())' "$zip")
  if [ "$got" != "$CALTECH_MD5" ]; then
    echo "checksum mismatch for $zip: got $got, expected $CALTECH_MD5; delete it and retry" >&2
    exit 1
  fi
  "$PY" -m zipfile -e "$zip" "$dest/unzipped" >&2
  tar -xzf "$dest/unzipped/caltech-101/101_ObjectCategories.tar.gz" -C "$dest"
  rm -rf "$dest/unzipped"
  echo "$dest/101_ObjectCategories"
}

if [ -n "${CBIR_DEMO_DATA:-}" ]; then
  DATA="$CBIR_DEMO_DATA"
  [ -d "$DATA" ] || { echo "CBIR_DEMO_DATA=$DATA is not a folder" >&2; exit 1; }
else
  step "sample collection: Caltech-101"
  DATA=$(download_caltech)
fi

if [ -z "${CBIR_MODEL:-}" ] && ! "$PY" -c 'import sys; from cbir.embedders.hf import hub_reachable; sys.exit(not hub_reachable())'; then
  echo "The Hugging Face Hub is unreachable: using the built-in pretrained efficientnet-lite0 instead of facebook/dinov2-small (set CBIR_MODEL to choose)."
  export CBIR_MODEL=efficientnet-lite0
fi

step "database"
"$PY" -m cbir db status  # starts the embedded server if needed; masks any password
step "ingest $DATA with ${CBIR_MODEL:-facebook/dinov2-small} (re-runs embed only what is new)"
"$PY" -m cbir ingest "$DATA" || [ $? -eq 3 ]  # 3: finished, some files skipped (listed above)

step "map (UMAP; n_neighbors chosen by trustworthiness)"
"$PY" -m cbir project

step "dashboard"
exec "$PY" -m cbir serve --port "${CBIR_DEMO_PORT:-8501}"

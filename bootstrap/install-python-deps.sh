#!/usr/bin/env bash
# EMR bootstrap action: install the job's pinned Python dependencies on this node into a
# virtual environment for Python 3.11, the interpreter Spark is pointed at (spark-env
# PYSPARK_PYTHON and spark.pyspark.python, set by `python -m emr up`).
#
#   install-python-deps.sh ARTIFACTS
#
# ARTIFACTS is the folder holding requirements.txt and constraints.txt: the
# s3://BUCKET/PREFIX/dist/bootstrap prefix on EMR (fetched with the AWS CLI), or a local
# folder. Runs as the hadoop user, before Spark is installed. Idempotent: a second run
# with the same requirements and pins changes nothing. Loud: every step is logged, and
# the installed versions are listed at the end. Any failure fails the node (and so the
# cluster), which is what EMR expects of a bootstrap action.
set -euo pipefail

ARTIFACTS="${1:?usage: install-python-deps.sh s3://BUCKET/PREFIX/dist/bootstrap}"
VENV="${FEATURIZE_NODE_VENV:-/opt/featurize/venv}"
BASE_PYTHON="${FEATURIZE_BASE_PYTHON:-python3.11}"
STAMP="$VENV/.featurize-installed"

log() { echo "[featurize bootstrap $(date -u +%Y-%m-%dT%H:%M:%SZ)] $*"; }

arch="$(uname -m)"
if [ "$arch" != "x86_64" ]; then
  log "ERROR: this node is $arch; tensorflow-cpu publishes no wheel for it. Use an x86_64 instance type (m5, m6i, c6i, ...)."
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for name in requirements.txt constraints.txt; do
  case "$ARTIFACTS" in
    s3://*) aws s3 cp --only-show-errors "${ARTIFACTS%/}/$name" "$work/$name" ;;
    *)      cp "${ARTIFACTS%/}/$name" "$work/$name" ;;
  esac
done
want="$(cat "$work/requirements.txt" "$work/constraints.txt" | sha256sum | cut -d' ' -f1)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  log "already installed in $VENV (requirements sha256 $want); nothing to do"
  exit 0
fi

if ! command -v "$BASE_PYTHON" >/dev/null 2>&1; then
  log "$BASE_PYTHON not found; installing it with dnf"
  sudo dnf install -y python3.11 python3.11-pip
fi
log "base interpreter: $(command -v "$BASE_PYTHON") ($("$BASE_PYTHON" --version 2>&1))"

parent="$(dirname "$VENV")"
if ! mkdir -p "$parent" 2>/dev/null || [ ! -w "$parent" ]; then
  sudo mkdir -p "$parent"
  sudo chown "$(id -u):$(id -g)" "$parent"
fi
rm -rf "$VENV"
log "creating $VENV"
"$BASE_PYTHON" -m venv "$VENV"
log "installing $(grep -cvE '^\s*(#|$)' "$work/requirements.txt") packages at the project's pins"
"$VENV/bin/python" -m pip install --no-cache-dir --disable-pip-version-check \
  -r "$work/requirements.txt" -c "$work/constraints.txt"
"$VENV/bin/python" -c "import numpy, pandas, pyarrow, PIL, h5py, tensorflow, keras, boto3; print('imports ok: tensorflow', tensorflow.__version__)"
log "installed:"
"$VENV/bin/python" -m pip freeze --disable-pip-version-check
echo "$want" > "$STAMP"
log "done: PYSPARK_PYTHON=$VENV/bin/python"

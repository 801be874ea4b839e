#!/usr/bin/env bash
# EMR bootstrap action: install the job's pinned Python dependencies on this node into a
# virtual environment for Python 3.11, the interpreter Spark is pointed at (spark-env
# PYSPARK_PYTHON and spark.pyspark.python, set by `python -m emr up`), from the project's
# own wheelhouse: no package index is contacted, so a node in a private subnet without
# NAT installs the same as one with internet access.
#
#   install-python-deps.sh BOOTSTRAP WHEELS
#
# BOOTSTRAP is the folder holding requirements.txt, constraints.txt, wheels.sha256 and
# requirements-hashed.txt;
# WHEELS the folder of wheels (`make package` builds both; `make upload` puts them at
# s3://BUCKET/PREFIX/dist/bootstrap and .../dist/wheels). Either may be an s3:// prefix
# (fetched with the AWS CLI) or a local folder. Runs as the hadoop user, before Spark is
# installed. Idempotent: a second run with the same pins and wheels changes nothing. Loud:
# every step is logged, and the installed versions are listed at the end. Any failure
# (a wheel whose sha256 differs from the list, a missing wheel) fails the node, and so the
# cluster, which is what EMR expects of a bootstrap action. The wheels are checked twice:
# against wheels.sha256 before any venv exists, then by pip itself, which installs only
# requirements-hashed.txt (every wheel, name==version --hash=sha256:...) with
# --require-hashes: nothing unlisted, nothing whose bytes differ.
set -euo pipefail

BOOTSTRAP="${1:?usage: install-python-deps.sh s3://BUCKET/PREFIX/dist/bootstrap s3://BUCKET/PREFIX/dist/wheels}"
WHEELS="${2:?usage: install-python-deps.sh BOOTSTRAP WHEELS}"
VENV="${FEATURIZE_NODE_VENV:-/opt/featurize/venv}"
BASE_PYTHON="${FEATURIZE_BASE_PYTHON:-python3.11}"
STAMP="$VENV/.featurize-installed"

log() { echo "[featurize bootstrap $(date -u +%Y-%m-%dT%H:%M:%SZ)] $*"; }

arch="$(uname -m)"
if [ "$arch" != "x86_64" ]; then
  log "ERROR: this node is $arch; the wheelhouse is built for x86_64. Use an x86_64 instance type (m5, m6i, c6i, ...)."
  exit 1
fi

fetch() {  # fetch SOURCE DEST [--recursive]
  case "$1" in
    s3://*) aws s3 cp --only-show-errors ${3:-} "$1" "$2" ;;
    *)      if [ -n "${3:-}" ]; then cp -r "${1%/}/." "$2"; else cp "$1" "$2"; fi ;;
  esac
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for name in requirements.txt constraints.txt wheels.sha256 requirements-hashed.txt; do
  fetch "${BOOTSTRAP%/}/$name" "$work/$name"
done
want="$(cat "$work/requirements.txt" "$work/constraints.txt" "$work/wheels.sha256" "$work/requirements-hashed.txt" | sha256sum | cut -d' ' -f1)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  log "already installed in $VENV (pins and wheels sha256 $want); nothing to do"
  exit 0
fi

log "fetching $(wc -l < "$work/wheels.sha256") wheels from $WHEELS"
mkdir -p "$work/wheels"
fetch "${WHEELS%/}/" "$work/wheels" --recursive
(cd "$work/wheels" && sha256sum --check --quiet --strict "$work/wheels.sha256")
listed="$(wc -l < "$work/wheels.sha256")"
found="$(find "$work/wheels" -maxdepth 1 -name '*.whl' | wc -l)"
if [ "$found" != "$listed" ]; then
  log "ERROR: $WHEELS holds $found wheels, wheels.sha256 lists $listed; run make upload again"
  exit 1
fi
log "every wheel matches wheels.sha256 ($listed wheels)"

if ! command -v "$BASE_PYTHON" >/dev/null 2>&1; then
  log "$BASE_PYTHON not found; installing it with dnf"
  sudo dnf install -y python3.11
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
pip_offline() {
  "$VENV/bin/python" -m pip install --no-index --find-links "$work/wheels" --no-cache-dir \
    --disable-pip-version-check "$@"
}
log "upgrading the venv's pip, setuptools and wheel from the wheelhouse (hashes required)"
grep -E '^(pip|setuptools|wheel)==' "$work/requirements-hashed.txt" > "$work/tools-hashed.txt"
# --no-deps: their own dependencies (wheel needs packaging) come with everything else next
pip_offline --require-hashes --no-deps -r "$work/tools-hashed.txt"
log "installing $(grep -cvE '^\s*(#|$)' "$work/requirements-hashed.txt") wheels at the project's pins, hashes required, no index"
pip_offline --require-hashes -r "$work/requirements-hashed.txt"
"$VENV/bin/python" -m pip check --disable-pip-version-check
"$VENV/bin/python" -c "import numpy, pandas, pyarrow, PIL, h5py, tensorflow, keras, boto3, openvino, faiss; print('imports ok: tensorflow', tensorflow.__version__, 'openvino', openvino.__version__, 'faiss', faiss.__version__)"
log "installed:"
"$VENV/bin/python" -m pip freeze --all --disable-pip-version-check
echo "$want" > "$STAMP"
log "done: PYSPARK_PYTHON=$VENV/bin/python"

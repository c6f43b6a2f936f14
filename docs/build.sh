#!/usr/bin/env bash
# Build the documentation site into site/: execute the tutorial notebooks once with tiny budgets into
# docs/tutorials/ (only those that changed; see docs/build_notebooks.py), then build strictly, so a
# broken link, a missing anchor or a stale notebook fails. Offline: nothing is downloaded.
# Usage: bash docs/build.sh [ARGS FOR build_notebooks.py, e.g. --force]
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} NO_MKDOCS_2_WARNING=1
t0=$SECONDS
python docs/build_notebooks.py "$@"
t1=$SECONDS
python -m mkdocs build --strict --site-dir site
echo "docs: notebooks $((t1 - t0)) s, site $((SECONDS - t1)) s, in site/"

#!/usr/bin/env bash
# Set up .venv if needed, then train both halves of the tutorial; figures go to plots/.
set -e
source "$(dirname "$(readlink -f "$0")")/venv.sh"  # its own folder, also when run through a link
code=0
echo "== python -m linreg.scratch --plot-dir plots/scratch"
python -m linreg.scratch --plot-dir plots/scratch || code=$?  # on a CPU without AVX: one line, then Gluon
echo
echo "== python -m linreg.gluon --plot-dir plots/gluon"
python -m linreg.gluon --plot-dir plots/gluon
exit "$code"

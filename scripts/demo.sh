#!/usr/bin/env bash
# Set up .venv if needed, then train both halves of the tutorial.
source "$(dirname "$0")/venv.sh"
echo "== python -m linreg.scratch"
python -m linreg.scratch
echo
echo "== python -m linreg.gluon"
python -m linreg.gluon

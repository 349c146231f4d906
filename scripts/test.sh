#!/usr/bin/env bash
# Set up .venv if needed, then run the test suite; arguments go to pytest.
set -e
source "$(dirname "$(readlink -f "$0")")/venv.sh"  # its own folder, also when run through a link
python -m pytest "$@"

#!/usr/bin/env bash
# Set up .venv if needed, then run the test suite; arguments go to pytest.
source "$(dirname "$0")/venv.sh"
python -m pytest "$@"

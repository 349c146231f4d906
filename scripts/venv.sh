# Sourced by demo.sh and test.sh: make .venv in the checkout (once), install
# linreg into it with its test extra, and put it first on PATH.
# PYTHON chooses the interpreter: default python3.11 where it exists, else python3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x "$venv/bin/python" ]; then
    echo "setting up $venv with $python" >&2
    "$python" -m venv "$venv"
fi
# Reinstall only when setup.py changed since the last install.
stamp="$venv/.linreg-setup.sha256"
want="$(sha256sum "$root/setup.py" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[test]" >&2
    echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$root"

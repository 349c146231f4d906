# Sourced by demo.sh and test.sh: make the virtual environment (once), install
# linreg into it with its test extra, and put it first on PATH.
#
# PYTHON=/path/to/python3.X chooses the interpreter; otherwise the one that
# made the environment, else the first supported python3.11 ... python3.15 or
# python3 on PATH. LINREG_VENV chooses the folder (default .venv).
# The environment is rebuilt from scratch, never patched, when another
# interpreter is asked for, setup.py or pins.txt changed, or the last install
# did not finish. After the install, mxnet's shared library must load: a
# system library it lacks is named in one line (exit 2), and the next run,
# once it is installed, only checks again.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LINREG_VENV:-$root/.venv}"
installed="$venv/.linreg-installed"  # written after the install: "interpreter version pins-hash"
ready="$venv/.linreg-ready"  # the same, written once mxnet loads in it
supported="3.11, 3.12, 3.13, 3.14 or 3.15"

fail() {
    echo "linreg set-up: $*" >&2
    exit 2
}

# "executable X.Y.Z" of an interpreter that runs (a pyenv shim may not), else nothing.
identify() {
    "$1" -c 'import sys; print(sys.executable, "%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true
}

is_supported() {
    case "$1" in 3.11.*|3.12.*|3.13.*|3.14.*|3.15.*) return 0 ;; *) return 1 ;; esac
}

choose_python() {
    local id tried=""
    if [ -n "${PYTHON:-}" ]; then
        id="$(identify "$PYTHON")"
        [ -n "$id" ] || fail "PYTHON=$PYTHON does not run; point it at a Python $supported"
        is_supported "${id#* }" || fail "PYTHON=$PYTHON is Python ${id#* }; linreg needs $supported" \
            "(the CPythons with upstream support, each tested): install one and set PYTHON to it"
        echo "$id"
        return
    fi
    local recorded
    recorded="$(cut -d' ' -f1 "$installed" 2>/dev/null || true)"
    for candidate in $recorded python3.11 python3.12 python3.13 python3.14 python3.15 python3; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        id="$(identify "$candidate")"
        if [ -n "$id" ] && is_supported "${id#* }"; then
            echo "$id"
            return
        fi
        if [ -n "$id" ]; then tried="$tried $candidate (${id#* })"; else tried="$tried $candidate (does not run)"; fi
    done
    fail "no Python $supported found (on PATH:${tried:- none of python3.11 ... python3.15, python3});" \
        "install one (Debian/Ubuntu: apt install python3 python3-venv), or set PYTHON=/path/to/python3.X"
}

pins_hash="$(cat "$root/setup.py" "$root/pins.txt" "$root/scripts/venv.sh" | sha256sum | cut -d' ' -f1)"
python_id="$(choose_python)"
python="${python_id% *}"
if [ "$(cat "$installed" 2>/dev/null)" != "$python_id $pins_hash" ]; then
    [ -e "$venv" ] && echo "rebuilding $venv (made by another interpreter, other pins, or unfinished)" >&2
    rm -rf "$venv"
    echo "setting up $venv with Python ${python_id#* } ($python)" >&2
    "$python" -m venv "$venv" \
        || fail "'$python -m venv' failed (on Debian and Ubuntu: apt install python3-venv); rerun after fixing"
    # uv, because pip cannot override mxnet 1.9.1's numpy<2 pin, and Python 3.13+ has no such numpy.
    echo "installing uv, then mxnet 1.9.1, numpy, matplotlib and the test tools (about 300 MB)" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check uv >&2 \
        || fail "could not install uv from the package index; rerun to retry from scratch"
    "$venv/bin/uv" pip install --quiet --compile-bytecode --python "$venv/bin/python" \
        --override "$root/pins.txt" -e "$root[test]" >&2 \
        || fail "installing linreg into $venv failed (see above); rerun to retry from scratch"
    # A learner's own `from mxnet import nd` here gets linreg.compat as linreg's does: a .pth file
    # that installs its import hook at start-up, without importing mxnet (docs/install.md).
    "$venv/bin/python" - "$root/linreg/compat.py" <<'PTH' \
        || fail "could not write the mxnet import hook into $venv; rerun to retry from scratch"
import os, sys, sysconfig
line = ("import importlib.util as u, os; p = %r; s = os.path.exists(p) and u.spec_from_file_location("
        "'linreg_mxnet_hook', p); m = s and u.module_from_spec(s); m and (s.loader.exec_module(m) "
        "or m.install_hook())\n" % sys.argv[1])
with open(os.path.join(sysconfig.get_paths()["purelib"], "linreg-mxnet.pth"), "w") as f:
    f.write(line)
PTH
    echo "$python_id $pins_hash" > "$installed"
fi
if [ "$(cat "$ready" 2>/dev/null)" != "$python_id $pins_hash" ]; then
    # linreg's import loads mxnet's libmxnet.so; a system library it lacks is its one line, exit 2.
    problem="$("$venv/bin/python" -c 'import linreg' 2>&1 >/dev/null)" \
        || { problem="${problem##*$'\n'}"; fail "${problem#linreg: } (the environment is installed; rerun to finish)"; }
    # A CPU without AVX runs the Gluon half only: said once, here, in the line the from-scratch half gives.
    "$venv/bin/python" -c 'import sys; from linreg import compat; p = compat.cpu_problem(compat.cpu_features())
p and print("linreg set-up: note: " + p, file=sys.stderr)' >/dev/null || true
    echo "$python_id $pins_hash" > "$ready"
fi
export PATH="$venv/bin:$PATH"
cd "$root"

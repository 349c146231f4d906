# Sourced by demo.sh and test.sh: make the virtual environment (once), install
# linreg into it with its test extra, and put it first on PATH.
#
# PYTHON=/path/to/python3.X chooses the interpreter; otherwise the one that
# made the environment, else the first supported python3.11 ... python3.15 or
# python3 on PATH. An interpreter is known by the real path of its base
# installation, so the environment's own python (an activated .venv) names the
# interpreter that made it. LINREG_VENV chooses the folder (default .venv).
# The environment is rebuilt from scratch, never patched, when another
# interpreter is asked for, setup.py or pins.txt changed, the checkout moved,
# the environment's python no longer runs as the one its stamp names, or the
# last install did not finish. After the install, mxnet's shared library must
# load: a system library it lacks is named in one line (exit 2), and the next
# run, once it is installed, only checks again. Set-ups of one folder take
# turns (a lock beside it, LINREG_VENV.lock): a rebuild waits until no other
# set-up or run is using the environment.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)"
venv="${LINREG_VENV:-$root/.venv}"
lock_file="$venv.lock"  # beside the environment, which a rebuild deletes
log="$venv.log"  # a step's output, while it runs
installed="$venv/.linreg-installed"  # written after the install: "interpreter version pins-hash checkout"
ready="$venv/.linreg-ready"  # the same, written once mxnet loads in it
supported="3.11, 3.12, 3.13, 3.14 or 3.15"

fail() {
    echo "linreg set-up: $*" >&2
    exit 2
}

# Ctrl-C or a stop signal during the set-up: the step under way is stopped, then one line; no
# stamp was written, so a rerun starts over. (A step runs in the background, where Ctrl-C does
# not reach it, so that the shell takes a signal at once rather than after the step.)
# The step is found among this shell's children, not by $!: a signal can arrive between the
# fork and the assignment. Its descendants are stopped too (uv runs a build backend of its own).
stopped() {
    local pids pid state ppid alive="" tries
    descendants "$$"
    pids="${tree# $$ }"
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null || true
        wait 2>/dev/null || true
        for ((tries = 0; tries < 50; tries++)); do  # the step's own children are not ours to wait for: 5 s, then SIGKILL
            alive=""
            for pid in $pids; do
                stat_of "$pid" && [ "$state" != Z ] && { alive=1; break; }
            done
            [ -n "$alive" ] || break
            sleep 0.1
        done
        # shellcheck disable=SC2086
        [ -z "$alive" ] || kill -KILL $pids 2>/dev/null || true
    fi
    rm -f "$log"
    echo "linreg set-up: interrupted ($1) while setting up $venv; rerun to set it up from scratch" >&2
    exit "$2"
}

# A process's state letter and parent, from /proc/PID/stat (after its name, which may hold spaces).
stat_of() {
    local line
    read -r line 2>/dev/null < "/proc/$1/stat" || return 1
    line="${line##*) }"
    state="${line%% *}"
    line="${line#* }"
    ppid="${line%% *}"
}

# tree=" PID its descendants... ", read in this shell: a command substitution would be one more.
descendants() {
    local grown=1 stat pid state ppid
    tree=" $1 "
    while [ "$grown" = 1 ]; do  # a pass per generation
        grown=0
        for stat in /proc/[0-9]*/stat; do
            pid="${stat#/proc/}"; pid="${pid%/stat}"
            [[ "$tree" == *" $pid "* ]] && continue
            if stat_of "$pid" && [[ "$tree" == *" $ppid "* ]]; then tree="$tree$pid "; grown=1; fi
        done
    done
}
trap 'stopped SIGINT 130' INT
trap 'stopped SIGTERM 143' TERM
trap 'stopped SIGHUP 129' HUP

# "base-interpreter X.Y.Z" of an interpreter that runs (a pyenv shim may not), else nothing.
identify() {
    "$1" -c 'import os, sys
base = sys.executable if sys.prefix == sys.base_prefix else sys._base_executable
print(os.path.realpath(base), "%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true
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

# The lock: flock(2) through the chosen interpreter on this shell's descriptor, so that it
# lasts as long as the shell (and what it runs) keeps the descriptor, not the one python call.
lock() {  # lock sh|ex [what to say while waiting]
    local op="fcntl.LOCK_${1^^}"
    "$python" -c "import fcntl; fcntl.flock(3, $op | fcntl.LOCK_NB)" 3>&"$lock_fd" 2>/dev/null && return
    echo "linreg set-up: waiting for $2 ($lock_file)" >&2
    "$python" -c "import fcntl, signal; signal.signal(signal.SIGINT, signal.SIG_DFL); fcntl.flock(3, $op)" \
        3>&"$lock_fd" 2>/dev/null || stopped SIGINT 130
}

# Whether the environment is what the stamp says, and the stamp is what this set-up wants.
stamped() {
    [ "$(cat "$1" 2>/dev/null)" = "$key" ] && [ "$(identify "$venv/bin/python")" = "$python_id" ]
}

# One line for a failed step: the full folder it wrote to, else the step's own last line.
cause() {  # cause OUTPUT
    local folder free worst="" least=""
    for folder in "${TMPDIR:-/tmp}" "$(dirname "$venv")" "${UV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/uv}" \
                  "${XDG_CACHE_HOME:-$HOME/.cache}/pip"; do
        while [ ! -e "$folder" ]; do folder="$(dirname "$folder")"; done
        free="$(df -Pk "$folder" 2>/dev/null | awk 'NR == 2 {print $4}')"
        if [ -n "$free" ] && { [ -z "$least" ] || [ "$free" -lt "$least" ]; }; then least="$free"; worst="$folder"; fi
    done
    if [[ "$1" == *"No space left on device"* || "$1" == *"Errno 28"* ]] || [ "${least:-1024}" -lt 1024 ]; then
        echo "no space left on the device of $worst ($((least / 1024)) MiB free; TMPDIR chooses the temporary folder)"
    else
        printf '%s\n' "$1" | grep -v '^[[:space:]]*$' | tail -n 1
    fi
}

# Run a step, its output held in a log beside the environment; on failure, that output, then one line.
step() {  # step "what failed" "what to do" command...
    local what="$1" todo="$2" out code=0
    shift 2
    "$@" >"$log" 2>&1 &
    wait $! || code=$?
    out="$(cat "$log" 2>/dev/null || true)"
    rm -f "$log"
    [ -z "$out" ] || printf '%s\n' "$out" >&2
    [ "$code" = 0 ] || fail "$what: $(cause "$out"); $todo"
}

make_venv() {
    rm -rf "$venv"
    echo "setting up $venv with Python ${python_id#* } ($python)" >&2
    if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
        fail "'$python -m venv' cannot run: this Python has no venv module (on Debian and Ubuntu:" \
            "apt install python3-venv); rerun after fixing"
    fi
    step "'$python -m venv' failed" "rerun after fixing" "$python" -m venv "$venv"
    # uv, because pip cannot override mxnet 1.9.1's numpy<2 pin, and Python 3.13+ has no such numpy.
    echo "installing uv, then mxnet 1.9.1, numpy, matplotlib and the test tools (about 300 MB)" >&2
    step "could not install uv" "rerun to retry from scratch" \
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check uv
    # From the checkout, as ".": a path is never parsed as a requirement (" #" starts a comment).
    step "installing linreg into $venv failed" "rerun to retry from scratch" \
        env -C "$root" "$venv/bin/uv" pip install --quiet --compile-bytecode --python "$venv/bin/python" \
        --override pins.txt -e ".[test]"
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
    echo "$key" > "$installed"
}

pins_hash="$(cat "$root/setup.py" "$root/pins.txt" "$root/scripts/venv.sh" | sha256sum | cut -d' ' -f1)"
python_id="$(choose_python)"
python="${python_id% *}"
key="$python_id $pins_hash $root"
exec {lock_fd}>>"$lock_file" || fail "cannot open the set-up's lock $lock_file: its folder must be writable"
# Shared while the environment is only used; exclusive to rebuild it, once no one uses it.
lock sh "another set-up of $venv to finish"
if ! stamped "$installed"; then
    lock ex "other set-ups and runs of $venv to finish"
    if ! stamped "$installed"; then  # another set-up may have made it while this one waited
        [ -e "$venv" ] && echo "rebuilding $venv (made by another interpreter, other pins, in another" \
            "place, or unfinished)" >&2
        make_venv
    fi
fi
if ! stamped "$ready"; then
    lock ex "other set-ups and runs of $venv to finish"
    # linreg's import loads mxnet's libmxnet.so; a system library it lacks is its one line, exit 2.
    problem="$("$venv/bin/python" -c 'import linreg' 2>&1 >/dev/null)" \
        || { problem="${problem##*$'\n'}"; fail "${problem#linreg: } (the environment is installed; rerun to finish)"; }
    # A CPU without AVX runs the Gluon half only: said once, here, in the line the from-scratch half gives.
    "$venv/bin/python" -c 'import sys; from linreg import compat; p = compat.cpu_problem(compat.cpu_features())
p and print("linreg set-up: note: " + p, file=sys.stderr)' >/dev/null || true
    echo "$key" > "$ready"
fi
lock sh "another set-up of $venv to finish"
trap - INT TERM HUP
export PATH="$venv/bin:$PATH"
cd "$root"

"""The cluster's DMLC_* environment is checked as a whole before MXNet sees it.

ps-lite trusts its environment: a missing variable is a C++ abort, a missing
port a segmentation fault, a DMLC_ROLE other than "worker" makes `import
mxnet` a server. The oracle for what is valid is written here from MXNet's
distributed-training docs ("Manually launching jobs": DMLC_ROLE,
DMLC_PS_ROOT_URI, DMLC_PS_ROOT_PORT, DMLC_NUM_SERVER, DMLC_NUM_WORKER; and
DMLC_NODE_HOST, DMLC_INTERFACE), independently of linreg.dmlc.
"""

import os
import re
import signal
import socket
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from linreg import dmlc

from .helpers import ROOT



OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
VALID = {  # the docs' variables: what each must be
    "DMLC_ROLE": lambda v: v in ("scheduler", "server", "worker"),
    "DMLC_PS_ROOT_URI": lambda v: re.fullmatch(rf"{OCTET}(\.{OCTET}){{3}}", v) is not None,
    "DMLC_PS_ROOT_PORT": lambda v: v.isascii() and v.isdigit() and 1 <= int(v) <= 65535,
    "DMLC_NUM_WORKER": lambda v: v.isascii() and v.isdigit() and 1 <= int(v) <= 1024,
    "DMLC_NUM_SERVER": lambda v: v.isascii() and v.isdigit() and 1 <= int(v) <= 1024,
    "DMLC_NODE_HOST": lambda v: re.fullmatch(rf"{OCTET}(\.{OCTET}){{3}}", v) is not None,
    "DMLC_INTERFACE": lambda v: v in {name for _, name in socket.if_nameindex()},
}
REQUIRED = ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_WORKER", "DMLC_NUM_SERVER")
GOOD = {"DMLC_ROLE": "worker", "DMLC_PS_ROOT_URI": "127.0.0.1", "DMLC_PS_ROOT_PORT": "9091",
        "DMLC_NUM_WORKER": "2", "DMLC_NUM_SERVER": "1", "DMLC_NODE_HOST": "127.0.0.1", "DMLC_INTERFACE": "lo"}

HOSTILE_VALUES = ["", " ", "0", "-1", "1.5", "65536", "99999999999999999999", "1e3", "0x10", " 8", "8 ", "٣",
                  "localhost", "127.0.0.1:9091", "256.1.1.1", "1.2.3", "::1", "010.0.0.1", "WORKER", "Worker",
                  "worker ", "nope0", "lo ", "a" * 300, "1025", "1024", "65535", "0080", "1", "10.0.0.1",
                  "scheduler", "server", "lo"]
HOSTILE = st.sampled_from(HOSTILE_VALUES)
VALUES = {name: st.one_of(st.sampled_from([GOOD[name]]), HOSTILE, st.text(max_size=12)) for name in GOOD}


def oracle(env):
    return all(name in env for name in REQUIRED) and all(VALID[name](env[name]) for name in env)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional=VALUES))
def test_exactly_what_the_docs_allow_is_accepted(env):
    env = {k: v for k, v in env.items() if "\0" not in v}  # an environment cannot hold NUL
    trouble = dmlc.problem(env)
    assert (trouble is None) == oracle(env), (env, trouble)
    if trouble:
        named = trouble.split("=")[0].split(" ")[0]
        assert named in VALID and (named not in env or not VALID[named](env[named])), (env, trouble)


def test_each_variable_alone_is_held_to_the_docs():
    # Every hostile value in every variable of an otherwise good environment: the random dicts
    # above rarely hold all five required ones, so each is tried here one at a time.
    for name in GOOD:
        for value in HOSTILE_VALUES:
            env = {**GOOD, name: value}
            assert (dmlc.problem(env) is None) == oracle(env), (name, value, dmlc.problem(env))
        env = {k: v for k, v in GOOD.items() if k != name}
        assert (dmlc.problem(env) is None) == (name not in REQUIRED), name


def test_the_launchers_own_environment_is_valid():
    for role in dmlc.ROLES:
        assert dmlc.problem(dmlc.cluster_env(role, 3, 2)) is None


def run_with(env, module_args):
    full = {k: v for k, v in os.environ.items() if not k.startswith("DMLC_")}
    proc = subprocess.run([sys.executable, "-m", *module_args], cwd=ROOT, env={**full, **env},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode >= 0, f"killed by {signal.Signals(-proc.returncode).name}"
    return proc


GLUON = ["linreg.gluon", "--kvstore", "dist_sync", "--epochs", "1"]
CASES = [  # (what the user set, the variable the line must name) — each crashed or aborted before
    ({"DMLC_ROLE": "worker"}, "DMLC_PS_ROOT_URI is not set"),
    ({**GOOD, "DMLC_NUM_WORKER": ""}, "DMLC_NUM_WORKER=''"),
    ({k: v for k, v in GOOD.items() if k != "DMLC_PS_ROOT_PORT"}, "DMLC_PS_ROOT_PORT is not set"),
    ({**GOOD, "DMLC_PS_ROOT_PORT": "0"}, "DMLC_PS_ROOT_PORT='0' is not a port from 1 to 65535"),
    ({**GOOD, "DMLC_PS_ROOT_URI": "localhost"}, "DMLC_PS_ROOT_URI='localhost' is not an IPv4 address"),
    ({**GOOD, "DMLC_INTERFACE": "nope0"}, "DMLC_INTERFACE='nope0' is not an interface of this machine"),
    ({**GOOD, "DMLC_NUM_SERVER": "0"}, "DMLC_NUM_SERVER='0' is not a whole number from 1 to 1024"),
]


@pytest.mark.parametrize("env, named", CASES)
def test_a_worker_with_a_bad_environment_is_one_line_and_exit_2(env, named):
    proc = run_with(env, GLUON)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and named in proc.stderr, proc.stderr
    assert proc.stderr.startswith("python -m linreg.gluon: error: --kvstore dist_sync: ")


@pytest.mark.parametrize("env, named", [
    ({"DMLC_ROLE": "server"}, "DMLC_PS_ROOT_URI is not set"),
    ({**GOOD, "DMLC_ROLE": "scheduler", "DMLC_PS_ROOT_PORT": "99999"}, "DMLC_PS_ROOT_PORT='99999'"),
    ({**GOOD, "DMLC_ROLE": "Worker"}, "DMLC_ROLE='Worker' is not scheduler, server or worker"),
    ({**GOOD, "DMLC_ROLE": ""}, "DMLC_ROLE='' is not scheduler, server or worker"),
])
def test_a_server_or_scheduler_with_a_bad_environment_is_one_line_and_exit_2(env, named):
    # mxnet would start a server at its import.
    proc = run_with(env, GLUON)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("linreg: ") and named in proc.stderr


@pytest.mark.parametrize("role", ["scheduler", "server"])
@pytest.mark.parametrize("module, says", [
    (["linreg.scratch", "--epochs", "1", "--quiet"], "w[0] "),
    (["linreg.predict", "x.params", "--x", "1,2"], "x.params does not exist"),
    (["linreg.launch", "-n", "1", "--timeout", "60", "--", sys.executable, "-c",
      "import os; print(os.environ['DMLC_ROLE'], os.environ['DMLC_PS_ROOT_PORT'] != '9091', 'DMLC_LOCAL' in os.environ)"],
     "[worker 0] worker True False"),
])
def test_a_role_left_in_the_shell_is_ignored_where_no_role_is_taken(role, module, says):
    # A recipe's variables, still exported: scratch, predict and the launcher are never a
    # scheduler or server (mxnet would make them one at its import, and they would wait for
    # workers forever); the launcher's children get its variables, not the shell's.
    env = {**GOOD, "DMLC_ROLE": role, "DMLC_LOCAL": "1"}  # and one the launcher does not set
    proc = run_with(env, module)
    assert says in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert proc.returncode == (2 if "predict" in module[0] else 0), proc.stderr


@pytest.mark.parametrize("flags", [["-u", "-m"], ["-um"], ["-Im"], ["-Wd", "-Bm"], ["-Wdefault", "-m"]],
                         ids=" ".join)
def test_a_role_left_in_the_shell_is_ignored_whatever_pythons_flags(flags):
    # Python's one-letter flags share a word (-um is -u -m): read as Python reads them, or a
    # stale DMLC_ROLE made `python -um linreg.predict` a scheduler waiting for its cluster.
    env = {**os.environ, **GOOD, "DMLC_ROLE": "scheduler"}
    proc = subprocess.run([sys.executable, *flags, "linreg.predict", "x.params", "--x", "1,2"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "x.params does not exist" in proc.stderr, proc.stderr


@settings(max_examples=6, deadline=None)
@given(st.fixed_dictionaries({"DMLC_ROLE": st.sampled_from(dmlc.ROLES)},
                             optional={k: v for k, v in VALUES.items() if k != "DMLC_ROLE"}))
def test_no_value_crashes_the_process(env):
    env = {k: v for k, v in env.items() if "\0" not in v and v.isprintable()}
    assume(dmlc.problem(env) is not None)  # a valid one would wait for its scheduler
    proc = run_with(env, GLUON)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1

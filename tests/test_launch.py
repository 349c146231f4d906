"""The launcher and the recipe: their grace, their children, their refusals."""

import os
import signal
import subprocess
import sys
import uuid

import pytest

from linreg import launch, recipe

from .helpers import default_signals, LAUNCH_BOUND, one_line, processes_with, ROOT, run_main, wait_for


# The launcher and the recipe ----------------------------------------------------------

def launch_run(*args, timeout=LAUNCH_BOUND + 10):
    env = {**os.environ, "LINREG_TEST_MARKER": uuid.uuid4().hex}
    proc = subprocess.run([sys.executable, "-m", "linreg.launch", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc, env["LINREG_TEST_MARKER"]


# Workers that exit 0 at once, scheduler and server that would wait for ever.
ONLY_WORKERS_EXIT = ["--", "sh", "-c", '[ "$DMLC_ROLE" = worker ] && exit 0; exec sleep 600']


def test_shutdown_grace_is_the_one_given():
    # A grace longer than the timeout: the timeout ends it, not the default grace of 10 s.
    proc, marker = launch_run("-n", "1", "--timeout", "12", "--shutdown-grace", "1000", *ONLY_WORKERS_EXIT)
    assert proc.returncode == 124 and "timed out after 12 s; stopped scheduler, server 0" in proc.stderr, proc.stderr
    assert processes_with(marker) == []


def test_a_child_whose_launcher_died_before_prctl_exits_at_once():
    # The preexec function runs in the child between fork and exec; if the launcher was
    # already gone, PR_SET_PDEATHSIG would never fire, so the child must end itself.
    # Here the "launcher" is this process's parent: called here, it has already "died".
    code = "from linreg.launch import die_with_parent; die_with_parent()(); print('outlived its launcher')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (1, "")


def test_an_ignored_sighup_stays_ignored_under_nohup():
    # Started as nohup starts it (SIGHUP ignored): a SIGHUP changes nothing, and the SIGTERM
    # after it is what stops the launch. (Pending together, SIGHUP is delivered first.)
    marker = uuid.uuid4().hex

    def nohup():
        default_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    proc = subprocess.Popen([sys.executable, "-m", "linreg.launch", "-n", "1", "--", "sleep", "600"], cwd=ROOT,
                            env={**os.environ, "LINREG_TEST_MARKER": marker}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=nohup)
    try:
        wait_for(lambda: len(processes_with(marker)) == 5 or proc.poll() is not None)  # it, keeper, 3 children
        os.kill(proc.pid, signal.SIGHUP)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=LAUNCH_BOUND)
        assert proc.returncode == 143 and "interrupted (SIGTERM); stopped every child" in err, err
        wait_for(lambda: processes_with(marker) == [])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace():
    # A shell that traps SIGTERM and keeps starting sleeps: SIGTERM alone never ends it;
    # launch.GRACE seconds later, SIGKILL does, and the launch ends with nothing left.
    proc, marker = launch_run("-n", "1", "--timeout", "3", "--", "sh", "-c",
                              'trap "" TERM; while :; do sleep 1; done')
    assert proc.returncode == 124 and "timed out after 3 s" in proc.stderr, proc.stderr
    assert processes_with(marker) == []


@pytest.mark.parametrize("argv, says", [
    (["-n", "0"], "--num-workers must be from 1 to 1024, got 0"),
    (["-n", "1", "-s", "0"], "--num-servers must be from 1 to 1024, got 0"),
    (["-n", "1025"], "--num-workers must be from 1 to 1024, got 1025"),
    (["-n", "1", "--timeout", "-1"], "--timeout must be > 0, got -1"),
    (["-n", "1", "--shutdown-grace", "0"], "--shutdown-grace must be > 0, got 0"),
])
def test_launch_refuses_counts_and_times_for_their_reason(argv, says):
    code, out, err = run_main(launch, [*argv, "--", "true"])
    one_line(code, err, 2, f"python -m linreg.launch: error: {says}")


RECIPE = ["worker", "--scheduler", "10.0.0.1", "--host", "10.0.0.2", "--interface", "eth0", "-n", "2", "--no-check"]


@pytest.mark.parametrize("change, says", [
    ({"--port": "0"}, "--port must be in 1..65535, got 0"),
    ({"--port": "65536"}, "--port must be in 1..65535, got 65536"),
    ({"-n": "0"}, "--num-workers and --num-servers must be from 1 to 1024"),
    ({"-s": "0"}, "--num-workers and --num-servers must be from 1 to 1024"),
    ({"-n": "1025"}, "--num-workers and --num-servers must be from 1 to 1024"),
    ({"--scheduler": "10.0.0"}, "--scheduler takes an IPv4 address such as 10.0.0.1, got '10.0.0'"),
    ({"--host": "host-b"}, "--host takes an IPv4 address such as 10.0.0.1, got 'host-b'"),
    ({"--host": "::1"}, "--host takes an IPv4 address such as 10.0.0.1, got '::1'"),
    ({"worker": "client"}, "argument role: invalid choice: 'client'"),
    # Addresses no other host can reach (issue 31), refused with --no-check too.
    ({"--host": "0.0.0.0"}, "--host 0.0.0.0 is no address another process can reach"),
    ({"--scheduler": "0.0.0.0"}, "--scheduler 0.0.0.0 is no address another process can reach"),
    ({"--host": "127.0.0.1"}, "--host 127.0.0.1 and --scheduler 10.0.0.1: a loopback address is reached from its "
                              "own host alone"),
])
def test_recipe_refuses_bad_input_for_its_reason(change, says):
    argv = list(RECIPE)
    for key, value in change.items():
        if key in argv:
            argv[argv.index(key) + (key != "worker")] = value
        else:
            argv += [key, value]
    code, out, err = run_main(recipe, argv)
    one_line(code, err, 2, says)
    assert out == ""


def test_recipe_checks_the_interface_here():
    argv = [a for a in RECIPE if a != "--no-check"]
    argv[argv.index("--interface") + 1] = "nosuchif0"
    code, out, err = run_main(recipe, argv)
    one_line(code, err, 2, "nosuchif0", "(--no-check prints the lines for another host)")


def test_a_childs_line_the_callers_encoding_cannot_hold_does_not_stop_the_cluster():
    # PYTHONIOENCODING=ascii, from the caller's shell: the children's output is the launcher's
    # pipe (UTF-8), and what its own stdout cannot encode is escaped, not taken for a closed output.
    child = "print('\u0177 \u2212 y')"
    proc = subprocess.run([sys.executable, "-m", "linreg.launch", "-n", "1", "--", sys.executable, "-c", child],
                          cwd=ROOT, env={**os.environ, "PYTHONIOENCODING": "ascii"}, capture_output=True,
                          timeout=LAUNCH_BOUND)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.decode("ascii").splitlines()) == [
        "[scheduler] \\u0177 \\u2212 y", "[server 0] \\u0177 \\u2212 y", "[worker 0] \\u0177 \\u2212 y"]

"""MXNet 1.9.1 on today's numpy and Python: the one place that knows its debts.

mxnet 1.9.1 (2022, the last release) reads numpy names at import time that
numpy has since removed, and imports distutils, which Python 3.12 removed;
its libmxnet.so needs GCC's OpenMP runtime and libquadmath from the system.
`prepare()` checks the library loads and adds each missing name to numpy; a
name numpy still has is never replaced. It also fixes the kernels MXNet and
numpy pick, and glibc's mmap threshold, which decides whether the memory of
MXNet's freed arrays goes back to the system. The restored constants are the real
values; the restored functions exist only so that mxnet's import-time tables
can name them, and raise a clear error if anything calls them. After mxnet's
import, `fork_dataloader_workers()` gives its DataLoader the start method it
needs.

Two ways in. `linreg/__init__.py` calls `load_mxnet()` before any of linreg
imports mxnet, so every entry point (`python -m linreg.*`, the scripts, the
tests) goes through here, with one line and an exit code where mxnet cannot
load. And the environment scripts/venv.sh makes has a .pth file that runs
`install_hook()` at start-up, loading this file on its own (not the linreg
package, which would import mxnet in every Python started there): then a
learner's own `from mxnet import nd` gets the same, whenever mxnet is first
imported. So this module imports nothing heavy at its top.
"""

import importlib.machinery
import importlib.util
import math
import os
import re
import signal
import sys
import warnings

# Constants: name -> (value, the mxnet 1.9.1 line that reads it at import).
CONSTANTS = {
    # Removed in numpy 1.24, back in 2.0 as the alias of bool_ restored here.
    "bool": ("bool_", "mxnet/numpy/utils.py:37  bool = onp.bool"),  # a name: numpy's own bool_
    # Removed in numpy 2.0.
    "PZERO": (0.0, "mxnet/numpy/utils.py:42  PZERO = onp.PZERO"),
    "NZERO": (-0.0, "mxnet/numpy/utils.py:43  NZERO = onp.NZERO"),
    "NINF": (-math.inf, "mxnet/numpy/utils.py:44  NINF = onp.NINF"),
    "PINF": (math.inf, "mxnet/numpy/utils.py:45  PINF = onp.PINF"),
    "NAN": (math.nan, "mxnet/numpy/utils.py:47  NAN = onp.NAN"),
    "NaN": (math.nan, "mxnet/numpy/utils.py:48  NaN = onp.NaN"),
    # A default argument, used later: it must be the real infinity.
    "Inf": (math.inf, "mxnet/gluon/contrib/estimator/event_handler.py:248  priority=np.Inf"),
}

# Functions: name -> (the numpy release that removed it, the mxnet line that
# names it). mxnet copies them into tables; nothing in linreg calls them.
FUNCTIONS = {
    "alltrue": ("2.0", "mxnet/numpy/fallback.py:111  alltrue = onp.alltrue"),
    "msort": ("2.0", "mxnet/numpy/fallback.py:145  msort = onp.msort"),
    "mirr": ("2.0", "mxnet/numpy/fallback.py:143  mirr = onp.mirr (numpy_financial)"),
    "npv": ("2.0", "mxnet/numpy/fallback.py:160  npv = onp.npv"),
    "pmt": ("2.0", "mxnet/numpy/fallback.py:164  pmt = onp.pmt"),
    "ppmt": ("2.0", "mxnet/numpy/fallback.py:173  ppmt = onp.ppmt"),
    "pv": ("2.0", "mxnet/numpy/fallback.py:176  pv = onp.pv"),
    "rate": ("2.0", "mxnet/numpy/fallback.py:177  rate = onp.rate"),
    "sometrue": ("2.0", "mxnet/numpy_dispatch_protocol.py:87  'sometrue' in _NUMPY_ARRAY_FUNCTION_LIST"),
    "round_": ("2.0", "mxnet/numpy_dispatch_protocol.py:92  'round_' in _NUMPY_ARRAY_FUNCTION_LIST"),
    "product": ("2.0", "mxnet/numpy_dispatch_protocol.py:124  'product' in _NUMPY_ARRAY_FUNCTION_LIST"),
    "in1d": ("2.4", "mxnet/numpy/fallback.py:135  in1d = onp.in1d"),
    "trapz": ("2.4", "mxnet/numpy/fallback.py:190  trapz = onp.trapz"),
}


# The system libraries libmxnet.so 1.9.1 needs that a minimal system may lack
# (ldd: libgomp.so.1 directly; libquadmath.so.0 through the wheel's own
# libgfortran): soname -> (Debian/Ubuntu package, Fedora/RHEL package).
SYSTEM_LIBRARIES = {
    "libgomp.so.1": ("libgomp1", "libgomp"),
    "libquadmath.so.0": ("libquadmath0", "libquadmath"),
}


# The aarch64 wheel's libmxnet.so needs Arm Performance Libraries, which no
# package index or distribution package provides.
ARM_LIBRARIES = ("libarmpl_lp64_mp.so", "libamath.so", "libastring.so")


class Unavailable(ImportError):
    """mxnet cannot be imported here, for a reason one line can state."""


def missing_library(message):
    """What to install for the OSError message of a failed dlopen; None if it names no library.

    dlopen says "libgomp.so.1: cannot open shared object file: ..." for a
    library it cannot find, and "/path/libgomp.so.1: file too short" (or
    another reason) for one it cannot use.
    """
    match = re.match(r"(\S+?): (.+)", message)
    if not match or ".so" not in match.group(1):
        return None
    soname, reason = os.path.basename(match.group(1)), match.group(2)
    if soname in SYSTEM_LIBRARIES:
        what = (f"install it (Debian/Ubuntu: apt install {' '.join(p for p, _ in SYSTEM_LIBRARIES.values())}; "
                f"Fedora/RHEL: dnf install {' '.join(p for _, p in SYSTEM_LIBRARIES.values())})")
    elif soname in ARM_LIBRARIES:
        what = ("it is part of Arm Performance Libraries, which no package index provides: "
                "install them from Arm, or use an x86_64 machine (see docs/install.md)")
    else:
        what = "install the system package that provides it"
    return f"mxnet's libmxnet.so needs {soname} ({reason}), from the system: {what}, then rerun"


def check_library():
    """Load mxnet's libmxnet.so as mxnet will; raise Unavailable naming a system library it lacks.

    mxnet itself would raise a bare OSError from ctypes in mxnet/base.py.
    """
    spec = importlib.util.find_spec("mxnet")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("mxnet is not installed in this Python: install linreg with its "
                          "dependencies (bash scripts/demo.sh does)")
    library = os.path.join(spec.submodule_search_locations[0], "libmxnet.so")
    if not os.path.exists(library):
        return  # a build of mxnet laid out otherwise: let its own loader look
    import ctypes
    try:
        ctypes.CDLL(library, ctypes.RTLD_LOCAL)  # the same call as mxnet/base.py's _load_lib
    except OSError as e:
        raise Unavailable(missing_library(str(e)) or f"cannot load {library}: {e}") from None


def missing(numpy, name):
    """True if numpy has no `name`.

    Looked up in the module's dict: numpy's module __getattr__ would warn
    (1.25+: FutureWarning for "bool") or serve a deprecated alias (1.23).
    """
    return name not in vars(numpy) and name not in getattr(numpy, "__deprecated_attrs__", {})


def removed(numpy, name, release):
    """A stand-in for numpy.<name> that raises, naming the numpy versions."""
    def stand_in(*args, **kwargs):
        raise NotImplementedError(
            f"numpy.{name} was removed in numpy {release}; this is numpy {numpy.__version__}. "
            "linreg.compat restored the name only so that mxnet 1.9.1 can be imported.")
    stand_in.__name__ = stand_in.__qualname__ = name
    return stand_in


def restore_numpy_names(numpy):
    """Add each name mxnet 1.9.1 reads that this numpy lacks; return the names added."""
    added = []
    for name, (value, _) in CONSTANTS.items():
        if missing(numpy, name):
            setattr(numpy, name, getattr(numpy, value) if isinstance(value, str) else value)
            added.append(name)
    for name, (release, _) in FUNCTIONS.items():
        if missing(numpy, name):
            setattr(numpy, name, removed(numpy, name, release))
            added.append(name)
    return added


class ForkingMultiprocessing:
    """The multiprocessing module as mxnet's DataLoader knew it: new processes are forked.

    Python 3.14 made forkserver the default start method on Linux. The
    DataLoader's workers would then start as new interpreters, import mxnet
    without the names restored here, and die (the pool respawns them until
    "Worker timed out"); and its batches travel as shared-memory NDArrays
    whose file descriptors only a forked child inherits. mxnet reads
    `multiprocessing.Pool`, `.Process` and `.get_context()` from its module at
    call time (mxnet/gluon/data/dataloader.py:124, 136, 234, 666); these come
    from the fork context, everything else from multiprocessing itself.
    """

    def __init__(self, module):
        self._module = module
        self._fork = module.get_context("fork")
        self.Process = self._fork.Process

    def Pool(self, *args, **kwargs):
        """The fork context's Pool, its workers sharing this process's temporary folder.

        A worker hands each batch over as a file descriptor (multiprocessing.reduction.DupFd),
        which listens on a socket in multiprocessing's temporary folder, /tmp/pymp-*. Made in
        a worker, that folder was left behind when the pool was terminated (SIGTERM, no exit
        handlers); made here first, the workers inherit it, and this process's exit removes it.
        """
        from multiprocessing import util
        util.get_temp_dir()
        return self._fork.Pool(*args, **kwargs)

    def get_context(self, method=None):
        return self._fork if method is None else self._module.get_context(method)

    def __getattr__(self, name):
        return getattr(self._module, name)


def fork_dataloader_workers(mxnet):
    """Give mxnet's DataLoader fork, whatever the default start method (forkserver on 3.14+).

    Before 3.14 fork was Linux's default, so nothing changes there; the
    caller's own multiprocessing keeps its default.
    """
    import multiprocessing
    if "fork" in multiprocessing.get_all_start_methods():
        mxnet.gluon.data.dataloader.multiprocessing = ForkingMultiprocessing(multiprocessing)


# Variables mxnet 1.9.1 reads as numbers, and the least each takes. Its C++ reads
# them with dmlc::GetEnv (a value it cannot parse is an MXNetError, or, on an
# engine thread, SIGABRT), its Python with int() (a ValueError traceback); below
# the least it aborts, hangs or divides by zero (MXNET_CPU_TEMP_COPY=0: SIGFPE).
# name -> least.
NUMBER_VARIABLES = {
    "OMP_NUM_THREADS": 1,  # libgomp calls 0 invalid
    "MXNET_OMP_MAX_THREADS": 0,
    "MXNET_CPU_WORKER_NTHREADS": 1,
    "MXNET_CPU_PRIORITY_NTHREADS": 1,
    "MXNET_CPU_TEMP_COPY": 1,
    "MXNET_SUBGRAPH_VERBOSE": 0,
    "MXNET_UPDATE_ON_KVSTORE": 0,  # the rest: Python's int()
    "MXNET_ENABLE_CYTHON": 0,
    "MXNET_ENFORCE_CYTHON": 0,
    "MXNET_OPTIMIZER_AGGREGATION_SIZE": 0,
    "MXNET_UPDATE_AGGREGATION_SIZE": 0,
}
# Read by dmlc::GetEnv as a bool: true, false, 1 or 0, in any case.
BOOLEAN_VARIABLES = ("MXNET_ENGINE_INFO", "MXNET_MKLDNN_ENABLED")
BOOLEANS = ("true", "false", "1", "0")
ENGINES = ("NaiveEngine", "ThreadedEngine", "ThreadedEnginePerDevice")  # MXNET_ENGINE_TYPE's values
# Read as text, where no value can abort it: where its data sets are kept and fetched from.
TEXT_VARIABLES = ("MXNET_HOME", "MXNET_GLUON_REPO")
CHECKED = (*NUMBER_VARIABLES, *BOOLEAN_VARIABLES, "MXNET_ENGINE_TYPE", *TEXT_VARIABLES)


def check_environment(environ=os.environ):
    """Raise Unavailable for a value of a variable mxnet would fail on, naming the variable."""
    for name, least in NUMBER_VARIABLES.items():
        text = (environ.get(name) or "").strip()  # empty: unset, as mxnet reads it
        if not text:
            continue
        if not re.fullmatch(r"[+-]?[0-9]+", text) or not -2**31 <= int(text) < 2**31:
            raise Unavailable(f"{name}={environ[name]!r} is not a whole number; mxnet 1.9.1 fails on "
                              "anything else: set a whole number, or unset it")
        if int(text) < least:
            raise Unavailable(f"{name}={environ[name]!r}: mxnet 1.9.1 needs at least {least} "
                              "(it aborts or hangs on less): set a number such as 2, or unset it")
    for name in BOOLEAN_VARIABLES:
        text = (environ.get(name) or "").strip()
        if text and text.lower() not in BOOLEANS:
            raise Unavailable(f"{name}={environ[name]!r} is not a boolean; mxnet 1.9.1 fails on "
                              f"anything but {', '.join(BOOLEANS)}: set one, or unset it")
    engine = environ.get("MXNET_ENGINE_TYPE")
    if engine and engine not in ENGINES:
        raise Unavailable(f"MXNET_ENGINE_TYPE={engine!r} is no engine of mxnet 1.9.1: "
                          f"one of {', '.join(ENGINES)}, or unset it")


def set_aside_unchecked(environ=os.environ):
    """Remove every MXNET_* variable linreg does not check from environ; return them as NAME=value.

    mxnet 1.9.1 reads some seventy, many of which abort it on a value it cannot parse (a
    learner's copy from an old post), and some change the numbers or the library loaded
    (MXNET_LIBRARY_PATH): a linreg command runs without them, and says so.
    """
    aside = sorted(name for name in environ if name.startswith("MXNET_") and name not in CHECKED)
    return [f"{name}={environ.pop(name)}" for name in aside]


# The kernels. Which code computes a sum depends on the CPU unless it is fixed:
# mxnet 1.9.1's wheel bundles OpenBLAS 0.3.13 (nd.dot: the from-scratch half)
# and oneDNN 2.4.4 (Gluon's Dense), numpy's wheel its own OpenBLAS (the
# least-squares oracle); each picks kernels for the CPU it finds, and each
# kernel rounds its sums its own way. Measured on one AMD EPYC (Zen 4): OpenBLAS's
# Prescott, Nehalem, Sandybridge and Haswell kernels give four sets of
# numbers, oneDNN's SSE4.1, AVX2 and AVX-512 paths three; OpenMP's and
# OpenBLAS's thread counts split sums too (a batch of 200000 learned another w
# on 1, 2 and 4 threads). So each is fixed, before any of them loads, to a path
# every x86-64 CPU has; docs/performance.md says what it costs.
KERNELS = {
    "OPENBLAS_CORETYPE": "Prescott",  # SSE3, OpenBLAS's oldest x86-64 kernels; read by mxnet's and numpy's
    "OPENBLAS_NUM_THREADS": "1",  # numpy's OpenBLAS splits the oracle's A^T A by thread
    "DNNL_MAX_CPU_ISA": "SSE41",  # oneDNN's oldest path: every x86-64 CPU since 2008 (Intel), 2011 (AMD)
    "OMP_NUM_THREADS": "1",  # mxnet's and oneDNN's reductions are split by OpenMP thread
    "MXNET_MKLDNN_ENABLED": "1",  # Dense in oneDNN: 0 moves it to OpenBLAS, whose sums differ
}
KERNELS_SWITCH = "LINREG_KERNELS"  # "native": the libraries choose, as the caller's variables say
NATIVE_NOTICE = (f"{KERNELS_SWITCH}=native: the CPU's own kernels and thread counts; "
                 "the numbers may differ from the README's")


def pin_kernels(environ=os.environ):
    """Fix the kernels (KERNELS into environ) unless LINREG_KERNELS=native; return "pinned" or "native".

    Whatever a machine sets for other programs (OPENBLAS_CORETYPE, thread
    counts) is set aside here, so that it cannot change the numbers.
    """
    mode = environ.get(KERNELS_SWITCH) or "pinned"
    if mode not in ("pinned", "native"):
        raise Unavailable(f"{KERNELS_SWITCH}={mode!r} is not a choice: unset it (the fixed kernels, the "
                          "README's numbers on every CPU) or set it to native (the CPU's own kernels)")
    if mode == "pinned":
        environ.update(KERNELS)
    return mode


# MXNet's arrays on the CPU come from malloc (its CPU storage manager keeps no
# pool), and glibc's malloc raises the size from which it maps a block of its
# own to the largest mapped block freed so far (up to 32 MB). After that, an
# array of a few MB made and freed on MXNet's worker threads stays in their
# heaps when freed, between other blocks, where glibc never gives it back: the
# 10M benchmark's peak went from 311 to 323 MB by where blocks happened to
# fall. Fixed at glibc's own start value, every block from 128 KiB is mapped
# for itself and unmapped when freed (docs/performance.md).
M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
MMAP_THRESHOLD = 128 * 1024


def pin_allocator(environ=os.environ):
    """Fix glibc's mmap threshold at MMAP_THRESHOLD; True where it was fixed here. Not where the
    C library is not glibc, nor where the caller set MALLOC_MMAP_THRESHOLD_, which glibc has read."""
    try:
        glibc = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # a C library that does not know the name
        glibc = False
    if not glibc or "MALLOC_MMAP_THRESHOLD_" in environ:
        return False
    import ctypes
    return ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1


# OpenBLAS kernels that need more than SSE4.1, by the name OPENBLAS_CORETYPE
# takes (any case): OpenBLAS runs a forced kernel without asking the CPU, so
# one the CPU lacks dies of SIGILL. Only where the caller's variables are in
# force (LINREG_KERNELS=native) can that be asked for.
OPENBLAS_NEEDS = {"sandybridge": {"avx"}, "bulldozer": {"avx"}, "piledriver": {"avx", "fma"},
                  "steamroller": {"avx", "fma"}, "excavator": {"avx2", "fma"}, "haswell": {"avx2", "fma"},
                  "zen": {"avx2", "fma"}, "skylakex": {"avx512f"}, "cooperlake": {"avx512f"},
                  "sapphirerapids": {"avx512f"}}


def kernel_problem(environ, features):
    """One line if OPENBLAS_CORETYPE forces kernels this CPU cannot run, else None (and for an unknown CPU)."""
    if features is None:
        return None
    core = (environ.get("OPENBLAS_CORETYPE") or "").strip()
    lacking = OPENBLAS_NEEDS.get(core.lower(), set()) - features
    if not lacking:
        return None
    return (f"OPENBLAS_CORETYPE={core} asks OpenBLAS for kernels this CPU cannot run (it has no "
            f"{' or '.join(sorted(lacking))}): they would die of SIGILL; unset it or name a kernel this CPU has, "
            f"or unset {KERNELS_SWITCH} (the fixed kernels)")


# CPUID bits (register, bit) of leaf 1 and leaf 7, as glibc's <sys/platform/x86.h> keeps them.
CPU_FEATURES = {"sse3": (0, 2, 0), "sse4_1": (0, 2, 19), "avx": (0, 2, 28), "fma": (0, 2, 12),
                "avx2": (1, 1, 5), "avx512f": (1, 1, 16)}  # name -> (glibc's leaf index, register, bit)


def cpu_features():
    """The x86-64 features of CPU_FEATURES this CPU offers and the system lets programs use; None if unknown.

    Read from glibc (2.33+: __x86_get_cpuid_feature_leaf, its "active" bits:
    CPUID as the program itself sees it, under an emulator too, less what the
    kernel has not enabled), else from /proc/cpuinfo's flags.
    """
    import ctypes
    import platform
    if platform.machine() != "x86_64":
        return None
    try:
        leaf = ctypes.CDLL(None).__x86_get_cpuid_feature_leaf
        leaf.restype = ctypes.POINTER(ctypes.c_uint * 8)  # cpuid eax..edx, then "active" eax..edx
        leaves = [leaf(0).contents, leaf(1).contents]
        return {name for name, (i, reg, bit) in CPU_FEATURES.items() if leaves[i][4 + reg] >> bit & 1}
    except (AttributeError, OSError, ValueError):  # glibc before 2.33, or another C library
        pass
    try:
        with open("/proc/cpuinfo") as f:
            return cpuinfo_features(f.read())
    except OSError:
        return None


def cpuinfo_features(text):
    """The features of CPU_FEATURES in /proc/cpuinfo's first flags line (SSE3 is "pni" there); None if none."""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    return None if flags is None else set(CPU_FEATURES) & {"sse3" if f == "pni" else f for f in flags}


# What `python -m` runs nd.dot, which mxnet 1.9.1 hands to the OpenBLAS in its
# wheel; that library's own entry points (cblas_sgemm) are built with AVX
# instructions, so without AVX they die of SIGILL whatever kernel is chosen.
BLAS_MODULES = {"linreg.scratch", "linreg.predict"}


def cpu_problem(features):
    """One line if this CPU cannot run nd.dot (no AVX), else None; an unknown CPU is let run."""
    if features is None or "avx" in features:
        return None
    return ("this CPU has no AVX (or the system does not enable it), which the OpenBLAS in mxnet 1.9.1's "
            "wheel needs for nd.dot (the from-scratch half and predict); the Gluon half runs here with the "
            "same numbers (python -m linreg.gluon); in a virtual machine, give it the host's CPU type "
            "(QEMU/libvirt: -cpu host or host-passthrough)")


def _openblas_cores():
    """{path: kernel name} of each OpenBLAS loaded in this process (mxnet's, numpy's)."""
    import ctypes
    paths = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(None, 5)[-1].strip()
                if "openblas" in os.path.basename(path) and path not in paths:
                    paths.append(path)
    except OSError:
        return {}
    cores = {}
    for path in paths:
        try:
            library = ctypes.CDLL(path, mode=os.RTLD_NOLOAD)
        except OSError:
            continue
        for prefix, suffix in (("", ""), ("", "64_"), ("scipy_", "64_"), ("scipy_", "")):
            function = getattr(library, f"{prefix}openblas_get_corename{suffix}", None)
            if function is not None:
                function.restype = ctypes.c_char_p
                cores[path] = function().decode()
                break
    return cores


def kernels():
    """What computes in this process, for --json and linreg.check (mxnet and numpy loaded).

    {"pinned": the fixed kernels are in force, "openblas": mxnet's OpenBLAS
    kernel, "numpy_openblas": numpy's, "onednn_max_isa": the cap oneDNN was
    given ("" for none: the CPU's best), "omp_threads": OpenMP's, "cpu": the
    features of CPU_FEATURES the CPU has}.
    """
    import mxnet
    cores = _openblas_cores()
    mxnet_dir = os.path.dirname(mxnet.__file__)
    features = cpu_features()
    return {
        "pinned": all(os.environ.get(k) == v for k, v in KERNELS.items())
        and os.environ.get(KERNELS_SWITCH, "pinned") != "native",
        "openblas": next((c for p, c in cores.items() if p.startswith(mxnet_dir)), ""),
        "numpy_openblas": next((c for p, c in cores.items() if not p.startswith(mxnet_dir)), ""),
        "onednn_max_isa": os.environ.get("DNNL_MAX_CPU_ISA", ""),
        "omp_threads": int(os.environ.get("OMP_NUM_THREADS") or 0) or len(os.sched_getaffinity(0)),
        "cpu": sorted(features) if features is not None else None,
    }


def prepare():
    """What mxnet's import needs first: the kernels and glibc's mmap threshold fixed, its library loads,
    numpy has the names it reads, distutils is there, and the thread variables it reads hold what it takes.

    Raises Unavailable, with one line, where it cannot be had.
    """
    check_environment()  # the caller's own values first: a mistake there is named even where pinned
    pin_allocator()
    if pin_kernels() == "native":  # before numpy or libmxnet.so (and the OpenBLAS each brings) loads
        trouble = kernel_problem(os.environ, cpu_features())
        if trouble:
            raise Unavailable(trouble)
    check_library()
    import numpy
    restore_numpy_names(numpy)
    if importlib.util.find_spec("distutils") is None:
        # mxnet/numpy_op_fallback.py:20  from distutils.version import StrictVersion
        raise Unavailable("mxnet 1.9.1 imports distutils, which Python 3.12 removed: "
                          "install setuptools, which provides it (pip install setuptools)")


class _PreparedLoader:
    """mxnet's own loader, with prepare() before it runs and the DataLoader's start method after."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        prepare()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # distutils, numpy 1.23's np.bool
            self.loader.exec_module(module)
        fork_dataloader_workers(module)

    def __getattr__(self, name):  # is_package, get_resource_reader, ...: the real loader's
        return getattr(self.loader, name)


class MXNetHook:
    """A meta-path finder for mxnet alone: it finds mxnet where Python would, and prepares its import."""

    def find_spec(self, name, path=None, target=None):
        if name != "mxnet":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _PreparedLoader(spec.loader)
        return spec


def install_hook():
    """Put MXNetHook first on sys.meta_path, once; a no-op once mxnet is imported."""
    if "mxnet" not in sys.modules and not any(type(f).__name__ == "MXNetHook" for f in sys.meta_path):
        sys.meta_path.insert(0, MXNetHook())


# What `python -m` may run as a scheduler or server: the Gluon half, under
# linreg.launch or a recipe. Any other linreg command (scratch, predict, the
# launcher itself) ignores DMLC_ROLE; Python started otherwise (a script,
# pytest, a notebook) gets mxnet's own behaviour.
ROLE_MODULES = {"linreg.gluon", None}
_VALUED = "WX"  # python's one-letter options whose value follows (in the same word, or the next)


def entry_module():
    """The module `python -m MODULE` runs, from the interpreter's own command line; else None.

    One-letter options may share a word, as Python reads them: `-um mod`, `-Im mod`, `-Wd -bm mod`.
    """
    argv = getattr(sys, "orig_argv", [])
    words = iter(argv[1:])
    for word in words:
        if word == "--check-hash-based-pycs":
            next(words, None)
            continue
        if word.startswith("--"):
            continue  # --help, --version: no module runs; the others take no value
        if word == "-" or not word.startswith("-"):
            return None  # stdin or a script
        for i, letter in enumerate(word[1:], 1):
            rest = word[i + 1:]
            if letter == "m":
                return rest or next(words, None)
            if letter == "c":
                return None  # a command
            if letter in _VALUED:
                if not rest:
                    next(words, None)
                break
    return None


def load_mxnet():
    """Check the library, restore numpy's names and check for distutils, then import mxnet; return it.

    Python 3.11's distutils and numpy 1.23's np.bool each emit a
    DeprecationWarning while mxnet imports; those, and only during that import,
    are silenced, so that `python -W error` and JSON on stderr stay clean.
    What stops the import (a missing system library, no distutils) ends the
    program with one line and exit 2, and Ctrl-C in the two seconds this takes
    (held until the import ends) with one line and exit 130; an interactive
    session gets the exception.
    """
    # Loaded with the package here (the import hook loads this file alone, and never calls this).
    from .console import EXIT_USAGE, exit_code, say, settle_streams
    from .signals import signals_held
    try:
        if os.environ.get("DMLC_ROLE", "worker") != "worker" and entry_module() not in ROLE_MODULES:
            # A recipe's DMLC_ROLE left in the shell: this command is never a cluster role.
            del os.environ["DMLC_ROLE"]
        if os.environ.get("DMLC_ROLE", "worker") != "worker":
            # Any other role makes `import mxnet` a parameter server or scheduler (at
            # mxnet/kvstore/kvstore_server.py:_init_kvstore_server_module), which trusts the rest.
            from . import dmlc
            trouble = dmlc.problem(os.environ) or dmlc.port_problem(os.environ)
            if trouble:
                raise Unavailable(trouble)
        aside = set_aside_unchecked()
        if aside:
            say(f"linreg: set aside {', '.join(aside)}: mxnet variables linreg does not check, which can "
                "abort mxnet 1.9.1 or change its numbers (docs/errors.md)")
        prepare()
        if entry_module() in BLAS_MODULES:
            trouble = cpu_problem(cpu_features())
            if trouble:
                raise Unavailable(trouble)
        from . import limits
        trouble = limits.task_problem()
        if trouble:
            raise Unavailable(trouble)
        # Ctrl-C is held until the import ends, then raised: delivered inside mxnet's import,
        # it was once lost and the run went on to exit 0 (CI, Python 3.13.0).
        role = os.environ.get("DMLC_ROLE", "worker")
        with signals_held(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            # Imported as a worker, linreg.gluon's scheduler or server: linreg.member then runs the
            # role itself, under its watch (mxnet's import would run it inside the import, beyond
            # any signal handler).
            hidden = role != "worker" and entry_module() == "linreg.gluon"
            if hidden:
                os.environ["DMLC_ROLE"] = "worker"
            try:
                import mxnet
            finally:
                if hidden:
                    os.environ["DMLC_ROLE"] = role
        fork_dataloader_workers(mxnet)
        trouble = limits.address_space_problem()
        if trouble:
            raise Unavailable(trouble)
        if os.environ.get(KERNELS_SWITCH) == "native":
            say(f"linreg: {NATIVE_NOTICE}")
    except Unavailable as e:
        if hasattr(sys, "ps1"):
            raise
        say(f"linreg: {e}")  # a closed, broken or full stderr: the exit code says it
        settle_streams()  # so that exit's own flush cannot fail and change the code
        if "mxnet" in sys.modules:
            # Too little address space for mxnet's threads: its teardown at exit may then
            # abort ("terminate called without an active exception", SIGABRT), so skip it.
            os._exit(EXIT_USAGE)
        raise SystemExit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        if hasattr(sys, "ps1"):  # an interactive session: leave it to the prompt
            raise
        say("interrupted while importing mxnet")
        settle_streams()
        raise SystemExit(exit_code(signal.SIGINT)) from None
    return mxnet

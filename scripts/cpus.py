"""The same numbers on every x86-64 CPU: the seed-0 record natively and under emulated CPUs.

    $ .venv/bin/python scripts/cpus.py                      # the CPUs below, about 4 minutes
    $ .venv/bin/python scripts/cpus.py --models Nehalem,EPYC

Runs linreg.check's record (scratch, Gluon, Gluon --fast; --json --seed 0)
with this interpreter natively and under each CPU model of Debian's qemu-user
(`qemu-x86_64 -cpu MODEL`, which runs the same binaries on an emulated CPU
with that model's instruction set), and compares each with the native
record to the bit, least squares included (the same numpy everywhere). On a
model without AVX the from-scratch half must refuse in one line naming AVX
(exit 2), and the Gluon runs must still give the same numbers. Exit 1 on any
difference, 2 where it cannot run (no qemu-user, an unknown model).
"""

import argparse
import json
import shutil
import subprocess
import sys

from linreg import check, compat

# One without AVX (2008), the first with AVX (2011), AVX2 and FMA (2013), a
# Skylake server (AVX-512, which qemu 7.2 does not emulate: masked), an AMD EPYC.
MODELS = ("Nehalem", "SandyBridge", "Haswell", "Skylake-Server", "EPYC")
EMULATOR = "qemu-x86_64"


def fail(message):
    """It cannot run here: one line, exit 2."""
    print(f"cpus.py: {message}", file=sys.stderr)
    sys.exit(2)


def model_features(model):
    """The CPU features linreg sees under `model`, or exit 2 with qemu's one line."""
    # linreg.compat alone (not linreg, which would import mxnet): loaded from its file.
    code = ("import importlib.util as u, json; s = u.spec_from_file_location('c', %r); m = u.module_from_spec(s); "
            "s.loader.exec_module(m); print(json.dumps(sorted(m.cpu_features() or [])))" % compat.__file__)
    proc = subprocess.run([EMULATOR, "-cpu", model, sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
        fail(f"{EMULATOR} -cpu {model}: {lines[-1]}")
    return set(json.loads(proc.stdout))


def judge(native, emulated, features):
    """What is wrong with an emulated record against the native one, a phrase each."""
    wrong = []
    for module_args, ours, theirs in zip(check.RUNS, emulated["runs"], native["runs"]):
        name = " ".join(module_args)
        if isinstance(ours, str):
            expected = module_args[0] in compat.BLAS_MODULES and "avx" not in features
            if not (expected and ours.startswith("exit 2: ") and "no AVX" in ours):
                wrong.append(f"{name} failed: {ours}")
        elif "avx" not in features and module_args[0] in compat.BLAS_MODULES:
            wrong.append(f"{name} ran without AVX (it was to refuse in one line)")
        elif isinstance(theirs, str):
            wrong.append(f"{name} has no native run to compare with: {theirs}")
        else:
            bad = [key for key in (*check.EXACT, "ols_w", "ols_b") if ours[key] != theirs[key]]
            if bad:
                wrong.append(f"{name} differs in {', '.join(bad)}")
    return wrong


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated qemu CPU models (default: {','.join(MODELS)})")
    args = parser.parse_args(argv)
    if shutil.which(EMULATOR) is None:
        fail(f"{EMULATOR} is not installed: apt install qemu-user (Debian/Ubuntu)")
    models = [m for m in args.models.split(",") if m]
    if not models:
        fail("--models names no CPU model")
    features = {model: model_features(model) for model in models}  # every model checked before the long runs
    native = check.measure(sys.executable)
    refused = [r for r in native["runs"] if isinstance(r, str)]
    if refused:
        fail(f"natively: {refused[0]}")
    print(f"native: {check.describe(native)}; CPU {' '.join(sorted(compat.cpu_features() or ['unknown']))}")
    failed = False
    for model in models:
        emulated = check.measure(sys.executable, prefix=(EMULATOR, "-cpu", model))
        wrong = judge(native, emulated, features[model])
        failed |= bool(wrong)
        refusal = ("; scratch refused: no AVX" if any(isinstance(r, str) for r in emulated["runs"])
                   and not wrong else "")
        print(f"{model:15} CPU {' '.join(sorted(features[model])):32} "
              + ("; ".join(wrong) if wrong else "same numbers to the bit" + refusal))
    if failed:
        sys.exit("cpus.py: the CPUs disagree")
    print(f"same numbers natively and on {len(models)} emulated CPUs")


if __name__ == "__main__":
    main()

"""`python -m linreg`: which command to run, since the package is several.

    $ python -m linreg
"""

import sys

COMMANDS = (
    ("linreg.scratch", "train the from-scratch half of the tutorial"),
    ("linreg.gluon", "train the Gluon half (--fast, --ctx, --kvstore dist_*)"),
    ("linreg.predict", "print y_hat = X w + b with saved parameters"),
    ("linreg.launch", "run a command as a parameter-server cluster on this machine"),
    ("linreg.recipe", "print the DMLC_* variables of one process of a cluster"),
    ("linreg.fence", "admit only a cluster's hosts to its ports on this host (nftables)"),
    ("linreg.check", "say whether this install gives the reference numbers, and if not why"),
)


def main(argv=None):
    """Print the commands; exit 0 when asked with --help, else 2 (no command given)."""
    argv = sys.argv[1:] if argv is None else argv
    asked = argv in (["-h"], ["--help"])
    text = "usage: python -m linreg.COMMAND [--help]\n\ncommands:\n" + "".join(
        f"  python -m {name:15} {what}\n" for name, what in COMMANDS)
    (sys.stdout if asked else sys.stderr).write(text)
    sys.exit(0 if asked else 2)


if __name__ == "__main__":
    main()

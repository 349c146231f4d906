"""Train both halves with one seed and draw them side by side.

    $ .venv/bin/python scripts/compare.py            # writes docs/comparison.png

The figure at the top of the README; run this to regenerate it.
"""

import argparse
import os

from linreg import gluon, plots, scratch
from linreg.config import GLUON, SCRATCH

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SCRATCH.seed,
                        help=f"seed of both runs (default: {SCRATCH.seed})")
    # Not docs/comparison.png, the README's tracked figure: --out docs/comparison.png renews it.
    parser.add_argument("--out", default=os.path.join("plots", "comparison.png"),
                        help="the PNG to write (default: plots/comparison.png)")
    args = parser.parse_args(argv)
    results = [scratch.train(SCRATCH.replace(seed=args.seed)),
               gluon.train(GLUON.replace(seed=args.seed))]
    fig = plots.draw_comparison(plots.new_figure(size=(12.8, 4.8)), results)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    plots.save(fig, args.out)
    print(args.out)


if __name__ == "__main__":
    main()

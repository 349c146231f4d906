"""Linear regression in Apache MXNet, from scratch and with Gluon.

    $ python -m linreg.scratch
    $ python -m linreg.gluon --lr 0.03
"""

__version__ = "0.1.0"

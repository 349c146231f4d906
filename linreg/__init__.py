"""Linear regression in Apache MXNet, from scratch and with Gluon.

    $ python -m linreg.scratch
    $ python -m linreg.gluon --lr 0.03
"""

from . import compat

# Before any module of linreg imports mxnet: restore the numpy names mxnet
# 1.9.1 still reads (see linreg.compat). The one thing done at import time.
compat.load_mxnet()

__version__ = "0.1.0"

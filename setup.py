from setuptools import setup

setup(
    name="linreg",
    version="0.1.0",
    description="Linear regression in Apache MXNet, from scratch and with Gluon",
    packages=["linreg"],
    python_requires="~=3.11.0",  # the interpreter this was verified on
    install_requires=[
        "mxnet==1.9.1",  # the last release
        "numpy==1.23.5",  # mxnet 1.9.1 uses np.bool, removed in numpy 1.24
        "matplotlib==3.10.9",  # the newest that accepts numpy 1.23.5
    ],
    extras_require={"test": ["pytest>=7", "hypothesis>=6"]},
)

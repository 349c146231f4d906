import os

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def pins():
    """The requirement lines of pins.txt: numpy and matplotlib, one per Python version range."""
    with open(os.path.join(HERE, "pins.txt")) as f:
        return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]


def readme():
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        return f.read()


setup(
    name="linreg",
    version="0.1.0",
    description="Linear regression in Apache MXNet, from scratch and with Gluon",
    long_description=readme(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",  # as MXNet and d2l
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Programming Language :: Python :: 3.14",
        "Programming Language :: Python :: 3.15",
        "Operating System :: POSIX :: Linux",
        "Intended Audience :: Education",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    packages=["linreg"],
    package_data={"linreg": ["reference.json"]},  # linreg.check's seed-0 record
    python_requires=">=3.11,<3.16",  # every CPython with upstream support, each tested; mxnet 1.9.1 is pure ctypes
    install_requires=[
        "mxnet==1.9.1",  # the last release
        *pins(),  # numpy, and on 3.13+ beyond mxnet's numpy<2: install with uv's --override
        'setuptools; python_version >= "3.12"',  # mxnet imports distutils, gone from 3.12
    ],
    extras_require={
        # prysk runs the shell sessions in README.md and docs/; nbclient and
        # ipykernel run the notebook; xdist runs the suite on every core.
        "test": ["pytest>=7", "pytest-xdist>=3", "hypothesis>=6", "prysk>=0.20", "nbclient>=0.10",
                 "ipykernel>=6"],
    },
)

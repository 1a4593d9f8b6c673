"""The installed package's version, from its metadata (one home: pyproject.toml's ``version``).

Modules import it from here rather than from the ``sparecast`` package, whose ``__init__``
imports every layer: a module importing the root package would depend on all layers above it."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("sparecast")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

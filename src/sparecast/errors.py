"""Errors raised by sparecast. Every message names what is wrong and how to fix it."""

from __future__ import annotations

__all__ = [
    "SparecastError",
    "DataValidationError",
    "SourceError",
    "ConfigError",
    "MethodError",
    "OutputError",
    "StoreError",
    "StoreUnavailable",
    "CacheUnavailable",
    "LoopManagedError",
]


class SparecastError(Exception):
    """Base class of every error sparecast raises on purpose."""


class DataValidationError(SparecastError):
    """Input rows were rejected (in strict mode) or the input cannot be used at all."""


class SourceError(SparecastError):
    """A data source (database URL, file) cannot be read or does not have the expected tables."""


class ConfigError(SparecastError):
    """The configuration file or a parameter value is invalid."""


class MethodError(SparecastError):
    """A forecasting method name is unknown or its parameters are invalid."""


class OutputError(SparecastError):
    """The output directory cannot be created or written."""


class StoreError(SparecastError):
    """The forecast history store refused a request (bad argument, missing schema, bad data)."""


class StoreUnavailable(StoreError):
    """The forecast history database cannot be reached (down, refused, timed out)."""


class CacheUnavailable(SparecastError):
    """The forecast cache (Redis) cannot be reached; callers treat it as a miss."""


class LoopManagedError(SparecastError):
    """The output directory is served by the production loop (its store has a champion): a
    plain run there would not be served; challengers go through ``sparecast pipeline``."""

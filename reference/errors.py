"""Errors a user can cause (bad data, bad config, missing files).

The CLI catches every :class:`ShakyoError` at the edge and prints its message as
one line on stderr with exit code 2 (no traceback). Bugs in our own code are
not ``ShakyoError`` and still raise with a full traceback.
"""

from __future__ import annotations


class ShakyoError(Exception):
    """Base class of user-caused errors. The message must name the file or key and the fix."""


class DataError(ShakyoError):
    """A record, tile or dataset folder is missing, malformed or inconsistent."""


class ConfigError(ShakyoError):
    """A config key is unknown, has the wrong type or an invalid value."""


class WeightsError(ShakyoError):
    """A checkpoint is missing, cannot be read, or does not fit the model."""


class CloudError(ShakyoError):
    """A cloud plan, a key or a call to Vast or Kaggle failed in a way the user can fix."""

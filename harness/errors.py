"""The exception every user mistake raises: a bad config, bad data, a bad path, a busy run directory.

Every console script prints a :class:`UserError` as one line (what, where, how to fix) on stderr
and exits 2 (:mod:`harness.entry`); any other exception is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave; the message names what, where and how to fix it."""


class ConfigError(UserError, ValueError):
    """A config value out of its range, a missing required key, or keys that contradict each other."""


class DataError(UserError, ValueError):
    """Malformed or missing input data: the message names file, line/record and field."""


class ModelPathError(UserError, ValueError):
    """A model path that does not exist, is not a checkpoint folder, or holds damaged weights."""


class RunLockedError(UserError):
    """Another live process is writing the run directory."""


class ResumeMismatchError(ConfigError):
    """``resume=true`` with a config that differs from the recorded one in keys that affect results."""

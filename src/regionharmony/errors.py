"""Errors a user can cause. `regionharmony` prints their message as one line and exits 1."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the input (a file, a parameter, a dataset): the message says what and where."""


class DataError(UserError, ValueError):
    """A dataset root, list or file that cannot be used; the message names the file."""


class ConfigError(UserError, ValueError):
    """A parameter that cannot be used; the message names the file, the key and what is allowed."""


class CheckpointError(UserError):
    """A model directory or checkpoint that cannot be loaded; the message names the file."""


class HarmonizeError(UserError, ValueError):
    """A composite, mask, model or output that cannot be used; the message names it."""


class Interrupted(Exception):
    """Ctrl-C (SIGINT): `regionharmony` prints the message (what was kept, how to go on) as one
    line and exits 130."""

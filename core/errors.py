"""The one error type a user's settings raise, wherever they are checked (config rules, registries,
networks, data, optimizers, losses): ``train()`` and the sweep checks turn it, and only it, into a
one-line message and exit status 2, so any other exception is a bug and keeps its traceback."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad config value; the message is one line naming the key, the value and what is accepted."""

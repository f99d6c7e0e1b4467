"""A name → factory registry with info records, shared by models, datasets, optimizers,
schedulers and losses.

Names are lower-case; an unknown name raises an error that lists the valid ones (timm's optimizer
factory is the model, with the list added). Each entry carries an ``info`` dict of capability
flags (what a dataset's task is, which hyperparameters an optimizer accepts, ...).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from core.errors import ConfigError


class UnknownNameError(ConfigError):
    """An unknown registry name; the message lists the valid names."""


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    info: dict[str, Any] = field(default_factory=dict)


class Registry:
    """``register`` (decorator), ``list``, ``get``, ``create``, ``partial``; e.g. ``OPTIMIZERS.create("adam", params, lr=1e-3)``."""

    def __init__(self, kind: str, key: str | None = None):
        self.kind = kind  # what the names are, used in error messages ("optimizer", "model", ...)
        self.key = key or kind  # the config section of an entry's hyperparameters, for error messages
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, **info: Any) -> Callable[[Callable], Callable]:
        key = name.lower()
        if key != name or not key:
            raise ValueError(f"{self.kind} names are non-empty lower-case, got {name!r}")

        def add(factory: Callable) -> Callable:
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = Entry(key, factory, dict(info))
            return factory

        return add

    def list(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str, key: str | None = None) -> Entry:
        """The entry named ``name``; ``key``, the config key it came from, is named in the error."""
        if not isinstance(name, str) or name.lower() not in self._entries:
            valid = ", ".join(self.list())
            raise UnknownNameError(
                f"{key}={name!r}: unknown {self.kind}; valid: {valid}" if key else f"unknown {self.kind} {name!r}; valid: {valid}"
            )
        return self._entries[name.lower()]

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name).factory(*args, **kwargs)

    def partial(self, name: str, **hparams: Any) -> functools.partial:
        """The entry's factory with ``hparams`` bound, after checking them against the entry's
        ``accepts`` info (when it declares one): an override it does not take is an error."""
        entry = self.get(name)
        accepted = entry.info.get("accepts")
        if accepted is not None:
            for key in hparams:
                if key not in accepted:
                    raise ConfigError(
                        f"{self.key}.{key}: not accepted by {self.kind} {entry.name!r}; accepted: {', '.join(accepted) or 'nothing'}"
                    )
        return functools.partial(entry.factory, **hparams)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[k] for k in self.list())

    def __len__(self) -> int:
        return len(self._entries)

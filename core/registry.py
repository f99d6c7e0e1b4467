"""A name → factory registry with info records, shared by models, datasets, optimizers,
schedulers and losses.

Names are lower-case; an unknown name raises an error that lists the valid ones (timm's optimizer
factory is the model, with the list added). Each entry carries an ``info`` dict of capability
flags (what a dataset's task is, which hyperparameters an optimizer accepts, ...).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from core.errors import ConfigError
from core.rules import Rule, check_all


class UnknownNameError(ConfigError):
    """An unknown registry name; the message lists the valid names."""


def _kind_of(default: Any) -> tuple[str, Callable[[Any], bool]] | None:
    if isinstance(default, bool):
        return "true or false", lambda v: isinstance(v, bool)
    if isinstance(default, int):
        return "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
    if isinstance(default, float):
        return "a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if isinstance(default, str):
        return "a string", lambda v: isinstance(v, str)
    if isinstance(default, (list, tuple)):
        return "a list", lambda v: isinstance(v, (list, tuple))
    return None


def check_types(factory: Callable[..., Any], given: Mapping[str, Any], section: str) -> None:
    """Each given keyword of the kind of the factory's default for it (an integer where the default
    is an integer, a list where it is a list, ...), so a value of the wrong type is a one-line error
    naming the key rather than a TypeError deep inside the factory. Keys without a default, or with
    a None default, are not checked here."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    for key, value in given.items():
        param = params.get(key)
        if param is None or value is None or param.default is inspect.Parameter.empty or param.default is None:
            continue
        kind = _kind_of(param.default)
        if kind is not None and not kind[1](value):
            raise ConfigError(f"{section}.{key}={value!r}: must be {kind[0]} (the default is {param.default!r})")


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    info: dict[str, Any] = field(default_factory=dict)


class Registry:
    """``register`` (decorator), ``list``, ``get``, ``create``, ``partial``; e.g. ``OPTIMIZERS.create("adam", params, lr=1e-3)``."""

    def __init__(self, kind: str, key: str | None = None, rules: Mapping[str, Rule] | None = None):
        self.kind = kind  # what the names are, used in error messages ("optimizer", "model", ...)
        self.key = key or kind  # the config section of an entry's hyperparameters, for error messages
        self.rules = dict(rules or {})  # hyperparameter → its rule (core/rules.py), checked by ``partial``
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

    def partial(self, name: str, section: str | None = None, /, **hparams: Any) -> functools.partial:
        """The entry's factory with ``hparams`` bound, after checking them against the entry's
        ``accepts`` info (when it declares one) and the registry's rules: an override it does not
        take is an error, naming the key under ``section`` (the registry's own config section by
        default). ``name`` and ``section`` are positional only, so no hyperparameter can take their place."""
        entry = self.get(name)
        section = section or self.key
        accepted = entry.info.get("accepts")
        if accepted is not None:
            for key in hparams:
                if key not in accepted:
                    raise ConfigError(
                        f"{section}.{key}: not accepted by {self.kind} {entry.name!r}; accepted: {', '.join(accepted) or 'nothing'}"
                    )
        check_all(self.rules, hparams, section)
        check_types(entry.factory, hparams, section)
        return functools.partial(entry.factory, **hparams)

    def in_order(self) -> list[Entry]:
        """The entries in the order they were registered (iteration is alphabetical)."""
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[k] for k in self.list())

    def __len__(self) -> int:
        return len(self._entries)

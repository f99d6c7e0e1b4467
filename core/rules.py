"""Rules for config values, each a function ``value -> None`` (fine) or what is accepted (the value
breaks it). A component defines the rules of its own keys once (``RULES`` beside its constructor);
the constructor and the config check before training both apply that one definition, through
``check``, so the message is the same wherever a bad value is caught:
``optimizer.lr=-1: must be a number > 0``."""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Mapping, Optional

from core.errors import ConfigError

Rule = Callable[[Any], Optional[str]]


def _is_number(v: Any) -> bool:
    """A finite real number (nan and inf are refused: a rule's range cannot hold them)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def number(lo: Optional[float] = None, hi: Optional[float] = None, lo_open=False, hi_open=False, optional=False, integer=False) -> Rule:
    """A check for a number in a range; returns what is accepted when the value fails it."""
    lb = "" if lo is None else (f"> {lo}" if lo_open else f">= {lo}")
    ub = "" if hi is None else (f"< {hi}" if hi_open else f"<= {hi}")
    if lo is not None and hi is not None:
        rng = f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    else:
        rng = lb or ub
    accepted = f"{'an integer' if integer else 'a number'}{' ' + rng if rng else ''}{' or null' if optional else ''}"

    def rule(v: Any) -> Optional[str]:
        if v is None:
            return None if optional else accepted
        if not (is_int(v) if integer else _is_number(v)):
            return accepted
        if lo is not None and (v <= lo if lo_open else v < lo):
            return accepted
        if hi is not None and (v >= hi if hi_open else v > hi):
            return accepted
        return None

    return rule


def one_of(*choices: Any) -> Rule:
    return lambda v: None if v in choices else f"one of {', '.join(map(str, choices))}"


def boolean(v: Any) -> Optional[str]:
    return None if isinstance(v, bool) else "true or false"


def optional_boolean(v: Any) -> Optional[str]:
    return None if v is None or isinstance(v, bool) else "true, false or null"


fraction = number(0, 1, hi_open=True)


def fmt(v: Any) -> str:
    """A value as the command line writes it (null, true/false; strings quoted as Python does)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    return repr(v) if isinstance(v, str) else str(v)


def check(key: str, value: Any, rule: Rule) -> None:
    """Raise ``ConfigError`` naming ``key``, ``value`` and what is accepted when ``value`` breaks ``rule``."""
    accepted = rule(value)
    if accepted is not None:
        raise ConfigError(f"{key}={fmt(value)}: must be {accepted}")


def check_all(rules: Mapping[str, Rule], values: Mapping[str, Any], section: str = "") -> None:
    """``check`` each of ``values`` that has a rule in ``rules`` (keyed by the key within its
    section); the message names ``section.key``."""
    for key, value in values.items():
        if key in rules:
            check(f"{section}.{key}" if section else key, value, rules[key])


def under(section: str, rules: Mapping[str, Rule]) -> dict[str, Rule]:
    """A component's rules keyed by their full config keys (``lr`` → ``optimizer.lr``)."""
    return {f"{section}.{key}": rule for key, rule in rules.items()}

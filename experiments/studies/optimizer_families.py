"""The optimizer families the optimizer study groups by, read from each optimizer entry's
``family`` (``lightning_modules/optimizers.py``): a new optimizer joins its family's panels and
claims without an edit here."""

from __future__ import annotations

from lightning_modules.optimizers import FAMILY_TITLES, OPTIMIZERS


def members(family: str, wrappers: bool = True) -> tuple[str, ...]:
    """The optimizers of ``family`` in registration order (the figures' order); without the
    wrappers (SAM) when ``wrappers`` is false."""
    return tuple(e.name for e in OPTIMIZERS.in_order() if e.info.get("family") == family and (wrappers or not e.info.get("wraps")))


#: panel title → optimizers, for the figures
FAMILIES = {title: members(family) for family, title in FAMILY_TITLES.items()}
SGD_TYPE = members("sgd", wrappers=False)  # plain SGD and its momentum variants
MOMENTUM = tuple(n for n in SGD_TYPE if n != "sgd")
ADAM_TYPE = members("adam")
ADAPTIVE = members("adaptive") + ADAM_TYPE  # a step size per parameter

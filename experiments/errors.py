"""One-line messages for configuration errors, whether Hydra, OmegaConf or our checks raised them."""

from __future__ import annotations

import re
from typing import Optional

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

from core.errors import ConfigError


class ConfigExit(SystemExit):
    """Ends the process with ``code`` (2: bad configuration, 3: training failed, 4: stopped by a
    signal) and ``message`` (one line; several for a sweep, one per bad job). A SystemExit passes
    through Hydra's job runner and its callback notifier untouched (they catch Exception only), so
    no traceback or job banner is printed."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(code)
        self.message, self.code = message, code


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def config_error_message(exc: BaseException) -> Optional[str]:
    """The one-line message for a configuration error, or None for anything else (a real bug)."""
    if isinstance(exc, ConfigError):
        return _one_line(exc)
    if isinstance(exc, MissingConfigException) and exc.options is not None:
        group = (exc.missing_cfg_file or "").rsplit("/", 1)
        if len(group) == 2:
            return f"{group[0]}={group[1]}: unknown option; valid: {', '.join(sorted(exc.options))}"
        return _one_line(exc)
    if isinstance(exc, OverrideParseException):
        return _one_line(exc)
    if isinstance(exc, ConfigCompositionException):
        cause = exc.__cause__
        if isinstance(cause, OmegaConfBaseException) and cause.full_key:
            key = cause.full_key
            parent = getattr(cause, "parent_node", None)
            keys = sorted(str(k) for k in parent.keys() if k != "hydra") if parent is not None else []
            section = key.rsplit(".", 1)[0] if "." in key else "the top level"
            appended = re.search(r"use \+(\S+)", str(exc))  # Hydra's hint carries the override as typed
            typed = appended.group(1) if appended else f"{key}=..."
            accepted = f"; keys under {section}: {', '.join(keys)}" if keys else ""
            return f"{typed}: unknown key{accepted} (to add a new key: +{typed})"
        return _one_line(exc)
    if isinstance(exc, OmegaConfBaseException):
        return _one_line(exc)
    return None

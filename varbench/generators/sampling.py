"""Sampling settings: the zoo's defaults plus the user's overrides, checked by one rule for every model family.

Each family has one frozen dataclass with explicit "off" values (``VarSampling``, ``RasterSampling``): top-k 0 and
top-p 0 are off everywhere; a top-k at or above the vocabulary and a top-p of 1 keep every token, so they are stored
as off.  The CLI, the builders and the speed study all go through ``resolve``, before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import math

from varbench.errors import VarbenchError

OPTIONS = ("cfg", "top_k", "top_p", "more_smooth", "temperature", "cfg_interval")  # settable from the command line


def resolve(spec, overrides: dict | None = None):
    """``spec.sampling`` with ``overrides`` (option name -> value; None = not given) applied and checked."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    base = spec.sampling
    if base is None:
        if given:
            raise VarbenchError(f"--{_flag(next(iter(given)))} does not apply to {spec.name} (it has no model and takes "
                                "no sampling options); drop it")
        return None
    fields = {f.name for f in dataclasses.fields(base)}
    for key in given:
        if key not in fields or key not in OPTIONS:
            raise VarbenchError(f"--{_flag(key)} does not apply to {spec.name} ({spec.family} models take "
                                f"{', '.join('--' + _flag(k) for k in OPTIONS if k in fields)})")
    settings = dataclasses.replace(base, **given)
    check(settings)
    return settings


def check(settings) -> None:
    """One line for the first bad value (the same rule for every family)."""
    values = dataclasses.asdict(settings)
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if key in ("more_smooth", "greedy") and isinstance(value, bool):
                continue
            raise VarbenchError(f"--{_flag(key)} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise VarbenchError(f"--{_flag(key)} must be a finite number, got {value}")
    if values["cfg"] < 0:
        raise VarbenchError(f"--cfg must be >= 0, got {values['cfg']}")
    if not isinstance(values["top_k"], int) or isinstance(values["top_k"], bool) or values["top_k"] < 0:
        raise VarbenchError(f"--top-k must be an integer >= 0 (0 = off), got {values['top_k']}")
    if not 0 <= values["top_p"] <= 1:
        raise VarbenchError(f"--top-p must be in [0, 1] (0 = off), got {values['top_p']}")
    if "temperature" in values and not values["temperature"] > 0:
        raise VarbenchError(f"--temperature must be > 0, got {values['temperature']}")
    if "cfg_interval" in values and values["cfg_interval"] < -1:
        raise VarbenchError(f"--cfg-interval must be -1 (guide every token) or >= 0, got {values['cfg_interval']}")


def effective(settings, vocab_size: int):
    """The same sampling with no-op filters written as off: top-k >= vocabulary and top-p 1 keep every token."""
    changes = {}
    if settings.top_k >= vocab_size:
        changes["top_k"] = 0
    if settings.top_p >= 1:
        changes["top_p"] = 0.0
    return dataclasses.replace(settings, **changes) if changes else settings


def _flag(key: str) -> str:
    return key.replace("_", "-")

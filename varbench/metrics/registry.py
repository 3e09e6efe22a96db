"""Every metric key varbench reports: its direction, label, display format, group and how it is requested.

The one list of metric keys: ``varbench fid --metrics``, the result schema, ``report`` and ``compare`` all derive
theirs from here.  Keys are plain constants (``fid``, ``is_mean``).  ``spread`` metrics (a std over splits or
subsets) describe noise: they are shown, but ``compare`` gates them only when asked.  ``tolerance`` is the default
allowed worsening of ``compare`` (relative to the baseline value): small enough that a real change fails, large
enough that float noise between two faithful runs on one machine passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from varbench.errors import unknown_name


@dataclass(frozen=True)
class MetricSpec:
    key: str
    higher_is_better: bool
    label: str
    fmt: str  # format spec for tables ("peak_mem_bytes" is shown in MiB)
    group: str  # "quality" | "generate" | "speed"
    requested_as: str | None = None  # the --metrics name that computes it (fid, sfid, is, pr, kid)
    spread: bool = False  # a standard deviation: not gated by default
    tolerance: float = 1e-4  # default allowed relative worsening in compare
    aliases: tuple[str, ...] = ()
    published: bool = False  # papers publish it (a column of the published tables)


ADM_SUITE = ("fid", "sfid", "is", "pr", "kid")  # --metrics names: what ADM's evaluator prints (the default)
DINOV2_METRICS = ("fd_dinov2", "dc_dinov2")  # --metrics names computed on DINOv2 features

METRICS: dict[str, MetricSpec] = {}
_ALIASES: dict[str, str] = {}


def register(spec: MetricSpec) -> MetricSpec:
    if spec.key in METRICS:
        raise ValueError(f"metric {spec.key!r} registered twice")
    METRICS[spec.key] = spec
    for alias in spec.aliases:
        if alias in _ALIASES or alias in METRICS:
            raise ValueError(f"metric alias {alias!r} registered twice")
        _ALIASES[alias] = spec.key
    return spec


def get(key: str) -> MetricSpec:
    if key not in METRICS:
        raise unknown_name("metric", key, METRICS)
    return METRICS[key]


def resolve(name: str) -> str:
    """A metric key from a user's spelling: a key or an alias (``is`` -> ``is_mean``); unknown names list matches."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in METRICS:
        raise unknown_name("metric", name, list(METRICS) + list(_ALIASES))
    return key


def keys(group: str | None = None) -> tuple[str, ...]:
    return tuple(k for k, s in METRICS.items() if group is None or s.group == group)


def requestable() -> dict[str, tuple[str, ...]]:
    """``--metrics`` name -> the result keys it computes, in registry order."""
    out: dict[str, tuple[str, ...]] = {}
    for spec in METRICS.values():
        if spec.requested_as:
            out[spec.requested_as] = out.get(spec.requested_as, ()) + (spec.key,)
    return out


def published_keys() -> tuple[str, ...]:
    return tuple(k for k, s in METRICS.items() if s.published)


def _quality(key, higher, label, fmt, requested_as, **kw):
    register(MetricSpec(key, higher, label, fmt, "quality", requested_as, **kw))


_quality("fid", False, "FID", ".3f", "fid", published=True)
_quality("sfid", False, "sFID", ".3f", "sfid")
_quality("is_mean", True, "Inception Score", ".2f", "is", aliases=("is", "inception_score"), published=True)
_quality("is_std", False, "IS std over splits", ".3f", "is", spread=True)
_quality("precision", True, "Precision", ".4f", "pr", aliases=("prec",), published=True)
_quality("recall", True, "Recall", ".4f", "pr", aliases=("rec",), published=True)
_quality("kid_mean", False, "KID", ".5f", "kid", aliases=("kid",))
_quality("kid_std", False, "KID std over subsets", ".5f", "kid", spread=True)
_quality("density", True, "Density (k=5)", ".4f", "dc")
_quality("coverage", True, "Coverage (k=5)", ".4f", "dc")
_quality("fd_dinov2", False, "FD_DINOv2", ".2f", "fd_dinov2", aliases=("fd_dino",))
_quality("density_dinov2", True, "Density, DINOv2 (k=5)", ".4f", "dc_dinov2")
_quality("coverage_dinov2", True, "Coverage, DINOv2 (k=5)", ".4f", "dc_dinov2")
register(MetricSpec("images_per_second", True, "generation images per second", ".4g", "generate", tolerance=0.10,
                    aliases=("ips", "images_per_s")))
register(MetricSpec("latency_s", False, "seconds per decode call", ".4g", "speed", tolerance=0.10,
                    aliases=("latency",)))
register(MetricSpec("throughput_img_s", True, "decode images per second", ".4g", "speed", tolerance=0.10,
                    aliases=("throughput",)))
register(MetricSpec("peak_mem_bytes", False, "peak memory", ".1f", "speed", tolerance=0.10,
                    aliases=("mem", "memory", "peak_mem")))

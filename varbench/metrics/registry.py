"""Every metric key varbench reports, with the direction that counts as better.

``compare()`` uses ``higher_is_better`` to decide what a regression is.  Keys are plain constants.
"""

from __future__ import annotations

from dataclasses import dataclass

from varbench.errors import unknown_name


@dataclass(frozen=True)
class MetricSpec:
    key: str
    higher_is_better: bool
    label: str


METRICS: dict[str, MetricSpec] = {}


def register(key: str, higher_is_better: bool, label: str) -> MetricSpec:
    if key in METRICS:
        raise ValueError(f"metric {key!r} registered twice")
    METRICS[key] = spec = MetricSpec(key, higher_is_better, label)
    return spec


def get(key: str) -> MetricSpec:
    if key not in METRICS:
        raise unknown_name("metric", key, METRICS)
    return METRICS[key]


register("fid", False, "FID")
register("sfid", False, "sFID")
register("is_mean", True, "Inception Score")
register("is_std", False, "IS std over splits")
register("precision", True, "Precision")
register("recall", True, "Recall")
register("kid_mean", False, "KID")
register("kid_std", False, "KID std over subsets")
# speed study
register("latency_s", False, "seconds per generate call (of batch_size images)")
register("throughput_img_s", True, "images per second")
register("peak_mem_bytes", False, "peak memory")
register("images_per_second", True, "generation images per second")

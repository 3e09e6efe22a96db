"""``compare()``: the regression gate between two results of one kind, every metric judged by its registered direction.

Defaults (no ``--max-regression``): each metric may worsen by its registry ``tolerance`` (relative to the baseline:
1e-4 for quality metrics, which a faithful rerun on the same machine meets and a real change does not; 10% for
timings).  Spread metrics (``is_std``, ``kid_std``) are shown but gated only when named.  When both results record
the scored samples' sha256 and it differs on the same platform (torch, device and CPU kernels equal: the same float
arithmetic), the gate fails too ("samples" row): the generator's output changed, so the baseline must be updated on
purpose (``REGRESSION_UPDATE=1 .ci/regression``) or the change passed with ``allow_changed_samples``.  Across
platforms the bytes of float pipelines legitimately differ: then it is a warning and the metrics' tolerances decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from varbench.errors import VarbenchError
from varbench.metrics import registry
from varbench.report.tables import Table
from varbench.results import frame as frames
from varbench.results import read, schema


@dataclass(frozen=True)
class Threshold:
    value: float  # allowed worsening: absolute in metric units, or a fraction of |base| when relative
    relative: bool = False

    def limit(self, base: float) -> float:
        return self.value * abs(base) if self.relative else self.value

    def __str__(self) -> str:
        if math.isinf(self.value):
            return "not gated"
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


NOT_GATED = Threshold(math.inf)


def default_threshold(metric: str) -> Threshold:
    spec = registry.get(metric)
    return NOT_GATED if spec.spread else Threshold(spec.tolerance, relative=True)


def parse_thresholds(text: str | None) -> dict[str, Threshold]:
    """Parse ``fid=0.05,is=2,latency=10%,*=inf`` (``*`` sets every non-spread metric not named)."""
    out: dict[str, Threshold] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise VarbenchError(f"--max-regression item {item!r} is not METRIC=VALUE (e.g. fid=0.05 or latency=10%)")
        key = "*" if name.strip() == "*" else registry.resolve(name)
        value = value.strip()
        relative = value.endswith("%")
        try:
            number = float(value[:-1] if relative else value)
        except ValueError:
            raise VarbenchError(f"--max-regression {name.strip()}: {value!r} is not a number (e.g. 0.05 or 10%)") from None
        if math.isnan(number) or number < 0:
            raise VarbenchError(f"--max-regression {name.strip()}: the allowed worsening must be >= 0, got {value!r}")
        out[key] = Threshold(number / 100 if relative else number, relative)
    return out


@dataclass(frozen=True)
class Change:
    item: str  # what was measured: "" (the main metrics), a backend name, or a speed row "model mode 256px b8"
    metric: str  # a registry key, or "samples" (the sha256 of the scored samples)
    base: float | str | None
    new: float | str | None
    higher_is_better: bool | None
    threshold: Threshold
    status: str  # "regressed" | "improved" | "unchanged" | "within" | "missing" | "new" | "changed" | "allowed"

    @property
    def delta(self) -> float | None:
        if isinstance(self.base, (int, float)) and isinstance(self.new, (int, float)):
            return self.new - self.base
        return None

    @property
    def regressed(self) -> bool:
        return self.status in ("regressed", "missing", "changed")


@dataclass(frozen=True)
class Comparison:
    kind: str
    base_name: str
    new_name: str
    changes: tuple[Change, ...]
    warnings: tuple[str, ...]

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regressed]

    def table(self) -> Table:
        import pandas as pd

        recs = [{"item": c.item, "metric": c.metric,
                 "better": {True: "higher", False: "lower", None: "–"}[c.higher_is_better], "base": c.base,
                 "new": c.new, "delta": c.delta, "threshold": str(c.threshold), "status": c.status}
                for c in self.changes]
        headers = {"item": "item", "metric": "metric", "better": "better", "base": self.base_name, "new": self.new_name,
                   "delta": "Δ", "threshold": "allowed worsening", "status": "status"}
        return Table("compare", f"{self.kind}: {self.base_name} → {self.new_name}",
                     pd.DataFrame(recs, columns=list(headers)), headers, self.warnings)

    def to_json(self) -> dict:
        return {"schema": "varbench.compare", "schema_version": 2, "kind": self.kind, "base": self.base_name,
                "new": self.new_name, "regressed": bool(self.regressions), "warnings": list(self.warnings),
                "changes": self.table().records()}


def metric_items(result: schema.Result) -> dict[tuple[str, str], float | None]:
    """(item, metric) -> value for every registered metric a result holds, read at the schema's fixed paths."""
    res = result["results"]
    out: dict[tuple[str, str], float | None] = {}

    def take(item: str, values: dict) -> None:
        for k, v in values.items():
            if k in registry.METRICS and (v is None or isinstance(v, (int, float))) and not isinstance(v, bool):
                out[(item, k)] = None if v is None else float(v)

    if result["kind"] == "speed":
        for row in res["rows"]:
            take(f"{row['model']} {row['mode']} {row['resolution']}px b{row['batch_size']}",
                 {k: row.get(k) for k in registry.keys("speed")})
        return out
    take("", frames.metric_values(result))
    if result["kind"] == "fid":
        for name, values in sorted((res.get("backends") or {}).items()):
            if name != res.get("backend"):  # the primary backend is the main row already
                take(name, values)
    return out


def _status(base, new, higher: bool, thr: Threshold) -> str:
    if base is None and new is None:
        return "unchanged"
    if new is None or math.isnan(new):
        return "within" if math.isinf(thr.value) else "missing"
    if base is None or math.isnan(base):
        return "new"
    worse = (base - new) if higher else (new - base)
    if worse > thr.limit(base) + 1e-12 * max(1.0, abs(base)):
        return "regressed"
    if worse < 0:
        return "improved"
    return "unchanged" if worse == 0 else "within"


def compare(base: schema.Result, new: schema.Result, max_regression: dict[str, Threshold] | None = None, *,
            base_name: str = "base", new_name: str = "new", allow_changed_samples: bool = False) -> Comparison:
    """Every shared metric of two results of one kind; see the module docstring for the defaults."""
    base, new = read.validate(base, base_name), read.validate(new, new_name)
    if base["kind"] != new["kind"]:
        raise VarbenchError(f"cannot compare a {base['kind']!r} result ({base_name}) with a {new['kind']!r} result "
                            f"({new_name}); pass two results of the same kind")
    limits = dict(max_regression or {})
    star = limits.pop("*", None)
    b, n = metric_items(base), metric_items(new)
    if not b:
        raise VarbenchError(f"{base_name} holds no metrics to compare (kind {base['kind']!r})")
    changes = []
    for key in list(b) + [k for k in n if k not in b]:
        item, metric = key
        spec = registry.get(metric)
        thr = limits.get(metric) or (star if star is not None and not spec.spread else None) \
            or default_threshold(metric)
        changes.append(Change(item, metric, b.get(key), n.get(key), spec.higher_is_better, thr,
                              _status(b.get(key), n.get(key), spec.higher_is_better, thr)))
    warnings = config_warnings(base, new)
    sb, sn = (base["protocol"]["samples"] or {}).get("sha256"), (new["protocol"]["samples"] or {}).get("sha256")
    if sb and sn and sb != sn:
        if same_platform(base, new):
            changes.append(Change("", "samples", sb[:12], sn[:12], None, NOT_GATED,
                                  "allowed" if allow_changed_samples else "changed"))
        else:
            warnings.append("the scored samples differ (sha256) on another platform (torch, device or CPU kernels); "
                            "gated by the metrics' tolerances only")
    return Comparison(base["kind"], base_name, new_name, tuple(changes), tuple(warnings))


def same_platform(a: schema.Result, b: schema.Result) -> bool:
    from varbench.env import PLATFORM_KEYS

    return all(a["env"].get(k) is not None and a["env"].get(k) == b["env"].get(k) for k in PLATFORM_KEYS)


def _flatten(d, prefix: str = "") -> dict:
    if not isinstance(d, dict):
        return {prefix[:-1]: d}
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


_IGNORED = ("out", "path", "dir", "npz", "samples", "created", "device", "workers", "verbose", "inception_weights",
            "ref")


def config_warnings(base: schema.Result, new: schema.Result) -> list[str]:
    """Differences of protocol and config that make numbers incomparable (printed; they do not fail the gate)."""
    warn = []
    if base["random_weights"] != new["random_weights"]:
        warn.append(f"random_weights differ: {base['random_weights']} vs {new['random_weights']}")
    for section, d_base, d_new in (("protocol", base["protocol"], new["protocol"]),
                                   ("config", base["config"], new["config"])):
        fb, fn = _flatten(d_base), _flatten(d_new)
        diff = [k for k in sorted(set(fb) | set(fn)) if fb.get(k) != fn.get(k)
                and not any(part in _IGNORED or part.endswith("sha256") for part in k.split("."))]
        warn += [f"{section} {k}: {fb.get(k)!r} vs {fn.get(k)!r}" for k in diff[:8]]
        if len(diff) > 8:
            warn.append(f"... and {len(diff) - 8} more {section} differences")
    rb, rn = base["protocol"]["reference"], new["protocol"]["reference"]
    if rb and rn and (rb["source_sha256"], rb["extractor_id"]) != (rn["source_sha256"], rn["extractor_id"]):
        warn.append("the references differ (source or extractor): the numbers are not comparable")
    return warn

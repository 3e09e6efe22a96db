"""What ``varbench fid`` computes and how: the evaluation config, the set-size checks and the arithmetic record.

The default is the ADM evaluator's suite (FID, sFID, IS, precision/recall, KID) in ADM's arithmetic; density and
coverage (``dc``), FD_DINOv2 (``fd_dinov2``, EDM2's protocol) and density/coverage on DINOv2 features
(``dc_dinov2``) are opt-in, as are bootstrap intervals (``bootstrap`` replicates over the cached features).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from varbench.errors import VarbenchError
from varbench.evaluate.backends import BACKENDS
from varbench.metrics import density_coverage, fid as fid_metric, inception_score, kid, prec_recall, registry

BACKEND_CHOICES = BACKENDS + ("all",)
FID_DIMS = {"fid": 2048, "sfid": 2023}
AUDIT_CHOICES = ("adm", "none", "off")  # varbench.evaluate.audit protocols, or no audit
DINOV2_RESIZE = ("torch", "pil")  # EDM2's resize modes: torch bicubic + antialias (default), PIL bicubic (dgm-eval)


@dataclass(frozen=True)
class EvalConfig:
    metrics: tuple[str, ...] = registry.ADM_SUITE  # --metrics names; see registry.requestable()
    backend: str = "adm"  # adm | torch-fidelity | clean-fid | all
    batch_size: int = 32
    device: str = "cpu"
    dtype: str = "fp32"  # feature arithmetic: fp32 | fp64
    fid_method: str = "eig"  # eig (eigenvalue trace) | sqrtm (SciPy, ADM's literal code)
    is_splits: int | None = None  # None: ADM's consecutive chunks of 5,000; K: torch-fidelity's K splits
    is_seed: int = inception_score.SHUFFLE_SEED  # permutation of the order-robust IS
    pr_k: int = prec_recall.K
    pr_distance: str = prec_recall.ADM_DISTANCE  # fp16 (ADM's float16 arithmetic) | fp32 | fp64
    pr_block: int = prec_recall.BLOCK
    dc_k: int = density_coverage.K
    dc_distance: str = density_coverage.DISTANCE  # fp64 (prdc's float64 distances) | fp32 | fp16
    kid_subsets: int = kid.SUBSETS
    kid_subset_size: int = kid.SUBSET_SIZE
    kid_seed: int = kid.SEED
    dinov2_ref: str | None = None  # a reference built with --extractor dinov2 (needed by fd_dinov2 / dc_dinov2)
    dinov2_resize: str = "torch"  # torch | pil
    dinov2_heads: int | None = None  # None: width / 64, as released
    bootstrap: int = 0  # replicates of the bootstrap intervals (0: none)
    bootstrap_seed: int = 0
    feature_cache: bool = True  # reuse sample features computed before (keyed by content, extractor, dtype)
    audit: str = "adm"  # the sample-set audit before scoring: adm | none (its checks, lenient) | off

    def __post_init__(self):
        object.__setattr__(self, "metrics", tuple(self.metrics))
        requestable = registry.requestable()
        bad = [m for m in self.metrics if m not in requestable]
        if bad or not self.metrics:
            raise VarbenchError(f"unknown metrics {', '.join(bad) or '(none)'}; choose from {', '.join(requestable)}")
        if len(set(self.metrics)) != len(self.metrics):
            raise VarbenchError(f"--metrics has duplicates: {', '.join(self.metrics)}")
        checks = [
            (self.backend in BACKEND_CHOICES, f"--backend must be one of {', '.join(BACKEND_CHOICES)}"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.dtype in ("fp32", "fp64"), "--dtype must be fp32 or fp64"),
            (self.fid_method in fid_metric.METHODS, f"--fid-method must be one of {', '.join(fid_metric.METHODS)}"),
            (self.is_splits is None or self.is_splits >= 1, "--is-splits must be at least 1"),
            (self.pr_k >= 1, "--pr-k must be at least 1"),
            (self.pr_distance in prec_recall.DISTANCES, f"--pr-distance must be one of {prec_recall.DISTANCES}"),
            (self.dc_distance in prec_recall.DISTANCES, f"--dc-distance must be one of {prec_recall.DISTANCES}"),
            (self.dc_k >= 1, "--dc-k must be at least 1"),
            (self.pr_block >= 1, "the P&R block size must be at least 1"),
            (self.kid_subsets >= 1, "--kid-subsets must be at least 1"),
            (self.kid_subset_size >= 2, "--kid-subset-size must be at least 2"),
            (self.dinov2_resize in DINOV2_RESIZE, f"--dinov2-resize must be one of {', '.join(DINOV2_RESIZE)}"),
            (self.audit in AUDIT_CHOICES, f"--audit must be one of {', '.join(AUDIT_CHOICES)}"),
            (self.bootstrap == 0 or self.bootstrap >= 2, "--bootstrap needs at least 2 replicates (0: off)"),
            (not self.needs_dinov2 or self.dinov2_ref is not None,
             "fd_dinov2/dc_dinov2 need a DINOv2 reference: build one with `varbench ref build NAME --from DIR "
             "--extractor dinov2` and pass --dinov2-ref NAME"),
        ]
        for ok, msg in checks:
            if not ok:
                raise VarbenchError(msg)

    @property
    def backends(self) -> tuple[str, ...]:
        return BACKENDS if self.backend == "all" else (self.backend,)

    @property
    def needs_dinov2(self) -> bool:
        return any(m in registry.DINOV2_METRICS for m in self.metrics)

    @property
    def needs_inception(self) -> bool:
        return any(m not in registry.DINOV2_METRICS for m in self.metrics)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["metrics"] = list(self.metrics)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EvalConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise VarbenchError(f"unknown eval config keys: {', '.join(unknown)}")
        return cls(**d)


def required_counts(config: EvalConfig, n_samples: int, n_ref_features: int,
                    n_dinov2_features: int | None = None) -> list[str]:
    """Refuse metric requests the set sizes cannot support (before any feature work); return warnings."""
    warnings = []
    m = set(config.metrics)
    if m & {"fid", "sfid", "fd_dinov2"} and n_samples < 2:
        raise VarbenchError(f"Fréchet distances need at least 2 samples for a covariance, got {n_samples}")
    for key in sorted(m & {"fid", "sfid"}):
        if n_samples < FID_DIMS[key]:
            warnings.append(
                f"{key}: {n_samples} samples < {FID_DIMS[key]} feature dimensions: the covariance is rank-deficient "
                "and the value is strongly biased (the ADM protocol uses 50,000 samples)"
            )
    if "is" in m and config.is_splits is not None and n_samples < config.is_splits:
        raise VarbenchError(f"Inception Score with {config.is_splits} splits needs at least {config.is_splits} "
                            f"samples, got {n_samples} (lower --is-splits)")
    k_checks = [("pr", "precision/recall", config.pr_k, n_ref_features), ("dc", "density/coverage", config.dc_k,
                n_ref_features), ("dc_dinov2", "DINOv2 density/coverage", config.dc_k, n_dinov2_features)]
    for name, what_metric, k, n_ref in k_checks:
        if name not in m:
            continue
        for n, what in ((n_samples, "samples"), (n_ref or 0, "reference images")):
            if n <= k:
                raise VarbenchError(f"{what_metric} with k={k} needs more than {k} {what}, got {n}")
    if "kid" in m and min(n_samples, n_ref_features) < config.kid_subset_size:
        raise VarbenchError(
            f"KID subset size {config.kid_subset_size} is larger than the sets ({n_samples} samples, "
            f"{n_ref_features} reference images); lower --kid-subset-size or drop kid from --metrics"
        )
    return warnings


def arithmetic(config: EvalConfig) -> dict:
    """metric key -> the arithmetic it is computed with (recorded in every fid result)."""
    out = {}
    requested = registry.requestable()
    frechet = f"float64 statistics (np.cov), Frechet trace by {config.fid_method}"
    dc = (f"{config.dc_distance} squared distances, k={config.dc_k}, strict '<' (prdc's rule), reference radii, "
          f"blocks of {config.pr_block}")
    for name in config.metrics:
        text = {
            "fid": frechet,
            "sfid": frechet,
            "is": inception_score.split_rule(config.is_splits) + "; float64 log-softmax",
            "pr": (f"{config.pr_distance} squared distances"
                   + (" (ADM's float16 arithmetic; GPU summation order not reproduced)"
                      if config.pr_distance == prec_recall.ADM_DISTANCE else " (not ADM's float16 arithmetic)")
                   + f", k={config.pr_k}, D(reference, samples) blocks of {config.pr_block}"),
            "kid": f"float64 cubic polynomial kernel, {config.kid_subsets} subsets of {config.kid_subset_size}, "
                   f"seed {config.kid_seed}",
            "dc": dc + " (Inception pool3)",
            "fd_dinov2": f"EDM2: DINOv2 CLS features, {config.dinov2_resize} bicubic resize to 224; " + frechet,
            "dc_dinov2": dc + " (DINOv2 CLS features)",
        }[name]
        out.update({key: text for key in requested[name]})
    return out

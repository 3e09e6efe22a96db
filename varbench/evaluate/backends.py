"""Cross-check backends: the same images scored by torch-fidelity and by clean-fid, next to varbench's ADM numbers.

- ``torch-fidelity``: ``torch_fidelity.calculate_metrics`` on the same images and Inception weights; the reference
  enters through its cache (pool3 features, bias-free logits and FID statistics written under its cache names).
  Its own defaults otherwise: IS over a seeded shuffle, float32 FID mean, Euclidean cdist precision/recall.
- ``clean-fid``: clean-fid's legacy_tensorflow pipeline (``get_model_features``, ``frechet_distance`` with SciPy
  sqrtm, ``kernel_distance``) on the same images.  Its TorchScript Inception is used when present at
  ``/tmp/inception-2015-12-05.pt`` and the weights are the official ones; otherwise varbench's network is passed as
  clean-fid's custom feature extractor (its TorchScript file cannot be built with other weights).
Each returns ``(values by metric key, settings)``; their output is captured into the log, not printed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from varbench.evaluate.reference import ReferenceStats
from varbench.evaluate.samples import SampleSet
from varbench.features.base import POOL3

log = logging.getLogger(__name__)

BACKENDS = ("adm", "torch-fidelity", "clean-fid")
CLEANFID_TORCHSCRIPT = Path("/tmp/inception-2015-12-05.pt")  # where clean-fid keeps its model on Linux
_TF_KEYS = {
    "frechet_inception_distance": "fid",
    "inception_score_mean": "is_mean",
    "inception_score_std": "is_std",
    "kernel_inception_distance_mean": "kid_mean",
    "kernel_inception_distance_std": "kid_std",
    "precision": "precision",
    "recall": "recall",
}


def torch_fidelity(samples: SampleSet, ref: ReferenceStats, extractor, config):
    """torch-fidelity's ``calculate_metrics`` on the same images; the reference enters through its cache."""
    import torch
    import torch_fidelity
    from torch.utils.data import Dataset

    from varbench.features.inception import precise_float32

    wanted = {"isc": "is" in config.metrics, "fid": "fid" in config.metrics, "kid": "kid" in config.metrics,
              "prc": "pr" in config.metrics}
    info = {"version": torch_fidelity.__version__, "computes": [k for k, v in wanted.items() if v]}
    if not any(wanted.values()):
        return {}, {**info, "note": "torch-fidelity has none of the requested metrics (no sFID)"}

    class Images(Dataset):
        def __len__(self):
            return samples.n

        def __getitem__(self, i):
            return torch.from_numpy(np.ascontiguousarray(samples.image(i).transpose(2, 0, 1)))

    with tempfile.TemporaryDirectory(prefix="varbench-tf-") as cache_root, precise_float32():
        settings = torch_fidelity_settings(ref, extractor, config, cache_root)
        settings.update(input1=Images(), **wanted)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:
            got = torch_fidelity.calculate_metrics(**settings)
        _log_captured("torch-fidelity", out, err)
    values = {_TF_KEYS[k]: float(v) for k, v in got.items() if k in _TF_KEYS}
    info.update(seconds=time.perf_counter() - t0, samples_shuffle=True, rng_seed=config.kid_seed,
                save_cpu_ram=True, reference="our reference features/statistics through its cache (mu as float32)")
    if config.dtype == "fp64":
        info["note"] = "torch-fidelity 0.4.0 maps feature_extractor_internal_dtype='float64' to float32"
    return values, info


def torch_fidelity_settings(ref: ReferenceStats, extractor, config, cache_root) -> dict:
    """``calculate_metrics`` keyword arguments that score against ``ref``: its pool3 features, their bias-free
    logits and its FID statistics are written into ``cache_root`` under torch-fidelity's cache names for input2
    (which is then never read).  Metric switches and input1 are left to the caller."""
    import torch

    extractor_name = "inception-v3-compat"
    ref_name = "varbench-ref-" + ref.source_sha256[-16:]
    root = Path(cache_root)
    prefix = f"{ref_name}-{extractor_name}-features-"
    torch.save(torch.from_numpy(np.ascontiguousarray(ref.features, dtype=np.float32)), root / f"{prefix}2048.pt")
    torch.save(torch.from_numpy(extractor.logits_from_pool3(ref.features).astype(np.float32)),
               root / f"{prefix}logits_unbiased.pt")
    torch.save({"mu": ref.mu.astype(np.float32), "sigma": ref.sigma.astype(np.float64)},
               root / f"{ref_name}-{extractor_name}-stat-fid-2048.pt")
    return dict(
        input2=ref_name, input2_cache_name=ref_name, cache_root=str(cache_root), cache=True,
        cuda=str(config.device).startswith("cuda"), batch_size=config.batch_size,
        feature_extractor=extractor_name, feature_extractor_weights_path=extractor.weights_path,
        feature_extractor_internal_dtype="float64" if config.dtype == "fp64" else "float32",
        isc_splits=config.is_splits or 10, kid_subsets=config.kid_subsets, kid_subset_size=config.kid_subset_size,
        prc_neighborhood=config.pr_k, prc_batch_size=config.pr_block, rng_seed=config.kid_seed,
        save_cpu_ram=True, verbose=False,
    )


def clean_fid(samples: SampleSet, ref: ReferenceStats, extractor, config):
    """clean-fid's legacy_tensorflow feature pipeline and its FID/KID math on the same images."""
    import cleanfid
    import torch
    from cleanfid import fid as cfid

    from varbench.features.inception import precise_float32

    info: dict = {"version": getattr(cleanfid, "__version__", None) or _dist_version("clean-fid"),
                  "mode": "legacy_tensorflow"}
    wanted = [m for m in ("fid", "kid") if m in config.metrics]
    if not wanted:
        return {}, {**info, "note": "clean-fid computes only FID and KID"}
    device = torch.device(config.device)
    if CLEANFID_TORCHSCRIPT.is_file() and extractor.official:
        from cleanfid.features import build_feature_extractor

        model = build_feature_extractor("legacy_tensorflow", device=device, use_dataparallel=False)
        info["feature_model"] = f"clean-fid TorchScript {CLEANFID_TORCHSCRIPT}"
    else:
        def model(x):  # float NCHW in [0, 255] (uint8 values) -> pool3, through varbench's network
            arr = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            return torch.from_numpy(extractor.extract(arr)[POOL3].astype(np.float32))

        info["feature_model"] = (f"varbench Inception ({extractor.id}) as clean-fid's custom feature extractor: "
                                 f"its TorchScript model needs the official weights at {CLEANFID_TORCHSCRIPT}")
    batches = samples.batches(config.batch_size)

    def generator(z):  # clean-fid asks a generator for batches; hand it the samples in order
        batch = next(batches)
        return torch.from_numpy(batch).permute(0, 3, 1, 2).to(device=device, dtype=torch.float32)

    t0 = time.perf_counter()
    values = {}
    rng_devices = [device] if device.type == "cuda" else []
    with precise_float32(), torch.random.fork_rng(devices=rng_devices), \
            contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:
        feats = cfid.get_model_features(generator, model, mode="legacy_tensorflow", z_dim=1, num_gen=samples.n,
                                         batch_size=config.batch_size, device=device, verbose=False)
        if "fid" in wanted:
            mu, sigma = np.mean(feats, axis=0), np.cov(feats, rowvar=False)
            values["fid"] = float(cfid.frechet_distance(mu, sigma, ref.mu, ref.sigma))
        if "kid" in wanted:
            state = np.random.get_state()  # clean-fid draws subsets from the global RNG: seed it, then restore
            try:
                np.random.seed(config.kid_seed)
                # clean-fid's order is (reference, samples) and it draws the samples' subset first, as varbench does:
                # with the same seed both use the same subsets, so the values agree to rounding
                values["kid_mean"] = float(cfid.kernel_distance(
                    ref.features, feats, num_subsets=config.kid_subsets, max_subset_size=config.kid_subset_size))
            finally:
                np.random.set_state(state)
    _log_captured("clean-fid", out, err)
    info.update(seconds=time.perf_counter() - t0, kid_seed=config.kid_seed,
                note="no IS, sFID or precision/recall in clean-fid; KID without std")
    return values, info


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _log_captured(who: str, out: io.StringIO, err: io.StringIO) -> None:
    for line in (out.getvalue() + err.getvalue()).splitlines():
        if line.strip():
            log.info("%s: %s", who, line.strip())

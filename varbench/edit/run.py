"""``varbench edit IMAGES...``: edit the given images (one box, one task) into an output directory
(``varbench.edit.outdir``) and record a result of kind "edit"."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from varbench import files
from varbench.edit import outdir
from varbench.edit.editor import SEED_RULE, Editor
from varbench.edit.inputs import PREPROCESS_RULE, load_images
from varbench.edit.spec import BLANK_RULE, BOX_RULE, EditSpec, check
from varbench.errors import VarbenchError
from varbench.generate.plan import DEFAULT_BATCH_SIZE, RNG_MODES, sample_seed
from varbench.generate.rundir import MANIFEST, PNG_NAME, PNGS, RESULT, SAMPLES
from varbench.progress import Progress, ProgressEvent, no_progress

STAGE = "editing"


@dataclass(frozen=True)
class EditJob:
    out: Path
    images: tuple[str, ...]
    spec: EditSpec
    model: str  # zoo name or "custom_var"
    seed: int = 0
    rng: str = "per-sample"  # one of varbench.generate.plan.RNG_MODES
    batch_size: int = DEFAULT_BATCH_SIZE
    dtype: str = "fp32"
    device: str = "cpu"
    overwrite: bool = False
    weights: dict = field(default_factory=dict)  # role -> local checkpoint path (recorded)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        check_run_options(self.seed, self.rng, self.batch_size)

    def to_dict(self) -> dict:
        return {"out": str(self.out), "images": list(self.images), **self.spec.to_dict(), "model": self.model,
                "seed": self.seed, "rng": self.rng, "batch_size": self.batch_size, "dtype": self.dtype,
                "device": self.device, "weights": {k: str(v) for k, v in self.weights.items()}}


@dataclass(frozen=True)
class EditOutcome:
    out: Path
    samples: Path
    png_dir: Path
    num_images: int
    preprocessed: int  # images brought to the model's resolution by the validation transform
    seconds: float
    random_weights: bool
    result: dict


def check_run_options(seed: int, rng: str, batch_size: int) -> None:
    if rng not in RNG_MODES:
        raise VarbenchError(f"unknown --rng {rng!r}; use one of {', '.join(RNG_MODES)}")
    if not 0 <= seed < 1 << 63:
        raise VarbenchError(f"--seed must be in 0 .. 2**63-1, got {seed}")
    if batch_size < 1:
        raise VarbenchError(f"--batch-size must be at least 1, got {batch_size}")


def batch_seeds(rng: str, seed: int, start: int, stop: int, batch_index: int):
    """Per-sample: the seeds of images start..stop-1; official: the generator seed of batch ``batch_index``."""
    return seed + batch_index if rng == "official" else [sample_seed(seed, i) for i in range(start, stop)]


def all_seeds(rng: str, seed: int, n: int, batch_size: int) -> list[int]:
    """Per-sample: one seed per image; official: one generator seed per batch."""
    if rng == "official":
        return [seed + k for k in range(-(-n // batch_size))]
    return [sample_seed(seed, i) for i in range(n)]


def run(generator, job: EditJob, progress: Progress = no_progress) -> EditOutcome:

    t0 = time.perf_counter()
    check(job.spec, generator.var.cfg.patch_nums[-1], int(generator.num_classes))
    images, inputs = load_images(job.images, int(generator.resolution))
    editor = Editor(generator, job.spec)
    lock = files.DirLock(job.out, "edit")
    try:
        outdir.prepare(job.out, job.overwrite)
        manifest = _manifest(generator, job, editor, inputs)
        outdir.write_manifest(job.out, manifest)
        edited = _edit_all(editor, job, images, progress)
        labels = np.full(len(images), editor.label, dtype=np.int64)
        manifest["artefacts"] = {"samples_npz": save_samples(job.out / SAMPLES, edited, labels),
                                 "png": {"dir": PNGS, "count": len(edited), "name_format": PNG_NAME}}
        write_pngs(job.out / PNGS, edited)
        seconds = time.perf_counter() - t0
        manifest.update(status="complete", seconds=round(seconds, 3))
        outdir.write_manifest(job.out, manifest)
        result = _result(generator, job, editor, manifest, inputs, seconds)
        from varbench.results import schema

        schema.save(job.out / RESULT, result)
    finally:
        lock.release()
    return EditOutcome(out=job.out, samples=job.out / SAMPLES, png_dir=job.out / PNGS, num_images=len(edited),
                       preprocessed=sum(r.preprocessed for r in inputs), seconds=seconds,
                       random_weights=bool(generator.random_weights), result=result)


def _edit_all(editor: Editor, job: EditJob, images: np.ndarray, progress: Progress) -> np.ndarray:
    n, parts = len(images), []
    progress(ProgressEvent(STAGE, 0, n))
    for k, start in enumerate(range(0, n, job.batch_size)):
        stop = min(start + job.batch_size, n)
        out, _, _ = editor.edit(images[start:stop], job.rng, batch_seeds(job.rng, job.seed, start, stop, k))
        parts.append(out)
        progress(ProgressEvent(STAGE, stop, n))
    return np.concatenate(parts)


def save_samples(path: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    """``samples.npz`` as ``varbench generate`` writes it (arr_0, labels, indices; byte-stable); its record."""
    from varbench.evaluate.samples import array_sha256
    from varbench.generate.pack import write_npz

    indices = np.arange(len(images), dtype=np.int64)
    with files.open_write(path) as f:
        write_npz(f, [("arr_0", images.dtype, images.shape, iter([np.ascontiguousarray(images).tobytes()])),
                      ("labels", labels.dtype, labels.shape, iter([labels.tobytes()])),
                      ("indices", indices.dtype, indices.shape, iter([indices.tobytes()]))])
    return {"file": path.name, "sha256": files.sha256_file(path), "array_sha256": array_sha256(images),
            "arrays": {"arr_0": ["uint8", list(images.shape)], "labels": ["int64", [len(images)]],
                       "indices": ["int64", [len(images)]]}, "order": "input order"}


def write_pngs(png_dir: Path, images: np.ndarray) -> None:
    from PIL import Image

    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
        files.write_bytes(png_dir / PNG_NAME.format(index=i), buf.getvalue())


def _manifest(generator, job: EditJob, editor: Editor, inputs) -> dict:
    from varbench import env
    from varbench.generate.rundir import canonical, now
    from varbench.generate.run import pixel_rule
    from varbench.generators.protocol import model_info, sampling_record

    return {
        "status": "running", "mode": "images", "created": now(), "random_weights": bool(generator.random_weights),
        "inputs": [r.to_dict() for r in inputs], "preprocess_rule": PREPROCESS_RULE,
        "edit": editor.describe(), "box_rule": BOX_RULE, "blank_rule": BLANK_RULE if job.spec.no_leak else None,
        "model": {**model_info(generator), "describe": canonical(generator.describe()),
                  "weights": {k: str(v) for k, v in job.weights.items()}},
        "sampling": canonical(sampling_record(generator)), "seed": job.seed, "rng": job.rng, "seed_rule": SEED_RULE,
        "seeds": all_seeds(job.rng, job.seed, len(inputs), job.batch_size),
        "batch_size": job.batch_size, "dtype": job.dtype, "device": job.device, "uint8_rule": pixel_rule(generator),
        "env": env.collect(job.device), "job": job.to_dict(),
    }


def _result(generator, job: EditJob, editor: Editor, manifest: dict, inputs, seconds: float) -> dict:
    from varbench.results import schema
    from varbench.results.edit import EditResults, task_entry

    npz = manifest["artefacts"]["samples_npz"]
    res = int(generator.resolution)
    entry = task_entry(editor.describe(), label_rule=_label_rule(job.spec, editor.label), num_images=len(inputs),
                       samples_npz=str(job.out / SAMPLES), samples_sha256=npz["array_sha256"])
    preprocessed = sum(r.preprocessed for r in inputs)
    results = EditResults(mode="images", num_images=len(inputs), resolution=res, preprocessed=preprocessed,
                          tasks=[entry], reconstruction=None, class_rank=None, png_dir=str(job.out / PNGS),
                          manifest=str(job.out / MANIFEST), wall_seconds=round(seconds, 3))
    protocol = _protocol(generator, job, npz, len(inputs), f"explicit: every image uses label {editor.label}")
    warnings = _warnings(generator, preprocessed, len(inputs))
    return schema.make("edit", job.to_dict(), results, protocol, device=job.device,
                       random_weights=bool(generator.random_weights), warnings=warnings)


def _label_rule(spec: EditSpec, label: int) -> str:
    return f"--label {label} (class-conditional editing)" if spec.label is not None else \
        f"null class {label} (no class)"


def _protocol(generator, job, npz: dict, n: int, label_rule: str) -> dict:
    from varbench.generators.protocol import model_info, sampling_record
    from varbench.results import schema

    protocol = schema.empty_protocol()
    res = int(generator.resolution)
    protocol.update(
        model=model_info(generator), sampling=sampling_record(generator),
        labels=schema.LabelsInfo(scheme="explicit", per_class=None, num_classes=1, rule=label_rule),
        seeds=schema.SeedsInfo(seed=job.seed, rng=job.rng, rule=SEED_RULE),
        samples=schema.SamplesInfo(count=n, resolution=res, height=res, width=res, sha256=npz["array_sha256"],
                                   path=str(job.out / SAMPLES), kind="npz", order="label order"))
    return protocol


def _warnings(generator, preprocessed: int, n: int) -> list[str]:
    warnings = []
    if generator.random_weights:
        warnings.append(f"{generator.name} has random weights: its edits test the pipeline, not a model")
    if preprocessed:
        r = int(generator.resolution)
        warnings.append(f"{preprocessed} of {n} input image(s) were not {r}x{r}: resized and centre-cropped by VAR's "
                        "validation transform (manifest.json lists each)")
    return warnings

"""The ``results`` section of kind "edit" (``varbench edit``): one entry per task, scores in benchmark mode.

Readers (``varbench.report.edit``) read these fixed keys; a value that does not apply is None.
Regions: "edited" = the pixels of generated tokens (the box for in-painting and class editing, everything outside
it for out-painting, plus a --leak-ring margin); "kept" = the rest.  Pixel errors are in uint8 units on the 0..255
scale; PSNR = 10 log10(255^2 / MSE) per image (capped at ``PSNR_CAP`` dB), averaged over images.
"""

from __future__ import annotations

from typing import TypedDict

PSNR_CAP = 100.0  # dB: the PSNR of identical regions (MSE 0) is reported as this


class EditScores(TypedDict):
    fid: float | None  # composite vs originals (Inception pool3, float64 statistics); None with < 2 images
    kid_mean: float | None  # composite vs originals, unbiased MMD^2 (polynomial kernel); None with < 2 images
    kid_std: float | None
    kid_subset_size: int | None  # min(1000, images)
    mse_edited: float  # output vs original inside the edited region
    psnr_edited: float
    mse_kept: float  # output vs original in the kept region
    psnr_kept: float
    mse_kept_vs_recon: float  # output vs the VQVAE reconstruction in the kept region (what it should approach)
    psnr_kept_vs_recon: float
    target_rank_mean: float | None  # class_edit: mean rank (1 = first) of the target among the 1000 ImageNet classes
    #                                 in the composite's Inception logits; None for other tasks
    target_top1: float | None  # class_edit: fraction of images whose top class is the target
    target_top5: float | None  # class_edit: fraction with the target in the top 5
    target_top5_original: float | None  # class_edit: the same on the unedited originals (the baseline)


class EditTaskResults(TypedDict):
    task: str  # "inpaint" | "outpaint" | "class_edit"
    box: list  # (y0, x0, y1, x1) fractions, rows then columns
    box_tokens: list  # (r0, r1, c0, c1) on the last token grid (Python rounding)
    outpaint: bool  # True: the box is kept and the rest generated
    no_leak: bool  # the image was encoded with the edited region blanked (mid-grey)
    leak_ring: int  # extra generated tokens around the edited region (no_leak only)
    generated_tokens: int  # tokens of the last grid that are generated
    label_rule: str  # how each image's label was chosen
    num_images: int
    samples_npz: str  # the edited images (arr_0 uint8 (N, H, W, 3), input order)
    samples_sha256: str  # sha256 of the uint8 array
    scores: EditScores | None  # benchmark mode only


class ReconstructionScores(TypedDict):
    psnr: float  # VQVAE reconstruction vs original, whole image (mean per-image PSNR, dB)
    mse: float
    fid: float | None  # reconstruction vs originals
    kid_mean: float | None
    kid_std: float | None
    samples_npz: str
    samples_sha256: str


class EditResults(TypedDict):
    mode: str  # "images" (varbench edit IMAGES...) | "benchmark" (varbench edit --benchmark DIR)
    num_images: int
    resolution: int
    preprocessed: int  # inputs brought to the model's resolution by VAR's validation transform
    tasks: list  # EditTaskResults, one per task (images mode: one)
    reconstruction: ReconstructionScores | None  # benchmark mode only
    class_rank: str | None  # benchmark: how the target rank was computed (the Inception-logit class mapping)
    png_dir: str | None  # images mode: the PNGs (benchmark: <task>/png under the run directory)
    manifest: str  # manifest.json of the run
    wall_seconds: float  # this session


def task_entry(describe: dict, *, label_rule: str, num_images: int, samples_npz: str, samples_sha256: str,
               scores: EditScores | None = None) -> EditTaskResults:
    """An entry from ``varbench.edit.editor.Editor.describe()``."""
    return EditTaskResults(task=describe["task"], box=list(describe["box"]), box_tokens=list(describe["box_tokens"]),
                           outpaint=bool(describe["outpaint"]), no_leak=bool(describe["no_leak"]),
                           leak_ring=int(describe["leak_ring"]), generated_tokens=int(describe["generated_tokens"]),
                           label_rule=label_rule, num_images=num_images, samples_npz=samples_npz,
                           samples_sha256=samples_sha256, scores=scores)

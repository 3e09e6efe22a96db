"""What an edit does to every image: the box, the task (in-painting, out-painting, class-conditional editing), the
leak-free variant; checked once, with one line for the first bad value."""

from __future__ import annotations

from dataclasses import dataclass

from varbench.errors import VarbenchError

TASKS = ("inpaint", "outpaint", "class_edit")
PER_IMAGE_LABELS = -1  # EditSpec.label of a class edit whose target differs per image (the benchmark)
BLANK_VALUE = 0.0  # --no-leak: generated pixels are set to 0 in [-1, 1] (mid-grey, uint8 127.5) before encoding
BLANK_RULE = ("--no-leak: before encoding, every pixel of a generated token is set to 0 in the model's [-1, 1] "
              "input (mid-grey); the generated region then grows by --leak-ring K tokens (Chebyshev distance)")
BOX_RULE = ("box (y0, x0, y1, x1) in fractions of the image, rows then columns; on the last n x n token grid it covers "
            "rows round(y0*n):round(y1*n) and columns round(x0*n):round(x1*n) (Python round, half to even)")


@dataclass(frozen=True)
class EditSpec:
    box: tuple[float, float, float, float]  # (y0, x0, y1, x1) in [0, 1]
    outpaint: bool = False  # False: generate the box and keep the rest; True: keep the box, generate the rest
    label: int | None = None  # None: the null class (in-/out-painting); a class (or PER_IMAGE_LABELS): class editing
    no_leak: bool = False  # encode the image with the generated region blanked (BLANK_RULE)
    leak_ring: int = 0  # with no_leak: also generate this many tokens around the generated region

    @property
    def task(self) -> str:
        if self.label is not None:
            return "class_edit"
        return "outpaint" if self.outpaint else "inpaint"

    def to_dict(self) -> dict:
        return {"box": list(self.box), "outpaint": self.outpaint, "label": self.label, "task": self.task,
                "no_leak": self.no_leak, "leak_ring": self.leak_ring}


def parse_box(text: str) -> tuple[float, float, float, float]:
    """"Y0,X0,Y1,X1" -> four floats (checked by ``check``)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise VarbenchError(f"--box must be four comma-separated fractions Y0,X0,Y1,X1 (rows then columns), got "
                            f"{text!r}; e.g. --box 0.25,0.25,0.75,0.75")
    return values  # type: ignore[return-value]


def check(spec: EditSpec, grid: int, num_classes: int) -> None:
    """One line for the first problem: box order and range, an empty token region, label range, ring use."""
    from varbench.models.edit import box_span, keep_mask

    y0, x0, y1, x1 = spec.box
    if not all(0.0 <= v <= 1.0 for v in spec.box):
        raise VarbenchError(f"--box values must lie in [0, 1] (fractions of the image), got {_fmt(spec.box)}")
    if not (y0 < y1 and x0 < x1):
        raise VarbenchError(f"--box must be Y0,X0,Y1,X1 with Y0 < Y1 and X0 < X1 (rows then columns), got "
                            f"{_fmt(spec.box)}")
    r0, r1, c0, c1 = box_span(spec.box, grid)
    if r1 <= r0 or c1 <= c0:
        raise VarbenchError(f"--box {_fmt(spec.box)} covers no token of the {grid}x{grid} grid (rows {r0}:{r1}, "
                            f"columns {c0}:{c1} after rounding); make it at least 1/{grid} of the image each way")
    if spec.label is not None and not 0 <= spec.label < num_classes:
        raise VarbenchError(f"--label must be a class in 0..{num_classes - 1} (leave it out for in-/out-painting "
                            f"without a class), got {spec.label}")
    if spec.leak_ring < 0:
        raise VarbenchError(f"--leak-ring must be >= 0 tokens, got {spec.leak_ring}")
    if spec.leak_ring and not spec.no_leak:
        raise VarbenchError("--leak-ring widens the generated region of --no-leak; add --no-leak or drop it")
    if bool(keep_mask(spec.box, grid, spec.outpaint).min() == 1):
        raise VarbenchError(f"--box {_fmt(spec.box)} with --outpaint keeps every token: nothing to generate")


def _fmt(box) -> str:
    return ",".join(f"{v:g}" for v in box)

"""A VAR generator plus an ``EditSpec``: encode the images, edit them (``varbench.models.edit``), decode.

Randomness, as ``varbench generate``: per-sample mode gives image ``i`` its own generator seeded with
``varbench.generate.plan.sample_seed(seed, i)`` (any batch size gives the same bytes); official mode draws batch
``k`` with one generator seeded with ``seed + k``, consumed for the whole batch as the notebook's
``autoregressive_infer_cfg_with_mask(..., g_seed=seed + k)`` (so a single batch is the notebook's call).
Images are encoded one at a time (their tokens never depend on the batch); per-sample mode also decodes one at a
time, official mode decodes the batch at once (as the notebook).
"""

from __future__ import annotations

import numpy as np

from varbench.edit.spec import BLANK_VALUE, EditSpec

SEED_RULE = ("per-sample: image i uses a generator seeded with sample_seed(seed, i) (varbench.generate.plan); "
             "official: batch k of the given images is drawn with one generator seeded with seed + k, consumed in "
             "the notebook's order for the whole batch")


class Editor:
    def __init__(self, generator, spec: EditSpec):
        from varbench.models.edit import keep_mask

        self.generator, self.spec = generator, spec
        self.var, self.vae = generator.var, generator.vae
        self.grid = self.var.cfg.patch_nums[-1]
        self.resolution = int(generator.resolution)
        self.generated_box = keep_mask(spec.box, self.grid, spec.outpaint)  # keep mask of the box alone
        self.keep = keep_mask(spec.box, self.grid, spec.outpaint, ring=spec.leak_ring)  # what is sampled with
        self.label = self.var.null_class if spec.label is None else int(spec.label)

    @property
    def device(self):
        return self.var.class_emb.weight.device

    def tokens(self, images_u8: np.ndarray) -> list:
        """Per-scale tokens (B, pn*pn) of uint8 (B, H, W, 3) images, encoded one image at a time; with ``no_leak``
        the generated region is blanked first."""
        import torch

        from varbench.models.edit import blank_generated
        from varbench.preprocess import to_model_input

        rows = []
        with torch.inference_mode():
            for b in range(len(images_u8)):
                x = to_model_input(images_u8[b : b + 1]).to(self.device)
                if self.spec.no_leak:
                    x = blank_generated(x, self.generated_box, BLANK_VALUE)
                rows.append(self.vae.encode(x))
        return [torch.cat([r[si] for r in rows]) for si in range(len(rows[0]))]

    def reconstruct(self, tokens: list) -> np.ndarray:
        """uint8 (B, H, W, 3) decoded from the tokens alone, one image at a time: what a kept region approaches."""
        import torch

        from varbench.generators.protocol import to_uint8
        from varbench.models.sample import decode_images

        out = []
        with torch.inference_mode():
            for b in range(len(tokens[0])):
                f_hat = self.vae.quantize.tokens_to_fhat([t[b : b + 1] for t in tokens])
                out.append(to_uint8(decode_images(self.vae, f_hat)))
        return np.concatenate(out)

    def edit(self, images_u8: np.ndarray, rng: str, seeds, labels=None) -> tuple[np.ndarray, object, list]:
        """(uint8 (B, H, W, 3) edited images, ``EditOutput``, the image tokens).  ``seeds``: B per-sample seeds, or
        the one generator seed of this batch in official mode; ``labels``: one class per image (default: the
        spec's label, or the null class)."""
        import torch

        from varbench.generators.protocol import to_uint8, torch_dtype
        from varbench.models.edit import edit_sample
        from varbench.models.sample import decode_images

        tokens = self.tokens(images_u8)
        B = len(images_u8)
        if labels is None:
            if self.label < 0:
                raise ValueError("this spec edits towards a class per image (PER_IMAGE_LABELS): pass labels")
            labels = torch.full((B,), self.label, dtype=torch.long, device=self.device)
        else:
            labels = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=self.device)
        if rng == "official":
            generator = torch.Generator(device=self.device).manual_seed(int(seeds))
        else:
            if len(seeds) != B:
                raise ValueError(f"{B} images but {len(seeds)} seeds")
            generator = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]
        autocast = None if self.generator.dtype == "fp32" else torch_dtype(self.generator.dtype)
        out = edit_sample(self.var, self.vae, tokens, self.keep, labels, self.generator.sampling, generator, autocast)
        if rng == "official":
            images = to_uint8(decode_images(self.vae, out.f_hat))
        else:
            images = np.concatenate([to_uint8(decode_images(self.vae, out.f_hat[b : b + 1])) for b in range(B)])
        return images, out, tokens

    def generated_pixels(self) -> np.ndarray:
        """bool (H, W): the pixels of generated tokens (the box for in-painting, the rest for out-painting, plus the
        ring)."""
        from varbench.models.edit import pixel_mask

        return ~pixel_mask(self.keep, self.resolution).numpy().astype(bool)

    def describe(self) -> dict:
        from varbench.models.edit import box_span

        r0, r1, c0, c1 = box_span(self.spec.box, self.grid)
        return {**self.spec.to_dict(), "grid": self.grid, "box_tokens": [r0, r1, c0, c1],
                "label_used": self.label, "generated_tokens": int((self.keep == 0).sum()),
                "keep_mask_rows": ["".join("1" if v else "0" for v in row) for row in self.keep.int().tolist()]}

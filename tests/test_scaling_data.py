"""``varbench.scaling.data``: ImageNet-style folders (class index or synset names) and npz files, the evaluation
order ``--limit`` keeps, and one clear error for each kind of bad input."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from varbench.errors import VarbenchError
from varbench.scaling import data


def _png(h: int, w: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _folder(root, layout: dict[str, int]):
    """layout: class folder name -> number of images."""
    for k, (name, count) in enumerate(layout.items()):
        d = root / name
        d.mkdir(parents=True)
        for i in range(count):
            (d / f"img_{i:02d}.png").write_bytes(_png(20 + i, 24, seed=100 * k + i))
    return root


def test_synset_list_is_the_sorted_standard_1000():
    synsets = data.synsets()
    assert len(synsets) == 1000 == len(set(synsets)) and list(synsets) == sorted(synsets)
    # spot checks against the standard ImageNet-1k class index (torchvision ImageFolder on the full val folder)
    assert synsets[0] == "n01440764" and synsets[1] == "n01443537" and synsets[999] == "n15075141"
    assert synsets[390] == "n02526121"


def test_class_index_folder_order_is_interleaved_and_limit_keeps_the_first(tmp_path):
    ds = data.open_validation(_folder(tmp_path / "d", {"5": 3, "12": 1, "999": 2}))
    assert ds.kind == "folder" and ds.naming == "class_index" and len(ds) == ds.available == 6
    assert ds.files == ("5/img_00.png", "12/img_00.png", "999/img_00.png", "5/img_01.png", "999/img_01.png",
                        "5/img_02.png")
    assert ds.labels.tolist() == [5, 12, 999, 5, 999, 5]
    limited = data.open_validation(tmp_path / "d", limit=4)
    assert limited.files == ds.files[:4] and limited.available == 6 and limited.limit == 4
    assert limited.listing_sha256 != ds.listing_sha256


def test_synset_folders_map_through_the_fixed_list_not_the_sorted_names(tmp_path):
    # ImageFolder would number these two folders 0 and 1; their ImageNet classes are 390 and 999
    ds = data.open_validation(_folder(tmp_path / "d", {"n02526121": 1, "n15075141": 2, ".hidden": 1}))
    assert ds.naming == "synset" and ds.labels.tolist() == [390, 999, 999]


def test_files_are_read_with_the_official_transform_and_hashed(tmp_path):
    root = _folder(tmp_path / "d", {"3": 1})
    (root / "3" / "notes.txt").write_text("ignored")
    ds = data.open_validation(root)
    crops, shas = ds.load([0], 16)
    assert crops.shape == (1, 16, 16, 3) and crops.dtype == np.uint8
    assert shas == [hashlib.sha256((root / "3" / "img_00.png").read_bytes()).hexdigest()]
    assert data.content_sha256(shas) == hashlib.sha256(bytes.fromhex(shas[0])).hexdigest()


def test_npz_with_labels(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 30, 40, 3), dtype=np.uint8)
    np.savez(tmp_path / "v.npz", images, labels=np.array([1, 2, 3, 4, 999]))
    ds = data.open_validation(tmp_path / "v.npz", limit=3)
    assert ds.kind == "npz" and len(ds) == 3 and ds.available == 5 and ds.labels.tolist() == [1, 2, 3]
    crops, shas = ds.load([0, 2], 16)
    assert crops.shape == (2, 16, 16, 3) and shas[1] == hashlib.sha256(images[2].tobytes()).hexdigest()


@pytest.mark.parametrize("layout,needle", [
    ({"cat": 1}, "is not a class folder"),
    ({"1000": 1}, "class index 1000 is out of range 0-999"),
    ({"n99999999": 1}, "is not one of the 1000 ImageNet-1k synsets"),
    ({"7": 1, "n01440764": 1}, "mixes class-index and synset folder names"),
    ({"7": 1, "007": 1}, "are both class 7"),
    ({"7": 0, "8": 0}, "has class folders but no images"),
])
def test_bad_folders_are_one_clear_error(tmp_path, layout, needle):
    with pytest.raises(VarbenchError, match=needle):
        data.open_validation(_folder(tmp_path / "d", layout))


def test_loose_images_and_missing_paths(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(_png(8, 8, 0))
    with pytest.raises(VarbenchError, match="no class subfolders .*1 images lie at its top level"):
        data.open_validation(tmp_path / "flat")
    with pytest.raises(VarbenchError, match="does not exist"):
        data.open_validation(tmp_path / "nowhere")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(VarbenchError, match="neither a folder nor an .npz"):
        data.open_validation(tmp_path / "x.txt")
    with pytest.raises(VarbenchError, match="--limit must be at least 1"):
        data.open_validation(tmp_path / "flat", limit=0)


def test_unreadable_image_names_the_file(tmp_path):
    root = _folder(tmp_path / "d", {"3": 1})
    (root / "3" / "img_00.png").write_bytes(b"not a png")
    with pytest.raises(VarbenchError, match="cannot read .*3/img_00.png as an image"):
        data.open_validation(root).load([0], 16)


@pytest.mark.parametrize("arrays,needle", [
    ({"arr_0": np.zeros((2, 8, 8, 3), np.uint8)}, "has no 'labels' array"),
    ({"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.zeros(2, int)}, "has no arr_0"),
    ({"arr_0": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array([0, 1000])}, "label 1000 .*out of range"),
    ({"arr_0": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array([0, -1])}, "label -1 .*out of range"),
    ({"arr_0": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.zeros(3, int)}, "expected integers of shape"),
    ({"arr_0": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.zeros(2)}, "expected integers"),
    ({"arr_0": np.zeros((2, 3, 8, 8), np.uint8), "labels": np.zeros(2, int)}, r"expected uint8 \(N, H, W, 3\)"),
    ({"arr_0": np.zeros((2, 8, 8, 3), np.float32), "labels": np.zeros(2, int)}, "expected uint8"),
])
def test_bad_npz_is_one_clear_error(tmp_path, arrays, needle):
    np.savez(tmp_path / "v.npz", **arrays)
    with pytest.raises(VarbenchError, match=needle):
        data.open_validation(tmp_path / "v.npz")

"""Sample sets as uint8 (N, H, W, 3) batches: an ADM npz (``arr_0``), a ``varbench generate`` directory, or a folder
of PNG/JPEG files.  Every check that can fail on user input happens here, with one clear error line.

- npz: ``arr_0`` must be uint8 (N, H, W, 3).  An uncompressed member (``np.savez``, as ADM and varbench write it) is
  memory-mapped, so a 50k x 512 x 512 set is never read into memory at once; a compressed one is loaded.
- generate directory: ``samples.npz`` (+ labels in ``arr_1``/``labels``); its ``result.json`` says how the samples
  were made (model, sampling, labels, seeds), and so does the one beside a generate directory's ``samples.npz`` or
  ``png/`` folder given directly.
- folder: ``*.png``, ``*.jpg``, ``*.jpeg`` (not recursive), sorted by name.  Every file is read and verified up
  front, in parallel threads (the content key hashes the bytes), so a corrupt file or mixed sizes fail before any
  feature work; batches are decoded by the same number of threads.
  Grayscale (L) and palette (P) images are converted to RGB (channel replication / palette lookup) with a
  warning; images with alpha (RGBA, LA, PA) or other modes (CMYK, 16-bit, float) are refused.  JPEG files get a
  warning: lossy samples are not comparable with PNG/npz results.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import os
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from varbench.errors import VarbenchError

EXTENSIONS = (".png", ".jpg", ".jpeg")
LOSSY = (".jpg", ".jpeg")
CONVERTED_MODES = ("L", "P")
SAMPLES_FILE = "samples.npz"
GENERATE_RESULT = "result.json"
LABEL_KEYS = ("labels", "arr_1")
_HASH_CHUNK = 1 << 26  # bytes per sha256 update over a memory-mapped array


@dataclass
class SampleSet:
    """Images of one source, readable in batches in a fixed order."""

    path: Path
    kind: str  # "npz" | "generate_dir" | "folder"
    n: int
    height: int
    width: int
    content_key: str  # sha256 of the uint8 array (npz), or over the sorted file names and per-file sha256 (folder)
    labels: np.ndarray | None = None  # class labels when the source stores them
    random_weights: bool = False  # made by a random-weight model (its generate result says so)
    source: dict | None = None  # the protocol of the generate run that made them (its result.json), when known
    warnings: list[str] = field(default_factory=list)
    array: np.ndarray | None = None  # (N, H, W, 3) uint8, memory-mapped where possible (npz sources)
    files: list[Path] | None = None  # folder sources
    center_crop: int | None = None  # folder images of any size go through ADM's centre crop to this side

    @property
    def resolution(self) -> list[int]:
        return [self.height, self.width]

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """uint8 (B, H, W, 3) batches in order; folder images are decoded here."""
        if batch_size < 1:
            raise VarbenchError(f"--batch-size must be at least 1, got {batch_size}")
        with concurrent.futures.ThreadPoolExecutor(_workers()) as pool:  # PIL decodes without the GIL
            for lo in range(0, self.n, batch_size):
                hi = min(lo + batch_size, self.n)
                if self.array is not None:
                    yield np.array(self.array[lo:hi])  # a writable copy, also of a read-only memory map
                else:
                    yield np.stack(list(pool.map(self.image, range(lo, hi))))

    def image(self, index: int) -> np.ndarray:
        """One uint8 (H, W, 3) image."""
        if self.array is not None:
            return np.asarray(self.array[index])
        return _decode(self.files[index], self.height, self.width, self.center_crop)

    def info(self, sha256: str):
        """The schema's record of these samples; ``sha256`` of their uint8 array (``decoded_sha256``)."""
        from varbench.results.schema import SamplesInfo

        order = (self.source.get("samples") or {}).get("order") if self.source else None
        return SamplesInfo(count=self.n, resolution=max(self.height, self.width), height=self.height,
                           width=self.width, sha256=sha256, path=str(self.path), kind=self.kind, order=order)


def open_samples(path: str | os.PathLike, center_crop: int | None = None) -> SampleSet:
    """Open SAMPLES: an ADM npz, a generate directory or an image folder.  ``center_crop``: a folder tree of real
    images of any size (e.g. the ImageNet train set, class subfolders included) read through ADM's centre crop."""
    path = Path(path).expanduser()
    if not path.exists():
        raise VarbenchError(f"samples not found: {path} (give an .npz file, a generate directory or an image folder)")
    if center_crop is not None:
        if not path.is_dir():
            raise VarbenchError(f"--center-crop applies to an image folder, and {path} is not one")
        return _open_folder(path, center_crop)
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise VarbenchError(f"{path} is not an .npz file; give an ADM npz, a generate directory or an image folder")
        samples = _open_npz(path, "npz")
        if path.name == SAMPLES_FILE:  # the file inside a generate directory: keep the run's metadata
            _attach_source(samples, path.parent)
        return samples
    if (path / SAMPLES_FILE).is_file():
        samples = _open_npz(path / SAMPLES_FILE, "generate_dir")
        samples.path = path
        _attach_source(samples, path)
        return samples
    samples = _open_folder(path)
    _attach_source(samples, path.parent)  # a generate directory's png/ folder
    return samples


def _attach_source(samples: SampleSet, run_dir: Path) -> None:
    """The generate result beside the samples, when there is one and it describes these very images.  Another
    kind of result there (an edit run) only passes on its random-weights flag: its images are not a generate set."""
    result_file = run_dir / GENERATE_RESULT
    if not result_file.is_file():
        return
    from varbench.results.read import load

    result = load(result_file)
    if result["kind"] != "generate":
        samples.random_weights = bool(result["random_weights"])
        return
    protocol = result["protocol"]
    made = (protocol.get("samples") or {})
    if samples.kind == "folder" and made.get("count") != samples.n:
        return  # a png/ folder that holds other files than the run wrote: do not borrow its protocol
    samples.source = protocol
    samples.random_weights = bool((protocol.get("model") or {}).get("random_weights"))


def _open_npz(path: Path, kind: str) -> SampleSet:
    array = npz_array(path, "arr_0")
    _check_image_array(array, f"{path} arr_0")
    labels = None
    with _npz(path) as z:
        for key in LABEL_KEYS:
            if key in z.files:
                cand = z[key]
                if cand.ndim == 1 and len(cand) == len(array) and np.issubdtype(cand.dtype, np.integer):
                    labels = cand
                break
    return SampleSet(path=path, kind=kind, n=len(array), height=array.shape[1], width=array.shape[2],
                     content_key=array_sha256(array), labels=labels, array=array)


def _check_image_array(array: np.ndarray, what: str) -> None:
    if array.dtype != np.uint8:
        fix = " (convert with np.clip(np.round(x * 255), 0, 255).astype(np.uint8) from [0, 1])" \
            if np.issubdtype(array.dtype, np.floating) else ""
        raise VarbenchError(f"{what} has dtype {array.dtype}; images must be uint8 in [0, 255]{fix}")
    if array.ndim != 4 or array.shape[-1] != 3:
        hint = ""
        if array.ndim == 4 and array.shape[1] == 3:
            hint = " (looks like NCHW: transpose to NHWC)"
        elif array.ndim == 4 and array.shape[-1] in (1, 4):
            hint = " (grayscale/RGBA arrays are refused: convert to RGB)"
        raise VarbenchError(f"{what} has shape {array.shape}; expected (N, H, W, 3) RGB images{hint}")
    if len(array) == 0:
        raise VarbenchError(f"{what} holds no images")


def _npz(path: Path):
    return load_npz(path, "npz file")


def load_npz(path: str | os.PathLike, what: str = "npz file") -> np.lib.npyio.NpzFile:
    """``np.load(allow_pickle=False)`` of an npz archive; a .npy array or any other file raises VarbenchError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except FileNotFoundError:
        raise  # callers word "not found" themselves
    except OSError as e:
        raise VarbenchError(f"{path} is not a readable {what}: {e}") from None
    if magic == b"\x93NUMPY":
        raise VarbenchError(f"{path} is a .npy array, not an .npz archive; write the {what} with np.savez")
    if magic[:2] != b"PK":
        raise VarbenchError(f"{path} is not an npz archive (no zip header); write the {what} with np.savez")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise VarbenchError(f"{path} is not a readable {what}: {e}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # defensive: np.load returned a plain array
        raise VarbenchError(f"{path} is a .npy array, not an .npz archive; write the {what} with np.savez")
    return loaded


def npz_keys(path: str | os.PathLike) -> list[str]:
    with _npz(Path(path)) as z:
        return list(z.files)


def npz_array(path: str | os.PathLike, key: str) -> np.ndarray:
    """One array of an npz: memory-mapped when the member is stored uncompressed, else loaded."""
    path = Path(path)
    with _npz(path) as z:
        if key not in z.files:
            raise VarbenchError(f"{path} has no {key!r} array (keys: {', '.join(z.files) or 'none'})")
    try:
        mapped = _memmap_member(path, key + ".npy")
    except (OSError, ValueError, zipfile.BadZipFile, struct.error) as e:
        raise VarbenchError(f"{path} member {key!r} is unreadable: {e}") from None
    if mapped is not None:
        return mapped
    with _npz(path) as z:
        try:
            return z[key]
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise VarbenchError(f"{path} member {key!r} is unreadable: {e}") from None


def _memmap_member(path: Path, member: str) -> np.ndarray | None:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
        if header[:4] != b"PK\x03\x04":
            raise ValueError("bad local zip header")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if dtype.hasobject:
            raise ValueError("object arrays are refused")
        offset = f.tell()
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def array_sha256(array: np.ndarray) -> str:
    """sha256 of the C-order bytes of an array, read in chunks (works on memory maps)."""
    h = hashlib.sha256()
    flat_rows = max(1, _HASH_CHUNK // max(1, array[0].nbytes)) if len(array) else 1
    for lo in range(0, len(array), flat_rows):
        h.update(np.ascontiguousarray(array[lo:lo + flat_rows]).data)
    return h.hexdigest()


def decoded_sha256(samples: SampleSet, batch_size: int = 256) -> str:
    """sha256 of the uint8 (N, H, W, 3) array a sample set decodes to (no decoding for npz sources)."""
    if samples.array is not None:
        return samples.content_key
    h = hashlib.sha256()
    for batch in samples.batches(batch_size):
        h.update(batch.data)
    return h.hexdigest()


def _open_folder(path: Path, center_crop: int | None = None) -> SampleSet:
    listing = path.rglob("*") if center_crop else path.iterdir()
    files = sorted(p for p in listing if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if not files:
        raise VarbenchError(
            f"{path} holds no images ({', '.join(EXTENSIONS)}) and no {SAMPLES_FILE}; give an image folder, a "
            "generate directory or an npz"
        )
    h = hashlib.sha256()
    size, first, converted = None, None, 0
    with concurrent.futures.ThreadPoolExecutor(_workers()) as pool:
        scanned = list(pool.map(_scan, files))  # in file order; the first bad file (in order) raises
    for f, (digest, nbytes, mode, im_size) in zip(files, scanned):
        if mode != "RGB":
            if mode not in CONVERTED_MODES and not center_crop:  # real images: converted as ADM's loader does
                raise VarbenchError(
                    f"image {f} has mode {mode}; varbench reads RGB and converts grayscale (L) and palette (P) "
                    "images, but refuses alpha channels and other modes: convert the images to RGB first"
                )
            converted += 1
        if size is None:
            size, first = im_size, f
        elif im_size != size and not center_crop:
            raise VarbenchError(
                f"mixed image sizes: {f.name} is {im_size[0]}x{im_size[1]} but {first.name} is {size[0]}x{size[1]}; "
                "all samples must have one size"
            )
        name = f.relative_to(path).as_posix() if center_crop else f.name
        h.update(name.encode() + b"\0" + nbytes.to_bytes(8, "little") + digest)
    warnings = []
    if converted:
        warnings.append(f"{converted} of {len(files)} images are grayscale or palette images: converted to RGB")
    lossy = sum(f.suffix.lower() in LOSSY for f in files)
    if lossy:
        warnings.append(
            f"{lossy} of {len(files)} images are JPEG (lossy): FID on JPEG samples is not comparable with PNG/npz "
            "results"
        )
    if center_crop:
        key = f"files-adm-crop{center_crop}-" + h.hexdigest()
        return SampleSet(path=path, kind="folder", n=len(files), height=center_crop, width=center_crop,
                         content_key=key, files=files, warnings=warnings, center_crop=center_crop)
    return SampleSet(path=path, kind="folder", n=len(files), height=size[1], width=size[0],
                     content_key="files-" + h.hexdigest(), files=files, warnings=warnings)


def _scan(path: Path) -> tuple[bytes, int, str, tuple[int, int]]:
    """sha256 digest, byte count, mode and size of one image file, verified without decoding its pixels."""
    from PIL import Image

    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            im.verify()  # chunk checksums and structure
        with Image.open(io.BytesIO(data)) as im:
            mode, size = im.mode, im.size
    except Exception as e:  # PIL raises many types for corrupt files (OSError, SyntaxError, ValueError, ...)
        raise VarbenchError(f"cannot read image {path}: {_image_error(e)}; replace or remove the file") from None
    return hashlib.sha256(data).digest(), len(data), mode, size


def _image_error(e: Exception) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(e, UnidentifiedImageError):  # its message names an in-memory buffer, not the file
        return "not an image format PIL can read"
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'damaged file'}"


def _workers() -> int:
    return min(8, os.cpu_count() or 1)


def _decode(path: Path, height: int, width: int, center_crop: int | None = None) -> np.ndarray:
    from PIL import Image

    from varbench.preprocess import adm_center_crop

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode != "RGB":
                im = im.convert("RGB")
            arr = adm_center_crop(im, center_crop) if center_crop else np.asarray(im, dtype=np.uint8)
    except Exception as e:  # a file changed or is corrupt beyond what verify() sees
        raise VarbenchError(f"cannot decode image {path}: {type(e).__name__}: {e}") from None
    if arr.shape != (height, width, 3):
        raise VarbenchError(f"image {path} is {arr.shape[1]}x{arr.shape[0]}, expected {width}x{height}")
    return arr

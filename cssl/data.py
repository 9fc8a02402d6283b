"""Datasets for the experiment chapters: digits, procedural colour textures, CIFAR-10/100.

Every loader returns **CPU tensors**; the training code moves them to its device once and keeps them
there (the whole of CIFAR-10 is 150 MB as uint8).

* :func:`load_digits_images`: scikit-learn's bundled 8x8 digits (no network), and
  :func:`stratified_split` for a deterministic train/test split.
* :func:`colour_textures`: a procedural colour-image set whose classes are textures and whose
  colours are pure nuisance, so the paper's mechanism shows at CPU scale.
* :func:`nuisance_textures`: the same classes with one nuisance for each of the paper's five
  transformations to remove (scale, grain, colour, illumination, handedness): the experiment chapters' data.
* :func:`load_cifar`: CIFAR-10 / CIFAR-100 from the official "python version" archives, with the
  project's own md5-verified download and pickle decoder (no torchvision), cached as ``.npz``;
  :func:`make_fake_cifar` writes a small archive in exactly the official format, for tests and for
  readers without network.
"""
from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import os
import pickle
import sys
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from ._io import atomic_write
from ._validate import check_int, check_memory, check_real

__all__ = [
    "load_digits_images",
    "stratified_split",
    "to_float",
    "COLOUR_TEXTURE_CLASSES",
    "colour_textures",
    "nuisance_textures",
    "CIFAR_SPECS",
    "CIFAR_MEMBER_MD5",
    "load_cifar",
    "make_fake_cifar",
    "md5sum",
]


# ---------------------------------------------------------------------------------------- helpers
def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float32 in [0, 1] (what :mod:`cssl.augment` and the models take)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if x.dtype.is_floating_point:
        return x
    raise TypeError(f"x has dtype {x.dtype}; expected uint8 (0..255) or floating point (0..1)")


def stratified_split(x, y, *, test_fraction: float = 0.25, seed: int = 0):
    """Deterministic stratified train/test split: ``(x_train, y_train, x_test, y_test)``.

    In every class, ``round(test_fraction * n_k)`` images (at least 1 if the class has 2 or more) go to
    the test set, chosen by a permutation from ``numpy.random.default_rng(seed)``; both parts keep the
    original order of the data. ``x``: tensor with the samples in dim 0; ``y``: 1-D integer labels.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be torch tensors (e.g. from load_digits_images())")
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"y must be a 1-D integer tensor of labels, got shape {tuple(y.shape)} dtype {y.dtype}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]} labels")
    test_fraction = check_real(test_fraction, "test_fraction", low=0, high=1, low_open=True, high_open=True)
    seed = check_int(seed, "seed", low=0)
    rng = np.random.default_rng(seed)
    labels = y.cpu().numpy()
    is_test = np.zeros(len(labels), dtype=bool)
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        n_test = int(round(test_fraction * len(idx)))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        is_test[rng.permutation(idx)[:n_test]] = True
    tr = torch.from_numpy(np.flatnonzero(~is_test))
    te = torch.from_numpy(np.flatnonzero(is_test))
    return x[tr], y[tr], x[te], y[te]


# ----------------------------------------------------------------------------------------- digits
def load_digits_images():
    """scikit-learn's bundled handwritten digits as images: ``(x, y)``.

    ``x``: float32 ``(1797, 1, 8, 8)`` in [0, 1] (the stored 0..16 grey levels divided by 16);
    ``y``: int64 ``(1797,)`` in 0..9. The data ship inside scikit-learn, so no network is used.
    Split with :func:`stratified_split`.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(np.asarray(d.images, dtype=np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(np.asarray(d.target, dtype=np.int64))
    return x, y


# --------------------------------------------------------------------------------- colour textures
#: Class names of :func:`colour_textures`, in label order. The first six are the default set; every
#: class is closed under horizontal flip (the diagonal class holds both diagonals), so augmentation
#: (e) never maps one class onto another.
COLOUR_TEXTURE_CLASSES = (
    "horizontal stripes",
    "vertical stripes",
    "diagonal stripes",
    "checkerboard",
    "dots",
    "grid",
    "rings",
    "diamonds",
)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _texture(cls: int, xs: np.ndarray, ys: np.ndarray, period: np.ndarray, phase: np.ndarray,
             sign: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Boolean foreground masks (n, S, S) of one texture class on supersampled pixel coordinates."""
    P = period[:, None, None]
    ox, oy = phase[:, 0, None, None] * P, phase[:, 1, None, None] * P

    def frac(t):
        return t - np.floor(t)

    if xs.ndim == 2:  # one grid for every image, or one grid per image (rotated frames)
        xs, ys = xs[None], ys[None]
    X = xs + ox
    Y = ys + oy
    if cls == 0:
        return frac(Y / P) < 0.5
    if cls == 1:
        return frac(X / P) < 0.5
    if cls == 2:
        return frac((X + sign[:, None, None] * Y) / (np.sqrt(2.0) * P)) < 0.5
    if cls == 3:
        return (np.floor(2 * X / P) + np.floor(2 * Y / P)) % 2 == 0
    if cls == 4:
        dx, dy = frac(X / P) - 0.5, frac(Y / P) - 0.5
        return dx * dx + dy * dy < 0.22 ** 2
    if cls == 5:
        return (frac(X / P) < 0.2) | (frac(Y / P) < 0.2)
    if cls == 6:
        cx, cy = centre[:, 0, None, None], centre[:, 1, None, None]
        r = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
        return frac(r / P + phase[:, 0, None, None]) < 0.5
    if cls == 7:
        u, v = (X + Y) / np.sqrt(2.0), (X - Y) / np.sqrt(2.0)
        return (np.floor(1.5 * u / P) + np.floor(1.5 * v / P)) % 2 == 0
    raise AssertionError(cls)


def _texture_images(n: int, rng: np.random.Generator, size: int, num_classes: int, min_luma_gap: float,
                    noise: float, supersample: int = 2, *, period_range=(0.25, 0.4), tilt: float = 0.0,
                    ramp: float = 0.0, grain: float = 0.0):
    y = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    # colours: uniform RGB, resampled until the two lumas differ by min_luma_gap (vectorised rejection)
    fg = rng.random((n, 3), dtype=np.float32)
    bg = rng.random((n, 3), dtype=np.float32)
    bad = np.abs((fg - bg) @ _LUMA) < min_luma_gap
    while bad.any():
        k = int(bad.sum())
        fg[bad] = rng.random((k, 3), dtype=np.float32)
        bg[bad] = rng.random((k, 3), dtype=np.float32)
        bad = np.abs((fg - bg) @ _LUMA) < min_luma_gap
    period = (size * rng.uniform(*period_range, n)).astype(np.float32)  # 4 .. 6.4 px at size 16 by default
    phase = rng.random((n, 2), dtype=np.float32)
    sign = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), n)
    centre = (size * rng.random((n, 2), dtype=np.float32))
    ss = supersample
    t = (np.arange(size * ss, dtype=np.float32) + 0.5) / ss  # supersampled pixel-centre coordinates
    ys, xs = np.meshgrid(t, t, indexing="ij")
    if tilt > 0:
        # a handedness per image: the frame turns by sign * U(tilt/4, tilt) degrees about the image centre
        # and the diagonal class follows the same sign, so a mirror image is the other handedness
        angle = np.deg2rad(sign * tilt * rng.uniform(0.25, 1.0, n)).astype(np.float32)[:, None, None]
        cx, cy = xs[None] - size / 2, ys[None] - size / 2
        xs, ys = np.cos(angle) * cx + np.sin(angle) * cy, -np.sin(angle) * cx + np.cos(angle) * cy
    mask = np.empty((n, size * ss, size * ss), dtype=bool)
    for k in range(num_classes):
        idx = np.flatnonzero(y == k)
        if idx.size:
            grid = (xs, ys) if xs.ndim == 2 else (xs[idx], ys[idx])
            mask[idx] = _texture(k, *grid, period[idx], phase[idx], sign[idx], centre[idx])
    cover = mask.reshape(n, size, ss, size, ss).mean(axis=(2, 4), dtype=np.float32)  # anti-aliased
    img = bg[:, :, None, None] + cover[:, None] * (fg - bg)[:, :, None, None]
    if ramp > 0:
        # illumination falling off to one side: gain 1 + g (x/size - 1/2), |g| ~ U(ramp/2, ramp), random side
        g = (ramp * rng.uniform(0.5, 1.0, n) * rng.choice(np.array([-1.0, 1.0]), n)).astype(np.float32)
        across = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        img = img * (1 + g[:, None, None, None] * across)
    if grain > 0:
        # one-pixel +-1 grain in a random colour direction, amplitude U(0, grain) per image
        amplitude = rng.uniform(0, grain, n).astype(np.float32)
        direction = rng.standard_normal((n, 3)).astype(np.float32)
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        cells = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), (n, 1, size, size))
        img = img + (amplitude[:, None] * direction)[:, :, None, None] * cells
    if noise > 0:
        img += noise * rng.standard_normal(img.shape, dtype=np.float32)
    img = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return torch.from_numpy(img), torch.from_numpy(y)


def colour_textures(n_train: int, n_test: int, *, size: int = 16, seed: int = 0, num_classes: int = 6,
                    min_luma_gap: float = 0.3, noise: float = 0.02):
    """Procedural colour images whose class is a texture and whose colours are nuisance.

    Returns ``(x_train, y_train, x_test, y_test)``: uint8 ``(n, 3, size, size)`` and int64 labels,
    balanced (``n // num_classes`` or one more per class), classes named by
    ``COLOUR_TEXTURE_CLASSES[:num_classes]`` (stripes in three orientations, checkerboard, dots, grid;
    then rings and diamonds for ``num_classes`` 7 and 8).

    Each image is a binary texture painted in a foreground colour on a background colour, both uniform
    in RGB and resampled until their ITU-R 601 lumas differ by at least ``min_luma_gap``, so the texture
    stays visible after grayscale (c) and moderate colour jitter (d). Nuisances: colours, period
    ``size * U(0.25, 0.4)`` (4-6.4 px at 16x16), phase (position), stripe direction / ring centre;
    edges are anti-aliased by 2x2 supersampling and Gaussian pixel noise of std ``noise`` is added.

    Why: a teaching device for the paper's mechanism (Sec. 3-5): with colour the dominant nuisance, two
    images of one class in different colours are far apart in pixel space, and only colour
    augmentation (c, d) makes their augmented views overlap (a small augmented distance, a large main
    part in Definition 1), so removing (c)/(d) costs much accuracy, as in Table 1, at CPU scale.
    The prototype of ``docs/design.md`` (section 3) measured that texture classes work at 16x16 while small shapes do not
    (random crops miss a small shape). Deterministic in ``seed``: train and test come from independent
    streams (``SeedSequence(seed).spawn(2)``), so the test set does not change with ``n_train``.
    Vectorised numpy: 10k 16x16 images take a fraction of a second.
    """
    n_train = check_int(n_train, "n_train", low=1)
    n_test = check_int(n_test, "n_test", low=1)
    size = check_int(size, "size", low=4)
    seed = check_int(seed, "seed", low=0)
    num_classes = check_int(num_classes, "num_classes", low=2, high=len(COLOUR_TEXTURE_CLASSES))
    min_luma_gap = check_real(min_luma_gap, "min_luma_gap", low=0, high=0.8)
    noise = check_real(noise, "noise", low=0, high=0.5)
    # peak of _texture_images per image: 2x2-supersampled mask and texture temporaries, float32 cover,
    # image and noise (3 channels), uint8 result -- about 48 bytes a pixel; refused before allocating
    check_memory(48 * max(n_train, n_test) * size * size + 3 * (n_train + n_test) * size * size,
                 f"colour_textures({n_train}, {n_test}, size={size})", "lower n_train, n_test or size")
    rng_train, rng_test = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    x_tr, y_tr = _texture_images(n_train, rng_train, size, num_classes, min_luma_gap, noise)
    x_te, y_te = _texture_images(n_test, rng_test, size, num_classes, min_luma_gap, noise)
    return x_tr, y_tr, x_te, y_te


def nuisance_textures(n_train: int, n_test: int, *, size: int = 16, seed: int = 0, num_classes: int = 6,
                      period_range: tuple[float, float] = (0.18, 0.5), tilt: float = 20.0, ramp: float = 0.6,
                      grain: float = 0.3, min_luma_gap: float = 0.3, noise: float = 0.02):
    """The texture classes of :func:`colour_textures` with one nuisance for each transformation (a)-(e).

    Returns ``(x_train, y_train, x_test, y_test)`` as :func:`colour_textures` does. An image of class
    ``k`` is the binary texture ``k`` painted in two random colours (luma gap ``>= min_luma_gap``), then:

    * **scale** (crop, a): period ``size * U(period_range)``, 2.9-8 px at 16x16 by default;
    * **handedness** (flip, e): the texture's frame turns by ``s * U(tilt / 4, tilt)`` degrees about the
      centre with a random sign ``s``, and the diagonal class runs along ``x + s y``, so the mirror
      image of a class-``k`` image is a class-``k`` image of the other handedness;
    * **illumination** (flip, e; colour jitter, d): the image is multiplied by ``1 + g (x / size - 1/2)``
      with ``|g| ~ U(ramp / 2, ramp)`` of random sign;
    * **grain** (blur, b): ``A u c(x)`` with ``A ~ U(0, grain)``, ``u`` a random unit colour vector and
      ``c(x) = +-1`` independently per pixel: the highest frequency in the image, which a blur of
      ``sigma = size / 32`` weakens more than the texture;
    * **colour** (grayscale, c; colour jitter, d): the two random colours, as in :func:`colour_textures`;

    then Gaussian noise of std ``noise`` and rounding to uint8. Why: the paper's argument (Sec. 3-5)
    is that each augmentation helps by making views of same-class images overlap, i.e. by removing a
    nuisance the labels do not depend on; this world gives every transformation of Table 1 such a job
    (``docs/design.md``, section 3), so removing one can cost accuracy for the reason the paper gives.
    The labels depend on no nuisance: every class holds both handednesses and all colours, scales, ramps
    and grains.
    Deterministic in ``seed`` (train and test from ``SeedSequence(seed).spawn(2)``).
    """
    n_train = check_int(n_train, "n_train", low=1)
    n_test = check_int(n_test, "n_test", low=1)
    size = check_int(size, "size", low=4)
    seed = check_int(seed, "seed", low=0)
    num_classes = check_int(num_classes, "num_classes", low=2, high=6)
    if not isinstance(period_range, (tuple, list)) or len(period_range) != 2:
        raise ValueError(f"period_range must be a pair (low, high) of fractions of the side, got {period_range!r}")
    lo, hi = (check_real(v, "period_range", low=0, low_open=True, high=2) for v in period_range)
    if lo > hi:
        raise ValueError(f"period_range={tuple(period_range)!r} must be (low, high) with low <= high")
    tilt = check_real(tilt, "tilt", low=0, high=45)
    ramp = check_real(ramp, "ramp", low=0, high=1.5)
    grain = check_real(grain, "grain", low=0, high=1)
    min_luma_gap = check_real(min_luma_gap, "min_luma_gap", low=0, high=0.8)
    noise = check_real(noise, "noise", low=0, high=0.5)
    # as colour_textures, plus four float32 supersampled coordinate grids per image for the turned frames
    check_memory(112 * max(n_train, n_test) * size * size + 3 * (n_train + n_test) * size * size,
                 f"nuisance_textures({n_train}, {n_test}, size={size})", "lower n_train, n_test or size")
    rng_train, rng_test = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    options = dict(period_range=(lo, hi), tilt=tilt, ramp=ramp, grain=grain)
    x_tr, y_tr = _texture_images(n_train, rng_train, size, num_classes, min_luma_gap, noise, **options)
    x_te, y_te = _texture_images(n_test, rng_test, size, num_classes, min_luma_gap, noise, **options)
    return x_tr, y_tr, x_te, y_te


# ------------------------------------------------------------------------------------------ CIFAR
_CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR100_NAMES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel "
    "can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur "
    "dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion "
    "lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree "
    "pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea "
    "seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table "
    "tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman "
    "worm").split()
_CIFAR100_COARSE = (
    "aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices "
    "household_furniture insects large_carnivores large_man-made_outdoor_things large_natural_outdoor_scenes "
    "large_omnivores_and_herbivores medium_mammals non-insect_invertebrates people reptiles small_mammals "
    "trees vehicles_1 vehicles_2").split()

#: The official "python version" archives (https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR_SPECS = {
    "cifar10": {
        "archive": "cifar-10-python.tar.gz",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "folder": "cifar-10-batches-py",
        "train": ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"),
        "test": ("test_batch",),
        "meta": "batches.meta",
        "label_key": "labels",
        "names_key": "label_names",
        "num_classes": 10,
    },
    "cifar100": {
        "archive": "cifar-100-python.tar.gz",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "folder": "cifar-100-python",
        "train": ("train",),
        "test": ("test",),
        "meta": "meta",
        "label_key": "fine_labels",
        "names_key": "fine_label_names",
        "num_classes": 100,
    },
}
_PIXELS = 3 * 32 * 32

#: md5 of every file of the official archives, checked before a file of an extracted folder
#: (``cifar-10-batches-py/``, ``cifar-100-python/``, as torchvision and most labs keep them) is unpickled.
CIFAR_MEMBER_MD5 = {
    "cifar10": {"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
                "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
                "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"},
    "cifar100": {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
                 "meta": "7973b15100ade9c7d40fb424638fde48"},
}


def _spec(name: str) -> dict:
    if name not in CIFAR_SPECS:
        raise ValueError(f"unknown dataset name {name!r}; use one of {sorted(CIFAR_SPECS)}")
    return CIFAR_SPECS[name]


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file, read in 1 MiB chunks (constant memory)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that only builds what a CIFAR batch holds: dicts, lists, strings, ints, numpy arrays.

    The official files are Python 2 pickles of numpy arrays (read with ``encoding="latin1"``, as
    numpy documents); any other global in the stream (a pickle can run arbitrary code) is refused.
    """

    _reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    _scalar = np.float64(0).__reduce__()[0]
    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.multiarray", "scalar"): _scalar,
        ("numpy._core.multiarray", "scalar"): _scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a CIFAR batch file") from None


def _key(k):
    return k.decode("latin1") if isinstance(k, bytes) else k


def _text(s):
    return s.decode("latin1") if isinstance(s, bytes) else str(s)


def _read_member(tf: tarfile.TarFile, path: str, archive: Path) -> dict:
    try:
        info = tf.getmember(path)
    except KeyError:
        names = sorted(m.name for m in tf.getmembers())
        shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
        raise ValueError(f"{archive} has no member {path!r} (it holds: {shown}); it is not the official "
                         "archive or it is damaged: delete it and download it again") from None
    if not info.isreg():
        raise ValueError(f"{archive}: member {path!r} is not a regular file; delete the archive and download it again")
    raw = tf.extractfile(info).read()  # read in memory: nothing is written to disk, so no path traversal
    return _unpickle_member(raw, path, archive)


def _read_file(folder: Path, part: str, md5: str) -> dict:
    """One file of an extracted CIFAR folder, unpickled only after its md5 matched ``md5``."""
    path = folder / part
    if not path.is_file():
        raise ValueError(f"{folder} lacks the file {part!r}; it is not a complete CIFAR folder: delete it and "
                         "use the archive (download=True)")
    raw = path.read_bytes()
    got = hashlib.md5(raw, usedforsecurity=False).hexdigest()
    if got != md5:
        raise ValueError(f"{path} has md5 {got}, expected {md5}: the file is incomplete, corrupt or not the official "
                         "one; delete the folder and use the archive (download=True)")
    return _unpickle_member(raw, part, folder)


def _unpickle_member(raw: bytes, path: str, archive) -> dict:
    try:
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as err:  # noqa: BLE001 - any decoding failure means a bad file
        raise ValueError(f"{archive}: member {path!r} is not a readable CIFAR pickle ({err}); "
                         "delete the archive and download it again") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{archive}: member {path!r} holds a {type(obj).__name__}, expected a dict")
    return {_key(k): v for k, v in obj.items()}


def _decode_batches(read, spec, parts, archive):
    """Decode the batch files ``parts``; ``read(part)`` returns one unpickled file as a dict."""
    xs, ys = [], []
    for part in parts:
        path = f"{spec['folder']}/{part}"
        d = read(part)
        for key in ("data", spec["label_key"]):
            if key not in d:
                raise ValueError(f"{archive}: {path!r} lacks the key {key!r} (keys: {sorted(d)}); "
                                 "delete the archive and download it again")
        data = np.asarray(d["data"])
        labels = np.asarray(d[spec["label_key"]], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
            raise ValueError(f"{archive}: {path!r} data has shape {data.shape} dtype {data.dtype}; "
                             f"expected (n, {_PIXELS}) uint8")
        if labels.shape != (data.shape[0],):
            raise ValueError(f"{archive}: {path!r} has {data.shape[0]} images but {labels.size} labels")
        if labels.size and (labels.min() < 0 or labels.max() >= spec["num_classes"]):
            raise ValueError(f"{archive}: {path!r} labels outside 0..{spec['num_classes'] - 1}")
        xs.append(data.reshape(-1, 3, 32, 32))  # rows: 1024 R, 1024 G, 1024 B values, each 32x32 row-major
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def _decode_archive(archive: Path, spec: dict):
    try:
        with tarfile.open(archive, "r:gz") as tf:
            def read(part):
                return _read_member(tf, f"{spec['folder']}/{part}", archive)

            x_tr, y_tr = _decode_batches(read, spec, spec["train"], archive)
            x_te, y_te = _decode_batches(read, spec, spec["test"], archive)
            meta = read(spec["meta"])
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as err:
        raise ValueError(f"{archive} is truncated or corrupt ({type(err).__name__}: {err}); "
                         "delete it and download it again") from None
    return _check_names(meta, spec, archive, x_tr, y_tr, x_te, y_te)


def _decode_folder(folder: Path, spec: dict, member_md5: dict):
    """Decode an extracted CIFAR folder, each file md5-checked (``member_md5[part]``) before unpickling."""
    parts = (*spec["train"], *spec["test"], spec["meta"])
    missing = [p for p in parts if p not in member_md5]
    if missing:
        raise ValueError(f"member_md5 lacks the md5 of {missing}; give one for every file of {folder.name}/")

    def read(part):
        return _read_file(folder, part, str(member_md5[part]).lower())

    x_tr, y_tr = _decode_batches(read, spec, spec["train"], folder)
    x_te, y_te = _decode_batches(read, spec, spec["test"], folder)
    return _check_names(read(spec["meta"]), spec, folder, x_tr, y_tr, x_te, y_te)


def _check_names(meta, spec, archive, x_tr, y_tr, x_te, y_te):
    names = meta.get(spec["names_key"])
    if names is None or len(names) != spec["num_classes"]:
        raise ValueError(f"{archive}: meta file lacks {spec['num_classes']} names under {spec['names_key']!r}")
    return x_tr, y_tr, x_te, y_te, [_text(s) for s in names]


def _download(url: str, dest: Path, md5: str) -> None:
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https", "ftp", "file"):
        raise ValueError(f"url must be an http(s), ftp or file URL, got {url!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    h = hashlib.md5(usedforsecurity=False)
    t0 = time.time()
    print(f"cssl: downloading {url} -> {dest}", file=sys.stderr)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            for block in iter(lambda: resp.read(1 << 20), b""):
                h.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        got = h.hexdigest()
        if got != md5:
            raise ValueError(f"downloaded file from {url} has md5 {got}, expected {md5}: the transfer was "
                             "incomplete or the file differs; nothing was kept, retry (or pass md5= for "
                             "another archive)")
        os.replace(tmp, dest)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(err, (ValueError, KeyboardInterrupt)):
            raise
        raise RuntimeError(f"download of {url} failed ({type(err).__name__}: {err}); nothing was kept. "
                           f"Retry, or download the file by hand and put it at {dest}") from err
    print(f"cssl: downloaded {dest.stat().st_size / 2**20:.1f} MiB in {time.time() - t0:.0f} s, md5 ok",
          file=sys.stderr)


def _load_cache(cache: Path, md5: str):
    try:
        with np.load(cache, allow_pickle=False) as z:
            if str(z["md5"]) != md5:
                return None
            arrays = [z[k] for k in ("x_train", "y_train", "x_test", "y_test")]
            names = [str(s) for s in z["class_names"]]
    except Exception as err:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
        warnings.warn(f"ignoring the unreadable cache {cache} ({type(err).__name__}: {err}); rebuilding it "
                      "from the archive", stacklevel=3)
        return None
    if arrays[0].dtype != np.uint8 or arrays[0].shape[1:] != (3, 32, 32) or arrays[2].shape[1:] != (3, 32, 32):
        return None
    return arrays, names


def load_cifar(name: str = "cifar10", root: str | os.PathLike = "data_cache", *, download: bool = False,
               url: str | None = None, md5: str | None = None, member_md5: dict | None = None):
    """Load CIFAR-10 or CIFAR-100 from the official "python version" archive.

    Returns ``(x_train, y_train, x_test, y_test, class_names)``: uint8 ``(50000, 3, 32, 32)`` and
    ``(10000, 3, 32, 32)`` CPU tensors, int64 labels (CIFAR-100: the 100 ``fine_labels``), and the list
    of class names from the archive's meta file.

    The archive ``root/cifar-10-python.tar.gz`` (or ``cifar-100-python.tar.gz``) must hold
    ``cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta`` (CIFAR-100:
    ``cifar-100-python/train, test, meta``), each a pickled dict with ``data`` ((n, 3072) uint8, rows of
    1024 red, 1024 green, 1024 blue values) and ``labels`` / ``fine_labels``. Members are read in memory
    (nothing is extracted, so member names cannot escape ``root``) and unpickled by a decoder that
    accepts only numpy arrays and plain containers.

    Parameters
    ----------
    name : "cifar10" or "cifar100"
    root : folder of the archive and of the decoded cache ``<archive stem>.npz``.
    download : fetch the archive from ``url`` if it is missing. The download streams to a temporary
        file in ``root``, checks the md5 while streaming, and is renamed into place only when complete
        and correct; an interrupted or corrupt download leaves nothing behind and the next call
        restarts it from the beginning (no HTTP range resume).
    url : defaults to the official URL (``CIFAR_SPECS[name]["url"]``); ``file://`` URLs work.
    md5 : expected md5 of the archive; defaults to the official one. Pass the value returned by
        :func:`make_fake_cifar` to load a fake archive.

    member_md5 : ``{file name: md5}`` of the files of an extracted folder; defaults to the official
        ones (``CIFAR_MEMBER_MD5[name]``).

    Without the archive, an extracted folder ``root/cifar-10-batches-py/`` (``root/cifar-100-python/``),
    as torchvision and most labs keep CIFAR, is read instead: each file's md5 is checked against
    ``member_md5`` before it is unpickled.

    The decoded arrays are cached atomically as ``root/<archive stem>.npz`` together with the archive's
    md5 (for a folder: the md5 of its files' md5s); a later call with the same md5 reads the cache
    (about a second) and needs no archive.
    """
    spec = _spec(name)
    root = Path(root)
    url = url if url is not None else spec["url"]
    md5 = (md5 if md5 is not None else spec["md5"])
    if not (isinstance(md5, str) and len(md5) == 32 and all(c in "0123456789abcdef" for c in md5.lower())):
        raise ValueError(f"md5 must be a 32-digit hex string, got {md5!r}")
    md5 = md5.lower()
    archive = root / spec["archive"]
    folder = root / spec["folder"]
    cache = root / (spec["archive"][: -len(".tar.gz")] + ".npz")
    cached = _load_cache(cache, md5) if cache.is_file() else None
    if cached is None and not archive.is_file() and not download and folder.is_dir():
        members = CIFAR_MEMBER_MD5[name] if member_md5 is None else dict(member_md5)
        key = hashlib.md5("".join(f"{k}={str(v).lower()};" for k, v in sorted(members.items())).encode(),
                          usedforsecurity=False).hexdigest()
        cached = _load_cache(cache, key) if cache.is_file() else None
        if cached is None:
            x_tr, y_tr, x_te, y_te, names = _decode_folder(folder, spec, members)
            with atomic_write(cache, "wb") as fh:
                np.savez(fh, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
                         class_names=np.array(names), md5=np.array(key))
            cached = (x_tr, y_tr, x_te, y_te), names
    if cached is None:
        if not archive.is_file():
            if not download:
                raise FileNotFoundError(
                    f"{archive} not found (nor the extracted folder {folder}). Call load_cifar({name!r}, {str(root)!r}, download=True) to fetch it "
                    f"from {url}, or download that file yourself and put it at {archive}. Without network, "
                    f"cssl.data.make_fake_cifar({str(root)!r}, {name!r}) writes a small archive in the same "
                    "format (load it with the md5 it returns).")
            _download(url, archive, md5)
        got = md5sum(archive)
        if got != md5:
            raise ValueError(f"{archive} has md5 {got}, expected {md5}: the file is incomplete, corrupt or a "
                             "different archive. Delete it and retry with download=True (or pass the right md5=)")
        x_tr, y_tr, x_te, y_te, names = _decode_archive(archive, spec)
        with atomic_write(cache, "wb") as fh:
            np.savez(fh, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
                     class_names=np.array(names), md5=np.array(md5))
    else:
        (x_tr, y_tr, x_te, y_te), names = cached
    return (torch.from_numpy(np.ascontiguousarray(x_tr)), torch.from_numpy(y_tr.astype(np.int64)),
            torch.from_numpy(np.ascontiguousarray(x_te)), torch.from_numpy(y_te.astype(np.int64)), names)


# ------------------------------------------------------------------------------------- fake CIFAR
class _Py2Pickler(pickle._Pickler):
    """Pickler that writes what Python 2's cPickle wrote for the CIFAR files: ``bytes`` and ``str`` as
    py2 byte strings (BINSTRING opcodes) and numpy's module as ``numpy.core.multiarray``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(obj)

    dispatch[bytes] = _save_py2str
    dispatch[str] = _save_py2str

    def save_global(self, obj, name=None):
        name = name or obj.__name__
        module = pickle.whichmodule(obj, name)
        module = module.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))
        self.memoize(obj)


def _py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def make_fake_cifar(root: str | os.PathLike, name: str = "cifar10", n_train: int = 100, n_test: int = 50,
                    seed: int = 0) -> str:
    """Write a small random archive in exactly the official CIFAR "python version" format; return its md5.

    Same archive name in ``root``, same member names (CIFAR-10: ``cifar-10-batches-py/data_batch_1..5``
    splitting ``n_train`` images, ``test_batch``, ``batches.meta``, ``readme.html``; CIFAR-100:
    ``cifar-100-python/train, test, meta``), each a protocol-2 pickle written the way Python 2 wrote
    the originals (byte-string keys ``data``, ``labels`` / ``fine_labels`` + ``coarse_labels``,
    ``batch_label``, ``filenames``; meta with the real class names). Images are uniform random uint8,
    labels cycle through all classes in a random order. Byte-for-byte deterministic in ``seed``
    (fixed gzip and tar timestamps). Load it with ``load_cifar(name, root, md5=<returned md5>)``.
    """
    spec = _spec(name)
    n_train = check_int(n_train, "n_train", low=len(spec["train"]))
    n_test = check_int(n_test, "n_test", low=1)
    seed = check_int(seed, "seed", low=0)
    rng = np.random.default_rng(seed)
    K = spec["num_classes"]

    def batch(n, label, offset):
        data = rng.integers(0, 256, size=(n, _PIXELS), dtype=np.uint8)
        labels = [int(v) for v in rng.permutation(np.arange(offset, offset + n) % K)]
        d = {b"batch_label": label.encode(), b"data": data,
             b"filenames": [f"fake_{offset + k:06d}.png".encode() for k in range(n)]}
        if name == "cifar10":
            d[b"labels"] = labels
        else:
            d[b"fine_labels"] = labels
            d[b"coarse_labels"] = [v % 20 for v in labels]
        return _py2_pickle(d)

    members = {}
    folder = spec["folder"]
    if name == "cifar10":
        sizes = [len(a) for a in np.array_split(np.arange(n_train), len(spec["train"]))]
        offset = 0
        for k, (part, n) in enumerate(zip(spec["train"], sizes)):
            members[f"{folder}/{part}"] = batch(n, f"training batch {k + 1} of 5", offset)
            offset += n
        members[f"{folder}/test_batch"] = batch(n_test, "testing batch 1 of 1", 0)
        members[f"{folder}/batches.meta"] = _py2_pickle(
            {b"num_cases_per_batch": 10000, b"label_names": [s.encode() for s in _CIFAR10_NAMES],
             b"num_vis": _PIXELS})
        members[f"{folder}/readme.html"] = b"<meta HTTP-EQUIV=\"REFRESH\" content=\"0; url=http://www.cs.toronto.edu/~kriz/cifar.html\">\n"
    else:
        members[f"{folder}/train"] = batch(n_train, "training batch 1 of 1", 0)
        members[f"{folder}/test"] = batch(n_test, "testing batch 1 of 1", 0)
        members[f"{folder}/meta"] = _py2_pickle(
            {b"fine_label_names": [s.encode() for s in _CIFAR100_NAMES],
             b"coarse_label_names": [s.encode() for s in _CIFAR100_COARSE]})

    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tf:
            d = tarfile.TarInfo(folder)
            d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 1_241_579_400
            tf.addfile(d)
            for path, payload in members.items():
                info = tarfile.TarInfo(path)
                info.size, info.mode, info.mtime = len(payload), 0o644, 1_241_579_400
                tf.addfile(info, io.BytesIO(payload))
    data = raw.getvalue()
    with atomic_write(Path(root) / spec["archive"], "wb") as fh:
        fh.write(data)
    return hashlib.md5(data, usedforsecurity=False).hexdigest()

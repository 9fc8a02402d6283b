"""Batched image augmentations (a)-(e) of the paper's experiments, on tensors, CPU or CUDA.

The paper (Sec. 5; ``docs/design.md``, section 4) uses five transformations: (a) random resized crop, (b) Gaussian
blur, (c) colour dropping (random grayscale), (d) colour distortion (colour jitter) and (e) horizontal
flip. The authors' code builds them with ``lightly.data.SimCLRCollateFunction(input_size=32)`` of
lightly 1.0.8 (``docs/design.md``, section 4), in this order::

    RandomResizedCrop(32, scale=(0.08, 1))            (a)
    RandomHorizontalFlip(0.5)                         (e)
    RandomApply([ColorJitter(0.8s, 0.8s, 0.8s, 0.2s)], p=cj_prob)   (d), s = cj_strength = 0.5
    RandomGrayscale(0.2)                              (c)
    GaussianBlur(prob=0.5)  -> PIL radius 1 on 32x32  (b)

A letter that is absent makes its transformation the identity (the authors set its probability to 0,
or ``min_scale = 1`` for the crop, which is the identity on 32x32).

:class:`Augmentation` applies this pipeline to a whole batch ``x`` of shape ``(B, C, H, W)`` (float in
``[0, 1]``, ``C`` in {1, 3}) at once, on ``x``'s device, with independent random parameters per image
and no Python loop over images. Randomness is split in two steps so that tests and chapters can look
at it: :meth:`Augmentation.sample_params` draws a dict of per-image parameters and
:meth:`Augmentation.apply` is a deterministic function of ``(x, params)``.

Known differences from the authors' PIL-based pipeline, all small: arithmetic is in float rather than
rounded to uint8 after every step (PIL also computes hue in 8-bit HSV); the blur is an exact Gaussian
with ``sigma = blur_sigma`` rather than PIL's three-box approximation; crop sampling is
torchvision's rule vectorised (same distribution, different random stream). The final
``Normalize(ImageNet mean, std)`` of lightly's collate function is not part of this module: the
model code applies it (or not) after augmenting.

:class:`ReferenceAugmentation` is a slow, independently written oracle that loops over images: its
sampler follows torchvision's ``RandomResizedCrop.get_params`` / ``ColorJitter`` code line by line, and
:func:`reference_augment` applies one image's parameters with explicit pixel-coordinate crops
(``F.interpolate``) and explicit colour formulas. The tests check that both samplers draw from the same
distributions and that both ``apply`` functions agree to 1e-5 on the same parameters.

Parameters dict (``B`` images; every key is always present, absent letters give identity values):

=============== ============ =========================================================================
key             shape/dtype  meaning
=============== ============ =========================================================================
``crop``        (B, 4) int64 crop box ``(top, left, height, width)`` in pixels (torchvision's i, j, h, w)
``flip``        (B,) bool    mirror left-right
``jitter``      (B,) bool    colour jitter applied (prob ``cj_prob``)
``brightness``  (B,) float   brightness factor ``~ U(max(0, 1-b), 1+b)``
``contrast``    (B,) float   contrast factor ``~ U(max(0, 1-c), 1+c)``
``saturation``  (B,) float   saturation factor ``~ U(max(0, 1-s), 1+s)``
``hue``         (B,) float   hue shift ``~ U(-h, h)`` in turns (1 = full circle)
``order``       (B, 4) int64 per-image random permutation of (0 brightness, 1 contrast, 2 saturation,
                             3 hue), the order ColorJitter applies them in
``gray``        (B,) bool    convert to grayscale (prob ``gray_prob``)
``blur``        (B,) bool    Gaussian blur (prob ``blur_prob``)
=============== ============ =========================================================================
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ._validate import check_int, check_real

__all__ = [
    "LETTERS",
    "LUMA_WEIGHTS",
    "Augmentation",
    "ReferenceAugmentation",
    "reference_augment",
    "two_views",
    "gaussian_kernel1d",
    "rgb_to_grayscale",
    "adjust_hue",
    "pixel_shift",
]

#: The paper's five transformations, in the paper's lettering (its Sec. 5.2).
LETTERS = "abcde"
_NAMES = {"a": "random resized crop", "b": "Gaussian blur", "c": "random grayscale",
          "d": "colour jitter", "e": "horizontal flip"}
#: ITU-R 601-2 luma, ``L = 0.299 R + 0.587 G + 0.114 B``: what PIL's ``convert("L")`` uses, hence what the
#: authors' PIL-based pipeline uses for grayscale and for contrast/saturation (torchvision's tensor
#: code rounds the first weight to 0.2989).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_PARAM_KEYS = ("crop", "flip", "jitter", "brightness", "contrast", "saturation", "hue", "order",
               "gray", "blur")


# ----------------------------------------------------------------------------------------- helpers
def _check_images(x, name: str = "x", check_values: bool | None = None) -> torch.Tensor:
    """Validate a batch of images and return it as a floating tensor in [0, 1].

    Shape and dtype are always checked. The value range (one reduction read back to the host) is
    checked when ``check_values`` is true; ``None`` means "on CPU only", so that a CUDA training step
    has no host synchronisation.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}; "
                        "convert with torch.as_tensor(...)")
    if x.ndim != 4:
        hint = " (a single image? add a batch dimension with x[None])" if x.ndim == 3 else ""
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}{hint}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 (gray) or 3 (RGB) channels in dim 1, got shape {tuple(x.shape)}; "
                         "channels-last input must be permuted with x.permute(0, 3, 1, 2)")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} has dtype {x.dtype}; expected floating point in [0, 1] (or uint8 in [0, 255])")
    if check_values is None:
        check_values = x.device.type == "cpu"
    if not check_values:
        return x
    lo, hi = torch.aminmax(x)
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:g}, {hi:g}]; "
                         "scale uint8 images with x / 255 and apply any mean/std normalisation after augmenting")
    return x


def _check_pair(value, name: str, low: float, high: float) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (low, high), got {value!r}")
    a = check_real(value[0], f"{name}[0]", low=low, high=high)
    b = check_real(value[1], f"{name}[1]", low=low, high=high)
    if a > b:
        raise ValueError(f"{name} must satisfy low <= high, got {value!r}")
    return a, b


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma image (B, 1, H, W) of a (B, C, H, W) batch (C = 1: the image itself)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b).unsqueeze(1)


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """Grayscale with ITU-R 601-2 luma ``0.299 R + 0.587 G + 0.114 B``, replicated to ``C`` channels.

    Same rule as PIL ``convert("L")`` and torchvision's ``RandomGrayscale`` (which keeps 3 output
    channels for an RGB input). ``x``: (B, C, H, W) float in [0, 1].
    """
    x = _check_images(x)
    return _gray(x).expand_as(x).contiguous()


def gaussian_kernel1d(sigma: float, radius: int | None = None, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian ``k[t] ~ exp(-t^2 / (2 sigma^2))``, ``t = -radius..radius``.

    ``radius`` defaults to ``ceil(3 sigma)`` (7 taps for sigma = 1). The 2-D blur is the outer product,
    applied separably. The authors' lightly 1.0.8 pipeline calls PIL ``GaussianBlur(radius=1)`` on 32x32
    images (``docs/design.md``, section 4), and PIL's radius *is* the standard deviation (approximated there by three
    box blurs); this module uses the exact Gaussian with ``sigma = 1`` pixel by default.
    """
    sigma = check_real(sigma, "sigma", low=0, low_open=True)
    if radius is None:
        radius = max(1, math.ceil(3 * sigma))
    radius = check_int(radius, "radius", low=1)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)  # built on the device: no copy
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype)


# --- Hue rotation, batched. HSV keeps V = max(r, g, b) and V*(1-S) = min(r, g, b); with the chroma
# c = max - min and the hexagonal hue h6 = 6 h in [0, 6) (torchvision's rgb->hsv), the rotated pixel is
# the closed form  channel_n = max - c * clamp(min(k_n, 4 - k_n), 0, 1),  k_n = (n + h6') mod 6,
# n = 5, 3, 1 for R, G, B (the "alternative" hsv->rgb formula), which never forms S or V explicitly.
_HUE_N = (5.0, 3.0, 1.0)


def _adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    maxc = x.amax(dim=1)
    minc = x.amin(dim=1)
    r, g, b = x.unbind(1)
    chroma = maxc - minc
    inv = 1.0 / chroma.clamp_min(1e-12)  # chroma = 0: gray pixel, its hue is irrelevant
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    h6 = torch.where(is_r, (g - b) * inv, torch.where(is_g, (b - r) * inv + 2.0, (r - g) * inv + 4.0))
    h6 = (h6 + 6.0 * shift.view(-1, 1, 1)).unsqueeze(1)  # in [-4, 8): the mod 6 below wraps it
    n = torch.arange(_HUE_N[0], 0.0, -2.0, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)  # 5, 3, 1
    k = torch.remainder(n + h6, 6.0)
    m = (2.0 - (k - 2.0).abs_()).clamp_(0.0, 1.0)  # = clamp(min(k, 4 - k), 0, 1)
    return (maxc.unsqueeze(1) - chroma.unsqueeze(1) * m).clamp_(0.0, 1.0)


def adjust_hue(x: torch.Tensor, shift) -> torch.Tensor:
    """Rotate the hue of every image by ``shift`` turns (torchvision ``adjust_hue`` semantics).

    RGB -> HSV, ``h <- (h + shift) mod 1``, HSV -> RGB; saturation and value are kept. ``x``: (B, 3, H, W)
    in [0, 1]; ``shift``: scalar or (B,) in [-0.5, 0.5]. Gray (1-channel) images are returned unchanged.
    """
    x = _check_images(x)
    shift = torch.as_tensor(shift, dtype=x.dtype, device=x.device).expand(x.shape[0])
    if bool((shift.abs() > 0.5).any()):
        raise ValueError("hue shift must lie in [-0.5, 0.5] (turns)")
    return x if x.shape[1] == 1 else _adjust_hue(x, shift)


def _to_param_device(params: dict, device) -> dict:
    return {k: v.to(device) for k, v in params.items()}


# ----------------------------------------------------------------------------------- configuration
class _AugConfig:
    """Shared, validated configuration of :class:`Augmentation` and :class:`ReferenceAugmentation`."""

    def __init__(self, letters: str = "abcde", *, strength: float = 0.5, cj_prob: float = 0.8,
                 gray_prob: float = 0.2, blur_prob: float = 0.5, flip_prob: float = 0.5,
                 crop_scale: Sequence[float] = (0.08, 1.0), blur_sigma: float = 1.0,
                 crop_ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0), check_values: bool | None = None):
        if not isinstance(letters, str):
            raise TypeError(f"letters must be a string of transformation letters from {LETTERS!r}, "
                            f"got {type(letters).__name__}")
        bad = sorted(set(letters) - set(LETTERS))
        if bad:
            raise ValueError(f"unknown transformation letter(s) {bad} in letters={letters!r}; use letters from "
                             + ", ".join(f"{k}={v}" for k, v in _NAMES.items()))
        if len(set(letters)) != len(letters):
            raise ValueError(f"letters={letters!r} repeats a letter; each transformation appears once")
        self.letters = "".join(c for c in LETTERS if c in letters)
        self.strength = check_real(strength, "strength", low=0, low_open=True)
        if 0.2 * self.strength > 0.5:
            raise ValueError(f"strength={self.strength:g} gives a hue range 0.2*strength > 0.5 turn; "
                             "use strength <= 2.5 (the paper's largest is 1)")
        self.cj_prob = check_real(cj_prob, "cj_prob", low=0, high=1)
        self.gray_prob = check_real(gray_prob, "gray_prob", low=0, high=1)
        self.blur_prob = check_real(blur_prob, "blur_prob", low=0, high=1)
        self.flip_prob = check_real(flip_prob, "flip_prob", low=0, high=1)
        self.crop_scale = _check_pair(crop_scale, "crop_scale", 0.0, 1.0)
        if self.crop_scale[1] <= 0:
            raise ValueError(f"crop_scale={crop_scale!r} must allow a positive area")
        self.crop_ratio = _check_pair(crop_ratio, "crop_ratio", 0.0, math.inf)
        if self.crop_ratio[0] <= 0:
            raise ValueError(f"crop_ratio={crop_ratio!r} must be positive")
        self.blur_sigma = check_real(blur_sigma, "blur_sigma", low=0, low_open=True)
        if check_values not in (None, True, False):
            raise TypeError(f"check_values must be None, True or False, got {check_values!r}")
        self.check_values = check_values
        self._sync_free = None  # None: sync-free selection on CUDA only (tests force True on CPU)
        s = self.strength
        #: ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s): lightly 1.0.8's cj_strength rule (``docs/design.md``, section 4).
        self.jitter = (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)

    # effective per-transformation probabilities (0 when the letter is absent)
    def _p(self, letter: str, p: float) -> float:
        return p if letter in self.letters else 0.0

    @property
    def factor_ranges(self) -> dict[str, tuple[float, float]]:
        """Sampling intervals of the four jitter parameters (torchvision ColorJitter's rule)."""
        b, c, s, h = self.jitter
        return {"brightness": (max(0.0, 1 - b), 1 + b), "contrast": (max(0.0, 1 - c), 1 + c),
                "saturation": (max(0.0, 1 - s), 1 + s), "hue": (-h, h)}

    @classmethod
    def paper(cls, letters: str = "abcde"):
        """Table 1 configuration (paper Sec. 5.2; ``docs/design.md``, section 4): the given subset of "abcde" with the authors'
        defaults (crop scale (0.08, 1), blur p 0.5 sigma 1, gray p 0.2, jitter p 0.8 strength 0.5, flip 0.5)."""
        return cls(letters)

    @classmethod
    def strength_experiment(cls, strength: float):
        """Table 2 configuration (paper Sec. 5.3; ``docs/design.md``, section 4): crop + colour jitter only ("ad"), ``cj_prob = 1``,
        ``ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s)``; the paper uses ``s in {1, 1/2, 1/4, 1/8}``."""
        return cls("ad", strength=strength, cj_prob=1.0)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(letters={self.letters!r}, strength={self.strength:g}, "
                f"cj_prob={self.cj_prob:g}, gray_prob={self.gray_prob:g}, blur_prob={self.blur_prob:g}, "
                f"flip_prob={self.flip_prob:g}, crop_scale={self.crop_scale}, blur_sigma={self.blur_sigma:g})")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch: ``apply(x, sample_params(len(x), generator, x.device))``.

        ``x``: (B, C, H, W) float in [0, 1] (uint8 is accepted and divided by 255), C in {1, 3}.
        Returns a new tensor of the same shape, dtype and device (float32 for uint8 input).
        """
        x = _check_images(x, check_values=self.check_values)
        return self._apply(x, self.sample_params(x.shape[0], generator, x.device, image_size=x.shape[-2:]))

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def _apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        return self.apply(x, params)

    def _check_params(self, params: dict, batch_size: int, image_size=None) -> None:
        if not isinstance(params, dict):
            raise TypeError(f"params must be the dict returned by sample_params, got {type(params).__name__}")
        missing = [k for k in _PARAM_KEYS if k not in params]
        if missing:
            raise ValueError(f"params lacks key(s) {missing}; build params with sample_params()")
        for k in _PARAM_KEYS:
            if not isinstance(params[k], torch.Tensor) or params[k].shape[0] != batch_size:
                raise ValueError(f"params[{k!r}] must be a tensor for {batch_size} images (len(x)); "
                                 "sample the parameters with batch_size=len(x)")
        if image_size is not None:
            H, W = image_size
            box = params["crop"]
            if box.shape[1:] != (4,) or bool(((box[:, :2] < 0) | (box[:, 2:] < 1)).any()) or bool(
                    ((box[:, 0] + box[:, 2] > H) | (box[:, 1] + box[:, 3] > W)).any()):
                raise ValueError(f"params['crop'] holds boxes that do not fit {H}x{W} images; sample them with "
                                 f"sample_params(..., image_size=({H}, {W})) (the default is 32x32)")


# ----------------------------------------------------------------------------------- batched version
class Augmentation(_AugConfig):
    """The authors' augmentation pipeline, batched: crop -> flip -> colour jitter -> grayscale -> blur.

    Parameters
    ----------
    letters : str
        Subset of "abcde": (a) random resized crop, (b) Gaussian blur, (c) random grayscale,
        (d) colour jitter, (e) horizontal flip (paper Sec. 5). Absent letters are the identity.
    strength : float
        Colour-jitter strength ``s``: ``ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s)`` (lightly 1.0.8's
        ``cj_strength``; authors' default 0.5 -> (0.4, 0.4, 0.4, 0.1)). Must be in (0, 2.5].
    cj_prob, gray_prob, blur_prob, flip_prob : float in [0, 1]
        Probabilities of (d), (c), (b), (e); defaults 0.8, 0.2, 0.5, 0.5 as in the authors' code.
    crop_scale : (float, float)
        Area fraction range of the crop, default (0.08, 1) (``min_scale = 0.08``).
    blur_sigma : float
        Standard deviation in pixels of the Gaussian blur (default 1: lightly 1.0.8 ends up calling
        PIL ``GaussianBlur(radius=1)`` on 32x32 images, ``docs/design.md``, section 4). Kernel radius ``ceil(3 sigma)``,
        edge pixels replicated (as PIL's box blurs do).
    crop_ratio : (float, float)
        Aspect-ratio (width/height) range of the crop, torchvision's default (3/4, 4/3).
    check_values : bool or None
        Check that pixel values lie in [0, 1] and that crop boxes fit the images. ``None`` (default):
        on CPU only. On CUDA these checks would read a value back to the host and stall the training
        step, so they are skipped there unless ``check_values=True``; shapes and dtypes are always
        checked. Likewise on CUDA every stage computes the whole batch and selects with
        ``torch.where`` (no host synchronisation at all), while on CPU only the selected images are
        computed.

    Crop sampling is torchvision's ``RandomResizedCrop.get_params`` vectorised: 10 tries per image at
    once (area ``~ U(scale) * H * W``, ``log(ratio) ~ U(log r0, log r1)``, ``w = round(sqrt(area * ratio))``,
    ``h = round(sqrt(area / ratio))``), the first try that fits is kept and its position drawn uniformly;
    an image with no fitting try gets torchvision's fallback (the whole image, or the largest centred
    crop with the extreme allowed ratio). The crop is resized back to ``H x W`` bilinearly with
    half-pixel centres (``F.interpolate(..., align_corners=False)`` semantics, which equals PIL's
    bilinear resize here because a crop is never larger than the image) by one ``grid_sample`` call.

    Colour jitter follows torchvision's ``ColorJitter``: brightness ``x * f``, contrast
    ``f x + (1-f) mean(luma(x))``, saturation ``f x + (1-f) luma(x)``, each clamped to [0, 1], hue via
    HSV, applied in a random order drawn per image. Images with one channel skip saturation and hue
    (as torchvision does) and grayscale.

    Random numbers come from ``generator`` (a ``torch.Generator``; parameters are drawn on its device,
    so a CPU generator gives the same parameters for CPU and CUDA images) or torch's global RNG.
    """

    # ---- sampling
    def sample_params(self, batch_size: int, generator: torch.Generator | None = None, device=None, *,
                      image_size: Sequence[int] = (32, 32)) -> dict[str, torch.Tensor]:
        """Draw the per-image random parameters (see the module docstring for the keys).

        ``image_size = (H, W)`` is needed for the crop boxes (default 32x32, CIFAR); ``__call__`` passes
        the batch's own size. Draws happen on ``generator.device`` (or ``device`` when no generator is
        given) and the result is moved to ``device``.
        """
        batch_size = check_int(batch_size, "batch_size", low=1)
        H, W = (check_int(int(v), "image_size", low=1) for v in image_size)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        gen_dev = generator.device if generator is not None else torch.device(device if device is not None else "cpu")
        out_dev = torch.device(device) if device is not None else gen_dev
        B = batch_size

        def rand(*shape):
            return torch.rand(*shape, generator=generator, device=gen_dev, dtype=torch.float64)

        p = {}
        # (a) crop: torchvision RandomResizedCrop.get_params, all 10 tries of all images at once
        if "a" in self.letters:
            s0, s1 = self.crop_scale
            r0, r1 = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
            area = H * W * (s0 + (s1 - s0) * rand(B, 10))
            ratio = torch.exp(r0 + (r1 - r0) * rand(B, 10))
            w = torch.round(torch.sqrt(area * ratio))
            h = torch.round(torch.sqrt(area / ratio))
            ok = (w > 0) & (w <= W) & (h > 0) & (h <= H)
            first = torch.argmax(ok.to(torch.uint8), dim=1, keepdim=True)  # first fitting try (0 if none)
            w = w.gather(1, first).squeeze(1)
            h = h.gather(1, first).squeeze(1)
            found = ok.any(dim=1)
            # fallback (torchvision): whole image if its ratio is allowed, else largest centred crop
            in_ratio = W / H
            if in_ratio < self.crop_ratio[0]:
                fw, fh = W, int(round(W / self.crop_ratio[0]))
            elif in_ratio > self.crop_ratio[1]:
                fh, fw = H, int(round(H * self.crop_ratio[1]))
            else:
                fw, fh = W, H
            u = rand(B, 2)
            i = torch.floor(u[:, 0] * (H - h + 1))
            j = torch.floor(u[:, 1] * (W - w + 1))
            i = torch.where(found, i, torch.full_like(i, (H - fh) // 2))
            j = torch.where(found, j, torch.full_like(j, (W - fw) // 2))
            h = torch.where(found, h, torch.full_like(h, fh))
            w = torch.where(found, w, torch.full_like(w, fw))
            p["crop"] = torch.stack((i, j, h, w), dim=1).to(torch.int64)
        else:
            zero = torch.zeros(B, dtype=torch.int64, device=gen_dev)
            p["crop"] = torch.stack((zero, zero, torch.full_like(zero, H), torch.full_like(zero, W)), dim=1)
        # (e) flip
        p["flip"] = rand(B) < self._p("e", self.flip_prob)
        # (d) colour jitter
        p["jitter"] = rand(B) < self._p("d", self.cj_prob)
        u = rand(B, 4)
        for col, (key, (lo, hi)) in enumerate(self.factor_ranges.items()):
            p[key] = (lo + (hi - lo) * u[:, col]).to(torch.float32)
        p["order"] = torch.argsort(rand(B, 4), dim=1)
        # (c) grayscale, (b) blur
        p["gray"] = rand(B) < self._p("c", self.gray_prob)
        p["blur"] = rand(B) < self._p("b", self.blur_prob)
        return _to_param_device(p, out_dev)

    # ---- deterministic application
    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """Apply parameters from :meth:`sample_params` to the batch ``x`` (deterministic, batched).

        Stages run in lightly's order crop -> flip -> colour jitter -> grayscale -> blur; each stage acts
        only on the images whose parameters select it (others pass through bit-for-bit, except that a
        crop stage resamples every image, exactly at pixel centres for a full-image box).
        """
        return self._apply(_check_images(x, check_values=self.check_values), params)

    def _apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        B, C, H, W = x.shape
        check = self.check_values if self.check_values is not None else x.device.type == "cpu"
        self._check_params(params, B, (H, W) if "a" in self.letters and check else None)
        params = _to_param_device(params, x.device)
        sf = self._sync_free if self._sync_free is not None else x.device.type != "cpu"
        flip = params["flip"] if "e" in self.letters else None
        if "a" in self.letters:
            x = self._crop(x, params["crop"], flip)  # the flip is folded into the sampling grid
        else:
            x = x.clone()  # the stages below write into x
            if flip is not None:
                x = _rows_(x, flip, lambda t: t.flip(-1), sf)
        if "d" in self.letters:
            x = self._jitter(x, params, sf)
        if "c" in self.letters and C == 3:
            x = _rows_(x, params["gray"], lambda t: _gray(t).expand_as(t), sf)
        if "b" in self.letters:
            x = _rows_(x, params["blur"], self._blur, sf)
        return x

    @staticmethod
    def _crop(x: torch.Tensor, box: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
        """Resized crop of every image (and its mirror image where ``flip``), by one ``grid_sample``."""
        B, C, H, W = x.shape
        dt = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        box = box.to(dt)
        i, j, h, w = (box[:, k].view(B, 1) for k in range(4))
        v = torch.arange(H, dtype=dt, device=x.device).view(1, H)
        u = torch.arange(W, dtype=dt, device=x.device).view(1, W)
        # source pixel coordinate of each output pixel centre, clamped to the crop (interpolate semantics)
        sy = torch.minimum(torch.maximum(i + (v + 0.5) * h / H - 0.5, i), i + h - 1)
        sx = torch.minimum(torch.maximum(j + (u + 0.5) * w / W - 0.5, j), j + w - 1)
        if flip is not None:  # output column u of a flipped image is column W-1-u of the crop
            sx = torch.where(flip.view(B, 1), sx.flip(1), sx)
        gy = (2 * sy + 1) / H - 1  # grid_sample's normalised coordinates, align_corners=False
        gx = (2 * sx + 1) / W - 1
        grid = torch.stack((gx.view(B, 1, W).expand(B, H, W), gy.view(B, H, 1).expand(B, H, W)), dim=-1)
        out = F.grid_sample(x.to(dt), grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.to(x.dtype)

    def _jitter(self, x: torch.Tensor, params: dict, sync_free: bool = False) -> torch.Tensor:
        B, C = x.shape[:2]
        on = params["jitter"]
        dt = x.dtype
        order = params["order"]
        for stage in range(4):
            op = order[:, stage]
            # Brightness, contrast, saturation are blends f x + (1-f) ref with ref = 0, mean luma, luma,
            # computed as clamp(f x + c), c = (1-f) ref. Images not blended at this stage get f = 1, c = 0,
            # which leaves them bit-for-bit unchanged (x is already in [0, 1]).
            con = (on & (op == 1)).to(dt)
            sat = (on & (op == 2)).to(dt) if C == 3 else torch.zeros_like(con)  # identity on gray images
            bri = (on & (op == 0)).to(dt)
            f = (1 + bri * (params["brightness"].to(dt) - 1) + con * (params["contrast"].to(dt) - 1)
                 + sat * (params["saturation"].to(dt) - 1))
            g = _gray(x)
            w_con = (con * (1 - f)).view(B, 1, 1, 1)
            w_sat = (sat * (1 - f)).view(B, 1, 1, 1)
            c = torch.addcmul(w_con * g.mean(dim=(1, 2, 3), keepdim=True), w_sat, g)
            x = torch.addcmul(c, f.view(B, 1, 1, 1), x).clamp_(0.0, 1.0)
            if C == 3:
                hue = params["hue"].to(dt)
                x = _rows_(x, on & (op == 3), lambda t, h: _adjust_hue(t, h), sync_free, hue)
        return x

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian blur with replicated edges as two small matrix products ``M_H x M_W^T``
        (much faster on CPU than a 1-channel convolution)."""
        H, W = x.shape[-2:]
        k = gaussian_kernel1d(self.blur_sigma, dtype=x.dtype, device=x.device)
        return torch.matmul(torch.matmul(_blur_matrix(H, k), x), _blur_matrix(W, k).T)


def _rows_(x: torch.Tensor, mask: torch.Tensor, fn, sync_free: bool, *extra: torch.Tensor) -> torch.Tensor:
    """``x[mask] = fn(x[mask], *extra[mask])``, returning ``x``.

    CPU (``sync_free`` false): only the selected images are computed, gathered by index and written
    back in place (``torch.nonzero`` reads the count back, free on CPU). CUDA (``sync_free`` true):
    ``fn`` runs on the whole batch and ``torch.where`` selects, so nothing is read back to the host and
    the training step never waits for the GPU.
    """
    if sync_free:
        return torch.where(mask.view(-1, 1, 1, 1), fn(x, *extra).to(x.dtype), x)
    idx = torch.nonzero(mask).squeeze(1)
    if idx.numel():
        x.index_copy_(0, idx, fn(x.index_select(0, idx), *(e.index_select(0, idx) for e in extra)).to(x.dtype))
    return x


def _blur_matrix(n: int, k: torch.Tensor) -> torch.Tensor:
    """(n, n) matrix of the 1-D convolution with kernel ``k`` on a length-n signal whose edge samples
    are replicated: ``M[p, clamp(p + t, 0, n - 1)] += k[t + r]``."""
    r = (k.numel() - 1) // 2
    cols = (torch.arange(n, device=k.device).view(n, 1) + torch.arange(-r, r + 1, device=k.device).view(1, -1))
    cols = cols.clamp(0, n - 1)
    m = torch.zeros(n, n, dtype=k.dtype, device=k.device)
    return m.scatter_add_(1, cols, k.view(1, -1).expand(n, -1).contiguous())


def two_views(x: torch.Tensor, aug: Augmentation, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent augmentations ``(aug(x), aug(x))`` of the batch ``x``: the positive pairs
    ``(x1, x2)`` with ``x1, x2 ~ A(x)`` of the paper's Sec. 2."""
    if not callable(aug):
        raise TypeError(f"aug must be an Augmentation (callable), got {type(aug).__name__}")
    return aug(x, generator), aug(x, generator)


# ---------------------------------------------------------------------------------- reference oracle
def _ref_hsv_to_rgb(h, s, v):
    """Textbook sector formula (Foley & van Dam; Python's colorsys.hsv_to_rgb), per pixel, vectorised."""
    h6 = h * 6.0
    sector = torch.floor(h6)
    f = h6 - sector
    sector = torch.remainder(sector, 6).to(torch.int64)
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    r = torch.zeros_like(v)
    g = torch.zeros_like(v)
    b = torch.zeros_like(v)
    for k, (rk, gk, bk) in enumerate(table):
        m = sector == k
        r = torch.where(m, rk, r)
        g = torch.where(m, gk, g)
        b = torch.where(m, bk, b)
    return r, g, b


def _ref_rgb_to_hsv(r, g, b):
    """Python's colorsys.rgb_to_hsv, per pixel, vectorised over the pixels of one image."""
    maxc = torch.max(torch.stack([r, g, b]), dim=0).values
    minc = torch.min(torch.stack([r, g, b]), dim=0).values
    v = maxc
    delta = maxc - minc
    gray = delta == 0
    s = torch.where(gray, torch.zeros_like(v), delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc))
    d = torch.where(gray, torch.ones_like(delta), delta)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(r == maxc, bc - gc, torch.where(g == maxc, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(gray, torch.zeros_like(h), torch.remainder(h / 6.0, 1.0))
    return h, s, v


def reference_augment(x_single: torch.Tensor, params_single: dict) -> torch.Tensor:
    """Apply one image's parameters, simply and explicitly (the oracle of the tests).

    ``x_single``: (C, H, W) float in [0, 1]; ``params_single``: a dict with the keys of
    :meth:`Augmentation.sample_params` holding one image's values (Python scalars, a 4-sequence for
    ``crop`` and ``order``, or 0-d/1-d tensors). Steps: slice the crop box ``x[:, i:i+h, j:j+w]`` and
    ``F.interpolate`` it to ``H x W`` (bilinear, ``align_corners=False``); flip with ``torch.flip``;
    jitter ops one at a time in ``order`` with explicit formulas (luma ``0.299 R + 0.587 G + 0.114 B``,
    hue through a sector-wise HSV conversion); grayscale; blur as a 2-D convolution with the outer
    product Gaussian kernel ``radius = ceil(3 sigma)`` on the edge-replicated image. ``params_single``
    must also hold ``blur_sigma`` when ``blur`` is true.
    """
    if not isinstance(x_single, torch.Tensor) or x_single.ndim != 3 or x_single.shape[0] not in (1, 3):
        raise ValueError("x_single must be one image of shape (C, H, W) with C in {1, 3}")
    P = {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in params_single.items()}
    img = x_single.clone()
    C, H, W = img.shape
    # (a) crop, resize back
    i, j, h, w = (int(t) for t in P["crop"])
    if not (0 <= i and 0 <= j and 1 <= h and 1 <= w and i + h <= H and j + w <= W):
        raise ValueError(f"crop box {P['crop']} does not fit in a {H}x{W} image")
    patch = img[:, i:i + h, j:j + w]
    img = F.interpolate(patch[None], size=(H, W), mode="bilinear", align_corners=False)[0]
    # (e) flip
    if P["flip"]:
        img = torch.flip(img, dims=[2])

    def luma(t):
        return t[0] if C == 1 else 0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]

    # (d) colour jitter
    if P["jitter"]:
        for op in P["order"]:
            if op == 0:
                img = (P["brightness"] * img).clamp(0, 1)
            elif op == 1:
                m = luma(img).mean()
                img = (P["contrast"] * img + (1 - P["contrast"]) * m).clamp(0, 1)
            elif op == 2 and C == 3:
                gimg = luma(img)
                img = (P["saturation"] * img + (1 - P["saturation"]) * gimg[None]).clamp(0, 1)
            elif op == 3 and C == 3:
                hh, ss, vv = _ref_rgb_to_hsv(img[0], img[1], img[2])
                hh = torch.remainder(hh + P["hue"], 1.0)
                img = torch.stack(_ref_hsv_to_rgb(hh, ss, vv)).clamp(0, 1)
    # (c) grayscale
    if P["gray"] and C == 3:
        img = luma(img)[None].repeat(3, 1, 1)
    # (b) blur
    if P["blur"]:
        sigma = float(P["blur_sigma"])
        rad = max(1, math.ceil(3 * sigma))
        t = torch.arange(-rad, rad + 1, dtype=torch.float64)
        k2 = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma ** 2))
        k2 = (k2 / k2.sum()).to(img.dtype)
        padded = F.pad(img[:, None], (rad, rad, rad, rad), mode="replicate")
        img = F.conv2d(padded, k2[None, None])[:, 0]
    return img


class ReferenceAugmentation(_AugConfig):
    """Slow per-image oracle with the same configuration as :class:`Augmentation`.

    :meth:`sample_params` follows torchvision's code literally, one image at a time: a Python loop of
    up to 10 crop tries (``RandomResizedCrop.get_params``), then coin flips and jitter factors drawn
    one scalar at a time, the jitter order from ``torch.randperm(4)`` (torchvision >= 0.8; 0.5 used
    ``random.shuffle``: the same uniform permutation). :meth:`apply` loops over images calling
    :func:`reference_augment`. Same distributions as :class:`Augmentation`, different random streams.
    """

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None, device=None, *,
                      image_size: Sequence[int] = (32, 32)) -> dict[str, torch.Tensor]:
        """Per-image loop sampler with torchvision's rules (see the class docstring)."""
        batch_size = check_int(batch_size, "batch_size", low=1)
        H, W = (int(v) for v in image_size)
        g = generator

        def u(lo=0.0, hi=1.0):
            return lo + (hi - lo) * torch.rand((), generator=g, dtype=torch.float64).item()

        rows = {k: [] for k in _PARAM_KEYS}
        ranges = self.factor_ranges
        for _ in range(batch_size):
            box = [0, 0, H, W]
            if "a" in self.letters:
                area = H * W
                log_ratio = (math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]))
                for _try in range(10):
                    target_area = area * u(*self.crop_scale)
                    aspect = math.exp(u(*log_ratio))
                    w = int(round(math.sqrt(target_area * aspect)))
                    h = int(round(math.sqrt(target_area / aspect)))
                    if 0 < w <= W and 0 < h <= H:
                        i = int(torch.randint(0, H - h + 1, (1,), generator=g).item())
                        j = int(torch.randint(0, W - w + 1, (1,), generator=g).item())
                        box = [i, j, h, w]
                        break
                else:
                    in_ratio = W / H
                    if in_ratio < min(self.crop_ratio):
                        w, h = W, int(round(W / min(self.crop_ratio)))
                    elif in_ratio > max(self.crop_ratio):
                        h, w = H, int(round(H * max(self.crop_ratio)))
                    else:
                        w, h = W, H
                    box = [(H - h) // 2, (W - w) // 2, h, w]
            rows["crop"].append(box)
            rows["flip"].append("e" in self.letters and u() < self.flip_prob)
            rows["jitter"].append("d" in self.letters and u() < self.cj_prob)
            rows["order"].append(torch.randperm(4, generator=g).tolist())
            for key in ("brightness", "contrast", "saturation", "hue"):
                rows[key].append(u(*ranges[key]))
            rows["gray"].append("c" in self.letters and u() < self.gray_prob)
            rows["blur"].append("b" in self.letters and u() < self.blur_prob)
        p = {k: torch.tensor(rows[k]) for k in ("crop", "order")}
        p.update({k: torch.tensor(rows[k], dtype=torch.bool) for k in ("flip", "jitter", "gray", "blur")})
        p.update({k: torch.tensor(rows[k], dtype=torch.float32)
                  for k in ("brightness", "contrast", "saturation", "hue")})
        return _to_param_device(p, device if device is not None else "cpu")

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """Loop over images, applying each one's parameters with :func:`reference_augment`."""
        x = _check_images(x)
        self._check_params(params, x.shape[0])
        out = []
        for n in range(x.shape[0]):
            pn = {k: params[k][n] for k in _PARAM_KEYS}
            # letters absent -> identity, whatever the parameters say
            if "a" not in self.letters:
                pn["crop"] = [0, 0, x.shape[2], x.shape[3]]
            for letter, key in (("e", "flip"), ("d", "jitter"), ("c", "gray"), ("b", "blur")):
                if letter not in self.letters:
                    pn[key] = False
            pn["blur_sigma"] = self.blur_sigma
            out.append(reference_augment(x[n], pn))
        return torch.stack(out)


# ------------------------------------------------------------------------------- finite views
def pixel_shift(dy: int, dx: int):
    """A deterministic one-pixel shift ``image -> image``, filling the vacated row/column with 0.

    Returns a transform for :func:`cssl.worlds.image_world` (the finite augmentations of the digits
    world, Chapter 5): the image ``(..., H, W)`` is rolled by ``dy`` rows and ``dx`` columns, and the
    row/column that wrapped around is set to the background 0. ``dy, dx`` in ``{-1, 0, 1}``; the input
    is not modified.
    """
    dy = check_int(dy, "dy", low=-1, high=1)
    dx = check_int(dx, "dx", low=-1, high=1)

    def transform(img):
        if not isinstance(img, torch.Tensor) or img.ndim < 2:
            raise TypeError("pixel_shift expects an image tensor of shape (..., H, W)")
        out = torch.roll(img, shifts=(dy, dx), dims=(-2, -1))
        if dy:
            out[..., 0 if dy > 0 else -1, :] = 0
        if dx:
            out[..., :, 0 if dx > 0 else -1] = 0
        return out

    transform.__name__ = f"pixel_shift({dy}, {dx})"
    return transform

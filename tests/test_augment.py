"""Tests of cssl.augment: batched pipeline vs the per-image reference, and against closed forms."""
from __future__ import annotations

import colorsys
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from cssl.augment import (
    LUMA_WEIGHTS,
    Augmentation,
    ReferenceAugmentation,
    adjust_hue,
    gaussian_kernel1d,
    reference_augment,
    rgb_to_grayscale,
    two_views,
)

KEYS = ("crop", "flip", "jitter", "brightness", "contrast", "saturation", "hue", "order", "gray", "blur")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def rand_images(b, c=3, h=32, w=32, seed=0, dtype=torch.float32):
    return torch.rand(b, c, h, w, generator=gen(seed), dtype=dtype)


def jitter_params(b, order, bri=1.0, con=1.0, sat=1.0, hue=0.0, h=32, w=32):
    """Hand-made params: jitter on for every image with the given factors, nothing else."""
    return {
        "crop": torch.tensor([[0, 0, h, w]]).repeat(b, 1),
        "flip": torch.zeros(b, dtype=torch.bool),
        "jitter": torch.ones(b, dtype=torch.bool),
        "brightness": torch.full((b,), bri), "contrast": torch.full((b,), con),
        "saturation": torch.full((b,), sat), "hue": torch.full((b,), hue),
        "order": torch.tensor([order]).repeat(b, 1),
        "gray": torch.zeros(b, dtype=torch.bool), "blur": torch.zeros(b, dtype=torch.bool),
    }


# ------------------------------------------------------------------------------ configuration
def test_defaults_follow_the_authors_recipe():
    a = Augmentation()
    assert a.letters == "abcde"
    assert a.jitter == pytest.approx((0.4, 0.4, 0.4, 0.1))
    assert (a.cj_prob, a.gray_prob, a.blur_prob, a.flip_prob) == (0.8, 0.2, 0.5, 0.5)
    assert a.crop_scale == (0.08, 1.0) and a.blur_sigma == 1.0
    assert Augmentation.paper("cab").letters == "abc"  # canonical order
    for s, want in [(1, (0.8, 0.8, 0.8, 0.2)), (0.5, (0.4, 0.4, 0.4, 0.1)), (0.25, (0.2, 0.2, 0.2, 0.05)),
                    (0.125, (0.1, 0.1, 0.1, 0.025))]:
        t = Augmentation.strength_experiment(s)
        assert t.letters == "ad" and t.cj_prob == 1.0 and t.jitter == pytest.approx(want)
    r = Augmentation(strength=1.0).factor_ranges
    assert r["brightness"] == pytest.approx((0.2, 1.8)) and r["hue"] == pytest.approx((-0.2, 0.2))
    assert Augmentation(strength=2.0).factor_ranges["contrast"] == pytest.approx((0.0, 2.6))  # max(0, 1 - b)
    assert "letters='ad'" in repr(Augmentation("da"))


@pytest.mark.parametrize("kwargs, match", [
    (dict(letters="abz"), "unknown transformation letter"),
    (dict(letters="aab"), "repeats"),
    (dict(letters=3), "string"),
    (dict(strength=0.0), "strength"),
    (dict(strength=-1.0), "strength"),
    (dict(strength=3.0), "strength <= 2.5"),
    (dict(cj_prob=1.5), "cj_prob"),
    (dict(gray_prob=-0.1), "gray_prob"),
    (dict(blur_prob=float("nan")), "blur_prob"),
    (dict(flip_prob=2), "flip_prob"),
    (dict(crop_scale=(0.5, 0.2)), "low <= high"),
    (dict(crop_scale=(0.1, 1.5)), "crop_scale"),
    (dict(crop_scale=0.5), "pair"),
    (dict(blur_sigma=0.0), "blur_sigma"),
])
def test_bad_configuration_raises(kwargs, match):
    letters = kwargs.pop("letters", "abcde")
    with pytest.raises((ValueError, TypeError), match=match):
        Augmentation(letters, **kwargs)


@pytest.mark.parametrize("x, match", [
    (torch.rand(3, 32, 32), "add a batch dimension"),
    (torch.rand(2, 2, 8, 8), "1 .gray. or 3"),
    (torch.randint(0, 2, (2, 3, 8, 8)), "dtype"),
    (torch.rand(2, 3, 8, 8) * 2, r"\[0, 1\]"),
    (torch.full((2, 3, 8, 8), float("nan")), "NaN"),
    (np.zeros((2, 3, 8, 8)), "torch.Tensor"),
])
def test_bad_images_raise(x, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Augmentation()(x)


def test_bad_params_raise():
    a = Augmentation()
    x = rand_images(4)
    p = a.sample_params(4, gen(0))
    with pytest.raises(ValueError, match="sample_params"):
        a.apply(x, {k: v for k, v in p.items() if k != "hue"})
    with pytest.raises(ValueError, match="batch_size=len"):
        a.apply(rand_images(5), p)
    with pytest.raises(ValueError, match="do not fit 16x16"):
        a.apply(rand_images(4, h=16, w=16), p)  # boxes were drawn for the default 32x32
    with pytest.raises(TypeError, match="generator"):
        a.sample_params(4, generator=0)
    with pytest.raises(ValueError, match="batch_size"):
        a.sample_params(0)
    with pytest.raises(ValueError, match="does not fit"):
        reference_augment(x[0], {**{k: v[0] for k, v in p.items()}, "crop": [30, 0, 8, 8]})


# -------------------------------------------------------------- batched == reference (same params)
CONFIGS = [
    dict(letters="abcde"),
    dict(letters="abcde", cj_prob=1.0, gray_prob=0.5, blur_prob=1.0, strength=1.0),
    dict(letters="ad", cj_prob=1.0, strength=1.0),
    dict(letters="ad", cj_prob=1.0, strength=0.125),
    dict(letters="bcde", cj_prob=1.0, blur_sigma=0.6),
    dict(letters="ae", crop_scale=(0.5, 1.0)),
    dict(letters="d", cj_prob=1.0, strength=2.5),
    dict(letters="b", blur_prob=1.0, blur_sigma=2.0),
    dict(letters=""),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c["letters"] or "none")
@pytest.mark.parametrize("sampler", ["batched", "reference"])
def test_batched_apply_equals_reference_apply(cfg, sampler):
    cfg = dict(cfg)
    letters = cfg.pop("letters")
    A, R = Augmentation(letters, **cfg), ReferenceAugmentation(letters, **cfg)
    for shape in [(16, 3, 32, 32), (6, 3, 20, 27), (6, 1, 8, 8)]:
        x = rand_images(*shape, seed=1)
        src = A if sampler == "batched" else R
        p = src.sample_params(shape[0], gen(2), image_size=shape[2:])
        got, want = A.apply(x, p), R.apply(x, p)
        assert got.shape == x.shape and got.dtype == x.dtype
        assert (got - want).abs().max().item() < 1e-5, (letters, shape)
        assert 0.0 <= got.min().item() and got.max().item() <= 1.0


@pytest.mark.parametrize("letters", ["abcde", "bcde"])
def test_sync_free_path_equals_reference(letters):
    """The CUDA code path (whole-batch compute + torch.where, no host reads), forced on CPU."""
    A = Augmentation(letters, cj_prob=0.7, gray_prob=0.4, blur_prob=0.5, strength=1.0, check_values=False)
    A._sync_free = True
    x = rand_images(16, seed=14)
    p = A.sample_params(16, gen(15))
    assert (A.apply(x, p) - ReferenceAugmentation(letters).apply(x, p)).abs().max().item() < 1e-5
    assert A.apply(x * 2, p).shape == x.shape  # values are not checked with check_values=False
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Augmentation(check_values=True)(x * 2)
    with pytest.raises(TypeError, match="check_values"):
        Augmentation(check_values="yes")


def test_batched_equals_reference_in_float64_to_high_precision():
    A = Augmentation("abcde", cj_prob=1.0, blur_prob=0.5, gray_prob=0.3, strength=1.0)
    x = rand_images(24, dtype=torch.float64, seed=3)
    p = A.sample_params(24, gen(4))
    got, want = A.apply(x, p), ReferenceAugmentation("abcde").apply(x, p)
    assert got.dtype == torch.float64
    assert (got - want).abs().max().item() < 1e-9


def test_every_jitter_order_matches_reference():
    """All 24 orders with strong factors: order matters, and both implementations agree on each."""
    x = rand_images(24, seed=5)
    orders = list(itertools.permutations(range(4)))
    p = jitter_params(24, orders[0], bri=1.6, con=0.3, sat=1.7, hue=0.23)
    p["order"] = torch.tensor(orders)
    got = Augmentation("d").apply(x, p)
    want = ReferenceAugmentation("d").apply(x, p)
    assert (got - want).abs().max().item() < 1e-5
    # the same image under different orders really differs (the order is not a no-op)
    same = Augmentation("d").apply(x[:1].repeat(24, 1, 1, 1), p)
    assert (same[0] - same[-1]).abs().max().item() > 0.05


# ------------------------------------------------------------------ distributions of the samplers
def _ks_p(a, b):
    return stats.ks_2samp(np.asarray(a, dtype=float), np.asarray(b, dtype=float)).pvalue


def _binom_z(k, n, p):
    return abs(k - n * p) / math.sqrt(n * p * (1 - p))


def test_parameter_distributions_match_reference_sampler():
    n_b, n_r = 20000, 4000
    A, R = Augmentation(), ReferenceAugmentation()
    pb = A.sample_params(n_b, gen(10))
    pr = R.sample_params(n_r, gen(11))

    def crop_stats(p):
        i, j, h, w = p["crop"].double().unbind(1)
        return {"area": h * w / 1024, "ratio": w / h, "top": i / (33 - h), "left": j / (33 - w)}

    cb, cr = crop_stats(pb), crop_stats(pr)
    for key in cb:
        assert _ks_p(cb[key], cr[key]) > 1e-3, key
    for key in ("brightness", "contrast", "saturation", "hue"):
        assert _ks_p(pb[key], pr[key]) > 1e-3, key
        lo, hi = A.factor_ranges[key]
        assert stats.kstest(pb[key].double().numpy(), "uniform", args=(lo, hi - lo)).pvalue > 1e-3, key
    for key, prob in (("flip", 0.5), ("jitter", 0.8), ("gray", 0.2), ("blur", 0.5)):
        assert _binom_z(int(pb[key].sum()), n_b, prob) < 4.5, key
        assert _binom_z(int(pr[key].sum()), n_r, prob) < 4.5, key
    # jitter orders: the 24 permutations equally likely (chi-square), in both samplers
    for p, n in ((pb, n_b), (pr, n_r)):
        assert sorted(p["order"][0].tolist()) == [0, 1, 2, 3]
        codes = (p["order"] * torch.tensor([64, 16, 4, 1])).sum(1)
        counts = torch.unique(codes, return_counts=True)[1].numpy()
        assert len(counts) == 24 and stats.chisquare(counts).pvalue > 1e-3
    # crop areas stay in the scale range and boxes inside the image
    assert cb["area"].min() >= 0.08 * 0.8 and cb["area"].max() <= 1.0
    i, j, h, w = pb["crop"].unbind(1)
    assert (i >= 0).all() and (j >= 0).all() and (i + h <= 32).all() and (j + w <= 32).all()
    # power: the same KS test does see a sampler with a different scale range
    other = Augmentation(crop_scale=(0.16, 1.0)).sample_params(n_b, gen(12))
    assert _ks_p(crop_stats(other)["area"], cr["area"]) < 1e-6


def test_letters_absent_give_identity_parameters():
    p = Augmentation("b").sample_params(2000, gen(0), image_size=(20, 24))
    assert (p["crop"] == torch.tensor([0, 0, 20, 24])).all()
    assert not p["flip"].any() and not p["jitter"].any() and not p["gray"].any()
    assert 0.4 < p["blur"].float().mean() < 0.6


def test_crop_fallback_is_torchvisions():
    """A 16x40 image with scale 1: no try fits (h > 16 always), so every box is torchvision's fallback,
    the centred crop with the largest allowed ratio 4/3: h = 16, w = round(16 * 4/3) = 21."""
    for S in (Augmentation, ReferenceAugmentation):
        p = S(crop_scale=(1.0, 1.0)).sample_params(50, gen(0), image_size=(16, 40))
        assert (p["crop"] == torch.tensor([0, (40 - 21) // 2, 16, 21])).all(), S
        # tall image: smallest ratio 3/4, w = 16, h = round(16 / 0.75) = 21, centred vertically
        p = S(crop_scale=(1.0, 1.0)).sample_params(50, gen(0), image_size=(40, 16))
        assert (p["crop"] == torch.tensor([(40 - 21) // 2, 0, 21, 16])).all(), S
    # square image, scale 1: tries succeed only for ratio ~ 1, else the fallback: always the full image
    for S in (Augmentation, ReferenceAugmentation):
        p = S(crop_scale=(1.0, 1.0)).sample_params(200, gen(1), image_size=(32, 32))
        assert (p["crop"] == torch.tensor([0, 0, 32, 32])).all()


# ------------------------------------------------------------------------- closed-form checks
def test_flip_is_mirror_and_full_crop_is_identity():
    x = rand_images(8, seed=6)
    out = Augmentation("e", flip_prob=1.0)(x, gen(0))
    assert torch.equal(out, x.flip(-1))
    p = Augmentation("ae", flip_prob=1.0).sample_params(8, gen(0))
    p["crop"] = torch.tensor([[0, 0, 32, 32]]).repeat(8, 1)
    assert (Augmentation("ae").apply(x, p) - x.flip(-1)).abs().max() < 1e-5
    assert torch.equal(Augmentation("")(x, gen(0)), x)


def test_crop_of_a_ramp_is_the_expected_ramp():
    """Bilinear resize with half-pixel centres reproduces a linear ramp, clamped at the crop's edge."""
    H, W = 12, 32
    ramp = (torch.arange(W, dtype=torch.float64) / (W - 1)).expand(1, 3, H, W).contiguous()
    p = Augmentation("a").sample_params(1, gen(0), image_size=(H, W))
    j, w = 5, 10
    p["crop"] = torch.tensor([[2, j, 8, w]])
    out = Augmentation("a").apply(ramp, p)[0, 0]
    u = torch.arange(W, dtype=torch.float64)
    src = (j + ((u + 0.5) * w / W - 0.5).clamp(0, w - 1)) / (W - 1)
    assert torch.allclose(out, src.expand(H, W), atol=1e-9)


def test_grayscale_uses_itu_601_luma():
    x = torch.zeros(1, 3, 4, 4)
    x[0, 0] = 1.0  # pure red
    out = Augmentation("c", gray_prob=1.0)(x, gen(0))
    assert torch.allclose(out, torch.full_like(x, LUMA_WEIGHTS[0]))
    y = rand_images(4, seed=7)
    g = rgb_to_grayscale(y)
    assert torch.allclose(g[:, 1], 0.299 * y[:, 0] + 0.587 * y[:, 1] + 0.114 * y[:, 2])


def test_hue_rotation_against_colorsys():
    assert sum(LUMA_WEIGHTS) == pytest.approx(1.0)
    red = torch.zeros(1, 3, 1, 1)
    red[0, 0] = 1.0
    assert torch.allclose(adjust_hue(red, 1 / 3), torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1), atol=1e-6)
    assert torch.allclose(adjust_hue(red, -1 / 3), torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1), atol=1e-6)
    rng = np.random.default_rng(0)
    px = rng.random((200, 3))
    px[:20, 1] = px[:20, 0]  # ties between channels
    px[20:30] = px[20:30, :1]  # gray pixels
    shifts = rng.uniform(-0.5, 0.5, 200)
    want = []
    for (r, g, b), s in zip(px, shifts):
        h, sat, v = colorsys.rgb_to_hsv(r, g, b)
        want.append(colorsys.hsv_to_rgb((h + s) % 1.0, sat, v))
    x = torch.tensor(px, dtype=torch.float64).view(200, 3, 1, 1)
    got = adjust_hue(x, torch.tensor(shifts))
    assert np.abs(got.view(200, 3).numpy() - np.array(want)).max() < 1e-9
    base = {"crop": [0, 0, 1, 1], "flip": False, "jitter": True, "gray": False, "blur": False,
            "brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "order": [3, 0, 1, 2]}
    ref = torch.stack([reference_augment(x[n], {**base, "hue": float(shifts[n])}) for n in range(200)])
    assert np.abs(ref.view(200, 3).numpy() - np.array(want)).max() < 1e-9
    with pytest.raises(ValueError, match="hue shift"):
        adjust_hue(red, 0.7)


def test_brightness_contrast_saturation_formulas():
    x = rand_images(6, seed=8)
    A = Augmentation("d")
    out = A.apply(x, jitter_params(6, (0, 1, 2, 3), bri=0.5))
    assert torch.allclose(out, x * 0.5, atol=1e-7)
    const = torch.full((2, 3, 8, 8), 0.3)
    assert torch.allclose(A.apply(const, jitter_params(2, (1, 0, 2, 3), con=1.7, h=8, w=8)), const, atol=1e-6)
    out = A.apply(x, jitter_params(6, (2, 0, 1, 3), sat=0.0))
    assert torch.allclose(out, rgb_to_grayscale(x), atol=1e-6)
    m = rgb_to_grayscale(x)[:, :1].mean(dim=(1, 2, 3), keepdim=True)
    out = A.apply(x, jitter_params(6, (1, 0, 2, 3), con=0.5))
    assert torch.allclose(out, (0.5 * x + 0.5 * m).clamp(0, 1), atol=1e-6)
    # jitter switched off: untouched bit for bit
    p = jitter_params(6, (0, 1, 2, 3), bri=1.4, con=0.6, sat=1.3, hue=0.1)
    p["jitter"][:] = False
    assert torch.equal(A.apply(x, p), x)


def test_blur_is_the_sigma_gaussian():
    k = gaussian_kernel1d(1.0, dtype=torch.float64)
    assert k.numel() == 7 and k.sum().item() == pytest.approx(1.0)
    assert torch.allclose(k, k.flip(0))
    assert k[4] / k[3] == pytest.approx(math.exp(-0.5))
    with pytest.raises(ValueError):
        gaussian_kernel1d(0.0)
    A = Augmentation("b", blur_prob=1.0)
    x = torch.zeros(1, 1, 21, 21, dtype=torch.float64)
    x[0, 0, 10, 10] = 1.0
    out = A(x, gen(0))[0, 0]
    assert torch.allclose(out[7:14, 7:14], torch.outer(k, k), atol=1e-12)
    assert out.sum().item() == pytest.approx(1.0)
    const = torch.full((2, 3, 9, 9), 0.42)
    assert torch.allclose(A(const, gen(0)), const, atol=1e-6)  # replicated edges keep constants


# ----------------------------------------------------------------- randomness and conveniences
def test_seeded_and_per_image_independent():
    x = rand_images(1, seed=9).repeat(16, 1, 1, 1)
    x0 = x.clone()
    A = Augmentation()
    a1, a2 = A(x, gen(42)), A(x, gen(42))
    for letters in ("bcd", "abcde"):  # the input is never written to (with or without a crop stage)
        Augmentation(letters, cj_prob=1.0, gray_prob=1.0, blur_prob=1.0)(x, gen(0))
    assert torch.equal(x, x0)
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, A(x, gen(43)))
    # identical input images get different augmentations within one batch
    flat = a1.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(16) * 1e9).min() > 1e-3
    v1, v2 = two_views(x, A, gen(1))
    assert v1.shape == x.shape and not torch.equal(v1, v2)
    with pytest.raises(TypeError):
        two_views(x, "abcde")


def test_uint8_input_and_param_types():
    x8 = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=gen(0))
    A = Augmentation()
    out = A(x8, gen(3))
    assert out.dtype == torch.float32
    assert torch.equal(out, A(x8.float() / 255, gen(3)))
    p = A.sample_params(5, gen(0), image_size=(16, 16))
    assert set(p) == set(KEYS)
    assert p["crop"].dtype == torch.int64 and p["crop"].shape == (5, 4)
    assert p["order"].shape == (5, 4) and p["flip"].dtype == torch.bool
    assert p["hue"].dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_with_same_params():
    A = Augmentation(cj_prob=1.0, strength=1.0)
    x = rand_images(64, seed=11)
    p = A.sample_params(64, gen(12))
    out = A.apply(x.cuda(), p)
    assert out.device.type == "cuda"
    assert (out.cpu() - A.apply(x, p)).abs().max().item() < 1e-5
    g = torch.Generator(device="cuda").manual_seed(0)
    assert A(x.cuda(), g).device.type == "cuda"


def test_reference_augment_matches_interpolate_on_an_exact_crop():
    """The oracle itself against a plain slice + 2x upsampling, written out with F.interpolate."""
    x = rand_images(1, seed=13)[0]
    params = {"crop": [4, 6, 16, 16], "flip": True, "jitter": False, "gray": False, "blur": False,
              "brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0, "order": [0, 1, 2, 3]}
    want = F.interpolate(x[None, :, 4:20, 6:22], scale_factor=2, mode="bilinear", align_corners=False)[0].flip(-1)
    assert torch.allclose(reference_augment(x, params), want, atol=1e-6)


def test_pixel_shift_moves_one_pixel_and_fills_zero():
    from cssl.augment import pixel_shift
    img = torch.arange(1.0, 10.0).reshape(3, 3)
    down = pixel_shift(1, 0)(img)
    assert torch.equal(down, torch.tensor([[0.0, 0, 0], [1, 2, 3], [4, 5, 6]]))
    left = pixel_shift(0, -1)(img)
    assert torch.equal(left, torch.tensor([[2.0, 3, 0], [5, 6, 0], [8, 9, 0]]))
    assert torch.equal(pixel_shift(0, 0)(img), img)
    assert torch.equal(img, torch.arange(1.0, 10.0).reshape(3, 3))  # input untouched
    assert pixel_shift(-1, 1)(img[None]).shape == (1, 3, 3)
    with pytest.raises(ValueError):
        pixel_shift(2, 0)
    with pytest.raises(TypeError):
        pixel_shift(0.5, 0)

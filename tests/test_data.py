"""Tests of cssl.data: digits, colour textures, and the CIFAR loader on fake official-format archives."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import warnings

import numpy as np
import pytest
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from cssl import data
from cssl.data import (
    CIFAR_SPECS,
    COLOUR_TEXTURE_CLASSES,
    colour_textures,
    load_cifar,
    load_digits_images,
    make_fake_cifar,
    md5sum,
    nuisance_textures,
    stratified_split,
    to_float,
)


# ------------------------------------------------------------------------------------ digits
def test_digits_images():
    from sklearn.datasets import load_digits

    x, y = load_digits_images()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (1797,) and y.dtype == torch.int64
    assert x.min() == 0 and x.max() == 1
    assert set(y.tolist()) == set(range(10))
    d = load_digits()
    assert np.allclose(x[5, 0].numpy(), d.images[5] / 16) and y[5] == d.target[5]


def test_stratified_split():
    y = torch.arange(103) % 4
    x = torch.arange(103)
    a = stratified_split(x, y, test_fraction=0.2, seed=1)
    b = stratified_split(x, y, test_fraction=0.2, seed=1)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    x_tr, y_tr, x_te, y_te = a
    assert sorted(torch.cat([x_tr, x_te]).tolist()) == list(range(103))  # a partition
    assert torch.equal(y[x_tr], y_tr) and torch.equal(y[x_te], y_te)
    for k in range(4):
        n_k = int((y == k).sum())
        assert int((y_te == k).sum()) == round(0.2 * n_k)
    assert not torch.equal(stratified_split(x, y, test_fraction=0.2, seed=2)[2], x_te)
    with pytest.raises(ValueError, match="samples"):
        stratified_split(x[:5], y)
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(x, y, test_fraction=1.0)
    with pytest.raises(ValueError, match="integer"):
        stratified_split(x, y.float())


def test_to_float():
    x8 = torch.tensor([[0, 255]], dtype=torch.uint8)
    assert torch.equal(to_float(x8), torch.tensor([[0.0, 1.0]]))
    with pytest.raises(TypeError):
        to_float(torch.tensor([1, 2]))


# --------------------------------------------------------------------------- colour textures
def _luma(x):
    x = to_float(x)
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


def _texture_features(x):
    """Colour-blind, position-blind features: |FFT| of the standardised luma image."""
    g = _luma(x)
    g = (g - g.mean((1, 2), keepdim=True)) / (g.std((1, 2), keepdim=True) + 1e-6)
    return torch.fft.rfft2(g).abs().flatten(1).numpy()


def assert_colour_says_nothing(x, y, xt, yt):
    """A linear classifier of the mean colour stays near chance (1/6): colour is nuisance."""
    mean_rgb = lambda t: to_float(t).mean((2, 3)).numpy()  # noqa: E731
    col = LinearDiscriminantAnalysis().fit(mean_rgb(x), y.numpy())
    assert col.score(mean_rgb(xt), yt.numpy()) < 1 / 6 + 0.08


def test_colour_textures_shapes_determinism_balance():
    x, y, xt, yt = colour_textures(600, 120, seed=3)
    assert x.shape == (600, 3, 16, 16) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert xt.shape == (120, 3, 16, 16)
    assert torch.bincount(y).tolist() == [100] * 6 and torch.bincount(yt).tolist() == [20] * 6
    again = colour_textures(600, 120, seed=3)
    assert all(torch.equal(u, v) for u, v in zip((x, y, xt, yt), again))
    assert not torch.equal(colour_textures(600, 120, seed=4)[0], x)
    # the test set does not depend on n_train
    assert torch.equal(colour_textures(50, 120, seed=3)[2], xt)
    x8, y8, _, _ = colour_textures(80, 8, size=24, num_classes=8)
    assert x8.shape == (80, 3, 24, 24) and set(y8.tolist()) == set(range(8))
    assert len(COLOUR_TEXTURE_CLASSES) == 8


def test_colour_textures_keep_a_luminance_gap():
    gap = 0.3
    x, _, _, _ = colour_textures(1200, 10, noise=0.0, min_luma_gap=gap, seed=5)
    lum = _luma(x).flatten(1)
    spread = lum.max(1).values - lum.min(1).values
    assert (spread >= gap - 2 / 255).float().mean() > 0.95  # fully fg and fully bg pixels exist
    assert spread.min() > 0.4 * gap  # even thin dots keep a visible contrast
    _, _, _, _ = colour_textures(10, 10, min_luma_gap=0.0)  # no gap allowed too


def test_colour_textures_class_is_texture_and_colour_is_nuisance():
    x, y, xt, yt = colour_textures(1200, 600, seed=7)
    clf = LinearDiscriminantAnalysis().fit(_texture_features(x), y.numpy())
    assert clf.score(_texture_features(xt), yt.numpy()) > 0.9
    # classes are closed under horizontal flip (augmentation (e) keeps the class)
    assert clf.score(_texture_features(xt.flip(-1)), yt.numpy()) > 0.9
    assert_colour_says_nothing(x, y, xt, yt)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_train=0, n_test=5), "n_train"),
    (dict(n_train=5, n_test=5, num_classes=9), "num_classes"),
    (dict(n_train=5, n_test=5, size=2), "size"),
    (dict(n_train=5, n_test=5, min_luma_gap=0.95), "min_luma_gap"),
])
def test_colour_textures_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        colour_textures(**kwargs)



# ------------------------------------------------------------------------------ nuisance textures
def test_nuisance_textures_shapes_determinism_and_the_plain_world_inside():
    x, y, xt, yt = nuisance_textures(600, 120, seed=3)
    assert x.shape == (600, 3, 16, 16) and x.dtype == torch.uint8 and yt.dtype == torch.int64
    assert torch.bincount(y).tolist() == [100] * 6 and torch.bincount(yt).tolist() == [20] * 6
    assert all(torch.equal(u, v) for u, v in zip((x, y, xt, yt), nuisance_textures(600, 120, seed=3)))
    assert torch.equal(nuisance_textures(50, 120, seed=3)[2], xt)
    # with every nuisance switched off it is colour_textures, image for image
    plain = nuisance_textures(300, 60, seed=2, period_range=(0.25, 0.4), tilt=0, ramp=0, grain=0)
    assert all(torch.equal(u, v) for u, v in zip(plain, colour_textures(300, 60, seed=2)))


def _one_nuisance(**on):
    off = dict(period_range=(0.25, 0.4), tilt=0.0, ramp=0.0, grain=0.0, noise=0.0)
    return nuisance_textures(1200, 300, seed=11, **(off | on))


def test_nuisance_textures_each_nuisance_is_there_and_the_labels_ignore_it():
    base = _one_nuisance()
    # illumination: the left-right luma ratio spreads with the ramp
    def side_ratio(x):
        g = _luma(x)
        return (g[..., :8].mean((1, 2)) / g[..., 8:].mean((1, 2))).log().std().item()
    assert side_ratio(_one_nuisance(ramp=0.6)[0]) > 2 * side_ratio(base[0])
    # grain: energy of the one-pixel differences grows
    def pixel_energy(x):
        return to_float(x).diff(dim=-1).pow(2).mean().item()
    assert pixel_energy(_one_nuisance(grain=0.3)[0]) > 1.3 * pixel_energy(base[0])
    # scale: the spread of the dominant spatial frequency grows with the period range
    def peak_spread(x):
        f = torch.from_numpy(_texture_features(x)).reshape(len(x), 16, 9)
        f[:, 0, 0] = 0
        return f.flatten(1).argmax(1).unique().numel()
    assert peak_spread(_one_nuisance(period_range=(0.18, 0.5))[0]) > peak_spread(base[0])
    # handedness: tilted frames, and the class does not change under a mirror
    x, y, xt, yt = _one_nuisance(tilt=20.0)
    clf = LinearDiscriminantAnalysis().fit(_texture_features(x), y.numpy())
    same, mirrored = clf.score(_texture_features(xt), yt.numpy()), clf.score(_texture_features(xt.flip(-1)), yt.numpy())
    assert same > 0.8 and abs(same - mirrored) < 0.05
    assert not torch.equal(x, base[0])
    # with all nuisances on, mean colour still says nothing about the class
    assert_colour_says_nothing(*nuisance_textures(1200, 600, seed=7))


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_train=0, n_test=5), "n_train"),
    (dict(n_train=5, n_test=5, num_classes=7), "num_classes"),
    (dict(n_train=5, n_test=5, period_range=0.3), "period_range must be a pair"),
    (dict(n_train=5, n_test=5, period_range=(0.5, 0.2)), "low <= high"),
    (dict(n_train=5, n_test=5, period_range=(0.0, 0.2)), "period_range"),
    (dict(n_train=5, n_test=5, tilt=90), "tilt"),
    (dict(n_train=5, n_test=5, ramp=-0.1), "ramp"),
    (dict(n_train=5, n_test=5, grain=float("nan")), "grain"),
])
def test_nuisance_textures_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nuisance_textures(**kwargs)

# -------------------------------------------------------------------------------------- CIFAR
def _members(archive):
    with tarfile.open(archive, "r:gz") as tf:
        return {m.name: (m, tf.extractfile(m).read() if m.isreg() else None) for m in tf.getmembers()}


def _write_archive(path, members):
    """Write a tar.gz with the given {name: bytes or None (directory)}; return its md5."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tf:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            if payload is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
    path.write_bytes(buf.getvalue())
    return hashlib.md5(buf.getvalue()).hexdigest()


def _payloads(archive):
    return {name: payload for name, (_, payload) in _members(archive).items()}


def test_fake_cifar10_loads_like_the_official_format(tmp_path):
    md5 = make_fake_cifar(tmp_path, "cifar10", n_train=23, n_test=7, seed=1)
    archive = tmp_path / "cifar-10-python.tar.gz"
    assert md5 == md5sum(archive) == make_fake_cifar(tmp_path / "again", "cifar10", n_train=23, n_test=7, seed=1)
    assert md5 != make_fake_cifar(tmp_path / "other", "cifar10", n_train=23, n_test=7, seed=2)
    names = set(_payloads(archive))
    assert {f"cifar-10-batches-py/{m}" for m in
            ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
             "batches.meta"]} <= names
    x, y, xt, yt, classes = load_cifar("cifar10", tmp_path, md5=md5)
    assert x.shape == (23, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert xt.shape == (7, 3, 32, 32) and yt.shape == (7,)
    assert classes[:3] == ["airplane", "automobile", "bird"] and len(classes) == 10
    # independent decoding, as the CIFAR web page does it: pickle.load(f, encoding="bytes")
    p = _payloads(archive)
    rows, labels = [], []
    for k in range(1, 6):
        d = pickle.loads(p[f"cifar-10-batches-py/data_batch_{k}"], encoding="bytes")
        rows.append(d[b"data"])
        labels += d[b"labels"]
    rows = np.concatenate(rows)
    assert np.array_equal(x.numpy().reshape(23, -1), rows) and y.tolist() == labels
    assert np.array_equal(x[4, 0].numpy().ravel(), rows[4, :1024])  # first 1024 values: red plane
    assert np.array_equal(x[4, 2, 1].numpy(), rows[4, 2048 + 32: 2048 + 64])  # blue, second row
    meta = pickle.loads(p["cifar-10-batches-py/batches.meta"], encoding="latin1")
    assert meta["label_names"] == classes


def test_fake_cifar100(tmp_path):
    md5 = make_fake_cifar(tmp_path, "cifar100", n_train=150, n_test=40, seed=0)
    x, y, xt, yt, classes = load_cifar("cifar100", tmp_path, md5=md5)
    assert x.shape == (150, 3, 32, 32) and xt.shape == (40, 3, 32, 32)
    assert len(classes) == 100 and classes[0] == "apple" and classes[-1] == "worm"
    assert set(y.tolist()) == set(range(100))
    d = pickle.loads(_payloads(tmp_path / "cifar-100-python.tar.gz")["cifar-100-python/train"], encoding="bytes")
    assert y.tolist() == d[b"fine_labels"]


def test_cache_is_used_and_damaged_cache_is_rebuilt(tmp_path):
    md5 = make_fake_cifar(tmp_path, n_train=10, n_test=5)
    first = load_cifar("cifar10", tmp_path, md5=md5)
    cache = tmp_path / "cifar-10-python.npz"
    assert cache.is_file()
    (tmp_path / "cifar-10-python.tar.gz").rename(tmp_path / "moved.tar.gz")
    second = load_cifar("cifar10", tmp_path, md5=md5)  # served from the cache, no archive needed
    assert all(torch.equal(a, b) for a, b in zip(first[:4], second[:4])) and first[4] == second[4]
    # a cache for another md5 is not trusted
    with pytest.raises(FileNotFoundError):
        load_cifar("cifar10", tmp_path, md5="0" * 32)
    (tmp_path / "moved.tar.gz").rename(tmp_path / "cifar-10-python.tar.gz")
    cache.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        third = load_cifar("cifar10", tmp_path, md5=md5)
    assert torch.equal(third[0], first[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_cifar("cifar10", tmp_path, md5=md5)  # the rebuilt cache is fine


def test_missing_archive_without_download_explains(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_cifar("cifar100", tmp_path / "nothing")
    msg = str(err.value)
    assert "download=True" in msg and CIFAR_SPECS["cifar100"]["url"] in msg and "make_fake_cifar" in msg


def test_md5_mismatch_and_corruption(tmp_path):
    md5 = make_fake_cifar(tmp_path, n_train=10, n_test=5)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with pytest.raises(ValueError, match="md5 .* expected c58f3010.*Delete it"):
        load_cifar("cifar10", tmp_path)  # official md5 expected
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="md5"):
        load_cifar("cifar10", tmp_path, md5=md5)
    # truncated archive whose md5 is supplied: the decoder itself must refuse it
    make_fake_cifar(tmp_path, n_train=10, n_test=5)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_cifar("cifar10", tmp_path, md5=md5sum(archive))
    assert not (tmp_path / "cifar-10-python.npz").exists()
    with pytest.raises(ValueError, match="32-digit hex"):
        load_cifar("cifar10", tmp_path, md5="abc")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_cifar("cifar11", tmp_path)


def test_missing_member_and_bad_arrays(tmp_path):
    src = tmp_path / "src"
    make_fake_cifar(src, n_train=10, n_test=5)
    members = _payloads(src / "cifar-10-python.tar.gz")
    bad = tmp_path / "bad"
    bad.mkdir()
    archive = bad / "cifar-10-python.tar.gz"

    md5 = _write_archive(archive, {k: v for k, v in members.items() if not k.endswith("test_batch")})
    with pytest.raises(ValueError, match="no member 'cifar-10-batches-py/test_batch'"):
        load_cifar("cifar10", bad, md5=md5)

    d = pickle.loads(members["cifar-10-batches-py/data_batch_2"], encoding="bytes")
    d[b"data"] = d[b"data"][:, :3000]
    md5 = _write_archive(archive, {**members, "cifar-10-batches-py/data_batch_2": pickle.dumps(d, protocol=2)})
    with pytest.raises(ValueError, match=r"shape \(2, 3000\)"):
        load_cifar("cifar10", bad, md5=md5)

    d = pickle.loads(members["cifar-10-batches-py/data_batch_2"], encoding="bytes")
    d[b"labels"] = d[b"labels"][:-1]
    md5 = _write_archive(archive, {**members, "cifar-10-batches-py/data_batch_2": pickle.dumps(d, protocol=2)})
    with pytest.raises(ValueError, match="images but 1 labels"):
        load_cifar("cifar10", bad, md5=md5)


def test_pickle_with_foreign_globals_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    src = tmp_path / "src"
    make_fake_cifar(src, n_train=10, n_test=5)
    members = _payloads(src / "cifar-10-python.tar.gz")
    md5 = _write_archive(tmp_path / "cifar-10-python.tar.gz",
                         {**members, "cifar-10-batches-py/test_batch": pickle.dumps({b"data": Evil()}, protocol=2)})
    with pytest.raises(ValueError, match="refusing to load"):
        load_cifar("cifar10", tmp_path, md5=md5)
    assert not (tmp_path / "pwned").exists()


def test_members_are_never_extracted(tmp_path):
    """An archive with a path-traversal member still loads, and nothing is written outside root."""
    src = tmp_path / "src"
    make_fake_cifar(src, n_train=10, n_test=5)
    members = _payloads(src / "cifar-10-python.tar.gz")
    root = tmp_path / "a" / "root"
    root.mkdir(parents=True)
    md5 = _write_archive(root / "cifar-10-python.tar.gz",
                         {"../evil.txt": b"x", "/tmp/evil_abs.txt": b"x", **members})
    x = load_cifar("cifar10", root, md5=md5)[0]
    assert x.shape == (10, 3, 32, 32)
    assert not (root.parent / "evil.txt").exists()
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-python.npz", "cifar-10-python.tar.gz"]


def test_download_from_a_file_url(tmp_path):
    md5 = make_fake_cifar(tmp_path / "mirror", "cifar100", n_train=100, n_test=20)
    url = (tmp_path / "mirror" / "cifar-100-python.tar.gz").as_uri()
    root = tmp_path / "cache"
    with pytest.raises(ValueError, match="md5"):
        load_cifar("cifar100", root, download=True, url=url, md5="f" * 32)
    assert list(root.iterdir()) == []  # nothing half-written is left behind
    x, y, xt, yt, names = load_cifar("cifar100", root, download=True, url=url, md5=md5)
    assert x.shape == (100, 3, 32, 32) and len(names) == 100
    assert md5sum(root / "cifar-100-python.tar.gz") == md5
    assert not [p for p in root.iterdir() if p.name.endswith(".part")]
    with pytest.raises(RuntimeError, match="nothing was kept"):
        load_cifar("cifar10", tmp_path / "c2", download=True, url=(tmp_path / "missing.tar.gz").as_uri())
    assert list((tmp_path / "c2").iterdir()) == []
    with pytest.raises(ValueError, match="http"):
        load_cifar("cifar10", tmp_path / "c3", download=True, url="gopher://example/x")


def test_make_fake_cifar_validates(tmp_path):
    with pytest.raises(ValueError, match="n_train"):
        make_fake_cifar(tmp_path, "cifar10", n_train=3)
    with pytest.raises(ValueError, match="unknown dataset"):
        make_fake_cifar(tmp_path, "mnist")
    assert data.CIFAR_SPECS["cifar10"]["md5"] == "c58f30108f718f92721af3b95e74349a"
    assert data.CIFAR_SPECS["cifar100"]["md5"] == "eb9058c3a382ffc7106e4002c42a8d85"

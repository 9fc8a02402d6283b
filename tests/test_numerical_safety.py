"""No silent wrong results, and clear errors where torch gave raw ones (issue 20).

* kNN weights without overflow at small temperatures, checked against a float64 log-sum-exp reference
  by a property test; a linear probe that refuses one class;
* batch losses whose output overflows raise ``FloatingPointError`` saying what to change;
* training stops on a NaN loss and on a loss collapsed to the value of constant features;
* ``nearest_centre_accuracy`` and ``fit_on_world`` name bad labels and a wrong encoder width;
* ``colour_textures`` refuses, within a second, a request larger than the machine's memory;
* extracted CIFAR folders are read, each file md5-checked before unpickling;
* ``train`` locks its output folder and refuses a damaged checkpoint without the unsafe loader;
* results hold a linear probe beside kNN.
"""
import fcntl
import hashlib
import math
import os
import tarfile
import time

import pytest
import torch
from hypothesis import assume, given, settings, strategies as st
from torch import nn

from cssl import data as cdata
from cssl import losses, metrics
from cssl._io import FolderLocked
from cssl.train import Dataset, TrainConfig, fit_on_world, nearest_centre_accuracy, train
from cssl.worlds import random_world

TINY = dict(width=4, batch_size=32, knn_k=10, device="cpu", image_size=8, n_train=160, n_test=48, letters="ad")


def tiny_data(seed=0):
    xtr, ytr, xte, yte = cdata.colour_textures(160, 48, size=8, seed=seed)
    return Dataset(torch.as_tensor(xtr), torch.as_tensor(ytr).long(), torch.as_tensor(xte),
                   torch.as_tensor(yte).long(), 6)


# ------------------------------------------------------------------------------------------- kNN
def _clusters(seed=0, n=400, m=200, d=8):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, d, generator=g) * 3
    y, yq = torch.arange(n) % 4, torch.arange(m) % 4
    return centres[y] + torch.randn(n, d, generator=g), y, centres[yq] + torch.randn(m, d, generator=g), yq


@pytest.mark.parametrize("temperature", [1e-3, 1e-6, 1e-30])
def test_knn_small_temperatures_do_not_overflow(temperature):
    bank, y, query, yq = _clusters()
    reference = metrics.knn_accuracy(bank, y, query, yq, num_classes=4, k=50, temperature=2e-3)
    got = metrics.knn_accuracy(bank, y, query, yq, num_classes=4, k=50, temperature=temperature)
    assert reference > 0.9 and got > 0.9  # the unstable exp(s / t) gave chance here (inf / nan scores)
    # at t -> 0 the weighted vote becomes the nearest neighbour's label
    one_nn = metrics.knn_accuracy(bank, y, query, yq, num_classes=4, k=1, temperature=0.1)
    assert got == pytest.approx(one_nn)


def _reference_predict(bank, labels, query, num_classes, k, temperature):
    """float64 log-sum-exp of s / t per class over the top-k neighbours (never exponentiated)."""
    b = torch.nn.functional.normalize(bank.double(), dim=1)
    q = torch.nn.functional.normalize(query.double(), dim=1)
    top_sim, top_idx = (q @ b.T).topk(k, dim=1)
    logits = top_sim / temperature
    scores = torch.full((q.shape[0], num_classes), -math.inf, dtype=torch.float64)
    for c in range(num_classes):
        masked = logits.masked_fill(labels[top_idx] != c, -math.inf)
        scores[:, c] = torch.logsumexp(masked, dim=1)
    return scores


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 40), k=st.integers(1, 5),
       log10_t=st.floats(-12.0, 0.0), num_classes=st.integers(2, 4))
def test_knn_predict_matches_a_float64_log_sum_exp_reference(seed, n, k, log10_t, num_classes):
    g = torch.Generator().manual_seed(seed)
    bank, query = torch.randn(n, 3, generator=g), torch.randn(7, 3, generator=g)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    t = 10.0 ** log10_t
    k = min(k, n)
    scores = _reference_predict(bank, labels, query, num_classes, k, t)
    top2 = scores.topk(2, dim=1).values
    assume(bool(((top2[:, 0] - top2[:, 1]) > 1e-9).all()))  # no near-tie between the two best classes
    got = metrics.knn_predict(bank, labels, query, num_classes=num_classes, k=k, temperature=t)
    assert torch.equal(got, scores.argmax(dim=1))


def test_linear_probe_refuses_one_class():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="train_labels hold a single class"):
        metrics.linear_probe(x, torch.zeros(10, dtype=torch.long), x, torch.zeros(10, dtype=torch.long))


# ------------------------------------------------------------------------------ loss outputs
_Z = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("call, advice", [
    (lambda: losses.nt_xent(_Z, _Z, temperature=1e-45), "raise the temperature"),
    (lambda: losses.info_nce(_Z * 1e30, _Z * 1e30, _Z * 1e30), "normalise them"),
    (lambda: losses.info_nce_split(_Z * 1e30, _Z * 1e30, _Z * 1e30, check_unit_norm=False), "normalise them"),
    (lambda: losses.linear_contrastive(_Z * 1e20, _Z * 1e20, _Z * 1e20), "normalise them"),
    (lambda: losses.spectral_contrastive(_Z * 1e20, _Z * 1e20), "normalise them"),
    (lambda: losses.t_info_nce(_Z * 1e30, -_Z * 1e30, -_Z * 1e30), "normalise them"),
    (lambda: losses.cross_correlation(torch.ones(8, 3), _Z[:, :3], eps=0), "pass eps > 0"),
    (lambda: losses.cross_correlation_split(torch.ones(8, 3), _Z[:, :3], eps=0), "pass eps > 0"),
], ids=["nt_xent", "info_nce", "info_nce_split", "linear", "spectral", "t_info_nce", "cc", "cc_split"])
def test_a_loss_that_overflows_raises_with_what_to_change(call, advice):
    with pytest.raises(FloatingPointError, match=advice):
        call()


def test_finite_losses_are_unchanged():
    z1, z2, zn = (torch.nn.functional.normalize(_Z + i, dim=1) for i in range(3))
    assert torch.isfinite(losses.nt_xent(z1, z2)) and torch.isfinite(losses.info_nce(z1, z2, zn))
    assert torch.isfinite(losses.cross_correlation(_Z, _Z + 0.1))


# ------------------------------------------------------------------------------ training stops
def test_training_stops_on_a_nan_loss(tmp_path):
    cfg = TrainConfig(temperature=1e-45, steps=4, out_dir=str(tmp_path / "run"), **TINY)
    with pytest.raises(FloatingPointError, match="training diverged at step 1.*raise the temperature"):
        train(cfg, progress=False, data=tiny_data())


def test_training_stops_when_the_loss_collapses_to_the_uniform_value():
    cfg = TrainConfig(lr=1e6, steps=40, eval_every=20, **TINY)
    with pytest.raises(FloatingPointError, match=r"collapsed.*log|collapsed.*one point"):
        train(cfg, progress=False, data=tiny_data())


def test_a_healthy_run_holds_a_linear_probe_beside_knn():
    res = train(TrainConfig(steps=4, eval_every=2, **TINY), progress=False, data=tiny_data())
    first, last = res["history"]
    assert "linear_probe_acc" not in first  # the probe runs at the final evaluation only
    assert last is res["final"] and 0.0 <= last["linear_probe_acc"] <= 1.0 and 0.0 <= last["knn_top1"] <= 1.0


# ------------------------------------------------------------------------------ raw torch errors
def test_nearest_centre_accuracy_names_labels_out_of_range():
    f = torch.randn(6, 3)
    with pytest.raises(ValueError, match=r"train_labels range over 0\.\.9 but num_classes=2"):
        nearest_centre_accuracy(f, torch.tensor([0, 1, 9, 0, 1, 0]), f, torch.zeros(6, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="test_labels must be a 1-D integer tensor"):
        nearest_centre_accuracy(f, torch.zeros(6, dtype=torch.long), f, torch.zeros(5, dtype=torch.long), 2)


def test_fit_on_world_names_a_wrong_encoder_width():
    world = random_world(2, [3, 3], 3, 2, seed=0)
    with pytest.raises(ValueError, match=r"dimension d = 2.*input width 2"):
        fit_on_world(nn.Linear(5, 2), world, steps=1)


def test_fit_on_world_width_probe_changes_nothing():
    world = random_world(2, [4, 4], 3, 2, seed=0)

    def run():
        torch.manual_seed(3)
        enc = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
        return fit_on_world(enc, world, loss="nt_xent", steps=3, batch_size=8), enc[1].running_mean.clone()

    (a, ma), (b, mb) = run(), run()
    assert a == b and torch.equal(ma, mb)


def test_colour_textures_refuses_a_request_beyond_memory_within_a_second():
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="of memory are available; lower n_train"):
        cdata.colour_textures(10 ** 8, 10)
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(ValueError, match="of memory are available; lower n_train"):
        cdata.nuisance_textures(10 ** 8, 10)


# ------------------------------------------------------------------------------ CIFAR folders
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_an_extracted_cifar_folder_is_read_with_each_file_md5_checked(tmp_path, name):
    spec = cdata.CIFAR_SPECS[name]
    md5 = cdata.make_fake_cifar(tmp_path, name, n_train=30, n_test=10)
    from_archive = cdata.load_cifar(name, tmp_path, md5=md5)
    with tarfile.open(tmp_path / spec["archive"]) as tf:
        tf.extractall(tmp_path, filter="data")
    (tmp_path / spec["archive"]).unlink()
    (tmp_path / (spec["archive"][: -len(".tar.gz")] + ".npz")).unlink()
    folder = tmp_path / spec["folder"]
    members = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    with pytest.raises(ValueError, match="has md5 .* expected"):  # the official md5s: not these fake files
        cdata.load_cifar(name, tmp_path)
    from_folder = cdata.load_cifar(name, tmp_path, member_md5=members)
    assert all(torch.equal(a, b) for a, b in zip(from_archive[:4], from_folder[:4]))
    assert from_archive[4] == from_folder[4]
    first = sorted(members)[0]
    (folder / first).write_bytes(b"not a pickle")  # the cache answers first, so remove it
    (tmp_path / (spec["archive"][: -len(".tar.gz")] + ".npz")).unlink()
    with pytest.raises(ValueError, match=f"{first} has md5"):
        cdata.load_cifar(name, tmp_path, member_md5=members)


def test_official_member_md5s_cover_every_file():
    for name, spec in cdata.CIFAR_SPECS.items():
        assert set(cdata.CIFAR_MEMBER_MD5[name]) == {*spec["train"], *spec["test"], spec["meta"]}


# ------------------------------------------------------------------------------ train's own safety
def test_train_locks_its_output_folder(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(FolderLocked, match="in use by another run"):
            train(TrainConfig(steps=2, out_dir=str(out), **TINY), progress=False, data=tiny_data())
    assert not (out / "results.json").exists()


@pytest.mark.parametrize("damage", [lambda raw: raw[: len(raw) // 2], lambda raw: b"", lambda raw: os.urandom(512)],
                         ids=["truncated", "empty", "random"])
def test_train_refuses_a_damaged_checkpoint_without_the_unsafe_loader(tmp_path, damage):
    cfg = TrainConfig(steps=2, out_dir=str(tmp_path / "run"), **TINY)
    train(cfg, progress=False, data=tiny_data())
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.write_bytes(damage(ckpt.read_bytes()))
    with pytest.raises(ValueError, match="checkpoint.pt is not a readable checkpoint.*--no-resume") as err:
        train(cfg, progress=False, data=tiny_data())
    assert "weights_only=False" not in str(err.value)

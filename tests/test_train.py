"""The train loop: validation, determinism, kill-and-resume exactness, evaluation helpers, fit_on_world."""
import json
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from cssl import data as cdata
from cssl._io import read_json
from cssl.models import MLP, SphereEncoder
from cssl.train import (Dataset, TrainConfig, evaluate, fit_on_world, load_dataset, nearest_centre_accuracy,
                        recalibrate_batchnorm, train)
from cssl.worlds import World

TINY = dict(width=4, batch_size=32, knn_k=10, device="cpu", image_size=8, n_train=160, n_test=48)


def tiny_data(seed=0):
    xtr, ytr, xte, yte = cdata.colour_textures(160, 48, size=8, seed=seed)
    return Dataset(torch.as_tensor(xtr), torch.as_tensor(ytr).long(), torch.as_tensor(xte),
                   torch.as_tensor(yte).long(), 6)


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _strip(history):
    return [{k: v for k, v in h.items() if k != "elapsed_s"} for h in history]


# ------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("kwargs, match", [
    (dict(method="byol"), "method"),
    (dict(steps=10, epochs=2), "exactly one"),
    (dict(steps=None), "exactly one"),
    (dict(letters="abz"), "letters"),
    (dict(letters="aa"), "letters"),
    (dict(strength=0.0), "strength"),
    (dict(batch_size=1), "batch_size"),
    (dict(device="tpu"), "device"),
    (dict(optimizer="lbfgs"), "optimizer"),
    (dict(cj_prob=1.5), "cj_prob"),
    (dict(split_bn=3, batch_size=32), "divisible"),
    (dict(dataset="imagenet"), "dataset"),
])
def test_config_validation(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        TrainConfig(**kwargs)


def test_config_roundtrip_and_method_kwargs():
    cfg = TrainConfig(method="barlow_twins", bt_lambda=0.1)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.method_kwargs() == {"lam": 0.1}
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"nope": 1})


# -------------------------------------------------------------------------------------------- loop
def test_train_is_deterministic_and_reports_final_and_best(tmp_path):
    data = tiny_data()
    cfg = TrainConfig(method="simclr", steps=10, eval_every=5, out_dir=str(tmp_path / "a"), **TINY)
    r1 = train(cfg, progress=False, data=data)
    r2 = train(TrainConfig(**{**cfg.to_dict(), "out_dir": None}), progress=False, data=data)
    assert _same_state(r1["method"], r2["method"])
    assert _strip(r1["history"]) == _strip(r2["history"])
    assert [h["step"] for h in r1["history"]] == [5, 10]
    assert r1["final"]["step"] == 10 and r1["best"]["knn_top1"] == max(h["knn_top1"] for h in r1["history"])
    on_disk = read_json(tmp_path / "a" / "results.json")
    assert on_disk["status"] == "complete" and on_disk["history"] == r1["history"]
    assert on_disk["provenance"]["torch"] == torch.__version__ and "git" in on_disk["provenance"]
    assert on_disk["config"] == cfg.to_dict() and on_disk["wall_time_s"] > 0
    # a different seed gives different weights (the check above is not vacuous)
    r3 = train(TrainConfig(**{**cfg.to_dict(), "out_dir": None, "seed": 1}), progress=False, data=data)
    assert not _same_state(r1["method"], r3["method"])


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_train import tiny_data
    from cssl.train import TrainConfig, train
    cfg = TrainConfig.from_dict({cfg!r})
    def die(step, method):
        if step == 6:  # after the checkpoint of step 4, before the one of step 8
            os.kill(os.getpid(), signal.SIGKILL)
    train(cfg, progress=False, data=tiny_data(), callback=die)
""")


def test_killed_run_resumes_to_identical_results(tmp_path):
    """A run SIGKILLed part-way resumes from its checkpoint and ends bit-identical to an uninterrupted run.

    MoCo is the most stateful method (momentum encoder, queue, split BatchNorm, batch shuffle drawn from
    the global RNG), so it exercises every piece of state the checkpoint must hold.
    """
    data = tiny_data()
    base = dict(method="moco", split_bn=2, queue_size=64, steps=12, eval_every=4, **TINY)
    cfg = TrainConfig(out_dir=str(tmp_path / "killed"), **base)
    script = _KILLED_RUN.format(tests=str(__import__("pathlib").Path(__file__).parent), cfg=cfg.to_dict())
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=45)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    partial = read_json(tmp_path / "killed" / "results.json")
    assert partial["status"] == "running" and partial["step"] == 4 and len(partial["history"]) == 1

    steps_after_resume = []
    resumed = train(cfg, progress=False, data=data, callback=lambda s, m: steps_after_resume.append(s))
    assert steps_after_resume == list(range(5, 13))
    reference = train(TrainConfig(out_dir=str(tmp_path / "ref"), **base), progress=False, data=data)
    assert _same_state(resumed["method"], reference["method"])
    assert _strip(resumed["history"]) == _strip(reference["history"])
    assert resumed["final"]["knn_top1"] == reference["final"]["knn_top1"]
    assert read_json(tmp_path / "killed" / "results.json")["status"] == "complete"

    # a finished run is returned from its checkpoint without training
    calls = []
    again = train(cfg, progress=False, data=data, callback=lambda s, m: calls.append(s))
    assert calls == [] and _same_state(again["method"], reference["method"])
    # resuming with another config is refused
    with pytest.raises(ValueError, match="different config"):
        train(TrainConfig(out_dir=str(tmp_path / "killed"), **{**base, "lr": 1e-3}), progress=False, data=data)


def test_train_rejects_bad_inputs():
    with pytest.raises(TypeError, match="TrainConfig"):
        train({"method": "simclr"})
    with pytest.raises(ValueError, match="exceeds"):
        train(TrainConfig(**{**TINY, "batch_size": 512}), progress=False, data=tiny_data())


def test_load_dataset_textures_digits_and_fake_cifar(tmp_path):
    d = load_dataset(TrainConfig(dataset="textures", n_train=60, n_test=30, image_size=8))
    assert d.x_train.shape == (60, 3, 8, 8) and d.x_train.dtype == torch.uint8 and d.num_classes == 6
    g = load_dataset(TrainConfig(dataset="digits", n_train=100))
    assert g.x_train.shape == (100, 1, 8, 8) and g.num_classes == 10 and g.x_test.shape[0] == 599
    md5 = cdata.make_fake_cifar(tmp_path, "cifar10", n_train=40, n_test=20, seed=0)
    c = load_dataset(TrainConfig(dataset="cifar10", data_root=str(tmp_path), data_md5=md5, n_train=30))
    assert c.x_train.shape == (30, 3, 32, 32) and c.x_test.shape == (20, 3, 32, 32) and c.num_classes == 10


# -------------------------------------------------------------------------------------- evaluation
def test_recalibrate_batchnorm_gives_the_data_mean():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    x = torch.randn(64, 2, 4, 4) * 3 + 2
    net(torch.randn(8, 2, 4, 4))  # some unrelated running statistics
    recalibrate_batchnorm(net.eval(), x, batch_size=16)
    assert not net.training and net[1].momentum == 0.1
    with torch.no_grad():
        h = net[0](x)
    assert torch.allclose(net[1].running_mean, h.mean(dim=(0, 2, 3)), atol=1e-5)
    batch_vars = torch.stack([h[i:i + 16].var(dim=(0, 2, 3)) for i in range(0, 64, 16)]).mean(0)
    assert torch.allclose(net[1].running_var, batch_vars, rtol=1e-4)


def test_nearest_centre_accuracy():
    f = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    y = torch.tensor([0, 0, 1, 1])
    q = torch.tensor([[2.0, 0.1], [0.1, 3.0], [1.0, 0.2]])
    assert nearest_centre_accuracy(f, y, q, torch.tensor([0, 1, 0]), 2) == 1.0
    assert nearest_centre_accuracy(f, y, q, torch.tensor([1, 1, 1]), 2) == pytest.approx(1 / 3)


def test_evaluate_separable_features():
    data = Dataset(torch.randn(40, 4), torch.arange(40) % 2, torch.randn(10, 4), torch.arange(10) % 2, 2)
    shift = torch.tensor([[5.0, 0, 0, 0], [0, 5.0, 0, 0]])
    data = Dataset(data.x_train + shift[data.y_train], data.y_train, data.x_test + shift[data.y_test], data.y_test, 2)
    out = evaluate(nn.Identity(), data, k=5, recalibrate_bn=True)
    assert out == {"knn_top1": 1.0, "nearest_centre_acc": 1.0}
    assert evaluate(nn.Identity(), data, k=5, linear_probe=True)["linear_probe_acc"] == 1.0


# ----------------------------------------------------------------------------------- fit_on_world
def _world(seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, 1, 6, generator=g) * 2
    labels = torch.arange(30) % 3
    views = centres[labels] + 0.3 * torch.randn(30, 4, 6, generator=g)
    return World(views, labels)


@pytest.mark.parametrize("loss", ["info_nce", "nt_xent", "cross_correlation", "linear", "spectral"])
def test_fit_on_world_is_deterministic(loss):
    def run():
        torch.manual_seed(0)
        enc = SphereEncoder(MLP(6, 16, 4).double())
        return fit_on_world(enc, _world(), loss=loss, steps=6, batch_size=16, lr=1e-2, seed=0)

    a, b = run(), run()
    assert a == b and len(a) == 6 and all(map(lambda v: v == v, a))


def test_fit_on_world_lowers_info_nce_and_separates_classes():
    from cssl.losses import info_nce_exact
    from cssl.metrics import nearest_centre_error

    torch.manual_seed(0)
    world = _world()
    enc = SphereEncoder(MLP(6, 32, 4).double())
    before = info_nce_exact(world.map(enc))
    losses = fit_on_world(enc, world, loss="info_nce", steps=150, batch_size=64, lr=1e-2, seed=0)
    after = info_nce_exact(world.map(enc))
    assert len(losses) == 150 and after < before - 0.03
    assert nearest_centre_error(world.map(enc)) == 0.0
    with pytest.raises(ValueError, match="loss"):
        fit_on_world(enc, world, loss="triplet")


def test_use_threads_reads_the_environment_and_refuses_nonsense(monkeypatch):
    from cssl.train import use_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("CSSL_NUM_THREADS", raising=False)
        assert use_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("CSSL_NUM_THREADS", "2")
        assert use_threads(1) == 2 and torch.get_num_threads() == 2
        for bad in ("0", "-1", "two"):
            monkeypatch.setenv("CSSL_NUM_THREADS", bad)
            with pytest.raises(ValueError, match="CSSL_NUM_THREADS must be a positive integer"):
                use_threads(1)
        monkeypatch.delenv("CSSL_NUM_THREADS")
        with pytest.raises(ValueError, match="default"):
            use_threads(0)
    finally:
        torch.set_num_threads(before)

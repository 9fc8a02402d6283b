"""cssl.study: grid training records, encoder feature worlds, concentration per cell, rank correlation."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from cssl import study
from cssl.augment import Augmentation
from cssl.experiments import EXPERIMENTS, Cell
from cssl.models import SmallCNN
from cssl.train import input_normaliser


def test_grid_cells_accepts_names_cells_and_pairs():
    assert study.grid_cells("table1") == EXPERIMENTS["table1"].cells
    cells = study.grid_cells([("x", {"letters": "ad"}), Cell("y", {"letters": "a"})])
    assert [c.label for c in cells] == ["x", "y"]
    with pytest.raises(ValueError, match="unknown experiment"):
        study.grid_cells("table9")
    with pytest.raises(ValueError, match="distinct labels"):
        study.grid_cells([("x", {}), ("x", {})])
    with pytest.raises(TypeError, match="Cell or a"):
        study.grid_cells([("x", "ad")])


def test_cell_augmentation_is_what_training_uses():
    aug = study.cell_augmentation(Cell("s=1/4", {"letters": "ad", "cj_prob": 1.0, "strength": 0.25}))
    ref = Augmentation("ad", strength=0.25, cj_prob=1.0)
    assert repr(aug) == repr(ref)
    x = torch.rand(4, 3, 16, 16)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(aug(x, g1), ref(x, g2))
    # a cell that sets only letters keeps the paper's defaults (strength 0.5, cj_prob 0.8)
    assert repr(study.cell_augmentation({"letters": "abc"})) == repr(Augmentation.paper("abc"))


def test_rank_correlation_matches_scipy_and_closed_form():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=12), rng.normal(size=12)
    assert study.rank_correlation(x, y) == pytest.approx(spearmanr(x, y).statistic)
    d = np.argsort(np.argsort(x)) - np.argsort(np.argsort(y))
    assert study.rank_correlation(x, y) == pytest.approx(1 - 6 * (d ** 2).sum() / (12 * (144 - 1)))
    assert study.rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert study.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="constant"):
        study.rank_correlation([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="length"):
        study.rank_correlation([1, 2], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        study.rank_correlation([1, 2, np.nan], [1, 2, 3])


def test_encoder_world_has_clean_view_first_and_unit_features():
    torch.manual_seed(0)
    x = torch.rand(20, 3, 16, 16)
    y = torch.arange(20) % 4
    enc = SmallCNN(in_channels=3, width=8)
    norm = input_normaliser(x)
    world = study.encoder_world(enc, x, y, Augmentation("ad"), 3, input_transform=norm)
    assert world.views.shape[:2] == (20, 4)
    assert torch.allclose(world.views.norm(dim=2), torch.ones(20, 4, dtype=torch.float64), atol=1e-5)
    enc.eval()
    with torch.no_grad():
        clean = torch.nn.functional.normalize(enc(norm(x)), dim=1).double()
    assert torch.allclose(world.views[:, 0], clean, atol=1e-5)
    f = study.encoder_factors(world, eps=0.0)
    assert f["r_eps"] == pytest.approx(1.0)  # every point has distinct views, so spread > 0
    assert study.encoder_factors(world, eps=2.0)["r_eps"] == 0.0  # unit vectors are at most 2 apart
    assert 0 <= f["delta_mu"] <= 1 and 0 <= f["nc_error"] <= 1 and f["alignment"] > 0
    with pytest.raises(ValueError, match="labels has"):
        study.encoder_world(enc, x, y[:5], Augmentation("ad"), 1, input_transform=norm)


def test_run_grid_records_and_aggregate():
    cells = [("a", {"letters": "a"}), ("ad", {"letters": "ad"})]
    recs = study.run_grid(cells, methods=("simclr",), seeds=(0, 1), dataset="digits", steps=3, eval_every=3,
                          batch_size=64, eval_images=50, n_views=2, eps=0.5)
    assert [(r["cell"], r["seed"]) for r in recs] == [("a", 0), ("a", 1), ("ad", 0), ("ad", 1)]
    for r in recs:
        assert 0 <= r["knn"] <= 1 and 0 <= r["nearest_centre"] <= 1 and 0 <= r["r_eps"] <= 1
        assert r["train_s"] > 0
    agg = study.aggregate(recs, ["knn"])
    assert list(agg) == [("simclr", "a"), ("simclr", "ad")]
    assert agg[("simclr", "a")]["knn"]["mean"] == pytest.approx(np.mean([recs[0]["knn"], recs[1]["knn"]]))
    assert agg[("simclr", "a")]["knn"]["std"] == pytest.approx(np.std([recs[0]["knn"], recs[1]["knn"]]))
    # same seed, same cell: the same record (training and measurement are seeded)
    again = study.run_grid(cells[:1], seeds=(0,), dataset="digits", steps=3, eval_every=3, batch_size=64,
                           eval_images=50, n_views=2, eps=0.5)
    assert {k: v for k, v in again[0].items() if k != "train_s"} == {k: v for k, v in recs[0].items() if k != "train_s"}
    with pytest.raises(ValueError, match="non-empty"):
        study.run_grid(cells, seeds=())


def test_run_grid_keeps_the_worlds_its_factors_were_measured_on():
    kept = study.run_grid([("ad", {"letters": "ad"})], seeds=(0,), dataset="digits", steps=3, eval_every=3,
                          batch_size=64, eval_images=50, n_views=2, eps=0.5, keep_worlds=True)[0]
    world = kept["world"]
    assert world.views.shape[:2] == (50, 3)
    assert kept["r_eps"] == study.encoder_factors(world, 0.5)["r_eps"]
    assert "world" not in study.run_grid([("ad", {"letters": "ad"})], seeds=(0,), dataset="digits", steps=3,
                                         eval_every=3, batch_size=64, eval_images=50, n_views=2)[0]


def test_grid_concentration_sigma_monotone_and_uint8_ok():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(30, 3, 8, 8, generator=g) * 255).to(torch.uint8)
    y = torch.arange(30) % 3
    est = study.grid_concentration([("a", {"letters": "a"}), ("ad", {"letters": "ad"})], x, y, [0.0, 5.0, 1e9],
                                   n_views=2)
    assert set(est) == {"a", "ad"}
    for e in est.values():
        s = e.sigma.tolist()
        assert s == sorted(s) and s[-1] == 1.0 and s[0] == pytest.approx(1 / 10)


def test_cell_augmentation_follows_the_profile_blur():
    # quick keeps the earlier chapters' 1 px blur; book scales it with the 16 px image (16 / 32 = 0.5 px)
    assert study.cell_augmentation({"letters": "ab"}).blur_sigma == 1.0
    assert study.cell_augmentation({"letters": "ab"}, "book").blur_sigma == 0.5


def test_baselines_untrained_encoder_and_raw_pixels():
    from cssl.experiments import profile_config
    from cssl.metrics import knn_accuracy
    from cssl.train import Dataset, _build

    g = torch.Generator().manual_seed(0)
    y = torch.arange(120) % 3
    x = (torch.rand(120, 3, 8, 8, generator=g) * 0.2 + y.view(-1, 1, 1, 1) * 0.4).clamp(0, 1)
    data = Dataset(x[:90], y[:90], x[90:], y[90:], 3)
    cfg = profile_config("book", "simclr", seed=3, device="cpu", width=4, image_size=8)
    out = study.untrained_accuracy(cfg, data)
    assert set(out) == {"knn_top1", "nearest_centre_acc"} and out == study.untrained_accuracy(cfg, data)
    # the same initialisation as training: the backbone of seed 3 under both methods is the same network
    a = _build(cfg, 3).encoder.state_dict()
    b = _build(profile_config("book", "barlow_twins", seed=3, device="cpu", width=4), 3).encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # raw pixels: brute force with the same standardisation
    raw = study.raw_pixel_accuracy(data, k=10)
    xtr, xte = x[:90].flatten(1), x[90:].flatten(1)
    mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-3)
    f = lambda z: torch.nn.functional.normalize((z - mean) / std, dim=1)  # noqa: E731
    assert raw == knn_accuracy(f(xtr), y[:90], f(xte), y[90:], num_classes=3, k=10, temperature=0.1)
    assert raw > 0.9  # far above chance (1/3): the classes differ in brightness by 0.4 against noise 0.2
    with pytest.raises(TypeError, match="TrainConfig"):
        study.untrained_accuracy({"seed": 0}, data)


def test_seed_matrix_pairs_runs_by_seed_and_reads_histories():
    recs = [{"method": "simclr", "cell": c, "seed": s, "knn": 10 * i + s,
             "history": [{"step": 100, "knn_top1": i + s / 10}, {"step": 200, "knn_top1": 0.0}]}
            for i, c in enumerate(["ab", "a"]) for s in (2, 0, 1)]
    m = study.seed_matrix(recs, "knn", "simclr", ["a", "ab"], [0, 1, 2])
    assert m.tolist() == [[10, 11, 12], [0, 1, 2]]
    h = study.seed_matrix(recs, "knn_top1", "simclr", ["ab"], [0, 2], step=100)
    assert h.tolist() == [[0.0, 0.2]]
    with pytest.raises(KeyError, match="seed 5"):
        study.seed_matrix(recs, "knn", "simclr", ["a"], [5])
    with pytest.raises(KeyError, match="step 300"):
        study.seed_matrix(recs, "knn_top1", "simclr", ["a"], [0], step=300)


def test_run_grid_book_profile_takes_no_overrides():
    with pytest.raises(ValueError, match="book profile's runs are fixed"):
        study.run_grid("table1", profile="book", steps=10)

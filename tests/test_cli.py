"""python -m cssl: help, argument errors, a tiny train run with provenance; experiment definitions."""
import subprocess
import sys

import pytest

from cssl.__main__ import COMMANDS, main
from cssl._io import read_json
from cssl.experiments import EXPERIMENTS, PAPER_RESULTS, PROFILES, experiment_runs, profile_config, reproduce, summarise

TINY_ARGS = ["--dataset", "textures", "--n-train", "96", "--n-test", "32", "--image-size", "8", "--width", "4",
             "--batch-size", "32", "--steps", "3", "--knn-k", "5", "--device", "cpu", "--no-progress"]


def test_module_help_runs():
    out = subprocess.run([sys.executable, "-m", "cssl", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "train" in out.stdout and "reproduce" in out.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "usage" in text and "--" in text


@pytest.mark.parametrize("argv, message", [
    ([], "required"),
    (["fly"], "invalid choice"),
    (["train", "--method", "byol"], "invalid choice"),
    (["train", "--steps", "0"], "steps must be"),
    (["train", "--steps", "ten"], "invalid int"),
    (["train", "--letters", "xyz"], "letters"),
    (["train", "--steps", "5", "--epochs", "2"], "exactly one"),
    (["train", "--profile", "quick", "--dataset", "cifar10"], "runs on"),
    (["reproduce", "table9"], "invalid choice"),
    (["reproduce", "table1", "--profile", "huge"], "invalid choice"),
    (["reproduce", "table1", "--seeds", "-1"], "nonnegative"),
    (["reproduce", "table1", "--steps", "0"], "positive"),
    (["reproduce", "table1", "--dataset", "mnist"], "runs on"),
])
def test_bad_arguments_exit_nonzero_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_tiny_train_writes_results_with_provenance(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_ARGS, "--method", "simclr", "--letters", "ad", "--out-dir", str(out)]) == 0
    assert "final kNN" in capsys.readouterr().out
    res = read_json(out / "results.json")
    prov = res["provenance"]
    assert set(prov) >= {"git", "device", "torch", "python", "seed", "profile", "created_utc"}
    assert "commit" in prov["git"] and prov["device"].startswith("CPU") and prov["seed"] == 0
    assert res["config"]["letters"] == "ad" and res["config"]["steps"] == 3 and res["status"] == "complete"
    assert res["wall_time_s"] > 0 and 0 <= res["final"]["knn_top1"] <= 1
    assert (out / "checkpoint.pt").is_file()


def test_profile_config_follows_the_authors_recipe():
    p = {m: profile_config("paper", m) for m in ("simclr", "moco", "simsiam", "barlow_twins")}
    assert {m: c.lr for m, c in p.items()} == {"simclr": 0.06, "moco": 0.08, "simsiam": 0.05, "barlow_twins": 0.11}
    for c in p.values():
        assert (c.backbone, c.batch_size, c.optimizer, c.momentum, c.weight_decay, c.cosine, c.epochs) == \
               ("resnet18", 512, "sgd", 0.9, 5e-4, True, 800)
        assert (c.knn_k, c.knn_t, c.dataset) == (200, 0.1, "cifar10")
    assert p["barlow_twins"].bt_lambda == 5e-3 and p["moco"].split_bn == 8 and p["simclr"].temperature == 0.5
    q = profile_config("quick", "barlow_twins", steps=50)
    assert (q.backbone, q.width, q.steps, q.epochs, q.bt_lambda, q.dataset) == ("smallcnn", 16, 50, None, 0.1, "textures")
    assert profile_config("paper", "simclr", steps=10).epochs is None


def test_experiment_grids():
    t1 = experiment_runs("table1", profile="paper", methods=["simclr"], seeds=[0], out="r")
    assert [label for _, label, _, _ in t1] == ["abcde", "abcd", "abc", "ab", "a"]
    assert all(c.epochs == 800 and c.letters == label for _, label, _, c in t1)
    t2 = experiment_runs("table2", profile="quick", seeds=[0, 1])
    assert len(t2) == 8 and {c.strength for *_, c in t2} == {1.0, 0.5, 0.25, 0.125}
    assert all(c.letters == "ad" and c.cj_prob == 1.0 for *_, c in t2)
    f3 = experiment_runs("figure3", profile="paper", seeds=[0])
    assert len(f3) == 10 and {m for m, *_ in f3} == {"simclr"} and all(c.epochs == 200 for *_, c in f3)
    assert len({c.out_dir for *_, c in t1 + t2 + f3}) == len(t1 + t2 + f3)
    assert set(PAPER_RESULTS["table1"]["cifar10"]["simclr"]) == {c.label for c in EXPERIMENTS["table1"].cells}
    assert set(PAPER_RESULTS["table2"]["cifar100"]["moco"]) == {c.label for c in EXPERIMENTS["table2"].cells}
    assert set(PROFILES) == {"quick", "book", "paper"}
    b = experiment_runs("table1", profile="book")
    assert len(b) == 2 * 5 * 5 and {s for _, _, s, _ in b} == {0, 1, 2, 3, 4}
    assert all(c.steps == 800 and not c.cosine and c.eval_every == 100 and c.blur_sigma is None for *_, c in b)


def test_summarise_uses_population_std():
    s = summarise([0.5, 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1) and s["n"] == 2


def test_reproduce_tiny_grid_writes_a_summary(tmp_path):
    summary = reproduce("table2", profile="quick", seeds=[0], out=tmp_path, device="cpu", progress=False,
                        steps=2, n_train=64, n_test=32, image_size=8, width=4, batch_size=32, knn_k=5)
    rows = summary["rows"]["simclr"]
    assert list(rows) == ["s=1", "s=1/2", "s=1/4", "s=1/8"]
    assert all(len(c["final_knn"]) == 1 and c["best_knn"][0] >= c["final_knn"][0] for c in rows.values())
    on_disk = read_json(tmp_path / "table2" / "quick-textures" / "summary.json")
    assert on_disk["rows"]["simclr"] == rows and on_disk["paper"] is None and "commit" in on_disk["provenance"]["git"]

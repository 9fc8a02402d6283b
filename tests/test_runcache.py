"""The committed run cache (results/book): current, complete, and reproduced exactly by retraining."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from cssl import experiments, runcache
from cssl.__main__ import main
from cssl.train import TrainConfig

COMMITTED = runcache.committed_runs()
#: How many committed runs the suite retrains (chosen by runcache.sample_for_verification, not by hand).
N_RETRAIN = 1


def _tiny(**kw) -> TrainConfig:
    base = dict(method="simclr", dataset="textures", letters="ad", steps=4, eval_every=2, batch_size=32,
                n_train=256, n_test=64, device="cpu", width=4, seed=0)
    return TrainConfig(**{**base, **kw})


# ------------------------------------------------------------------------------ the committed cache
@pytest.mark.parametrize("experiment, n_runs", [("table1", 2 * 5 * 5), ("table2", 2 * 4 * 5), ("figure3", 10 * 5)])
def test_the_cache_holds_every_run_the_chapters_use(experiment, n_runs):
    grid = runcache.grid_configs(experiment)
    assert len(grid) == n_runs  # methods x cells x five seeds
    missing = [(m, c, s) for m, c, s, _ in grid if not (runcache.run_dir(experiment, m, c, s) / "run.json").is_file()]
    assert not missing, (f"runs missing from results/book: {missing}; "
                         f"run `python -m cssl reproduce {experiment} --profile book`")


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: "/".join(p.parts[-5:-1]))
def test_every_committed_run_is_current(path):
    record = json.loads(path.read_text())
    cfg = runcache.config_of(record)
    assert record["code_hash"] == runcache.code_hash(), (
        f"{path} was trained by other training code than cssl's current {runcache.CODE_MODULES}; "
        f"regenerate with `python -m cssl reproduce {record['experiment']} --profile book`")
    assert record["config_hash"] == runcache.config_hash(cfg)
    # the run is the one the book profile asks for at its place in the grid
    wanted = {(m, c, s): c_ for m, c, s, c_ in runcache.grid_configs(record["experiment"])}
    assert runcache.config_hash(wanted[record["method"], record["cell"], record["seed"]]) == record["config_hash"]
    assert runcache.load_run(record["experiment"], record["cell"], cfg) is not None
    final = dict(record["final"])
    assert 0 <= final.pop("linear_probe_acc") <= 1  # the final evaluation adds the linear probe
    assert record["history"][-1] == final and final["step"] == cfg.steps


def test_the_cache_is_small():
    size = sum(p.stat().st_size for p in runcache.cache_root().rglob("*") if p.is_file())
    assert size < 30e6, f"results/book holds {size / 1e6:.1f} MB; keep it to tens of MB"


@pytest.mark.parametrize("path", runcache.sample_for_verification(COMMITTED, N_RETRAIN),
                         ids=lambda p: "/".join(p.parts[-5:-1]))
def test_a_committed_run_is_reproduced_exactly_by_retraining(path):
    record = json.loads(path.read_text())
    cfg = runcache.config_of(record)
    again = runcache.train_run(record["experiment"], record["cell"], cfg)
    assert again.record["history"] == record["history"]  # exact floats: same code, seed, threads
    stored = torch.load(path.parent / "encoder.pt", map_location="cpu", weights_only=True)
    for name, value in again.encoder.state_dict().items():
        assert torch.equal(value, stored[name]), name


def test_verification_sample_is_deterministic():
    assert runcache.sample_for_verification(COMMITTED, 3) == runcache.sample_for_verification(list(reversed(COMMITTED)), 3)
    with pytest.raises(ValueError, match="k must be"):
        runcache.sample_for_verification(COMMITTED, -1)


# ---------------------------------------------------------------------------------- the mechanism
def test_write_load_and_staleness(tmp_path, monkeypatch):
    cfg = _tiny()
    assert runcache.load_run("table1", "ad", cfg, root=tmp_path) is None
    run = runcache.train_run("table1", "ad", cfg, write=True, root=tmp_path)
    assert not run.cached and len(run.history) == 2 and run.final == {**run.history[-1], "linear_probe_acc": run.final["linear_probe_acc"]}
    loaded = runcache.load_run("table1", "ad", cfg, root=tmp_path)
    assert loaded.cached and loaded.record == run.record
    for name, value in run.encoder.state_dict().items():
        assert torch.equal(loaded.encoder.state_dict()[name], value), name
    x = torch.rand(3, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    assert torch.equal(loaded.encoder(x), run.encoder.eval()(x))
    # another config, or other training code: stale
    assert runcache.load_run("table1", "ad", dataclasses.replace(cfg, lr=1e-3), root=tmp_path) is None
    monkeypatch.setattr(runcache, "code_hash", lambda: "0" * 64)
    assert runcache.load_run("table1", "ad", cfg, root=tmp_path) is None


def test_obtain_trains_what_is_missing_without_writing(tmp_path):
    run = runcache.obtain("table1", "ad", _tiny(), root=tmp_path)
    assert not run.cached and not any(tmp_path.iterdir())


def test_a_damaged_encoder_file_is_an_error_that_says_what_to_do(tmp_path):
    cfg = _tiny()
    runcache.train_run("table1", "ad", cfg, write=True, root=tmp_path)
    (runcache.run_dir("table1", "simclr", "ad", 0, root=tmp_path) / "encoder.pt").write_bytes(b"not weights")
    with pytest.raises(ValueError, match="reproduce table1 --profile book"):
        runcache.load_run("table1", "ad", cfg, root=tmp_path)


def test_cached_runs_are_cpu_single_thread_and_restore_threads():
    with pytest.raises(ValueError, match="CPU"):
        runcache.train_run("table1", "ad", _tiny(device="auto"))
    before = torch.get_num_threads()
    runcache.train_run("table1", "ad", _tiny())
    assert torch.get_num_threads() == before


def test_config_hash_ignores_where_a_run_is_written():
    cfg = _tiny()
    assert runcache.config_hash(cfg) == runcache.config_hash(dataclasses.replace(cfg, out_dir="x", profile="book"))
    assert runcache.config_hash(cfg) != runcache.config_hash(dataclasses.replace(cfg, seed=1))
    with pytest.raises(TypeError):
        runcache.config_hash({"seed": 0})


def test_regenerate_trains_missing_runs_once_and_resumes(tmp_path, monkeypatch):
    book = experiments.PROFILES["book"]
    small = dataclasses.replace(book, base={**book.base, "steps": 4, "eval_every": 2, "batch_size": 32,
                                            "n_train": 256, "n_test": 64, "width": 4})
    monkeypatch.setitem(experiments.PROFILES, "book", small)
    kw = dict(methods=["simclr"], seeds=[0], workers=1, root=tmp_path, progress=False,
              scratch=tmp_path / "scratch")
    first = runcache.regenerate("table1", **kw)
    assert first["trained"] == 5 and first["current"] == 0
    assert len(runcache.committed_runs(root=tmp_path)) == 5
    # a finished run leaves no checkpoint behind, and checkpoints live under the training code's hash
    assert not list((tmp_path / "scratch").rglob("checkpoint.pt"))
    assert [d.name for d in (tmp_path / "scratch").iterdir()] == [runcache.code_hash()[:16]]
    second = runcache.regenerate("table1", **kw)
    assert second["trained"] == 0 and second["current"] == 5
    assert runcache.regenerate("table1", **kw, force=True)["trained"] == 5
    with pytest.raises(ValueError, match="workers"):
        runcache.regenerate("table1", **{**kw, "workers": 0})
    with pytest.raises(ValueError, match="unknown experiment"):
        runcache.regenerate("table9", **kw)


def test_cli_book_profile_rejects_options_that_would_change_its_runs(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "table1", "--profile", "book", "--steps", "10"])
    assert "--steps does not apply to --profile book" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "table1", "--profile", "book", "--workers", "0"])
    assert "--workers must be a positive integer" in capsys.readouterr().err


_POOL_SCRIPT = """
import os, sys, time
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from cssl import runcache

pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"),
                           initializer=runcache._exit_with_parent, initargs=(os.getpid(),))
print(pool.submit(os.getpid).result(), flush=True)
pool.submit(time.sleep, 120)
time.sleep(120)
"""


def test_a_killed_regeneration_leaves_no_worker_training():
    """The workers of regenerate() end with the command, even when it is killed without a chance to clean up."""
    parent = subprocess.Popen([sys.executable, "-c", _POOL_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        time.sleep(1.0)
        os.kill(worker, 0)  # alive while its parent is
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        os.kill(worker, signal.SIGKILL)
        pytest.fail(f"worker {worker} was still running 20 s after its regeneration was killed")
    finally:
        parent.kill()
        parent.wait(timeout=30)


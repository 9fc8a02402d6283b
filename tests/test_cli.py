"""python -m cssl: help, argument errors, a tiny train run with provenance; experiment definitions;
one-line errors, corrupt checkpoints, locked output folders, threads and the CPU-time warning."""
import fcntl
import os
import pickle
import select
import subprocess
import sys
import time

import pytest
import torch

from cssl import experiments
from cssl.__main__ import COMMANDS, CommandError, main
from cssl._io import CorruptCheckpoint, FolderLocked, lock_folder, read_checkpoint, read_json
from cssl.experiments import EXPERIMENTS, PAPER_RESULTS, PROFILES, experiment_runs, profile_config, reproduce, summarise

TINY_ARGS = ["--dataset", "textures", "--n-train", "96", "--n-test", "32", "--image-size", "8", "--width", "4",
             "--batch-size", "32", "--steps", "3", "--knn-k", "5", "--device", "cpu", "--no-progress"]


def test_module_help_runs():
    out = subprocess.run([sys.executable, "-m", "cssl", "--help"], capture_output=True, text=True, timeout=30)
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
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("argv, flag", [
    (["train", "--steps", "0"], "--steps"),
    (["train", "--lr", "-1"], "--lr"),
    (["train", "--letters", "aa"], "--letters"),
    (["train", "--steps", "5", "--epochs", "2"], "--steps/--epochs"),
    (["train", "--dataset", "cifar10"], "--dataset/--profile"),
    (["train", "--profile", "none", "--batch-size", "10", "--split-bn", "4"], "--batch-size/--split-bn"),
    (["reproduce", "table1", "--dataset", "mnist"], "--dataset"),
])
def test_config_errors_name_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"argument {flag}" in err and len(err.strip().splitlines()) == 1, err


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_missing_cifar_is_one_line_naming_download_and_data_root(tmp_path, capsys):
    argv = ["train", "--profile", "none", "--dataset", "cifar10", "--data-root", str(tmp_path / "none"),
            "--device", "cpu", "--out-dir", str(tmp_path / "run")]
    assert main(argv) == 1
    line = _one_error_line(capsys)
    assert "--download" in line and "--data-root" in line and "download=True" not in line
    with pytest.raises(CommandError):  # --debug: the exception itself, with its traceback
        main(["--debug", *argv])


def test_wrong_md5_names_the_cli_flags(tmp_path, capsys):
    from cssl.data import make_fake_cifar

    make_fake_cifar(tmp_path, "cifar10", n_train=40, n_test=20)
    assert main(["train", "--profile", "none", "--dataset", "cifar10", "--data-root", str(tmp_path),
                 "--device", "cpu", "--no-progress", "--out-dir", str(tmp_path / "run")]) == 1
    line = _one_error_line(capsys)
    assert "has md5" in line and "--data-md5" in line and "md5=" not in line


def test_debug_flag_shows_the_traceback_in_a_subprocess(tmp_path):
    argv = [sys.executable, "-m", "cssl", "train", "--profile", "none", "--dataset", "cifar10", "--data-root",
            str(tmp_path), "--out-dir", str(tmp_path / "run")]
    plain = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    debug = subprocess.run(argv[:3] + ["--debug"] + argv[3:], capture_output=True, text=True, timeout=30)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr and plain.stderr.count("error:") == 1
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "CommandError" in debug.stderr


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


def test_train_defaults_to_the_quick_profile_and_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_ARGS, "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "profile quick" in text and "device CPU" in text
    cfg = read_json(out / "results.json")["config"]
    quick = profile_config("quick", "simclr")
    assert cfg["profile"] == "quick" and cfg["blur_sigma"] == quick.blur_sigma and cfg["eval_every"] == quick.eval_every
    assert main(["train", *TINY_ARGS, "--method", "barlow_twins", "--out-dir", str(tmp_path / "bt")]) == 0
    assert read_json(tmp_path / "bt" / "results.json")["config"]["bt_lambda"] == 0.1  # the book's lambda
    assert main(["train", *TINY_ARGS, "--profile", "none", "--out-dir", str(tmp_path / "none")]) == 0
    assert read_json(tmp_path / "none" / "results.json")["config"]["profile"] is None


def _tiny_run(tmp_path, *extra):
    return main(["train", *TINY_ARGS, "--letters", "ad", "--out-dir", str(tmp_path / "run"), *extra])


def _truncated(raw):
    return raw[: len(raw) // 2]


class _Payload:
    def __reduce__(self):
        return (os.mkdir, ("/tmp/cssl-pwned-by-checkpoint",))


@pytest.mark.parametrize("damage", [_truncated, lambda raw: b"", lambda raw: os.urandom(4096),
                                    lambda raw: pickle.dumps(_Payload())],
                         ids=["truncated", "empty", "random", "pickle-payload"])
def test_a_corrupt_checkpoint_is_set_aside_with_a_message(tmp_path, capsys, damage):
    assert _tiny_run(tmp_path) == 0
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.write_bytes(damage(ckpt.read_bytes()))
    with pytest.raises(CorruptCheckpoint, match="checkpoint.pt is not a"):
        read_checkpoint(ckpt)
    capsys.readouterr()
    assert _tiny_run(tmp_path) == 0
    err = capsys.readouterr().err
    assert "moved it to" in err and "weights_only=False" not in err
    aside = list((tmp_path / "run").glob("checkpoint.corrupt-*.pt"))
    assert len(aside) == 1 and read_checkpoint(ckpt)["step"] == 3
    assert not os.path.exists("/tmp/cssl-pwned-by-checkpoint")


def test_a_changed_config_on_resume_is_one_line_naming_no_resume(tmp_path, capsys):
    assert _tiny_run(tmp_path) == 0
    capsys.readouterr()
    assert _tiny_run(tmp_path, "--steps", "4") == 1
    line = _one_error_line(capsys)
    assert "steps: 3 -> 4" in line and "--no-resume" in line and "--out-dir" in line and "resume=False" not in line
    assert _tiny_run(tmp_path, "--steps", "4", "--no-resume") == 0


def test_a_locked_output_folder_fails_at_once(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / ".lock", "a+") as held:  # another open file: as another process holds it
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 1 (the test)")
        held.flush()
        t0 = time.perf_counter()
        assert _tiny_run(tmp_path) == 1
        assert time.perf_counter() - t0 < 5
    line = _one_error_line(capsys)
    assert "is in use by another run" in line and "--out-dir" in line
    assert not (run / "results.json").exists()
    assert _tiny_run(tmp_path) == 0  # released: the folder is free again


def test_lock_folder_excludes_another_process_and_is_reentrant(tmp_path):
    script = ("import sys, time\nfrom cssl._io import lock_folder\nwith lock_folder(sys.argv[1]):\n"
              "    print('held', flush=True)\n    time.sleep(30)\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 30)  # never wait for it longer than 30 s
        assert ready and child.stdout.readline().strip() == "held"
        with pytest.raises(FolderLocked, match=f"pid {child.pid}"):
            with lock_folder(tmp_path):
                pass
    finally:
        child.kill()
        child.wait(timeout=10)
    with lock_folder(tmp_path), lock_folder(tmp_path):  # free again after a kill; re-entrant in one process
        pass


def test_reproduce_locks_its_folder_and_logs_each_run(tmp_path):
    small = dict(steps=2, n_train=64, n_test=32, image_size=8, width=4, batch_size=32, knn_k=5)
    lines = []
    reproduce("table2", profile="quick", seeds=[0], out=tmp_path, device="cpu", progress=False,
              log=lines.append, **small)
    assert len(lines) == 4 and all("final kNN" in line for line in lines)
    with open(tmp_path / "table2" / "quick-textures" / ".lock", "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(FolderLocked, match="--out"):
            reproduce("table2", profile="quick", seeds=[1], out=tmp_path, device="cpu", progress=False, **small)


def test_cssl_num_threads_is_honoured(tmp_path, capsys, monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("CSSL_NUM_THREADS", "1")
    try:
        assert _tiny_run(tmp_path) == 0
        assert "(1 threads)" in capsys.readouterr().out and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv("CSSL_NUM_THREADS", "many")
    assert _tiny_run(tmp_path) == 1
    assert "CSSL_NUM_THREADS must be a positive integer" in _one_error_line(capsys)


def test_paper_profile_on_cpu_warns_with_the_expected_time(tmp_path, capsys, monkeypatch):
    calls = []

    def fake_estimate(cfg, device=None):
        calls.append((cfg.profile, cfg.epochs, str(device)))
        return {"steps": 78_100, "images_per_s": 3.0, "seconds": 78_100 * 512 / 3.0}

    monkeypatch.setattr(experiments, "estimate_seconds", fake_estimate)
    monkeypatch.setattr(experiments, "run_in_folder", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    from cssl.data import make_fake_cifar

    md5 = make_fake_cifar(tmp_path, "cifar10", n_train=40, n_test=20)
    assert main(["train", "--profile", "paper", "--device", "cpu", "--data-root", str(tmp_path), "--data-md5", md5,
                 "--out-dir", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert calls == [("paper", 800, "cpu")]
    assert "warning: resnet18 for 78,100 steps of 512 images on the CPU: about 154.3 days" in err and "GPU" in err


def test_estimate_seconds_scales_a_measured_step():
    small = profile_config("quick", "simclr", width=4, steps=10, batch_size=32, device="cpu")
    est = experiments.estimate_seconds(small, probe_batch=4)
    assert est["steps"] == 10 and est["images_per_s"] > 0
    assert est["seconds"] == pytest.approx(32 * 10 / est["images_per_s"])
    by_epochs = experiments.estimate_seconds(profile_config("paper", "simclr", width=4, device="cpu"), probe_batch=2)
    assert by_epochs["steps"] == 800 * (50_000 // 512)


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

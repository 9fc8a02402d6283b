"""Two gloo processes on CPU give the single-process loss and gradients on the same global batch.

The two ranks meet on 127.0.0.1 through the loopback interface only (``GLOO_SOCKET_IFNAME=lo`` on
Linux), so the test needs no network; the rendezvous gives up after ``RENDEZVOUS_TIMEOUT_S`` and the
whole spawn after ``SPAWN_TIMEOUT_S`` (torch's default would wait 30 minutes). Without a working
loopback interface the test is skipped with that reason, at once.
"""
import os
import socket
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from cssl import distributed as D
from cssl import losses
from cssl.models import MLP, SimCLR

WORLD = 2
N_LOCAL = 6
RENDEZVOUS_TIMEOUT_S = 15
SPAWN_TIMEOUT_S = 45


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loopback_works(timeout_s: float = 2.0) -> bool:
    """Whether a TCP connection to ourselves on 127.0.0.1 completes (it hangs with ``lo`` down)."""
    try:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            with socket.create_connection(server.getsockname(), timeout=timeout_s):
                return True
    except OSError:
        return False


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(WORLD * N_LOCAL, 5, generator=g), torch.randn(WORLD * N_LOCAL, 5, generator=g)


def _encoder():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8))


def _simclr():
    torch.manual_seed(0)
    return SimCLR(MLP(5, 12, 8), temperature=0.5)  # no BatchNorm: per-rank BN would differ from global BN


def _loss_fn(kind, model, x1, x2):
    if kind == "simclr_method":
        return model(x1, x2)
    z1, z2 = model(x1), model(x2)
    if kind == "nt_xent":
        return losses.nt_xent(D.gather_with_grad(z1), D.gather_with_grad(z2), temperature=0.5)
    return D.cross_correlation_loss(z1, z2, lam=0.1)


KINDS = ("nt_xent", "cross_correlation", "simclr_method")


def _worker(rank, port, out_dir):
    """One spawn does every check (process start-up dominates the cost)."""
    os.environ.update(WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # not the hostname's address: no network needed
    torch.set_num_threads(1)
    D.init_from_env("cpu", timeout_s=RENDEZVOUS_TIMEOUT_S)
    try:
        x1, x2 = _data()
        sl = slice(rank * N_LOCAL, (rank + 1) * N_LOCAL)
        for kind in KINDS:
            model = _simclr() if kind == "simclr_method" else _encoder()
            ddp = nn.parallel.DistributedDataParallel(model)
            loss = _loss_fn(kind, ddp, x1[sl], x2[sl])
            loss.backward()
            torch.save({"loss": loss.detach(), "grads": [p.grad.clone() for p in model.parameters()]},
                       os.path.join(out_dir, f"{kind}-{rank}.pt"))
        _train_worker(rank, out_dir)
    finally:
        D.cleanup()


@pytest.fixture(scope="module")
def spawned(tmp_path_factory):
    if not _loopback_works():
        pytest.skip("no TCP connection on 127.0.0.1 (is the loopback interface down?): gloo cannot rendezvous")
    out = tmp_path_factory.mktemp("ddp")
    ctx = mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    try:
        while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                pytest.fail(f"the {WORLD} ranks did not finish within {SPAWN_TIMEOUT_S} s")
    except mp.ProcessRaisedException as err:
        first = str(err).strip().splitlines()[-1]
        pytest.fail(f"a rank failed (rendezvous limit {RENDEZVOUS_TIMEOUT_S} s): {first}")
    finally:
        for proc in ctx.processes:
            if proc.is_alive():
                proc.kill()
                proc.join(5)
    return out


def _single(kind):
    x1, x2 = _data()
    model = _simclr() if kind == "simclr_method" else _encoder()
    if kind == "simclr_method":
        loss = model(x1, x2)
    elif kind == "nt_xent":
        loss = losses.nt_xent(model(x1), model(x2), temperature=0.5)
    else:
        loss = losses.cross_correlation(model(x1), model(x2), lam=0.1)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("kind", KINDS)
def test_two_ranks_match_one_process(kind, spawned):
    ref_loss, ref_grads = _single(kind)
    for r in range(WORLD):
        got = torch.load(spawned / f"{kind}-{r}.pt")
        assert torch.allclose(got["loss"], ref_loss, rtol=1e-5, atol=1e-6), (r, got["loss"], ref_loss)
        assert len(got["grads"]) == len(ref_grads)
        for g, ref in zip(got["grads"], ref_grads):
            assert torch.allclose(g, ref, rtol=1e-4, atol=1e-6), (r, (g - ref).abs().max())


def test_single_process_helpers_are_identities():
    z = torch.randn(4, 3, requires_grad=True)
    assert D.gather_with_grad(z) is z and D.all_gather_nograd(z) is z
    assert not D.is_distributed() and D.rank() == 0 and D.world_size() == 1 and D.is_main()
    z2 = torch.randn(4, 3)
    assert torch.allclose(D.cross_correlation_loss(z, z2, lam=0.3), losses.cross_correlation(z, z2, lam=0.3), rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        D.cross_correlation_loss(z, torch.randn(5, 3))


def test_revert_sync_batchnorm_keeps_weights_and_stats():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with torch.no_grad():
        m[1].weight.uniform_()
        m[1].running_mean.uniform_()
    s = nn.SyncBatchNorm.convert_sync_batchnorm(m)
    back = D.revert_sync_batchnorm(s).eval()
    assert not any(isinstance(x, nn.SyncBatchNorm) for x in back.modules())
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(back(x), m.eval()(x), atol=1e-6)


def _train_worker(rank, out_dir):
    from cssl.train import Dataset, TrainConfig, train

    g = torch.Generator().manual_seed(0)
    data = Dataset(torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8, generator=g), torch.arange(64) % 2,
                   torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=g), torch.arange(16) % 2, 2)
    cfg = TrainConfig(method="simclr", width=4, steps=3, batch_size=16, knn_k=5, device="cpu",
                      out_dir=os.path.join(out_dir, "run"), letters="ad")
    res = train(cfg, progress=False, data=data)
    torch.save([p.detach().clone() for p in res["method"].parameters()], os.path.join(out_dir, f"w{rank}.pt"))


def test_train_loop_under_two_ranks(spawned):
    """The torchrun path of train(): DDP keeps the ranks' weights equal; rank 0 alone writes the results."""
    w0, w1 = torch.load(spawned / "w0.pt"), torch.load(spawned / "w1.pt")
    assert all(torch.equal(a, b) for a, b in zip(w0, w1))
    from cssl._io import read_json

    res = read_json(spawned / "run" / "results.json")
    assert res["status"] == "complete" and res["provenance"]["world_size"] == WORLD
    assert res["step"] == 3 and len(res["history"]) == 1

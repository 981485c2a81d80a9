"""Supernet: weight sharing, extraction equivalence, BN recalibration, exact resume, quantizer, NaN."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.fx
from torch.utils.data import DataLoader, TensorDataset

from crossnas.device import resolve_device
from crossnas.errors import CrossnasError
from crossnas.quant import quantize_int
from crossnas.space.arch import BlockArch, NetworkArch
from crossnas.supernet import Supernet, SupernetSpec, recalibrate_bn, recalibrate_supernet_bn
from crossnas.supernet.train import SupernetTrainConfig, train_supernet

torch.set_num_threads(1)

SPEC = SupernetSpec(n_slots=4, widths=(8, 16), head_hidden=(24, 12), wbits=(3, 4, 8), abits=(4, 8))


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    return Supernet(SPEC, in_channels=3, num_classes=5, input_size=8, **kw)


def _arch(*blocks, head_bits=9):
    return NetworkArch(blocks=tuple(BlockArch(*b) for b in blocks), head_bits=head_bits)


def _toy(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 5, (n,), generator=g)
    x = torch.randn(n, 3, 8, 8, generator=g) * 0.5 + y.view(-1, 1, 1, 1).float() * 0.3
    return x, y


def _warm(net, arch_list, steps=3):
    net.train()
    x, _ = _toy(32)
    with torch.no_grad():
        for _ in range(steps):
            for a in arch_list:
                net(x, a)


def test_weight_sharing_slices_same_tensor():
    net = _net()
    a8 = _arch(("vgg", 8, 8, 8), ("residual", 8, 4, 4), ("skip",), ("vgg", 8, 8, 8))
    a16 = _arch(("vgg", 16, 8, 8), ("residual", 16, 4, 4), ("skip",), ("vgg", 16, 8, 8))
    e8, e16 = net.extract(a8), net.extract(a16)
    w = net.slots[0]["vgg"].conv1.weight
    assert torch.equal(e8.blocks[0].conv1.weight, w[:8, :3])
    assert torch.equal(e16.blocks[0].conv1.weight, w[:16, :3])
    assert torch.equal(e16.blocks[0].conv1.weight[:8], e8.blocks[0].conv1.weight)
    assert torch.equal(e8.blocks[1].shortcut[0].weight, net.slots[1]["residual"].shortcut.weight[:8, :8])
    # a gradient step on the narrow path moves the shared tensor's first channels only
    net.zero_grad()
    net.train()
    net(_toy(8)[0], a8).sum().backward()
    g = net.slots[0]["vgg"].conv1.weight.grad
    assert g[:8].abs().sum() > 0 and g[8:].abs().sum() == 0
    # the head slices fc1's input columns: 4 * width
    assert e8.head.fc1.in_features == 32 and e16.head.fc1.in_features == 64


def test_naming_contract_and_fx():
    net = _net()
    a = _arch(("vgg_pool", 8), ("skip",), ("residual", 16), ("vgg", 8))
    sub = net.extract(a)
    names = dict(sub.named_modules())
    for n in ("blocks.0.conv1", "blocks.0.bn1", "blocks.0.conv2", "blocks.0.bn2", "blocks.0.pool",
              "blocks.2.shortcut.0", "blocks.2.shortcut.1", "head.pool", "head.fc1", "head.fc2", "head.fc3"):
        assert n in names, n
    assert isinstance(names["blocks.1"], torch.nn.Identity)
    assert names["blocks.0.conv1"].act_signed and not names["blocks.2.conv1"].act_signed
    gm = torch.fx.symbolic_trace(sub)
    assert any(n.op == "call_function" and "add" in str(n.target) for n in gm.graph.nodes)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_extract_equivalence_random_archs(seed):
    net = _net(seed)
    rng = np.random.default_rng(seed)
    archs = [net.sample_arch(rng) for _ in range(5)]
    archs.append(_arch(("residual", 16, 3, 4), ("skip",), ("residual", 8, 8, 8), ("vgg_pool", 16, 4, 8)))
    archs.append(_arch(("vgg", 8, 8, 4), ("skip",), ("skip",), ("residual", 16, 3, 8), head_bits=6))
    _warm(net, archs)
    net.eval()
    x = torch.randn(6, 3, 8, 8)
    for a in archs:
        sub = net.extract(a).eval()
        with torch.no_grad():
            assert (sub(x) - net(x, a)).abs().max().item() <= 1e-5, a


def test_own_sampler_constraints():
    net = Supernet(SupernetSpec(n_slots=5, block_kinds=("vgg_pool", "skip"), widths=(8,)), 3, 5, 8)
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = net.sample_arch(rng)
        assert a.blocks[0].kind != "skip" and 8 / 2**a.n_pools >= 2


def test_from_space_reads_attributes_and_sampler():
    class FakeSpace:
        n_slots, widths, head_hidden, head_bits = 2, (4, 8), (10,), 7

        def sample(self, rng, n=1):
            return rng.integers(0, 2, (n, 2))

        def network_arch(self, g):
            return _arch(("vgg", 4 * (1 + int(g[0]))), ("skip",) if g[1] else ("vgg", 4), head_bits=7)

    net = Supernet.from_space(FakeSpace(), 1, 3, 8)
    assert net.spec.widths == (4, 8) and net.spec.head_hidden == (10,) and len(net.fcs) == 2
    a = net.sample_arch(np.random.default_rng(0))
    assert a.head_bits == 7 and net(torch.randn(2, 1, 8, 8), a).shape == (2, 3)


def test_bn_recalibration_fixes_eval_accuracy():
    torch.manual_seed(0)
    a = _arch(("vgg", 8), ("skip",), ("skip",), ("skip",))
    net = _net()
    x, y = _toy(200)
    x = x * 3 + 2  # shift the statistics far from BN's initial running stats (0, 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    net.train()
    for _ in range(15):
        for xb, yb in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xb, a), yb).backward()
            opt.step()
    sub = net.extract(a)
    for m in sub.modules():  # break the running stats (as a width/path change would)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(5.0)
            m.running_var.fill_(0.01)
    sub.eval()
    with torch.no_grad():
        before = (sub(x).argmax(1) == y).float().mean().item()
    old = sub.blocks[0].bn1.running_mean.clone()
    recalibrate_bn(sub, loader, n_batches=4, seed=0)
    assert not torch.equal(old, sub.blocks[0].bn1.running_mean)
    assert sub.blocks[0].bn1.momentum == 0.1 and not sub.training
    with torch.no_grad():
        after = (sub(x).argmax(1) == y).float().mean().item()
    assert after > before + 0.2, (before, after)
    # deterministic given the seed, and the supernet variant only touches the path's BNs
    s1 = sub.blocks[0].bn1.running_mean.clone()
    recalibrate_bn(sub, loader, n_batches=4, seed=0)
    assert torch.equal(s1, sub.blocks[0].bn1.running_mean)
    other = net.slots[0]["vgg"].bn1["16"].running_mean.clone()
    recalibrate_supernet_bn(net, a, loader, n_batches=4, seed=0)
    assert torch.equal(other, net.slots[0]["vgg"].bn1["16"].running_mean)
    assert torch.allclose(net.slots[0]["vgg"].bn1["8"].running_mean, s1, atol=1e-5)


def _splits():
    x, y = _toy(64)
    xv, yv = _toy(32, seed=1)
    return TensorDataset(x, y), TensorDataset(xv, yv)


def _cfg(epochs, **kw):
    base = {"epochs": epochs, "batch_size": 16, "lr": 0.05, "seed": 3, "noise_sigma": 0.05, "device": "cpu",
            "val_subnets": 2}
    return SupernetTrainConfig(**{**base, **kw})


def test_resume_equivalence(tmp_path):
    net_a = _net(5)
    train_supernet(net_a, _splits(), _cfg(2), tmp_path / "a", progress=False)
    net_b = _net(5)
    train_supernet(net_b, _splits(), _cfg(2), tmp_path / "b", progress=False, stop_after=1)
    net_c = _net(99)  # fresh process stand-in: different init, everything comes from the checkpoint
    torch.manual_seed(1234)
    hist = train_supernet(net_c, _splits(), _cfg(2), tmp_path / "b", resume=True, progress=False)
    assert [h["epoch"] for h in hist] == [2]
    sa, sc = net_a.state_dict(), net_c.state_dict()
    assert sa.keys() == sc.keys() and all(torch.equal(sa[k], sc[k]) for k in sa)
    lines = [json.loads(s) for s in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2] and "val_acc_mean" in lines[0]
    assert len(lines[1]["val"]) == 2 and "train_loss" in lines[1]


def test_amp_is_ignored_on_cpu(tmp_path):
    runs = []
    for amp in (False, True):
        net = _net(5)
        hist = train_supernet(net, _splits(), _cfg(1, amp=amp), tmp_path / str(amp), progress=False)
        runs.append((net.state_dict(), hist))
    (sa, ha), (sb, hb) = runs
    assert ha == hb and sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], _net(5).state_dict()[k]) for k in sa)  # training did move weights


def test_nan_loss_stops_and_keeps_checkpoint(tmp_path):
    net = _net()
    train_supernet(net, _splits(), _cfg(1), tmp_path, progress=False)
    ck = (tmp_path / "checkpoint.pt").read_bytes()
    x, y = _toy(64)
    x[:] = float("nan")
    with pytest.raises(CrossnasError, match="diverged"):
        train_supernet(net, (TensorDataset(x, y), None), _cfg(2), tmp_path, resume=True, progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == ck


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8, 9])
@pytest.mark.parametrize("signed", [True, False])
def test_quantizer_round_trip(bits, signed):
    g = torch.Generator().manual_seed(bits)
    x = torch.randn(1000, generator=g)
    if not signed:
        x = x.abs()
    rng = x.abs().max()
    q, scale = quantize_int(x, bits, rng, signed)
    m = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    assert q.min() >= (-m if signed else 0) and q.max() <= m and torch.equal(q, q.round())
    q2, scale2 = quantize_int(q * scale, bits, rng, signed)  # quantized values are fixed points
    assert torch.equal(q2, q) and torch.equal(scale2, scale)
    assert (q * scale - x).abs().max() <= scale / 2 + 1e-6


def test_quantized_conv_bits_used_in_supernet():
    net = _net()
    a4 = _arch(("vgg", 8, 2, 2), ("skip",), ("skip",), ("skip",))
    sub = net.extract(a4)
    assert sub.blocks[0].conv1.weight_bits == 2 and sub.blocks[0].conv2.act_bits == 2
    wq = sub.blocks[0].conv1.quant_weight(sub.blocks[0].conv1.weight)
    assert len(torch.unique(wq)) <= 3


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(CrossnasError, match="CUDA"):
            resolve_device("cuda")
    with pytest.raises(CrossnasError):
        resolve_device("tpu")


def test_config_forbids_extra():
    with pytest.raises(ValueError):
        SupernetTrainConfig(epochs=1, bogus=2)


def test_cli_train_supernet(tmp_path, capsys):
    pytest.importorskip("crossnas.data")
    from crossnas.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {name: digits, seed: 0, limit: 160}\nspace: {preset: demo}\n"
                   "supernet: {epochs: 1, batch_size: 32, device: cpu, val_subnets: 1}\n")
    assert main(["train-supernet", str(cfg), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert (tmp_path / "o" / "checkpoint.pt").exists()
    cfg.write_text("data: {name: digits}\nspace: {preset: demo}\nsupernet: {epochs: 1, bogus: 3}\n")
    assert main(["train-supernet", str(cfg), "--out", str(tmp_path / "p")]) == 2
    assert "bogus" in capsys.readouterr().err


# --- canonical paths, sandwich rule, checkpoint form ----------------------------------------------------
def test_own_sampler_draws_canonical_paths():
    net = _net()
    rng = np.random.default_rng(0)
    for _ in range(50):
        kinds = [b.kind for b in net.sample_arch(rng).blocks]
        n = len([k for k in kinds if k != "skip"])
        assert "skip" not in kinds[:n] and all(k == "skip" for k in kinds[n:])


def test_sandwich_trains_largest_and_smallest_with_distillation(tmp_path, monkeypatch):
    from crossnas.supernet import train as tr

    net = _net()
    largest, smallest = net.extreme_arch("largest"), net.extreme_arch("smallest")
    assert [b.kind for b in largest.blocks] == ["residual"] * 4 and largest.blocks[0].width == 16
    assert [b.kind for b in smallest.blocks] == ["vgg_pool", "skip", "skip", "skip"]
    assert smallest.blocks[0].width == 8 and smallest.blocks[0].wbits == 3
    seen, losses = [], []
    forward, kl = Supernet.forward, tr.F.kl_div
    monkeypatch.setattr(Supernet, "forward", lambda self, x, a: seen.append(a) or forward(self, x, a))
    monkeypatch.setattr(tr.F, "kl_div", lambda *a, **k: losses.append("kd") or kl(*a, **k))
    cfg = _cfg(1, sampling="sandwich", sandwich_random=1, distill=True, val_subnets=0)
    train_supernet(net, _splits(), cfg, tmp_path / "s", progress=False)
    steps = len(seen) // 3
    assert steps >= 2 and seen[0::3] == [largest] * steps and seen[1::3] == [smallest] * steps
    assert len(losses) == 2 * steps  # every path but the largest learns from the largest one
    seen.clear(), losses.clear()
    train_supernet(_net(), _splits(), _cfg(1, sampling="uniform", val_subnets=0), tmp_path / "u",
                   progress=False)
    assert len(seen) == steps and not losses


def test_old_form_checkpoint_refused(tmp_path):
    from crossnas.safeload import content_sha256
    from crossnas.supernet.train import load_checkpoint

    net = _net()
    train_supernet(net, _splits(), _cfg(1, val_subnets=0), tmp_path, progress=False)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["form"] == 2
    load_checkpoint(_net(), tmp_path / "checkpoint.pt")
    del ck["form"]  # an intact checkpoint of the old form: its checksum matches, its form does not
    ck.pop("checksum")
    torch.save({**ck, "checksum": content_sha256(ck)}, tmp_path / "checkpoint.pt")
    with pytest.raises(CrossnasError, match="form 1"):
        load_checkpoint(_net(), tmp_path / "checkpoint.pt")
    with pytest.raises(CrossnasError, match="form 1"):
        train_supernet(_net(), _splits(), _cfg(2), tmp_path, resume=True, progress=False)

import itertools

import numpy as np
import pytest
from scipy.stats import chisquare

from crossnas.errors import CrossnasError
from crossnas.hardware import load_hardware
from crossnas.space import (
    CategoricalSpace,
    CrossLayerArch,
    CrossLayerSpace,
    CrossLayerSpec,
    NetworkArch,
    get_space_preset,
    list_space_presets,
    load_space,
)


def _enumerate(space):
    for g in itertools.product(*[range(s) for s in space.sizes]):
        yield np.array(g, dtype=np.int64)


def _brute(space, net_only: bool):
    keys = set()
    net = [k for k, lab in enumerate(space.labels) if lab.startswith("slot") and not lab.endswith("adc_bits")]
    for g in _enumerate(space):
        if space.is_valid(g):
            c = space.canonical(g)
            keys.add(tuple(c[net]) if net_only else tuple(c))
    return len(keys)


SMALL = dict(n_slots=3, widths=[4, 8], wbits=[2, 4], abits=[2, 4], input_size=4, head_hidden=[8])


# --- categorical ---------------------------------------------------------------------------------
def test_categorical_roundtrip_and_constraint():
    s = CategoricalSpace(
        {"a": [1, 2, 3], "b": ["x", "y"]}, constraint=lambda d: not (d["a"] == 3 and d["b"] == "y")
    )
    assert s.n_genes == 2 and list(s.sizes) == [3, 2]
    g = s.encode({"a": 2, "b": "y"})
    assert s.decode(g) == {"a": 2, "b": "y"}
    assert (s.canonical(g) == g).all()
    assert not s.is_valid(s.encode({"a": 3, "b": "y"}))
    rng = np.random.default_rng(0)
    samples = s.sample(rng, 300)
    assert all(s.is_valid(x) for x in samples)
    assert len({tuple(x) for x in samples}) == 5
    m = s.mutate(samples[0], rng, prob=1.0)
    assert s.is_valid(m)
    assert s.is_valid(s.crossover(samples[0], samples[1], rng))
    with pytest.raises(ValueError):
        CategoricalSpace({"a": []})


# --- cross-layer: validity, canonical, meaning ---------------------------------------------------
def test_validity_rules():
    s = CrossLayerSpace(CrossLayerSpec(**SMALL, cell_bits=[1, 4]))
    d = {
        f"slot{i}.{k}": v
        for i in range(3)
        for k, v in (("block", "vgg"), ("width", 4), ("wbits", 4), ("abits", 2))
    }
    d["hw.cell_bits"] = 1
    assert s.is_valid(s.encode(d))
    assert not s.is_valid(s.encode({**d, "slot0.block": "skip"}))
    assert s.is_valid(s.encode({**d, "slot1.block": "skip"}))
    # input 4: one pool leaves 2x2, two pools leave 1x1
    assert s.is_valid(s.encode({**d, "slot1.block": "vgg_pool"}))
    assert not s.is_valid(s.encode({**d, "slot1.block": "vgg_pool", "slot2.block": "vgg_pool"}))
    # cell bits must not exceed any active slot's weight bits; skip slots do not count
    assert s.is_valid(s.encode({**d, "hw.cell_bits": 4}))
    assert not s.is_valid(s.encode({**d, "hw.cell_bits": 4, "slot2.wbits": 2}))
    assert s.is_valid(s.encode({**d, "hw.cell_bits": 4, "slot2.wbits": 2, "slot2.block": "skip"}))
    assert not s.is_valid(np.zeros(s.n_genes + 1, dtype=np.int64))


def test_canonical_idempotent_skips_last_genes_move_with_their_block():
    s = CrossLayerSpace(CrossLayerSpec(**SMALL, adc_bits=[4, 6], adc_per_layer=True, crossbar=[32, 64]))
    skip = s.spec.blocks.index("skip")
    rng = np.random.default_rng(1)
    for _ in range(200):
        g = rng.integers(0, s.sizes)
        c = s.canonical(g)
        assert (s.canonical(c) == c).all()
        assert s.is_valid(g) == s.is_valid(c) or g[0] == skip  # a leading skip is invalid, not after
        rows, crow = g[:15].reshape(3, 5), c[:15].reshape(3, 5)
        active = [r for r in rows if r[0] != skip]
        assert all((a == b).all() for a, b in zip(active, crow))  # non-skip rows in order, genes intact
        assert all(r[0] == skip and (r[1:] == 0).all() for r in crow[len(active):])
        assert (c[15:] == g[15:]).all()


def _meaning(space, g):
    """What a genome builds, read without `canonical`: its non-skip blocks in order, each with its
    per-slot ADC bits, and the global hardware genes."""
    arch = space.to_arch(g)
    adc = arch.hardware.get("adc.per_layer", {})
    blocks = tuple((b, adc.get(f"blocks.{i}.*")) for i, b in arch.network.active)
    hw = tuple(sorted((k, v) for k, v in arch.hardware.items() if k != "adc.per_layer"))
    return blocks, hw


def test_canonical_dedupes_exactly_and_count_matches_brute_force():
    s = CrossLayerSpace(CrossLayerSpec(**{**SMALL, "widths": [4], "wbits": [2]}, adc_bits=[4, 6],
                                       adc_per_layer=True, cell_bits=[1, 2]))
    by_meaning: dict = {}
    for g in _enumerate(s):
        if s.is_valid(g):
            by_meaning.setdefault(_meaning(s, g), set()).add(s.key(g))
    # one canonical key per distinct network, and distinct networks never share a key
    assert all(len(keys) == 1 for keys in by_meaning.values())
    assert len({k for keys in by_meaning.values() for k in keys}) == len(by_meaning)
    assert s.count_configs() == len(by_meaning)
    nets = {tuple(b for b, _ in m[0]) for m in by_meaning}
    assert s.count_networks() == len(nets)


def test_to_arch_and_hardware_overlay():
    spec = CrossLayerSpec(
        **SMALL,
        crossbar=[32, 64],
        dac_bits=[1, 2],
        adc_bits=[4, 6],
        adc_per_layer=True,
        cell_bits=[1, 2],
        crossbars_per_pe=[4, 8],
        pes_per_tile=[2, 4],
        duplication=["none", "balance"],
    )
    s = CrossLayerSpace(spec)
    labels = s.labels
    assert labels[:5] == ["slot0.block", "slot0.width", "slot0.wbits", "slot0.abits", "slot0.adc_bits"]
    assert "hw.adc_bits" not in labels and "hw.duplication" in labels
    d = {
        "slot0.block": "residual",
        "slot0.width": 8,
        "slot0.wbits": 4,
        "slot0.abits": 2,
        "slot0.adc_bits": 6,
        "slot1.block": "skip",
        "slot1.width": 4,
        "slot1.wbits": 2,
        "slot1.abits": 2,
        "slot1.adc_bits": 4,
        "slot2.block": "vgg_pool",
        "slot2.width": 4,
        "slot2.wbits": 2,
        "slot2.abits": 4,
        "slot2.adc_bits": 4,
        "hw.crossbar": 64,
        "hw.dac_bits": 2,
        "hw.cell_bits": 2,
        "hw.crossbars_per_pe": 8,
        "hw.pes_per_tile": 2,
        "hw.duplication": "balance",
    }
    g = s.encode(d)
    assert s.is_valid(g)
    a = s.to_arch(g)
    assert isinstance(a, CrossLayerArch)
    assert [b.kind for b in a.network.blocks] == ["residual", "skip", "vgg_pool"]
    assert a.network.blocks[0].width == 8 and a.network.blocks[2].abits == 4 and a.network.n_pools == 1
    assert a.hardware == {
        "crossbar.rows": 64,
        "crossbar.cols": 64,
        "dac.bits": 2,
        "device.bits_per_cell": 2,
        "system.crossbars_per_pe": 8,
        "system.pes_per_tile": 2,
        "system.duplication": "balance",
        "adc.per_layer": {"blocks.0.*": 6, "blocks.2.*": 4},
    }
    assert CrossLayerArch.from_dict(a.to_dict()) == a
    assert s.network_arch(g) == a.network
    hw = load_hardware("mnsim-default").with_overrides(a.hardware)
    assert (
        hw.crossbar.rows == 64 and hw.adc_bits_for("blocks.2.conv1") == 4 and hw.adc_bits_for("head.fc1") == 6
    )


# --- counting ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"crossbar": [32, 64], "cell_bits": [1, 4]},
        {"adc_bits": [4, 6], "adc_per_layer": True, "cell_bits": [2, 4], "dac_bits": [1, 2]},
        {"cell_bits": [3, 4]},
    ],
)
def test_counts_match_enumeration(extra):
    small = {**SMALL, "n_slots": 2 if extra else 3}
    s = CrossLayerSpace(CrossLayerSpec(**small, **extra))
    assert s.count_networks() == _brute(s, net_only=True)
    assert s.count_configs() == _brute(s, net_only=False)


def test_count_topologies_and_input_size():
    spec = CrossLayerSpec(n_slots=3, widths=[4, 8], wbits=[2], abits=[2], input_size=8)
    s = CrossLayerSpace(spec)
    assert s.max_pools == 2
    assert s.count_networks(bits=False) == s.count_networks() == _brute(s, net_only=True)
    assert CrossLayerSpace(spec, input_size=3).max_pools == 0
    with pytest.raises(CrossnasError):
        CrossLayerSpace(CrossLayerSpec(n_slots=1, widths=[4], wbits=[2], abits=[2]))


# --- sampling ------------------------------------------------------------------------------------
def test_sampling_uniform_over_valid_raw_genomes_then_canonical():
    s = CrossLayerSpace(CrossLayerSpec(n_slots=3, widths=[4, 8], wbits=[2], abits=[2], input_size=4))
    kinds = s.spec.blocks
    # exact expectation: frequency of each block kind per slot over the canonical forms of valid raw genomes
    valid = [s.canonical(g) for g in _enumerate(s) if s.is_valid(g)]
    n = 4000
    samples = s.sample(np.random.default_rng(123), n)
    assert all(s.is_valid(x) and (s.canonical(x) == x).all() for x in samples)
    for i in range(3):
        col = 4 * i
        exp = np.array([sum(g[col] == k for g in valid) for k in range(len(kinds))], dtype=float)
        obs = np.array([(samples[:, col] == k).sum() for k in range(len(kinds))], dtype=float)
        mask = exp > 0
        assert (obs[~mask] == 0).all()
        p = chisquare(obs[mask], exp[mask] / exp[mask].sum() * n).pvalue
        assert p > 1e-3, (i, obs, exp)


def test_mutate_crossover_stay_valid():
    s = get_space_preset("demo")
    rng = np.random.default_rng(0)
    pop = s.sample(rng, 20)
    for a, b in zip(pop[:-1], pop[1:]):
        for c in (s.mutate(a, rng, prob=0.3), s.crossover(a, b, rng)):
            assert s.is_valid(c) and (s.canonical(c) == c).all()


# --- presets & CLI -------------------------------------------------------------------------------
def test_presets():
    assert {"crossnas-paper", "demo"} <= set(list_space_presets())
    p = get_space_preset("crossnas-paper")
    assert p.input_size == 32 and p.spec.n_slots == 8 and p.head_hidden == (200, 50) and p.head_bits == 9
    assert p.n_genes == 8 * 4 + 3
    assert p.genes[p.labels.index("hw.adc_bits")].choices == (10, 8, 6, 4)
    assert p.count_networks(bits=False) == 44_415_630  # 1-8 non-skip blocks, 9 kind/width options, <= 4 pools
    assert p.count_configs() == p.count_networks() * 4 * 2 * 4
    d = get_space_preset("demo")
    assert d.n_slots == 3 and d.widths == (8, 16) and d.wbits == (4, 6, 8) and len(d.block_kinds) == 4
    assert d.input_size == 8 and d.head_hidden == (32,)
    info = d.describe()
    assert info["networks"] == d.count_networks() and len(info["genes"]) == d.n_genes
    net = d.network_arch(d.sample(np.random.default_rng(0))[0])
    assert isinstance(net, NetworkArch) and len(net.blocks) == 3
    with pytest.raises(CrossnasError):
        get_space_preset("nope")


def test_load_space_file(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("n_slots: 2\nwidths: [4]\nwbits: [2]\nabits: [2]\ninput_size: 4\n")
    assert load_space(f).count_networks() == _brute(load_space(f), net_only=True)
    f.write_text("n_slots: 2\nwidths: [4]\nwbits: [2]\nabits: [2]\nbogus: 1\n")
    with pytest.raises(CrossnasError):
        load_space(f)


def test_cli_space(capsys, tmp_path):
    import argparse

    from crossnas.cli import space as cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub)
    args = parser.parse_args(["space", "--preset", "demo", "--input-size", "8"])
    assert cli.run(args) == 0
    out = capsys.readouterr().out
    assert (
        "slot0.block" in out
        and "hw.cell_bits" in out
        and f"{get_space_preset('demo').count_configs():,}" in out
    )

"""Cross-layer evaluator: score decoded architectures with the supernet, the simulator and the cost model.

For each candidate: extract the subnet at its bits, recalibrate BN on training images (seeded), measure
PIM accuracy on the validation split (never the test split) with the analog simulator, and cost the
same module on the candidate's hardware. Results are cached by canonical genome by the search engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from crossnas.hardware import HardwareConfig
from crossnas.network import extract_layers


@dataclass
class CrossLayerEvaluator:
    """Callable `evaluate(list of decoded archs) -> list of metric dicts` for `crossnas.search.search`."""

    space: Any
    supernet: torch.nn.Module
    train_set: Any
    val_set: Any
    hardware: HardwareConfig
    input_shape: tuple[int, int, int]
    fidelity: str = "fast"
    val_limit: int | None = 1000
    bn_batches: int = 10
    calib_batches: int = 2
    batch_size: int = 128
    chips: int = 1
    seed: int = 0
    device: str = "cpu"
    _loaders: dict = field(default_factory=dict, init=False, repr=False)

    def _loader(self, which: str) -> DataLoader:
        if which not in self._loaders:
            ds = self.train_set if which == "train" else self.val_set
            if which == "val" and self.val_limit is not None and len(ds) > self.val_limit:
                ds = Subset(ds, range(self.val_limit))
            gen = torch.Generator().manual_seed(self.seed)
            self._loaders[which] = DataLoader(ds, batch_size=self.batch_size, shuffle=which == "train",
                                              generator=gen)
        return self._loaders[which]

    def build(self, decoded: dict[str, Any]):
        """The candidate's module (BN recalibrated) and hardware config."""
        from crossnas.supernet import recalibrate_bn

        genome = self.space.encode(decoded)
        arch = self.space.to_arch(genome)
        net = self.supernet.extract(arch.network)
        recalibrate_bn(net, self._loader("train"), n_batches=self.bn_batches, seed=self.seed)
        net.eval()
        return net, self.hardware.with_overrides(arch.hardware)

    def __call__(self, archs: list[dict[str, Any]]) -> list[dict[str, float]]:
        from crossnas.analog import evaluate_pim
        from crossnas.cost import evaluate_cost

        out = []
        for decoded in archs:
            net, hw = self.build(decoded)
            costs = evaluate_cost(extract_layers(net, self.input_shape), hw).totals
            acc = evaluate_pim(net, self._loader("val"), hw, calib_loader=self._calib(),
                               chips=self.chips, fidelity=self.fidelity, seed=self.seed, device=self.device)
            out.append({"accuracy_pim": float(acc.accuracy_pim),
                        "accuracy_pim_std": float(acc.accuracy_pim_std),
                        "accuracy_digital": float(acc.accuracy_digital),
                        **{k: float(v) for k, v in costs.items()}})
        return out

    def _calib(self):
        loader = self._loader("train")
        return [b for _, b in zip(range(self.calib_batches), loader)]

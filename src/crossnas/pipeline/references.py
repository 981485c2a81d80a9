"""Published CIFAR-10 figures of CrossNAS and Gibbon, shown in the run report for reference only.

All figures: CIFAR-10, accuracy measured on each paper's own simulated PIM system, so they are not
directly comparable with a crossnas run (different simulator, hardware and, usually, dataset).
"""

from __future__ import annotations

REFERENCE_DATASET = "cifar10"

# Each entry: method, PIM accuracy (fraction), latency (ms), EDP (mJ x ms), search time (GPU-hours), source.
PUBLISHED: tuple[dict, ...] = (
    # Amin, Mohammadi, Bakos, Zand, "CrossNAS: A Cross-Layer Neural Architecture Search Framework for PIM
    # Systems", GLSVLSI 2025 (arXiv 2505.22868), results table; see shared/reference/crossnas-method.md.
    {"method": "CrossNAS", "accuracy_pim": 0.9127, "latency_ms": 1.35, "edp_mj_ms": 0.28, "search_gpu_h": 6.0,
     "source": "Amin et al., GLSVLSI 2025 (arXiv 2505.22868)"},
    # Sun et al., "Gibbon", IEEE TCAD 2023, accuracy-optimised design, as tabulated in the CrossNAS
    # paper's comparison (shared/reference/crossnas-method.md).
    {"method": "Gibbon (accuracy-optimised)", "accuracy_pim": 0.892, "latency_ms": 3.44, "edp_mj_ms": 1.67,
     "search_gpu_h": 6.0, "source": "Sun et al., IEEE TCAD 2023, via the CrossNAS comparison table"},
    # Same source, EDP-optimised Gibbon design.
    {"method": "Gibbon (EDP-optimised)", "accuracy_pim": 0.834, "latency_ms": 1.99, "edp_mj_ms": 0.26,
     "search_gpu_h": 6.0, "source": "Sun et al., IEEE TCAD 2023, via the CrossNAS comparison table"},
)

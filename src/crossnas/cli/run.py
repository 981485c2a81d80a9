"""`crossnas run CONFIG --out runs/NAME [--resume]`: the whole pipeline, from supernet to report.

Stages: supernet -> search -> retrain -> baselines -> final (test split) -> report. The config is
validated in full before any work starts; each finished stage is skipped on --resume.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crossnas.pipeline.state import STAGES
from crossnas.threads import add_threads_option


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="end-to-end: supernet, search, retrain, final evaluation, report",
                       description=__doc__.split("\n")[0])
    p.add_argument("config", help="run config YAML or a preset name (crossnas.pipeline presets)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--force", action="store_true",
                   help="replace the run in --out (only files crossnas wrote there; others are kept)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="override config.device")
    p.add_argument("--backend", choices=("local", "process", "ray"), default=None,
                   help="where search candidates are evaluated (overrides search.backend)")
    p.add_argument("--workers", type=int, default=None, help="workers/actors for process or ray")
    p.add_argument("--address", default=None, help="Ray cluster address (auto or HOST:PORT)")
    p.add_argument("--stop-after", default=None, choices=STAGES, help="end after this stage")
    p.add_argument("--no-progress", action="store_true", help="no bars or progress lines (the run's log "
                                                                "file is still written)")
    p.add_argument("--log-format", choices=("auto", "rich", "plain"), default="auto",
                   help="progress: auto (rich bars on a terminal, else plain), rich, or plain (one "
                        "timestamped line per epoch / generation / batch of evaluations / design)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config, the stage plan, the number of candidates and a time "
                        "estimate from a short timed probe; writes nothing")
    add_threads_option(p)


def run(args: argparse.Namespace) -> int:
    from crossnas.pipeline import load_run_config, resolve_config_path, run_pipeline

    path = resolve_config_path(args.config)
    cfg = load_run_config(path)
    overrides = {k: v for k, v in (("backend", args.backend), ("workers", args.workers),
                                   ("address", args.address)) if v is not None}
    if overrides:
        cfg = cfg.model_copy(update={"search": cfg.search.model_copy(update=overrides)})
    out = args.out or Path("runs") / (cfg.name or path.stem)
    if args.dry_run:
        from crossnas.pipeline.plan import dry_run

        print(dry_run(cfg, out, device=args.device))
        return 0
    res = run_pipeline(cfg, out, resume=args.resume, device=args.device, progress=not args.no_progress,
                       stop_after=args.stop_after, log_format=args.log_format, threads=args.threads,
                       force=args.force)
    if res.final:
        for e in res.final["entries"]:
            t, c = e["test"], e["cost"]["totals"]
            print(f"{e['name']:>10}  test digital {t['accuracy_digital']:.4f}  PIM {t['accuracy_pim']:.4f}"
                  f" +- {t['accuracy_pim_std']:.4f}  latency {c['latency_s'] * 1e3:.4g} ms"
                  f"  energy {c['energy_j'] * 1e3:.4g} mJ  EDP {c['edp_js'] * 1e6:.4g} mJ*ms")
        if res.final.get("picked"):
            print(f"picked (best validation accuracy after retraining): {res.final['picked']}")
    if res.report_html:
        print(f"report: {res.report_html}")
    else:
        print(f"stopped; run folder: {res.run_dir} (continue with --resume)")
    return 0

"""`crossnas export`: write a saved design's digital network as ONNX."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("export", help="export a saved design (folder with design.json) to ONNX")
    p.add_argument("design", help="design folder (design.json, hardware.yaml, weights.pt)")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="ONNX file to write")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset (default: the lowest that holds the design's bits; see docs/designs.md)")
    p.add_argument("--model", default=None, metavar="FILE.py:NAME",
                   help="the user's model file a baseline design was built from (its code runs only when "
                   "named)")
    return p


def run(args) -> int:
    from crossnas.design import load_design
    from crossnas.export import export_onnx

    design = load_design(args.design, code=[args.model] if args.model else ())
    out = export_onnx(design, args.onnx, opset=args.opset)
    print(f"wrote {out}")
    return 0

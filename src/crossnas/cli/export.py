"""`crossnas export`: write a saved design's digital network as ONNX."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("export", help="export a saved design (folder with design.json) to ONNX")
    p.add_argument("design", help="design folder (design.json, hardware.yaml, weights.pt)")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="ONNX file to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    return p


def run(args) -> int:
    from crossnas.export import export_onnx

    out = export_onnx(args.design, args.onnx, opset=args.opset)
    print(f"wrote {out}")
    return 0

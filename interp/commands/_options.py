"""Options every `interp` subcommand shares (one place, so they read the same everywhere)."""
from __future__ import annotations

import argparse


def add_common_options(p: argparse.ArgumentParser) -> None:
    """`--device`: where models run ("auto": CUDA when available, else CPU; or cpu, cuda, cuda:1, ...)."""
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when available; default)")

"""Pulumi entry point: read config, build the stack, export each output once (F11)."""

import sys
from pathlib import Path

import pulumi

# The function package lives in src/; the stack reads its request schema to build the OpenAPI document.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from lib.config import load_settings
from lib.tap_stack import build

stack = build(load_settings())
for key, value in stack.outputs.items():
    pulumi.export(key, value)

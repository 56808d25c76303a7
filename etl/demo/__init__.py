"""The demo: synthetic extracts for a demo force (recorded crime, outcomes and the other extracts)."""

from etl.demo.generator import generate_demo, prepare_demo_dir

__all__ = ["generate_demo", "prepare_demo_dir"]

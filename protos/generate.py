"""Regenerate the Python code for every .proto file under protos/.

Run from anywhere: ``python -m protos.generate``. The output (``*_pb2.py``,
``*_pb2.pyi``, ``*_pb2_grpc.py``) sits beside each .proto file; those files are
generated, carry protoc's DO NOT EDIT banner, and must never be edited by hand.
``python -m protos.generate --check`` exits 1 when the checked-in code is stale
(CI runs it through tests/protos/test_generated_code.py).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = Path(__file__).resolve().parent
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(*, out_dir: Path) -> None:
    """Run protoc (from grpcio-tools) over every .proto file into out_dir."""
    from grpc_tools import protoc  # imported here: only a dev dependency
    import importlib.resources

    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    sources = [str(p.relative_to(REPO_ROOT)) for p in proto_files()]
    args = [
        "protoc",
        f"-I{REPO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def generated_files(root: Path) -> set[Path]:
    return {
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
    }


def stale_files() -> list[str]:
    """Return the generated files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh_root = Path(tmp)
        generate(out_dir=fresh_root)
        fresh = generated_files(fresh_root / "protos")
        current = generated_files(PROTO_ROOT)
        problems = sorted(str(p) for p in fresh ^ current)
        for rel in sorted(fresh & current):
            if not filecmp.cmp(fresh_root / "protos" / rel, PROTO_ROOT / rel, shallow=False):
                problems.append(str(rel))
        return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the generated code is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print("generated code is stale; run `python -m protos.generate`:", *stale, sep="\n  ")
            return 1
        print("generated code is up to date")
        return 0
    for old in generated_files(PROTO_ROOT):
        (PROTO_ROOT / old).unlink()
    with tempfile.TemporaryDirectory() as tmp:
        generate(out_dir=Path(tmp))
        for rel in generated_files(Path(tmp) / "protos"):
            shutil.copyfile(Path(tmp) / "protos" / rel, PROTO_ROOT / rel)
    return 0


if __name__ == "__main__":
    sys.exit(main())

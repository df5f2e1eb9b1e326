"""Read a py-spy profile of the control service: where its time went.

    python -m tests.bench.hotspots PROFILE.txt [--top N] [--under TEXT]

PROFILE.txt holds collapsed stacks (``py-spy record --format raw``, as
``python -m tests.bench --profile DIR`` writes them): one line per distinct
stack, ``frame;frame;...;leaf COUNT``, each frame ``function (file:line)``.
Prints the functions with the most samples, by file:function, two ways:

- self: samples whose innermost frame is the function (time spent in it);
- inclusive: samples with the function anywhere on the stack (time spent in
  it and what it called), counted once per sample however deep the recursion.

``--under TEXT`` keeps only the stacks through a frame containing TEXT (e.g.
``resources.py`` or ``_streaming``). ``--callees TEXT`` shows, for the
innermost frame containing TEXT, how its samples split among the functions it
called (``(self)`` for its own code).
"""

from __future__ import annotations

import argparse
import collections
import re
from typing import Iterable

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
_SITE_PACKAGES = re.compile(r"^.*/(site-packages|lib/python3\.\d+)/")


def frame_name(frame: str) -> str:
    """'handler (control/server/servicer.py:171)' -> 'control/server/servicer.py:handler'."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = _SITE_PACKAGES.sub("", match["file"])
    return f"{path}:{match['function']}"


def parse(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    stacks = []
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        stacks.append(([frame_name(f) for f in stack.split(";")], int(count)))
    return stacks


def summarize(stacks: list[tuple[list[str], int]], *, top: int) -> str:
    total = sum(count for _, count in stacks)
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    lines = [f"{total} samples"]
    for title, counter in (("self", own), ("inclusive", inclusive)):
        lines += ["", f"top {top} by {title} samples:"]
        for name, count in counter.most_common(top):
            lines.append(f"  {100 * count / total:5.1f}%  {count:7d}  {name}")
    return "\n".join(lines)


def callees(stacks: list[tuple[list[str], int]], function: str, *, top: int) -> str:
    total = sum(count for _, count in stacks)
    split: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        positions = [i for i, name in enumerate(frames) if function in name]
        if positions:
            below = positions[-1] + 1
            split[frames[below] if below < len(frames) else "(self)"] += count
    inside = sum(split.values())
    lines = [f"{function}: {inside} of {total} samples ({100 * inside / max(total, 1):.1f}%), by callee:"]
    for name, count in split.most_common(top):
        lines.append(f"  {100 * count / total:5.1f}%  {count:7d}  {name}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.hotspots")
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--under", help="only stacks through a frame containing this text")
    parser.add_argument("--callees", metavar="TEXT", help="split a function's samples by what it called")
    args = parser.parse_args()
    with open(args.profile) as profile:
        stacks = parse(profile)
    if args.under:
        stacks = [(frames, count) for frames, count in stacks if any(args.under in f for f in frames)]
    print(callees(stacks, args.callees, top=args.top) if args.callees else summarize(stacks, top=args.top))


if __name__ == "__main__":
    main()

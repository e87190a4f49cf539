#!/usr/bin/env python3
"""check_steps.py — the docs test: the tutorial must not lie.

Every chapter of the tutorial (docs/chNN_*.md) ends with a section
"## Check this step" whose ```sh blocks hold the exact commands that prove
the chapter. This script

  1. checks the shape of every chapter: a title "# N. Title {#label}", the
     sections "## Concepts", "## Goal" and "## Check this step", and
     "## Exercises" after them (a page marked <!-- coming-soon --> is a
     placeholder and needs only its title); and that chapter 8 stays method
     and lessons, at most 2,000 words (`wc -w`), its tables in bench/results/;
  2. checks that every relative link in the repository's Markdown files
     (README.md, docs/, the stage READMEs) leads to a file that exists;
  3. runs every ```sh block of every "Check this step" section with bash,
     from the repository root, one block at a time, each with a deadline,
     and fails if one fails.

Code blocks elsewhere in a chapter (```sh or ```text) are illustrations and
are not run.

Inside scripts/test.sh, whose docs configuration runs last, every test of
the other presets has just run and passed; that script names those presets in
IOCP_CHAT_PASSED_PRESETS. A block's `ctest --preset P ...` for such a preset
is then not run a second time: the block lists the tests its selection picks
(`ctest ... -N`) and fails if it picks none. Everything else in the block (the
builds, the demos, the programs) runs as written. Each block runs as `bash -euo pipefail`: a command that fails
fails the block, as a learner would see it fail.

Usage: docs/check_steps.py [--root DIR] [--structure-only] [--list]
                           [--chapter N ...] [--timeout SECONDS]
Exit status: 0 when everything passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CHECK_HEADING = "## Check this step"
REQUIRED_SECTIONS = ("## Concepts", "## Goal", CHECK_HEADING)
EXERCISES_HEADING = "## Exercises"
PLACEHOLDER_MARK = "<!-- coming-soon -->"
# Chapters that must stay short, in words as `wc -w` counts them: chapter 8
# teaches method and lessons; its full tables belong in bench/results/.
WORD_LIMITS = {"ch08_performance.md": 2000}
TITLE = re.compile(r"^# (\d+)\. .+ \{#(ch\d\d_[a-z0-9_]+)\}$")
FENCE = re.compile(r"^```(\S*)\s*$")
LINK = re.compile(r"\]\(([^)\s]+)\)")
# A block line that runs tests: optional VAR=value words, optional
# scripts/with-wine.sh, then `ctest --preset NAME` and the selection.
CTEST_LINE = re.compile(r"^((?:\w+=\S*\s+)*(?:scripts/with-wine\.sh\s+)?)ctest\s+--preset\s+(\w+)(.*)$")


@dataclass
class Block:
    """One ```sh block of a "Check this step" section."""

    chapter: Path
    line: int  # where the block starts in the chapter, 1-based
    text: str


def chapters(root: Path) -> list[Path]:
    return sorted((root / "docs").glob("ch[0-9][0-9]_*.md"))


def fenced_blocks(lines: list[str], start: int, end: int):
    """Yields (info string, first line number, body) of the fenced blocks in lines[start:end]."""
    index = start
    while index < end:
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        body = []
        first = index + 1
        index += 1
        while index < end and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        yield opening.group(1), first, "\n".join(body) + "\n"
        index += 1


def check_structure(chapter: Path, problems: list[str]) -> list[Block]:
    """Checks one chapter's shape; returns its check blocks."""
    lines = chapter.read_text(encoding="utf-8").splitlines()
    name = chapter.name
    title = TITLE.match(lines[0]) if lines else None
    if not title:
        problems.append(f"{name}:1: the first line must be '# N. Title {{#chNN_label}}'")
    elif int(title.group(1)) != int(name[2:4]) or title.group(2) != chapter.stem:
        problems.append(f"{name}:1: number and label must match the file name ({chapter.stem})")
    if PLACEHOLDER_MARK in lines:
        return []

    positions = {}
    for heading in REQUIRED_SECTIONS:
        where = [i for i, line in enumerate(lines) if line.rstrip() == heading]
        if not where:
            problems.append(f"{name}: no '{heading}' section")
        else:
            positions[heading] = where[0]
    if len(positions) == len(REQUIRED_SECTIONS):
        order = [positions[heading] for heading in REQUIRED_SECTIONS]
        if order != sorted(order) or order[0] != min(
            i for i, line in enumerate(lines) if line.startswith("## ")
        ):
            problems.append(f"{name}: Concepts must come first, then Goal, and Check this step later")
    exercises = [i for i, line in enumerate(lines) if line.rstrip() == EXERCISES_HEADING]
    if not exercises:
        problems.append(f"{name}: no '{EXERCISES_HEADING}' section")
    elif CHECK_HEADING in positions and exercises[0] < positions[CHECK_HEADING]:
        problems.append(f"{name}: '{EXERCISES_HEADING}' must come after '{CHECK_HEADING}'")
    limit = WORD_LIMITS.get(name)
    words = sum(len(line.split()) for line in lines)
    if limit is not None and words > limit:
        problems.append(f"{name}: {words} words, more than its {limit} (move tables to bench/results/)")
    if CHECK_HEADING not in positions:
        return []

    start = positions[CHECK_HEADING] + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks = [
        Block(chapter, first, body)
        for info, first, body in fenced_blocks(lines, start, end)
        if info == "sh"
    ]
    if not blocks:
        problems.append(f"{name}: '{CHECK_HEADING}' has no ```sh block to run")
    return blocks


def markdown_files(root: Path) -> list[Path]:
    files = [root / "README.md"]
    files += sorted((root / "docs").glob("*.md"))
    files += sorted(root.glob("v*_*/README.md"))
    return [path for path in files if path.exists()]


LINK_TEXT_ACROSS_LINES = re.compile(r"\[[^\]\n`]*\n[^\]\n]*\]\(")


def check_links(path: Path, root: Path, problems: list[str]) -> None:
    """Every relative link of a Markdown file must lead to an existing file,
    and its text must stay on one line: Doxygen 1.9 garbles the rest of the
    page after a link whose text is broken across lines."""
    text = path.read_text(encoding="utf-8")
    for broken in LINK_TEXT_ACROSS_LINES.finditer(text):
        number = text.count("\n", 0, broken.start()) + 1
        problems.append(f"{path.relative_to(root)}:{number}: a link's text spans two lines")
    in_code = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_code = not in_code
        if in_code:
            continue
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # http:, https:, mailto:, or an anchor on the same page
            file_part = target.split("#", 1)[0]
            if not (path.parent / file_part).exists():
                problems.append(f"{path.relative_to(root)}:{number}: broken link '{target}'")


def passed_presets() -> set[str]:
    """The presets whose whole test suite passed earlier in this scripts/test.sh run."""
    return set(os.environ.get("IOCP_CHAT_PASSED_PRESETS", "").split())


def without_rerun(text: str, passed: set[str]) -> str:
    """The block with each `ctest --preset P ...` of an already passed preset
    turned into a listing of its selection that must not be empty."""
    lines = []
    for line in text.splitlines():
        match = CTEST_LINE.match(line)
        if match and match.group(2) in passed:
            prefix, preset, selection = match.groups()
            print(f"  (the whole '{preset}' suite passed earlier in this run: "
                  f"listing this selection instead of running it again)", flush=True)
            line = (f"{prefix}ctest --preset {preset}{selection} -N | tee /dev/stderr"
                    f" | grep -qE '^Total Tests: [1-9]'")
        lines.append(line)
    return "\n".join(lines) + "\n"


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_block(block: Block, root: Path, timeout: float) -> bool:
    where = f"{block.chapter.name}:{block.line}"
    print(f"\n=== {where}", flush=True)
    for line in block.text.rstrip().splitlines():
        print(f"  $ {line}" if not line.startswith(" ") else f"    {line}", flush=True)
    script = without_rerun(block.text, passed_presets())
    started = time.monotonic()
    # A process group of its own, so that a deadline stops the whole block
    # (servers and clients it started included).
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        status = process.returncode
    except subprocess.TimeoutExpired:
        kill_group(process)
        output, _ = process.communicate()
        status = None
    elapsed = time.monotonic() - started
    text = output.decode("utf-8", errors="replace")
    if status == 0:
        shown = text.rstrip().splitlines()
        for line in shown[-15:]:
            print(f"  | {line}")
        if len(shown) > 15:
            print(f"  | ({len(shown) - 15} earlier lines not shown)")
        print(f"--- passed ({elapsed:.0f} s)", flush=True)
        return True
    for line in text.rstrip().splitlines()[-80:]:
        print(f"  | {line}")
    reason = f"no result within {timeout:.0f} s" if status is None else f"exit status {status}"
    print(f"--- FAILED: {where}: {reason}", flush=True)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the repository root (default: the parent of docs/)")
    parser.add_argument("--structure-only", action="store_true",
                        help="check the chapters' shape and the links; run nothing")
    parser.add_argument("--list", action="store_true", help="print the blocks that would run")
    parser.add_argument("--chapter", type=int, action="append",
                        help="run only this chapter's blocks (repeatable)")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="deadline for one block, in seconds (default 1800)")
    options = parser.parse_args()
    root = options.root.resolve()

    problems: list[str] = []
    blocks: list[Block] = []
    found = chapters(root)
    if not found:
        problems.append("no chapters (docs/chNN_*.md) found")
    for chapter in found:
        blocks += check_structure(chapter, problems)
    for path in markdown_files(root):
        check_links(path, root, problems)
    if problems:
        print("The tutorial's structure or links are broken:")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"{len(found)} chapters, {len(blocks)} check blocks, every link leads somewhere.")
    if options.structure_only:
        return 0

    if options.chapter:
        blocks = [b for b in blocks if int(b.chapter.name[2:4]) in options.chapter]
    if options.list:
        for block in blocks:
            print(f"\n=== {block.chapter.name}:{block.line}\n{block.text}", end="")
        return 0

    failed = [b for b in blocks if not run_block(b, root, options.timeout)]
    print(f"\n{len(blocks) - len(failed)} of {len(blocks)} check blocks passed.")
    for block in failed:
        print(f"  FAILED: {block.chapter.name}:{block.line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

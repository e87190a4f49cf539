#!/usr/bin/env python3
"""inline-code.py — keeps the code listings in the tutorial's Markdown
current with the sources, so that the chapters show their code wherever they
are read: on a Git host, in an editor, and on the Doxygen site.

A listing is an HTML comment line that names its source, followed at once by
a fenced code block that this script writes:

    <!-- code: common/src/completion_port_win32.cpp [iocp-post] -->
    ```cpp
    ...the lines between the two "[iocp-post]" lines of that file...
    ```

    <!-- code: v1_basic_broadcast/framing_demo/expected_output.txt -->
    ```text
    ...the whole file...
    ```

The path is relative to the repository root. With a [marker], the block
holds what Doxygen's \\snippet shows: the lines strictly between the first
line that contains "[marker]" and the next line that contains it (in C++ the
marker lines are comments, `// [marker]`; in CMake `# [marker]`). Without a
marker it holds the whole file, as \\include or \\verbinclude would. The text
is copied as it stands, except that the indentation all its lines share is
removed (Doxygen shows a fenced block that way, so the site and a Git host
show the same thing: a listing from inside a function starts at the left
margin, and its inner lines keep their indentation relative to it), empty
lines at its very start and end are left out, and empty lines inside are
truly empty. The fence's language follows the file name (.cpp .hpp .h .rc: cpp;
CMakeLists.txt, .cmake: cmake; .py: python; .sh: bash; anything else:
text), and the fence is longer than any run of backticks inside, so a
listing can never close its own block. Both Doxygen and Git hosts hide the
comment line.

Usage: scripts/inline-code.py [--check] [--convert] [--root DIR] [FILE.md ...]

  (no option)  rewrite every listing whose block differs from its source;
               a comment line with no block under it gets one, so a new
               listing is written as the comment line alone
  --check      change nothing; name each stale listing and exit 1
  --convert    also turn every bare `\\snippet FILE MARKER`, `\\include FILE`
               and `\\verbinclude FILE` line into a listing
  FILE.md      the files to work on; by default every docs/*.md

A bare \\snippet line is shown only on the Doxygen site; every run names the
ones left, but they do not change the exit status: 0 when every listing is
current (or was rewritten), 1 when --check found one out of date, 2 when a
listing cannot be made (its file or marker does not exist, its block never
closes).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# <!-- code: PATH --> or <!-- code: PATH [marker] -->
LISTING = re.compile(r"^<!-- code: (?P<path>\S+)(?: \[(?P<marker>[^\]\s]+)\])? -->\s*$")
FENCE_OPEN = re.compile(r"^(?P<fence>`{3,})(?P<info>[^`]*)$")
ANY_FENCE = re.compile(r"^(`{3,}|~{3,})")
# Doxygen commands that this script can turn into listings (--convert).
BARE_SNIPPET = re.compile(r"^\\snippet(?:\{[^}]*\})?\s+(?P<path>\S+)\s+(?P<marker>\S+)\s*$")
BARE_INCLUDE = re.compile(r"^\\(?:verbinclude|include)(?:\{[^}]*\})?\s+(?P<path>\S+)\s*$")

LANGUAGES = {".cpp": "cpp", ".hpp": "cpp", ".h": "cpp", ".cc": "cpp", ".rc": "cpp",
             ".cmake": "cmake", ".py": "python", ".sh": "bash"}


class SourceError(Exception):
    """A listing that cannot be made: its file or marker does not exist, or its block never closes."""


@dataclass
class Listing:
    """One listing of a Markdown file: where it is, what it names, what it holds."""

    line: int  # the comment line, 0-based
    end: int  # one past the block's closing fence (== line + 1 when there is no block yet)
    path: str
    marker: str | None
    block: list[str]  # the block's lines as they stand, fences included
    unclosed: bool = False  # the block under the comment line never closes

    def label(self) -> str:
        return self.path + (f" [{self.marker}]" if self.marker else "")


def language(path: str) -> str:
    name = Path(path).name
    if name == "CMakeLists.txt":
        return "cmake"
    return LANGUAGES.get(Path(path).suffix, "text")


def source_text(root: Path, path: str, marker: str | None) -> list[str]:
    """The lines a listing must show (without fences)."""
    file = root / path
    if not file.is_file():
        raise SourceError(f"{path}: no such file")
    lines = file.read_text(encoding="utf-8").splitlines()
    if marker is not None:
        # Doxygen's rule: from the first line that contains [marker] to the
        # next one, both excluded.
        tag = f"[{marker}]"
        where = [i for i, line in enumerate(lines) if tag in line]
        if not where:
            raise SourceError(f"{path}: no marker {tag}")
        if len(where) < 2:
            raise SourceError(f"{path}: marker {tag} opens but never closes")
        if len(where) > 2:
            # A third line (a comment that names the marker, say) would make
            # the listing start in the wrong place without anyone noticing.
            lines_named = ", ".join(str(i + 1) for i in where)
            raise SourceError(f"{path}: {tag} appears on {len(where)} lines ({lines_named}); it must mark exactly two")
        lines = lines[where[0] + 1 : where[1]]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise SourceError(f"{path}: {'[' + marker + '] holds' if marker else 'the file holds'} no text")
    # Dedent: Doxygen shows a fenced block without the indentation that all
    # its lines share, so the Markdown holds it that way too.
    indent = min(len(line) - len(line.lstrip(" ")) for line in lines if line.strip())
    return [line[indent:] if line.strip() else "" for line in lines]


def render(root: Path, path: str, marker: str | None) -> list[str]:
    """The fenced block for a listing, fences included."""
    body = source_text(root, path, marker)
    runs = (re.match(r"\s*(`*)", line).group(1) for line in body)
    longest = max((len(run) for run in runs), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + language(path), *body, fence]


def find_listings(lines: list[str]) -> list[Listing]:
    """The listings of a file. Code blocks that are not listings are skipped
    whole, so an example of the syntax inside one is left alone."""
    found = []
    index = 0
    while index < len(lines):
        line = lines[index]
        match = LISTING.match(line)
        if match:
            end = index + 1
            opening = FENCE_OPEN.match(lines[end]) if end < len(lines) else None
            unclosed = False
            if opening:
                close = next(
                    (i for i in range(end + 1, len(lines)) if lines[i].rstrip() == opening.group("fence")), None
                )
                unclosed = close is None
                end = end + 1 if unclosed else close + 1
            found.append(
                Listing(index, end, match.group("path"), match.group("marker"), lines[index + 1 : end], unclosed)
            )
            index = end
            continue
        fence = ANY_FENCE.match(line)
        if fence:  # an ordinary code block: skip to its end
            index = next((i for i in range(index + 1, len(lines)) if lines[i].rstrip() == fence.group(1)), index)
        index += 1
    return found


def outside_code(lines: list[str]):
    """Yields (index, line) for the lines that are not inside a code block."""
    fence = None
    for index, line in enumerate(lines):
        opening = ANY_FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and line.rstrip() == fence:
            fence = None
        elif fence is None:
            yield index, line


def convert(lines: list[str]) -> tuple[list[str], int]:
    """Turns bare \\snippet / \\include / \\verbinclude lines (outside code blocks)
    into listing comment lines; process() fills in their blocks."""
    out, count = list(lines), 0
    for index, line in outside_code(lines):
        snippet, include = BARE_SNIPPET.match(line), BARE_INCLUDE.match(line)
        if snippet:
            out[index] = f"<!-- code: {snippet.group('path')} [{snippet.group('marker')}] -->"
        elif include:
            out[index] = f"<!-- code: {include.group('path')} -->"
        count += bool(snippet or include)
    return out, count


def bare_directives(lines: list[str]) -> list[int]:
    """Indexes of the \\snippet-like lines that are not listings yet."""
    return [index for index, line in outside_code(lines) if BARE_SNIPPET.match(line) or BARE_INCLUDE.match(line)]


def process(markdown: Path, root: Path, check: bool, do_convert: bool) -> tuple[int, int, int]:
    """Checks or rewrites one file; returns (listings, stale listings, errors)."""
    name = markdown.relative_to(root) if markdown.is_relative_to(root) else markdown
    original = markdown.read_text(encoding="utf-8")
    lines = original.splitlines()
    converted = 0
    if do_convert and not check:
        lines, converted = convert(lines)

    stale = errors = 0
    result: list[str] = []
    position = 0
    listings = find_listings(lines)
    for listing in listings:
        result += lines[position : listing.line + 1]
        position = listing.end
        try:
            if listing.unclosed:
                raise SourceError(f"{listing.label()}: the code block under it never closes")
            wanted = render(root, listing.path, listing.marker)
        except SourceError as error:
            print(f"{name}:{listing.line + 1}: {error}", file=sys.stderr)
            errors += 1
            result += listing.block
            continue
        if listing.block != wanted:
            stale += 1
            if check:
                what = "has no code block" if not listing.block else "differs from its source"
                print(f"{name}:{listing.line + 1}: {listing.label()}: the listing {what}", file=sys.stderr)
                if listing.block:
                    diff = difflib.unified_diff(listing.block, wanted, "in the chapter", "in the source", n=1, lineterm="")
                    sys.stderr.writelines(f"    {line}\n" for line in diff)
        result += wanted
    result += lines[position:]

    shown = lines if check else result  # report line numbers of the file as it now stands
    for number in bare_directives(shown):
        print(f"{name}:{number + 1}: a bare '{shown[number].split()[0]}' line is shown only on the "
              "Doxygen site: turn it into a listing with --convert", file=sys.stderr)

    text = "\n".join(result) + ("\n" if original.endswith("\n") else "")
    if not check and text != original:
        markdown.write_text(text, encoding="utf-8")
        print(f"{name}: {converted} converted, {stale} listing(s) rewritten")
    return len(listings), stale, errors


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Keep the Markdown code listings (<!-- code: FILE [marker] --> + fenced block) current.")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a listing is stale")
    parser.add_argument("--convert", action="store_true",
                        help="turn bare \\snippet, \\include and \\verbinclude lines into listings")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the repository root (default: this script's parent's parent)")
    parser.add_argument("files", nargs="*", type=Path, help="Markdown files (default: docs/*.md)")
    options = parser.parse_args()
    if options.check and options.convert:
        parser.error("--convert changes files; it cannot go with --check")

    root = options.root.resolve()
    files = [path.resolve() for path in options.files] or sorted((root / "docs").glob("*.md"))
    stale = errors = listings = 0
    for markdown in files:
        file_listings, file_stale, file_errors = process(markdown, root, options.check, options.convert)
        listings += file_listings
        stale += file_stale
        errors += file_errors
    if options.check and stale:
        print(f"{stale} listing(s) out of date: run scripts/inline-code.py and commit the result", file=sys.stderr)
    if errors:
        print(f"{errors} listing(s) cannot be made: fix the comment line, or put the marker back", file=sys.stderr)
        return 2
    if options.check:
        if stale:
            return 1
        print(f"all {listings} listing(s) in {len(files)} file(s) are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""check_numbers.py — the stage READMEs' "The numbers" tables, checked
against the files they measure, so a figure cannot drift from the code.

    python3 tests/structure/check_numbers.py --root <repository root>

The stage READMEs say how much a learner reads (issue #13): file lengths
with the `wc -l` command that measures them, and the longest functions with
an `awk` command shown below the table. This check runs the same
measurements and compares, row by row:

- a row whose last cell is `` `wc -l FILE...` `` (with shell braces such as
  `chat_server.{hpp,cpp}`) must give one number per file, in order, in its
  second cell ("77 + 163" or "350");
- a row whose last cell says "the `awk` below" names functions in its first
  cell (`` `ChatServer::on_bytes` ``, `` `start` ``) and their lengths in its
  second ("26, 13"); a function's length is counted as the README's awk
  command counts it (signature line at the start of a line ending in "{",
  to the "}" at the start of a line), over the files that command lists.

It prints every row that differs, with the measured figure, and exits 1 if
there is one.
"""
import argparse
import pathlib
import re
import sys

READMES = ("v1_basic_broadcast/README.md", "v2_packets/README.md")
FUNCTION_START = re.compile(r"^[A-Za-z].*\{$")
NOT_A_FUNCTION = re.compile(r"^(namespace|struct|class|enum)")
BRACES = re.compile(r"^(.*)\{([^{}]*)\}(.*)$")


def expand_braces(word: str) -> list[str]:
    """Expands one level of shell braces: a.{hpp,cpp} -> a.hpp a.cpp."""
    match = BRACES.match(word)
    if not match:
        return [word]
    head, choices, tail = match.groups()
    return [head + choice + tail for choice in choices.split(",")]


def line_count(path: pathlib.Path) -> int:
    """What `wc -l` prints: the number of newline characters."""
    return path.read_bytes().count(b"\n")


def function_lengths(paths: list[pathlib.Path]) -> dict[str, int]:
    """Every function's length as the READMEs' awk command counts it, by its
    qualified name (ServerCore::start) as written in the signature."""
    lengths: dict[str, int] = {}
    for path in paths:
        start, name = 0, ""
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FUNCTION_START.match(line) and not NOT_A_FUNCTION.match(line):
                start = number
                found = re.search(r"([A-Za-z_][\w:]*)\s*\(", line)
                name = found.group(1) if found else line
            elif line == "}" and start:
                lengths[name] = number - start + 1
                start = 0
    return lengths


def awk_files(text: str) -> list[str]:
    """The files named by the README's awk command (the ```sh block that runs awk)."""
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        if "awk" in block:
            words = block.replace("\\\n", " ").split()
            return [word for word in words if re.search(r"\.(cpp|hpp)$", word)]
    return []


def numbers_in(cell: str) -> list[int]:
    return [int(number.replace(",", "")) for number in re.findall(r"\d[\d,]*", cell)]


def check(root: pathlib.Path, readme: str) -> list[str]:
    text = (root / readme).read_text(encoding="utf-8")
    lengths = function_lengths([root / name for name in awk_files(text)])
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3:
            continue
        what, figures, command = cells
        written = numbers_in(figures)
        wc = re.fullmatch(r"`wc -l ([^`]+)`", command)
        if wc:
            files = [name for word in wc.group(1).split() for name in expand_braces(word)]
            measured = [line_count(root / name) for name in files]
        elif "the `awk` below" in command:
            names = re.findall(r"`([A-Za-z_][\w:]*)`", what)
            measured = []
            for name in names:
                matches = [length for full, length in lengths.items()
                           if full == name or full.endswith("::" + name)]
                measured.append(matches[0] if len(matches) == 1 else -1)
        else:
            continue
        if measured != written:
            problems.append(f"{readme}:{number}: the table says {written}, measured {measured}: {what}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=pathlib.Path, required=True, help="the repository's root")
    arguments = parser.parse_args()
    problems = [problem for readme in READMES for problem in check(arguments.root, readme)]
    for problem in problems:
        print(problem)
    if problems:
        print("update the table (the command in its last column measures the figure)")
        return 1
    print(f"the numbers tables of {len(READMES)} READMEs match the files they measure")
    return 0


if __name__ == "__main__":
    sys.exit(main())

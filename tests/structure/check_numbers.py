#!/usr/bin/env python3
"""check_numbers.py — the stage READMEs' "The numbers" tables, checked
against the files they measure, so a figure cannot drift from the code.

    python3 tests/structure/check_numbers.py --root <repository root>

The stage READMEs say how much a learner reads (issue #13): file lengths
with the `wc -l` command that measures them, and the longest functions with
an `awk` command shown below the table. This check runs those very commands
(with bash, from the repository root) and compares, row by row:

- a row whose last cell is `` `wc -l FILE...` `` must give the counts wc
  prints, one per file, in order, in its second cell ("77 + 163" or "350");
- a row whose last cell says "the `awk` below" names functions in its first
  cell (`` `ChatServer::on_bytes` ``, `` `start` ``) and their lengths in its
  second ("26, 13"), as the README's awk command prints them.

It prints every row that differs, with the measured figure, and exits 1 if
there is one.
"""
import argparse
import pathlib
import re
import subprocess
import sys

READMES = ("v1_basic_broadcast/README.md", "v2_packets/README.md")


def run(command: str, root: pathlib.Path) -> str:
    """Runs a README's command with bash, from the repository root, as a learner would."""
    return subprocess.run(["bash", "-c", command], cwd=root, check=True, capture_output=True, text=True).stdout


def function_lengths(text: str, root: pathlib.Path) -> dict[str, int]:
    """Runs the README's awk command (the ```sh block that runs awk, without its
    `| sort | head`) and returns every function's length by its qualified name."""
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        if "awk" in block:
            lengths = {}
            for line in run(block.split("| sort")[0], root).splitlines():
                found = re.match(r"(\d+) \S+ .*?([A-Za-z_][\w:]*)\s*\(", line)
                if found:
                    lengths[found.group(2)] = int(found.group(1))
            return lengths
    return {}


def numbers_in(cell: str) -> list[int]:
    return [int(number.replace(",", "")) for number in re.findall(r"\d[\d,]*", cell)]


def check(root: pathlib.Path, readme: str) -> list[str]:
    text = (root / readme).read_text(encoding="utf-8")
    lengths = function_lengths(text, root)
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3:
            continue
        what, figures, command = cells
        written = numbers_in(figures)
        wc = re.fullmatch(r"`(wc -l [^`]+)`", command)
        if wc:
            # wc prints one line per file, then a total line when there are several.
            counts = [int(out.split()[0]) for out in run(wc.group(1), root).splitlines()]
            measured = counts[:-1] if len(counts) > 1 else counts
        elif "the `awk` below" in command:
            measured = []
            for name in re.findall(r"`([A-Za-z_][\w:]*)`", what):
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

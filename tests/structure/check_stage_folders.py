#!/usr/bin/env python3
"""check_stage_folders.py — the layering of the repository, checked:
common/ at the bottom, each stage on top of it, no stage above another.

    python3 tests/structure/check_stage_folders.py --root <repository root>

A stage is a top-level folder named v<digit>..._<name> (v1_basic_broadcast,
v2_packets). The rule, for every file of a stage and of common/:

- an #include line (C++ sources and headers, resource scripts) names no
  other stage's folder, and in common/ no stage's folder at all;
- a CMake file (CMakeLists.txt, *.cmake) names no other stage's folder
  outside a comment, and in common/ no stage's folder — so no source path,
  include directory or add_subdirectory reaches across;
- a CMake file names no target (add_library, add_executable) that another
  stage defines, or in common/ that any stage defines — so no stage links
  a library that lives in another stage's folder.

Comments may name another stage ("ver.2 does this with frames, see
v2_packets/..."): pointing a reader at the other stage is teaching, not a
dependency. A comment is what follows "//" on an #include line, and in CMake
what follows a "#" at the start of a line or after a blank.

What both stages need lives in common/ (the clients' shared code in
common/clients/), which every stage may use. The check prints every
offending line as file:line: text and exits 1 if there is one.
"""
import argparse
import pathlib
import re
import sys

SOURCE_SUFFIXES = {".cpp", ".hpp", ".h", ".rc"}
INCLUDE_LINE = re.compile(r"^\s*#\s*include\b")
CMAKE_COMMENT = re.compile(r"(^|\s)#.*$")
TARGET_DEFINITION = re.compile(r"\badd_(?:library|executable)\s*\(\s*([A-Za-z0-9_.:+-]+)")


def is_cmake(path: pathlib.Path) -> bool:
    return path.name == "CMakeLists.txt" or path.suffix == ".cmake"


def code_part(path: pathlib.Path, line: str):
    """The part of `line` the rule applies to, or None if none does."""
    if is_cmake(path):
        return CMAKE_COMMENT.sub("", line)
    if INCLUDE_LINE.match(line):
        return line.split("//", 1)[0]
    return None


def files_of(root: pathlib.Path, folder: str):
    for path in sorted((root / folder).rglob("*")):
        if path.is_file() and (path.suffix in SOURCE_SUFFIXES or is_cmake(path)):
            yield path


def lines_of(path: pathlib.Path):
    """(line number, line, the part the rule applies to) for each line the rule applies to."""
    text = path.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        code = code_part(path, line)
        if code is not None:
            yield number, line, code


def targets_of(root: pathlib.Path, folder: str) -> set[str]:
    """The names of the targets (and aliases) the CMake files under `folder` define."""
    return {name for path in files_of(root, folder) if is_cmake(path)
            for _, _, code in lines_of(path) for name in TARGET_DEFINITION.findall(code)}


def check_folder(root: pathlib.Path, folder: str, folders: list[str], targets: set[str],
                 problems: list[str]) -> int:
    """Adds to `problems` each line of `folder` that names one of `folders` or `targets`."""
    target_patterns = {t: re.compile(r"(?<![\w:.+-])" + re.escape(t) + r"(?![\w:.+-])") for t in targets}
    checked = 0
    for path in files_of(root, folder):
        checked += 1
        for number, line, code in lines_of(path):
            named = [f for f in folders if f in code]
            if is_cmake(path):
                named += [t for t, pattern in sorted(target_patterns.items()) if pattern.search(code)]
            for name in named:
                problems.append(f"{path.relative_to(root)}:{number}: names {name}: {line.strip()}")
    return checked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=pathlib.Path, required=True, help="the repository's root")
    root = parser.parse_args().root.resolve()

    stages = sorted(p.name for p in root.iterdir() if p.is_dir() and re.fullmatch(r"v\d+_\w+", p.name))
    if len(stages) < 2 or not (root / "common").is_dir():
        print(f"expected common/ and at least two stage folders in {root}, found: {stages}", file=sys.stderr)
        return 2

    targets = {stage: targets_of(root, stage) for stage in stages}
    problems: list[str] = []
    checked = 0
    for stage in stages:
        others = [s for s in stages if s != stage]
        checked += check_folder(root, stage, others, set().union(*(targets[s] for s in others)), problems)
    checked += check_folder(root, "common", stages, set().union(*targets.values()), problems)

    if problems:
        for problem in problems:
            print(problem)
        print(f"\n{len(problems)} line(s) reach from one stage into another, or from common/ into a stage.\n"
              "Move what both stages need to common/ (the clients' shared code: common/clients/) and use it\n"
              "from there; the rule is at the top of tests/structure/check_stage_folders.py.", file=sys.stderr)
        return 1
    print(f"stage folders stand alone: {', '.join(stages)} and common/ ({checked} files) "
          "name no other stage's folder or target outside comments")
    return 0


if __name__ == "__main__":
    sys.exit(main())

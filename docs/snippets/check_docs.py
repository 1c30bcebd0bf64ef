#!/usr/bin/python3
"""Fails unless every C++ block of the documentation quotes compiled code.

    check_docs.py ROOT

Every ```cpp block of ROOT/docs/**/*.md must follow a line
    <!-- snippet: PATH#NAME -->
and equal, line for line, the region of ROOT/PATH between "// snippet: NAME" and
"// end snippet" (with the region's common indentation removed). The snippet
files are built by the test suite (docs/snippets/CMakeLists.txt), so the docs
cannot show code that does not compile. The README's quick start has its own
check (examples/readme_matches.cmake).
"""
import pathlib
import re
import sys
import textwrap

MARKER = re.compile(r"<!--\s*snippet:\s*(\S+?)#(\S+)\s*-->")


def region(path, name):
    lines = path.read_text().splitlines()
    start = [i for i, line in enumerate(lines) if line.strip() == f"// snippet: {name}"]
    if len(start) != 1:
        raise ValueError(f"{path}: {len(start)} regions named {name!r}")
    end = next((i for i in range(start[0] + 1, len(lines)) if lines[i].strip() == "// end snippet"), None)
    if end is None:
        raise ValueError(f"{path}: region {name!r} has no '// end snippet'")
    return textwrap.dedent("\n".join(lines[start[0] + 1:end])).strip("\n")


def main(root):
    root = pathlib.Path(root)
    failures, blocks = [], 0
    for doc in sorted((root / "docs").rglob("*.md")):
        lines = doc.read_text().splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() != "```cpp":
                i += 1
                continue
            blocks += 1
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            indent = len(lines[i]) - len(lines[i].lstrip())
            block = "\n".join(line[indent:] for line in lines[i + 1:end]).strip("\n")
            previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marker = MARKER.search(previous)
            where = f"{doc.relative_to(root)}:{i + 1}"
            if not marker:
                failures.append(f"{where}: a C++ block without a '<!-- snippet: PATH#NAME -->' line before it")
            else:
                try:
                    expected = region(root / marker.group(1), marker.group(2))
                    if block != expected:
                        failures.append(f"{where}: differs from {marker.group(1)}#{marker.group(2)}:\n"
                                        f"--- docs ---\n{block}\n--- compiled ---\n{expected}")
                except (OSError, ValueError) as e:
                    failures.append(f"{where}: {e}")
            i = end + 1
    for failure in failures:
        print(failure)
    print(f"{blocks} C++ blocks in docs/, {len(failures)} not quoting compiled code")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))

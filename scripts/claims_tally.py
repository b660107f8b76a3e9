"""The tally at the end of docs/README_CLAIMS.md, counted from its tables (it drifted when kept by hand).

    .venv/bin/python scripts/claims_tally.py          # print the tally
    .venv/bin/python scripts/claims_tally.py --write  # and put it into the document

A row is held by NONE when its "proved by" cell starts with NONE; by a benchmark only when its
"how" cell is "benchmark"; otherwise by a test, partly when its "how" cell says "partial" or
names a part that NONE holds. tests/test_readme_claims.py's tests run the README's own commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

CLAIMS = Path(__file__).resolve().parents[1] / "docs" / "README_CLAIMS.md"
HEADER = "## Tally\n\n"
TALLY_END = "<!-- tally end -->"
_TEST_FILE = re.compile(r"tests/[\w/]+\.py")


@dataclasses.dataclass(frozen=True)
class Claim:
    section: str
    claim: str
    proved_by: str
    how: str


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row; a | inside `code` belongs to its cell."""
    cells, cur, in_code = [], [], False
    for ch in line.strip().strip("|"):
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            cells.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    cells.append("".join(cur).strip())
    return cells


def claims(text: str) -> list[Claim]:
    """Every data row of the document's four-column tables."""
    out = []
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith("| README section"):
            continue
        cells = _cells(line)
        if len(cells) != 4:
            raise ValueError(f"a claims row has {len(cells)} cells, not 4: {line[:80]}")
        out.append(Claim(*cells))
    return out


def tally(rows: list[Claim]) -> str:
    none = [r for r in rows if r.proved_by.startswith("NONE")]
    bench = [r for r in rows if r not in none and r.how == "benchmark"]
    tested = [r for r in rows if r not in none and r not in bench]
    partly = [r for r in tested if "partial" in r.how or "NONE" in r.how]
    readme = [r for r in rows if "tests/test_readme_claims.py" in r.proved_by]
    only = [r for r in readme if set(_TEST_FILE.findall(r.proved_by)) == {"tests/test_readme_claims.py"}]
    return (f"{len(rows)} rows. Held by a test: {len(tested)} ({len(tested) - len(partly)} fully, {len(partly)} partly); "
            f"by a benchmark only: {len(bench)}; **NONE**: {len(none)}. `tests/test_readme_claims.py` is cited in "
            f"{len(readme)} rows and is the only test in {len(only)} of them. (Counted by `scripts/claims_tally.py`.)")


def written_tally(text: str) -> str:
    """The tally paragraph as the document has it."""
    start = text.index(HEADER) + len(HEADER)
    return text[start:text.index(TALLY_END, start)].strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="put the tally into docs/README_CLAIMS.md")
    args = p.parse_args(argv)
    text = CLAIMS.read_text()
    counted = tally(claims(text))
    print(counted)
    if args.write:
        start = text.index(HEADER) + len(HEADER)
        CLAIMS.write_text(text[:start] + counted + "\n" + text[text.index(TALLY_END, start):])
    return 0


if __name__ == "__main__":
    sys.exit(main())

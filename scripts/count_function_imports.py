#!/usr/bin/env python3
"""Count first-party imports written inside functions (they hide import cycles).

Usage: scripts/count_function_imports.py [--list] [--max N] [paths...]
Scans the product packages (not tests/, bench/ or migrations) unless paths are given.
An import counts when it sits inside a function body and names one of our packages (or is
relative). Each one left must say why in a `# reason: ...` comment on its line or the line
above. Prints the count; with --max N, fails (exit 1) above N or when a reason is missing.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("trading_site", "accounts", "orders", "pnl", "monitoring")
DEFAULT_PATHS = FIRST_PARTY


def _is_first_party(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        if node.level:
            return True
        names = [node.module or ""]
    else:
        names = [alias.name for alias in node.names]
    return any(name.split(".")[0] in FIRST_PARTY for name in names)


def function_imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, statement, has a reason comment) of each first-party import in a function."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source, filename=str(path))
    found: list[tuple[int, str, bool]] = []

    def has_reason(lineno: int) -> bool:
        nearby = lines[max(0, lineno - 2) : lineno]
        return any("# reason" in line for line in nearby)

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if in_function and isinstance(child, ast.Import | ast.ImportFrom):
                if _is_first_party(child):
                    found.append((child.lineno, ast.unparse(child), has_reason(child.lineno)))
            visit(child, inside)

    visit(tree, False)
    return found


def main(argv: list[str]) -> int:
    show = "--list" in argv
    limit = int(argv[argv.index("--max") + 1]) if "--max" in argv else None
    skip = {argv.index("--max") + 1} if "--max" in argv else set()
    roots = [a for i, a in enumerate(argv) if not a.startswith("--") and i not in skip] or list(
        DEFAULT_PATHS
    )
    total = 0
    unexplained = []
    for root in roots:
        base = ROOT / root
        files = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for path in files:
            if "migrations" in path.parts:
                continue
            for lineno, text, explained in function_imports(path):
                total += 1
                where = f"{path.relative_to(ROOT)}:{lineno}: {text}"
                if not explained:
                    unexplained.append(where)
                if show:
                    print(where + ("" if explained else "  (no # reason)"))
    print(total)
    if limit is not None:
        for where in unexplained:
            print(f"needs a '# reason: ...' comment: {where}", file=sys.stderr)
        if total > limit:
            print(f"{total} function-level imports, at most {limit} allowed", file=sys.stderr)
        if unexplained or total > limit:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Count first-party imports written inside functions (they hide import cycles).

Usage: scripts/count_function_imports.py [--list] [paths...]
Scans the product packages (not tests/, bench/ or migrations) unless paths are given.
An import counts when it sits inside a function body and names one of our packages (or is
relative). Each one left in the product should carry a `# reason` comment on its line.
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


def function_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if in_function and isinstance(child, ast.Import | ast.ImportFrom):
                if _is_first_party(child):
                    found.append((child.lineno, ast.unparse(child)))
            visit(child, inside)

    visit(tree, False)
    return found


def main(argv: list[str]) -> int:
    show = "--list" in argv
    roots = [a for a in argv if not a.startswith("--")] or list(DEFAULT_PATHS)
    total = 0
    for root in roots:
        base = ROOT / root
        files = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for path in files:
            if "migrations" in path.parts:
                continue
            for lineno, text in function_imports(path):
                total += 1
                if show:
                    print(f"{path.relative_to(ROOT)}:{lineno}: {text}")
    print(total)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

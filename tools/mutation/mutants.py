"""The mutants of one module: small AST-located edits spliced into the source bytes, so line
numbers and formatting stay put.

Operators (those of ../shared/reviews/mutation-review.md, the score the issue asks to raise):
CMP (< <=, > >=, == !=, in / not in, is / is not), BOOL (and or), NOT (drop it), NUM (±1),
BCONST (True False), STR (a string to "" and "" to "X"; a whole f-string to ""), IF (a condition
to True and to False; a while condition to False), RAISE (raise to pass), CALL (drop an
expression-statement call), ARITH (+ -, += -=, where no operand is a string).

A mutant's key names its place without its line number (function, operator, the text replaced,
its occurrence there), so the reviewed list of equivalent mutants survives edits elsewhere.
"""

from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass
from pathlib import Path

SKIP_MARK = "pragma: no mutate"

_CMP_SWAP: dict[type[ast.cmpop], tuple[str, str]] = {
    ast.Lt: ("<", "<="), ast.LtE: ("<=", "<"), ast.Gt: (">", ">="), ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="), ast.NotEq: ("!=", "=="), ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"), ast.Is: ("is", "is not"), ast.IsNot: ("is not", "is"),
}


@dataclass(frozen=True)
class Mutant:
    path: str          # relative to the repository root, e.g. kube_ha/model.py
    line: int
    end_line: int
    operator: str
    start: int         # byte offsets into the source
    end: int
    original: str
    replacement: str
    key: str           # stable across edits elsewhere in the module

    def apply(self, source: bytes) -> bytes:
        return source[:self.start] + self.replacement.encode() + source[self.end:]

    def describe(self) -> str:
        shown = self.original if len(self.original) <= 60 else self.original[:57] + "..."
        return f"{self.path}:{self.line} {self.operator} {shown!r} -> {self.replacement!r}"


class _Finder(ast.NodeVisitor):
    def __init__(self, path: str, source: bytes) -> None:
        self.path = path
        self.source = source
        self.starts = [0]
        for i, byte in enumerate(source):
            if byte == 0x0A:
                self.starts.append(i + 1)
        self.lines = source.decode().splitlines()
        self.scope: list[str] = []
        self.found: list[Mutant] = []
        self.counts: dict[str, int] = {}
        self.skip: set[int] = set()      # ids of nodes not to mutate (docstrings, annotations)

    def _offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col

    def _span(self, node: ast.AST) -> tuple[int, int]:
        return (self._offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
                self._offset(node.end_lineno, node.end_col_offset))  # type: ignore[attr-defined]

    def _add(self, line: int, operator: str, start: int, end: int, replacement: str) -> None:
        if SKIP_MARK in self.lines[line - 1]:
            return
        original = self.source[start:end].decode()
        line = bisect.bisect_right(self.starts, start)
        end_line = line + original.count("\n")
        if original == replacement:
            return
        base = f"{self.path}::{'.'.join(self.scope) or '<module>'}:{operator}:{original}->{replacement}"
        n = self.counts.get(base, 0)
        self.counts[base] = n + 1
        self.found.append(Mutant(self.path, line, end_line, operator, start, end, original, replacement,
                                 f"{base}#{n}"))

    def _add_node(self, node: ast.AST, operator: str, replacement: str) -> None:
        start, end = self._span(node)
        self._add(node.lineno, operator, start, end, replacement)  # type: ignore[attr-defined]

    def _token_between(self, left: ast.AST, right: ast.AST, pattern: str) -> tuple[int, int] | None:
        lo = self._offset(left.end_lineno, left.end_col_offset)  # type: ignore[attr-defined]
        hi = self._offset(right.lineno, right.col_offset)  # type: ignore[attr-defined]
        gap = self.source[lo:hi].decode()
        found = re.search(pattern, gap)
        if found is None:
            return None
        return lo + len(gap[:found.start()].encode()), lo + len(gap[:found.end()].encode())

    # scopes -------------------------------------------------------------------------------
    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            self.skip.add(id(body[0].value))
        if not isinstance(node, ast.ClassDef):
            for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs,
                        node.args.vararg, node.args.kwarg]:
                if arg is not None and arg.annotation is not None:
                    self._skip_all(arg.annotation)
            if node.returns is not None:
                self._skip_all(node.returns)
        for dec in node.decorator_list:
            self._skip_all(dec)
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scoped(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scoped(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scoped(node)

    def _skip_all(self, node: ast.AST) -> None:
        for sub in ast.walk(node):
            self.skip.add(id(sub))

    def visit_Module(self, node: ast.Module) -> None:
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            self.skip.add(id(node.body[0].value))
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._skip_all(node.annotation)
        self.generic_visit(node)

    def visit_Assert(self, node: ast.Assert) -> None:
        return None  # assertions state invariants; mutating them tests nothing of ours

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        return None

    def visit_Call(self, node: ast.Call) -> None:
        # TypeVar/cast/NewType names and typing strings are not behaviour.
        if isinstance(node.func, ast.Name) and node.func.id in {"cast", "TypeVar", "NewType"}:
            self._skip_all(node)
        self.generic_visit(node)

    # operators ----------------------------------------------------------------------------
    def visit_Compare(self, node: ast.Compare) -> None:
        left: ast.AST = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            text, swap = _CMP_SWAP[type(op)]
            pattern = r"\bnot\s+in\b|\bis\s+not\b" if " " in text else (
                r"\b" + text + r"\b" if text.isalpha() else re.escape(text) + r"(?![=<>])")
            span = self._token_between(left, right, pattern)
            if span is not None:
                self._add(node.lineno, "CMP", span[0], span[1], swap)
            left = right
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        text, swap = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        for left, right in zip(node.values, node.values[1:], strict=False):
            span = self._token_between(left, right, r"\b" + text + r"\b")
            if span is not None:
                self._add(node.lineno, "BOOL", span[0], span[1], swap)
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            start, _ = self._span(node)
            inner, _ = self._span(node.operand)
            self._add(node.lineno, "NOT", start, inner, "")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if id(node) in self.skip:
            return
        value = node.value
        if isinstance(value, bool):
            self._add_node(node, "BCONST", "False" if value else "True")
        elif isinstance(value, int | float):
            self._add_node(node, "NUM", repr(value + 1))
            self._add_node(node, "NUM", repr(value - 1))
        elif isinstance(value, str):
            self._add_node(node, "STR", '"X"' if value == "" else '""')

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        if id(node) not in self.skip:
            self._add_node(node, "STR", '""')
        # Python 3.11 gives unreliable positions inside f-strings: mutate only the whole.

    def _condition(self, node: ast.If | ast.IfExp | ast.While) -> None:
        test = node.test
        if id(test) not in self.skip:
            if not isinstance(node, ast.While):
                self._add_node(test, "IF", "True")
            self._add_node(test, "IF", "False")

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        if isinstance(node.test, ast.Compare) and isinstance(node.test.left, ast.Name) \
                and node.test.left.id == "__name__":
            return
        self._condition(node)
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._condition(node)
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        self._condition(node)
        self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        self._add_node(node, "RAISE", "pass")
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Call):
            self._add_node(node, "CALL", "pass")
        self.generic_visit(node)

    def _stringy(self, node: ast.AST) -> bool:
        return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Add | ast.Sub) and not (self._stringy(node.left) or self._stringy(node.right)):
            text, swap = ("+", "-") if isinstance(node.op, ast.Add) else ("-", "+")
            span = self._token_between(node.left, node.right, re.escape(text))
            if span is not None:
                self._add(node.lineno, "ARITH", span[0], span[1], swap)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.op, ast.Add | ast.Sub) and not self._stringy(node.value):
            text, swap = ("+=", "-=") if isinstance(node.op, ast.Add) else ("-=", "+=")
            span = self._token_between(node.target, node.value, re.escape(text))
            if span is not None:
                self._add(node.lineno, "ARITH", span[0], span[1], swap)
        self.generic_visit(node)


def mutants_of(root: Path, relpath: str) -> list[Mutant]:
    source = (root / relpath).read_bytes()
    finder = _Finder(relpath, source)
    finder.visit(ast.parse(source))
    kept = []
    for mutant in finder.found:
        try:
            compile(mutant.apply(source), relpath, "exec")
        except SyntaxError:
            continue
        kept.append(mutant)
    return kept

"""A static pass over a submission that flags tampering for a human to look at. A flag never
changes a score (the sandbox and the kernel guard see to the points); it says where and why.

Flagged in the student's own cells: replacing attributes of ``torch``, ``numpy``, ``handwritten`` or
builtins; ``setattr`` on a module; ``sys.modules`` edits; ``ctypes`` and ``gc``; reaching the grader's
guard; opening files by absolute path or above the working folder; redefining a name the test cells
call (``check``); typing ``BEGIN HIDDEN TESTS``. Against the released notebook: edited or deleted
locked cells (nbgrader grades its own copy of those, so this is about intent, not points).
"""

from __future__ import annotations

import ast
import warnings
from types import MappingProxyType

from IPython.core.inputtransformer2 import TransformerManager

from .cells import nbgrader_meta as _meta

GUARDED = frozenset({"torch", "numpy", "handwritten", "builtins", "__builtins__", "math"})
FILE_OPENERS = frozenset({"open", "Path", "read_text", "read_bytes", "load", "listdir", "scandir", "walk", "glob",
                          "iglob", "connect", "Gradebook"})
FORBIDDEN_MODULES = MappingProxyType({"ctypes": "loads ctypes (raw memory access)",
                                      "gc": "uses gc (can reach hidden objects)"})


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _root(node) -> str | None:
    """The name an attribute chain starts from: ``torch`` for ``torch.nn.functional.relu``."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Scanner(ast.NodeVisitor):
    def __init__(self, helpers: set[str]):
        self.helpers = helpers          # names the test cells call, bound by locked cells
        self.modules: dict[str, str] = {name: name for name in GUARDED}  # local name -> module
        self.flags: list[tuple[int, str]] = []

    def flag(self, node, reason: str):
        self.flags.append((getattr(node, "lineno", 0), reason))

    def guarded(self, node) -> str | None:
        root = _root(node)
        module = self.modules.get(root or "")
        return module if module and module.split(".")[0] in GUARDED else None

    def visit_Import(self, node):
        for alias in node.names:
            top = alias.name.split(".")[0]
            self.modules[alias.asname or top] = alias.name if alias.asname else top
            if top in FORBIDDEN_MODULES:
                self.flag(node, FORBIDDEN_MODULES[top])
            self._rebinds(node, alias.asname or top)

    def visit_ImportFrom(self, node):
        top = (node.module or "").split(".")[0]
        if top in FORBIDDEN_MODULES:
            self.flag(node, FORBIDDEN_MODULES[top])
        for alias in node.names:
            name = alias.asname or alias.name
            if top in GUARDED:
                self.modules[name] = f"{node.module}.{alias.name}"
            self._rebinds(node, name)

    def _rebinds(self, node, name: str):
        if name in self.helpers:
            self.flag(node, f"redefines {name!r}, which the test cells call")

    def _target(self, node, target):
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._target(node, element)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            text = ast.unparse(target)
            if self.guarded(target) and not text.startswith("sys.modules"):
                self.flag(node, f"replaces {text} (a library the checks rely on)")
        elif isinstance(target, ast.Name):
            self._rebinds(node, target.id)

    def visit_Assign(self, node):
        for target in node.targets:
            self._target(node, target)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._target(node, node.target)
        self.generic_visit(node)

    visit_AnnAssign = visit_AugAssign

    def visit_Delete(self, node):
        for target in node.targets:
            self._target(node, target)

    def visit_FunctionDef(self, node):
        self._rebinds(node, node.name)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_Attribute(self, node):
        if node.attr == "modules" and _root(node) == "sys":
            self.flag(node, "touches sys.modules")
        self.generic_visit(node)

    def visit_Name(self, node):
        if node.id == "__handwritten_guard__":
            self.flag(node, "reaches the grader's guard")

    def visit_Call(self, node):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in ("setattr", "delattr") and node.args and self.guarded(node.args[0]):
            self.flag(node, f"{name} on {ast.unparse(node.args[0])} (a library the checks rely on)")
        if name in ("__import__", "import_module") and node.args and isinstance(node.args[0], ast.Constant):
            top = str(node.args[0].value).split(".")[0]
            if top in FORBIDDEN_MODULES:
                self.flag(node, FORBIDDEN_MODULES[top])
        if name in FILE_OPENERS or (isinstance(node.func, ast.Attribute) and node.func.attr in FILE_OPENERS):
            for arg in node.args[:1]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and _outside(arg.value):
                    self.flag(node, f"opens {arg.value!r}, outside its working folder")
        self.generic_visit(node)

    def visit_Constant(self, node):
        if isinstance(node.value, str) and any(word in node.value for word in ("gradebook", "solutions/")):
            self.flag(node, f"mentions {node.value[:60]!r} (the grader's files)")


def _outside(path: str) -> bool:
    return path.startswith(("/", "~")) or ".." in path.replace("\\", "/").split("/")


def scan(notebook: dict, released: dict) -> list[str]:
    """Every flag of one submission, as ``"<cell>, line <n>: <reason>"``."""
    released_cells = [c for c in released.get("cells", []) if _meta(c).get("grade_id")]
    locked = {_meta(c)["grade_id"]: _source(c) for c in released_cells
              if _meta(c).get("locked") or (_meta(c).get("grade") and not _meta(c).get("solution"))}
    helpers = set()
    for cell in released.get("cells", []):
        if cell.get("cell_type") == "code" and _meta(cell).get("grade"):
            try:
                tree = ast.parse(_source(cell))
            except SyntaxError:
                continue
            helpers |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} & {"check", "checks"}
    untouched = {_source(c).strip() for c in released.get("cells", [])}  # cells as released: not the student's
    flags: list[str] = []
    seen_locked = set()
    transform = TransformerManager().transform_cell
    for index, cell in enumerate(notebook.get("cells", [])):
        meta, source = _meta(cell), _source(cell)
        where = f"cell {meta.get('grade_id') or index + 1}"
        if meta.get("grade_id") in locked:
            seen_locked.add(meta["grade_id"])
            if source.strip() != locked[meta["grade_id"]].strip():
                flags.append(f"{where}: a locked cell was edited (it is graded as released)")
            continue
        if "BEGIN HIDDEN TESTS" in source or "END HIDDEN TESTS" in source:
            flags.append(f"{where}: the student's cell contains a hidden-tests marker")
        if cell.get("cell_type") != "code" or source.strip() in untouched:
            continue
        scanner = _Scanner(helpers)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(transform(source))
            scanner.visit(tree)
        except (SyntaxError, ValueError):
            continue  # nbgrader reports it when the cell runs
        except (RecursionError, MemoryError):  # one expression of 20,000 additions: too deep for Python's parser
            flags.append(f"{where}: the cell is nested too deeply to be scanned")
            continue
        flags += [f"{where}, line {line}: {reason}" for line, reason in sorted(set(scanner.flags))]
    for grade_id in sorted(set(locked) - seen_locked):
        flags.append(f"cell {grade_id}: a locked cell was deleted (it is restored and graded)")
    return flags

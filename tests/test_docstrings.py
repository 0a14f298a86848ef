"""Numpy-style docstrings on every public function (house style, issue 10 item 7): a public function or method that
takes parameters documents them in a ``Parameters`` section, and one that returns something documents it in a
``Returns`` (or ``Yields``) section (a function without a return annotation counts as returning something when
its body returns or yields a value). Read from the source with ``ast`` (nothing is imported, so this runs in well
under a second). Exempt: private names (leading ``_``), modules whose name starts with ``_``, ``cli.py`` (its
commands are documented by their typer help text), properties, and methods a dataclass generates (they are not in
the source)."""

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "recsys_lab"
_PROPERTY_DECORATORS = {"property", "cached_property", "setter", "getter", "deleter"}


def _section(doc: str, *names: str) -> bool:
    """True when ``doc`` has a numpy-style section header ``Name`` underlined with dashes."""
    return any(re.search(rf"^\s*{name}\s*\n\s*-{{3,}}\s*$", doc, re.MULTILINE) for name in names)


def _decorator_names(node: ast.AST) -> set[str]:
    names = set()
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Attribute):
            names.add(target.attr)
    return names


def _takes_parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> bool:
    args = fn.args
    positional = [*args.posonlyargs, *args.args]
    if is_method and "staticmethod" not in _decorator_names(fn) and positional:
        positional = positional[1:]  # self / cls
    return bool(positional or args.kwonlyargs or args.vararg or args.kwarg)


def _own_nodes(fn: ast.AST):
    """The nodes of a function's body, not descending into nested functions, lambdas or classes."""
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))


def _returns_something(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The return annotation is not None; without an annotation, the body returns or yields a value."""
    ann = fn.returns
    if ann is None:
        return any(isinstance(n, (ast.Yield, ast.YieldFrom)) or (isinstance(n, ast.Return) and n.value is not None)
                   for n in _own_nodes(fn))
    if isinstance(ann, ast.Constant) and ann.value is None:
        return False
    return not (isinstance(ann, ast.Name) and ann.id in ("None", "NoReturn", "Never"))


def _public_functions(tree: ast.Module):
    """Yield ``(qualname, node, is_method)`` for the public functions and public methods of public classes."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node, False
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    if _decorator_names(item) & _PROPERTY_DECORATORS:
                        continue
                    yield f"{node.name}.{item.name}", item, True


def _public_modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        if any(part.startswith("_") for part in rel.parts[1:]) or rel.parts[1] == "cli":
            continue
        yield ".".join(rel.parts), path


def _check_source(module: str, source: str) -> tuple[list[str], list[str], int]:
    """``(missing Parameters, missing Returns/Yields, functions checked)`` of one module's source."""
    missing_params, missing_returns, checked = [], [], 0
    for qualname, fn, is_method in _public_functions(ast.parse(source)):
        checked += 1
        doc = ast.get_docstring(fn) or ""
        if _takes_parameters(fn, is_method) and not _section(doc, "Parameters"):
            missing_params.append(f"{module}:{qualname}")
        if _returns_something(fn) and not _section(doc, "Returns", "Yields"):
            missing_returns.append(f"{module}:{qualname}")
    return missing_params, missing_returns, checked


def _offenders() -> tuple[list[str], list[str], int]:
    missing_params, missing_returns, checked = [], [], 0
    for module, path in _public_modules():
        p, r, c = _check_source(module, path.read_text(encoding="utf-8"))
        missing_params += p
        missing_returns += r
        checked += c
    return missing_params, missing_returns, checked


def test_the_walk_sees_the_package():
    """Guard against a vacuous pass: the walk finds the modules and functions it is meant to check."""
    modules = dict(_public_modules())
    assert "recsys_lab.pipeline.retrain" in modules and "recsys_lab.cli.main" not in modules
    assert not any(name.rsplit(".", 1)[-1].startswith("_") for name in modules)
    assert _offenders()[2] > 100


def test_section_detection():
    doc = "Summary.\n\nParameters\n----------\nx : int\n    A number.\n\nReturns\n-------\nint\n"
    assert _section(doc, "Parameters") and _section(doc, "Returns")
    assert not _section("Summary. Parameters are described below.", "Parameters")
    assert _section("Iterate.\n\nYields\n------\nint\n", "Returns", "Yields")


def test_rules_on_a_planted_module():
    source = """
def f(x: int) -> int:
    \"\"\"No sections.\"\"\"
def g() -> None:
    \"\"\"Nothing to document.\"\"\"
def h():
    \"\"\"Unannotated but returns a value.\"\"\"
    def inner():
        return 1
    return inner
def _private(x):
    return x
class C:
    def method(self) -> None:
        \"\"\"Only self.\"\"\"
    @classmethod
    def build(cls, n: int) -> "C":
        \"\"\"Build.

        Parameters
        ----------
        n : int

        Returns
        -------
        C
        \"\"\"
    @staticmethod
    def helper(y):
        \"\"\"Static, one parameter.\"\"\"
    @property
    def size(self) -> int:
        \"\"\"Exempt.\"\"\"
class _Hidden:
    def method(self, z) -> int:
        return z
"""
    missing_params, missing_returns, checked = _check_source("m", source)
    assert missing_params == ["m:f", "m:C.helper"]
    assert missing_returns == ["m:f", "m:h"]
    assert checked == 6


def test_public_functions_document_parameters_and_returns():
    missing_params, missing_returns, _ = _offenders()
    message = []
    if missing_params:
        message.append(f"{len(missing_params)} without a Parameters section:\n  " + "\n  ".join(missing_params))
    if missing_returns:
        message.append(f"{len(missing_returns)} without a Returns/Yields section:\n  " + "\n  ".join(missing_returns))
    assert not message, "\n".join(message)

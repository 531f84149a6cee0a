"""The layout docs/architecture.md promises: handlers/ is kopf glue and nothing else.

import-linter (make lint) keeps kopf out of every other package; this keeps non-glue out of
handlers/: a module there that does not use kopf belongs in a domain package.
"""

import ast
from pathlib import Path

HANDLERS = Path(__file__).resolve().parents[2] / "operator" / "nodekeeper" / "handlers"
# kopf's memo: the one module of handlers/ that is plain data, by design (docs/architecture.md).
NOT_GLUE = {"__init__.py", "context.py"}


def imports_kopf(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "kopf" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "kopf":
            return True
    return False


def test_every_handlers_module_is_kopf_glue() -> None:
    modules = sorted(p for p in HANDLERS.glob("*.py") if p.name not in NOT_GLUE)
    assert modules, "no handler modules found"
    assert [p.name for p in modules if not imports_kopf(p)] == []

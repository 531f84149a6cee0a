"""docs/reference.md lists exactly the settings, metrics, reasons and codes the code has."""

import ast
import re
import typing
from pathlib import Path

from nodekeeper.agent.metrics import SelfMemoryCollector
from nodekeeper.agent.selfprotect import MemoryLevel, SelfMemory
from nodekeeper.api import backuprun, codes, workload
from nodekeeper.backups.metrics import BackupMetrics
from nodekeeper.backups.outcomes import REASONS as BACKUP_REASONS
from nodekeeper.config import Settings
from nodekeeper.handlers import backupruns as backuprun_handlers
from nodekeeper.logs.metrics import LogMetrics, LogStateCollector, WorkloadLogCollector
from nodekeeper.metrics import Metrics
from nodekeeper.pressure.metrics import PressureCollector, WorkloadUsageCollector
from nodekeeper.pressure.psi import PsiLine, PsiSample
from nodekeeper.pressure.thresholds import CONDITION_TYPES as PRESSURE_CONDITION_TYPES
from nodekeeper.pressure.thresholds import PressureTracker
from nodekeeper.runtime import errors
from nodekeeper.workloads import status as workload_status

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"
PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "nodekeeper"
# Where fixed reasons are written: the kopf glue and the Workload domain.
WRITERS = (PACKAGE / "handlers", PACKAGE / "workloads")


def first_column(section: str) -> set[str]:
    """The backticked names in the first column of the table under ``## section``."""
    text = REFERENCE.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", body, flags=re.MULTILINE))


def table(section: str) -> list[list[str]]:
    """The body rows of the table under ``## section``, as stripped cells."""
    text = REFERENCE.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[1:]]


def test_every_setting_is_documented() -> None:
    assert first_column("Settings") == set(Settings.model_fields)


def test_every_metric_is_documented() -> None:
    metrics = Metrics()
    # As app.run registers it; the sources only need to yield one of everything.
    line = PsiLine(avg10=0.1, avg60=0.1, avg300=0.1, total_seconds=1.0)
    metrics.registry.register(
        PressureCollector(
            psi=lambda: {"cpu": PsiSample(some=line, full=line)},
            conditions=lambda: PressureTracker().states(),
        )
    )
    metrics.registry.register(
        SelfMemoryCollector(
            lambda: SelfMemory(
                used_bytes=1, limit_bytes=2, limit_source="setting", level=MemoryLevel.NORMAL
            )
        )
    )
    BackupMetrics(metrics.registry)  # as app.run builds it, into the same registry
    LogMetrics(metrics.registry)
    metrics.registry.register(LogStateCollector(dict))
    metrics.registry.register(WorkloadLogCollector(dict))
    metrics.registry.register(WorkloadUsageCollector(tuple))
    names = set()
    for family in metrics.registry.collect():
        # Info metrics are exposed with an _info suffix; counters with _total.
        suffix = {"info": "_info", "counter": "_total"}.get(family.type, "")
        names.add(family.name + suffix)
    assert first_column("Metrics") == names


def test_every_condition_reason_is_documented() -> None:
    assert first_column("Condition reasons") == set(codes.REASONS)


def test_every_error_code_is_documented() -> None:
    assert first_column("Error codes") == set(codes.ERROR_CODES)


def test_every_docker_error_has_a_documented_code() -> None:
    classes = [errors.DockerError, *errors.DockerError.__subclasses__()]
    assert {cls.code for cls in classes} <= set(codes.ERROR_CODES)


def test_every_pressure_reason_is_a_documented_code() -> None:
    from nodekeeper.pressure.admission import RefusalCode

    assert set(codes.NODE_REASONS) <= set(codes.REASONS)
    assert set(typing.get_args(RefusalCode)) <= set(codes.ERROR_CODES)


def test_node_reasons_are_documented_as_the_code_words_them() -> None:
    documented = dict(table("Condition reasons"))
    for reason, meaning in codes.NODE_REASONS.items():
        assert documented[f"`{reason}`"] == meaning, reason


def test_every_backup_outcome_is_a_documented_reason() -> None:
    assert set(BACKUP_REASONS) <= set(codes.REASONS)


def reason_arguments(tree: ast.Module) -> list[ast.expr]:
    """The reason of every ConditionChange(type, status, reason, message) and kopf.event()."""
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name == "ConditionChange" and len(node.args) >= 3:
            found.append(node.args[2])
        if name in ("ConditionChange", "kopf.event"):
            found.extend(k.value for k in node.keywords if k.arg == "reason")
    return found


def test_every_reason_a_handler_writes_is_a_documented_code() -> None:
    """A fixed reason comes from api/codes.py by name, so the reasons table covers it; a reason
    computed at run time (an outcome's, an observation's) is checked where it is made."""
    problems = []
    for path in sorted(p for folder in WRITERS for p in folder.glob("*.py")):
        tree = ast.parse(path.read_text())
        from_codes = {
            alias.asname or alias.name
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module == "nodekeeper.api.codes"
            for alias in node.names
        }
        module_names = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for reason in reason_arguments(tree):
            where = f"{path.name}:{reason.lineno} {ast.unparse(reason)}"
            if isinstance(reason, ast.Constant):
                problems.append(f"{where}: a literal; name it in api/codes.py")
            elif isinstance(reason, ast.Name) and reason.id in module_names:
                problems.append(f"{where}: defined where it is written; move it to api/codes.py")
            named = None
            if isinstance(reason, ast.Name) and reason.id in from_codes:
                named = getattr(codes, reason.id)
            elif isinstance(reason, ast.Attribute) and ast.unparse(reason.value) == "codes":
                named = getattr(codes, reason.attr)
            if named is not None and named not in codes.REASONS:
                problems.append(f"{where}: not in codes.REASONS")
    assert not problems


def test_every_condition_type_is_documented() -> None:
    documented: dict[str, set[str]] = {}
    for kind, types, _ in table("Conditions"):
        documented.setdefault(kind, set()).update(re.findall(r"`([^`]+)`", types))
    written = {"Node": set(PRESSURE_CONDITION_TYPES.values())}
    for kind, module in (("Workload", workload_status), ("BackupRun", backuprun_handlers)):
        tree = ast.parse(Path(module.__file__ or "").read_text())
        written[kind] = {
            getattr(module, ast.unparse(node.args[0]))
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "ConditionChange"
        }
    assert documented == written
    assert written["Workload"] == {workload.ADMITTED, workload.READY}
    assert written["BackupRun"] == {backuprun.RUNNING, backuprun.COMPLETED}


def test_every_exit_code_is_documented() -> None:
    documented = {int(code): meaning for code, meaning in table("Exit codes of `nodekeeper run`")}
    assert documented == codes.EXIT_CODES

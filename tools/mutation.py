"""``make mutation``: mutmut over the modules where a silent bug costs most, then docs/mutation.md.

mutmut names a mutant after its file's path (with ``src/`` stripped), and the trampolines it
puts in each function record the module name the tests imported. The layer's package lives at
``layers/shared/sethub`` but is imported as ``sethub``, so mutmut runs in ``.mutation/``: the
last commit's tests, template, sample events, functions and layer (``--worktree``: links to the
checkout's), with the package linked at ``src/sethub``. mutmut copies that tree into
``.mutation/mutants/`` and mutates the copy; the checkout is never changed.
``[tool.mutmut]`` in pyproject.toml says what is mutated and which tests run.

    python tools/mutation.py run [--module retry --module credentials.checker ...] [--workers 2] [--keep]
        [--survivors] [--unfinished] [--paired]
    python tools/mutation.py report
    python tools/mutation.py killers MUTANT... [--tests TEST...]

``killers`` runs tests against single mutants (``sethub.retry.x_sqs_delay__mutmut_3``) and
prints the first test that fails: which test kills a former survivor, for the report's notes.
Survivors are explained in tools/mutation_notes.toml, matched by module, function and diff.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
MUTANTS = WORK / "mutants"
NOTES = ROOT / "tools" / "mutation_notes.toml"
REPORT = ROOT / "docs" / "mutation.md"
RUN_LOG = WORK / "runs.json"
STATS = MUTANTS / "mutmut-stats.json"
# The only_mutate list mutmut's map of tests per function was made with.
MAPPED = WORK / "mapped-modules.json"
# Links in the work tree: what the tests read from the checkout besides the package.
LINKS = ("tests", "template.yaml", "events", "functions", "layers", "docs", "devstack", "pyproject.toml")
GOAL = 90.0
LONG_STATEMENT = 90

# mutmut's exit codes per mutant, as its own stats module reads them.
STATUS_BY_EXIT_CODE = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    35: "suspicious",
    36: "timeout",
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    255: "timeout",
    37: "caught by type check",
    -11: "segfault",
    -9: "segfault",
}


def mutmut_config() -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return config


def modules() -> list[str]:
    """The mutated modules as [tool.mutmut] only_mutate lists them, dotted below ``sethub``
    (``retry``, ``credentials.checker``): the names in mutmut's mutant names and in the notes."""
    return [module_name(pattern) for pattern in mutmut_config()["only_mutate"]]


def module_name(text: str) -> str:
    """``credentials.checker`` from ``credentials/checker``, ``credentials/checker.py``,
    ``src/sethub/credentials/checker.py`` or itself: how ``--module`` (``MODULES=``) names a module."""
    path = text.removeprefix("src/").removeprefix("sethub/").removeprefix("sethub.").removesuffix(".py")
    return path.replace("/", ".")


def module_path(module: str) -> Path:
    """The module's file below the package, without ``.py``: ``credentials/checker``."""
    return Path(*module.split("."))


def selected_module(text: str) -> str:
    """An argparse type: a module of [tool.mutmut] only_mutate, by dotted name or path."""
    name = module_name(text)
    if name not in modules():
        raise argparse.ArgumentTypeError(f"{text!r} is not mutated; choose from {', '.join(modules())}")
    return name


def stage(*, keep: bool, worktree: bool = False) -> None:
    """Lay out .mutation/, afresh unless ``keep`` (then mutmut reuses its results).

    By default the tree is the last commit (``git archive HEAD``): what is measured is what
    was committed, not a file someone is halfway through. ``worktree`` links the checkout's
    files instead, uncommitted changes included.
    """
    # The run log outlives a fresh start: the report lists every run, by its number.
    runs = RUN_LOG.read_text() if RUN_LOG.exists() else None
    if not keep and WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True, exist_ok=True)
    if runs is not None:
        RUN_LOG.write_text(runs)
    for name in LINKS:
        link = WORK / name
        if link.is_symlink():
            link.unlink()
        elif link.is_dir():
            shutil.rmtree(link)
        elif link.exists():
            link.unlink()
    if worktree:
        for name in LINKS:
            (WORK / name).symlink_to(ROOT / name)
    else:
        archive = subprocess.run(  # noqa: S603
            ["git", "archive", "--format=tar", "HEAD", *LINKS],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(WORK)], input=archive.stdout, check=True)  # noqa: S603, S607
    package = WORK / "src" / "sethub"
    package.parent.mkdir(exist_ok=True)
    if not package.is_symlink():
        package.symlink_to(WORK / "layers" / "shared" / "sethub")
    if keep and MUTANTS.exists():
        # mutmut copies the tests only when it starts; refresh them so new tests take part.
        shutil.copytree(WORK / "tests", MUTANTS / "tests", dirs_exist_ok=True)
    # mutmut maps tests to functions once and then only for new tests: a module added to
    # only_mutate would have no tests at all. A new list of modules maps every test again
    # (the mutants' results are kept).
    mutated = json.dumps(sorted(mutmut_config()["only_mutate"]))
    if STATS.exists() and (not MAPPED.exists() or MAPPED.read_text() != mutated):
        STATS.unlink()
    MAPPED.write_text(mutated)
    # The tests' local stack (devstack) as committed too, next to the mutants: otherwise the
    # editable install imports the checkout's, which may not match the committed package.
    shutil.copytree(WORK / "devstack", MUTANTS / "devstack", dirs_exist_ok=True)


def _what(count: int, *, survivors: bool, unfinished: bool) -> str:
    if survivors and unfinished:
        return f"the {count} survivors and not yet run mutants"
    if survivors:
        return f"the {count} survivors of the runs before"
    if unfinished:
        return f"the {count} mutants no run had reached"
    return "every mutant"


def _head() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return head.stdout.strip()


def mutmut_command() -> list[str]:
    return [str(Path(sys.executable).with_name("mutmut"))]


def run(
    selected: list[str],
    *,
    workers: int,
    keep: bool,
    survivors: bool = False,
    unfinished: bool = False,
    paired: bool = False,
    worktree: bool = False,
) -> int:
    stage(keep=keep or bool(selected) or survivors or unfinished or paired, worktree=worktree)
    commit = "working tree" if worktree else _head()  # what was staged, whatever lands meanwhile
    # Named, mutmut tests those mutants again (others keep their results); new tests are
    # added to its map of tests per function first.
    names = [f"sethub.{module}.*" for module in selected]
    if paired:
        # The survivors the notes pair with a test written since: does it kill them?
        noted = {(n["module"], n["function"], n["change"]) for n in load_notes() if "killed_by" in n}
        names = [
            m.name
            for module in selected or modules()
            for m in collect(module)
            if m.status in ("survived", "suspicious") and m.key in noted
        ]
        if not names:
            print("no mutants to test")
            return 0
    elif survivors or unfinished:
        # Survivors: tested again (a test written since may kill them). Unfinished: the
        # mutants no run reached (a stopped run carries on with the modules that matter first).
        names = [
            name
            for module in selected or modules()
            for name, code in exit_codes(module).items()
            if (
                code is not None
                and survivors
                and STATUS_BY_EXIT_CODE.get(code, "suspicious") in ("survived", "suspicious")
            )
            or (code is None and unfinished)
        ]
        if not names:
            print("no mutants to test")
            return 0
    started = time.monotonic()
    # The machine is shared: the load says how much of it the run had.
    load_before = os.getloadavg()[0]
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        # Each mutant's tests fastest first (tools/mutation_order.py).
        "PYTEST_PLUGINS": "mutation_order",
        # The mutants' tree before the editable install's finder (devstack above).
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "tools"), str(MUTANTS), os.environ.get("PYTHONPATH")])
        ),
    }
    command = [*mutmut_command(), "run", "--max-children", str(workers), *names]
    completed = subprocess.run(command, cwd=WORK, env=env, check=False)  # noqa: S603
    elapsed = time.monotonic() - started
    runs = json.loads(RUN_LOG.read_text()) if RUN_LOG.exists() else []
    runs.append(
        {
            "modules": selected or modules(),
            "what": f"the {len(names)} survivors paired with a test written since"
            if paired
            else _what(len(names), survivors=survivors, unfinished=unfinished),
            "workers": workers,
            "seconds": round(elapsed),
            "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "exit_code": completed.returncode,
            "commit": commit,
            # Mutants tested: those named, or every mutant of the modules.
            "mutants": len(names)
            if paired or survivors or unfinished
            else sum(len(exit_codes(m)) for m in selected or modules()),
            "load": [round(load_before, 2), *(round(load, 2) for load in os.getloadavg())],
        }
    )
    RUN_LOG.write_text(json.dumps(runs, indent=2))
    if completed.returncode != 0:
        print(f"mutmut exited with {completed.returncode}", file=sys.stderr)
        return completed.returncode
    write_report()
    return 0


@dataclass(frozen=True)
class Mutant:
    name: str
    module: str
    status: str
    function: str
    line: int
    change: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.module, self.function, self.change)


def exit_codes(module: str) -> dict[str, int | None]:
    meta = MUTANTS / "src" / "sethub" / f"{module_path(module)}.py.meta"
    if not meta.exists():
        return {}
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    return codes


def function_of(mutant_name: str) -> tuple[str | None, str]:
    """(class, function) of ``sethub.m.xǁClassǁmethod__mutmut_3`` or ``sethub.m.x_function__mutmut_3``."""
    mangled = mutant_name.rpartition(".")[2].partition("__mutmut_")[0]
    if mangled.startswith("xǁ"):
        _, cls, function = mangled.split("ǁ")
        return cls, function
    return None, mangled.removeprefix("x_")


def function_sources(tree: ast.Module, source: str) -> dict[tuple[str | None, str], tuple[int, str]]:
    """The ``def`` line and text (decorators included) of each function and method, by (class, name)."""
    lines = source.splitlines()
    found: dict[tuple[str | None, str], tuple[int, str]] = {}

    def visit(body: list[ast.stmt], cls: str | None) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, node.name)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                found[(cls, node.name)] = (node.lineno, "\n".join(lines[first - 1 : node.end_lineno]))

    visit(tree.body, None)
    return found


def one_line_change(original: str, mutated: str, def_line: int) -> tuple[int, str]:
    """The source line a mutant changes and the change as ``old → new``.

    ``original`` is mutmut's copy of the function as it mutated it, ``def_line`` the line of its
    ``def`` in the source file. The change is the innermost part of the code that differs.
    """
    old_tree, new_tree = ast.parse(_dedent(original)), ast.parse(_dedent(mutated))
    old_def, new_def = old_tree.body[0], new_tree.body[0]
    assert isinstance(old_def, ast.FunctionDef | ast.AsyncFunctionDef)
    assert isinstance(new_def, ast.FunctionDef | ast.AsyncFunctionDef)
    new_def.name = old_def.name
    found = _innermost_difference(old_def, new_def)
    if found is None:
        return def_line, "(no difference)"
    old, new = found
    line = def_line + getattr(old, "lineno", old_def.lineno) - old_def.lineno
    # Shown as the statement holding the change (its first line) both ways, or only the changed
    # part when that statement is long.
    old_text = _first_line(_statement_at(old_def, old) or old)
    new_text = _first_line(_statement_at(new_def, new) or new)
    if max(len(old_text), len(new_text)) > LONG_STATEMENT:
        old_text, new_text = _first_line(old), _first_line(new)
    return line, f"{old_text} → {new_text}"


def _statement_at(tree: ast.AST, target: ast.AST) -> ast.stmt | None:
    """The innermost statement of ``tree`` that holds ``target`` (not the function itself)."""
    holder: ast.stmt | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and node is not tree and any(n is target for n in ast.walk(node)):
            holder = node
    return holder


def _innermost_difference(old: ast.AST, new: ast.AST) -> tuple[ast.AST, ast.AST] | None:
    """The deepest pair of nodes that differ, descending while both sides keep their shape."""
    if ast.dump(old) == ast.dump(new):
        return None
    if type(old) is type(new):
        for field in old._fields:
            old_value, new_value = getattr(old, field, None), getattr(new, field, None)
            pairs: list[tuple[Any, Any]] = []
            if isinstance(old_value, list) and isinstance(new_value, list):
                if len(old_value) == len(new_value):
                    pairs = list(zip(old_value, new_value, strict=True))
            else:
                pairs = [(old_value, new_value)]
            for old_child, new_child in pairs:
                if isinstance(old_child, ast.AST) and isinstance(new_child, ast.AST):
                    deeper = _innermost_difference(old_child, new_child)
                    if deeper is not None and hasattr(deeper[0], "lineno"):
                        return deeper
    return old, new


def _first_line(node: ast.AST) -> str:
    text = (
        ast.unparse(node) if not isinstance(node, ast.operator | ast.cmpop | ast.boolop) else _operator(node)
    )
    return text.splitlines()[0] if text else repr(node)


def _operator(node: ast.AST) -> str:
    # ast.unparse cannot print a bare operator: show it through a tiny expression.
    if isinstance(node, ast.cmpop):
        expr: ast.expr = ast.Compare(left=ast.Name("a"), ops=[node], comparators=[ast.Name("b")])
    elif isinstance(node, ast.boolop):
        expr = ast.BoolOp(op=node, values=[ast.Name("a"), ast.Name("b")])
    else:
        assert isinstance(node, ast.operator)
        expr = ast.BinOp(left=ast.Name("a"), op=node, right=ast.Name("b"))
    return ast.unparse(expr)


def _dedent(text: str) -> str:
    lines = text.splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines)


def collect(module: str) -> list[Mutant]:
    codes = exit_codes(module)
    if not codes:
        return []
    source = (WORK / "src" / "sethub" / f"{module_path(module)}.py").read_text()
    functions = function_sources(ast.parse(source), source)
    mutants_source = (MUTANTS / "src" / "sethub" / f"{module_path(module)}.py").read_text()
    # mutmut's copies of each function, named after the mutant (parsed once: the file is large).
    mutated = function_sources(ast.parse(mutants_source), mutants_source)
    found = []
    for name, code in sorted(codes.items(), key=lambda item: _mutant_order(item[0])):
        status = STATUS_BY_EXIT_CODE.get(code, "suspicious") if code is not None else "not checked"
        cls, function = function_of(name)
        qualified = f"{cls}.{function}" if cls else function
        # Every mutant, not run ones too: notes name them by their change.
        line, change = 0, ""
        mangled = name.rpartition(".")[2]
        original = mutated.get((cls, mangled.partition("__mutmut_")[0] + "__mutmut_orig"))
        copy = mutated.get((cls, mangled))
        if original is not None and copy is not None:
            line, change = one_line_change(original[1], copy[1], functions.get((cls, function), (0, ""))[0])
        found.append(Mutant(name, module, status, qualified, line, change))
    return found


def _mutant_order(name: str) -> tuple[str, int]:
    head, _, number = name.rpartition("__mutmut_")
    return head, int(number) if number.isdigit() else 0


def load_notes() -> list[dict[str, str]]:
    if not NOTES.exists():
        return []
    notes: list[dict[str, str]] = tomllib.loads(NOTES.read_text()).get("mutant", [])
    return notes


def remarks() -> list[str]:
    """Remarks on the runs (tools/mutation_notes.toml ``remarks``), one paragraph each."""
    if not NOTES.exists():
        return []
    found: list[str] = tomllib.loads(NOTES.read_text()).get("remarks", [])
    return [line for remark in found for line in (" ".join(remark.split()), "")][:-1]


def write_report() -> None:
    notes = load_notes()
    note_by_key = {(n["module"], n["function"], n["change"]): n for n in notes}
    rows = []
    survivors: list[Mutant] = []
    totals: Counter[str] = Counter()
    status_by_key: dict[tuple[str, str, str], Mutant] = {}
    untested: Counter[str] = Counter()
    for module in modules():
        mutants = collect(module)
        status_by_key.update((m.key, m) for m in mutants)
        counts = Counter(m.status for m in mutants)
        # Survivors the notes explain as equivalent (or out of reach): no test can kill them.
        counts["equivalent"] = sum(
            1 for m in mutants if m.status == "survived" and "why" in note_by_key.get(m.key, {})
        )
        totals.update(counts)
        rows.append((module, len(mutants), counts))
        survivors += [m for m in mutants if m.status in ("survived", "suspicious", "segfault")]
        untested.update(f"{module}.{m.function}" for m in mutants if m.status == "no tests")
    runs = json.loads(RUN_LOG.read_text()) if RUN_LOG.exists() else []
    # A module's results are those of the last run that tested its mutants.
    last_run = {module: number for number, run in enumerate(runs, 1) for module in run["modules"]}
    out = [
        "# Mutation testing",
        "",
        "`make mutation` runs [mutmut](https://mutmut.readthedocs.io) "
        f"{version('mutmut')} over the modules where a silent bug costs most, with the fast tests",
        "that cover them (`[tool.mutmut]` in pyproject.toml), and writes this page.",
        "A mutant is one small change to the code (a comparison flipped, a constant changed, a call",
        "argument dropped); it is *killed* when a test fails with it. mutmut runs, for each mutant,",
        "only the tests that reached the mutated function when it ran the suite once.",
        "Goal: at least 90 % killed in each module. Every survivor is listed below: with the reason",
        "no test can kill it, with the test written for it since, or as not explained yet.",
        "",
        "| module | mutants | killed | survived | equivalent | timeout | suspicious | no tests | not run "
        "| killed % | killed % of the rest | run |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for module, total, counts in rows:
        out.append(_row(module, total, counts) + f" {last_run.get(module, '-')} |")
    out.append(_row("**all**", sum(total for _, total, _ in rows), totals) + " |")
    out += [
        "",
        "Killed % counts timeouts as killed (the mutant hangs the code under test). *Equivalent*:",
        "survivors explained below as equivalent or out of reach of a fast test; *killed % of the",
        "rest* leaves them out.",
        "",
    ]
    out += [_whole_run(runs), ""]
    if runs:
        out += ["## Runs behind these numbers", ""]
        out += [
            f"{number}. {run['finished']}: {run.get('what', 'every mutant')} of {', '.join(run['modules'])}"
            f"{_commit(run)}; {_count(run)}{_workers(run)}, {_duration(run['seconds'])}{_load(run)}"
            + _ending(run["exit_code"])
            for number, run in enumerate(runs, 1)
        ]
        out += ["", *remarks(), ""]
    # A survivor with a test written after the run that found it is listed with that test below.
    explained = [m for m in survivors if m.key in note_by_key and "why" in note_by_key[m.key]]
    unexplained = [m for m in survivors if m.key not in note_by_key]
    out += ["## Survivors", ""]
    if not survivors:
        out += ["None.", ""]
    if explained:
        out += ["Equivalent or out of reach of a fast test, and why:", ""]
        out += ["| module | line | change | why it survives |", "| --- | ---: | --- | --- |"]
        for m in explained:
            out.append(f"| {m.module} | {m.line} | {_code(m.change)} | {note_by_key[m.key].get('why', '')} |")
        out += [""]
    if unexplained:
        out += ["Not explained yet:", ""]
        out += ["| module | line | function | change | mutant |", "| --- | ---: | --- | --- | --- |"]
        for m in unexplained:
            out.append(f"| {m.module} | {m.line} | {m.function} | {_code(m.change)} | `{m.name}` |")
        out += [""]
    out += untested_section(untested)
    out += killed_later_section(notes, status_by_key)
    REPORT.write_text("\n".join(out))
    print(f"wrote {REPORT.relative_to(ROOT)}")


def untested_section(untested: Counter[str]) -> list[str]:
    if not untested:
        return []
    return [
        "## Functions no selected test reaches",
        "",
        "Their mutants count as *no tests*: the tests that reach them are slower than the",
        "selection (or there are none).",
        "",
        "| function | mutants |",
        "| --- | ---: |",
        *(f"| {function} | {count} |" for function, count in sorted(untested.items())),
        "",
    ]


def killed_later_section(
    notes: list[dict[str, str]], status_by_key: dict[tuple[str, str, str], Mutant]
) -> list[str]:
    killed_later = [n for n in notes if n.get("killed_by")]
    if not killed_later:
        return []
    out = [
        "## Former survivors, and the tests that now kill them",
        "",
        "Survivors of the first full run, and of the runs after it, each with the test written for",
        "it. *now* is the verdict of the latest run that reached the mutant: *killed* there with the",
        "test; *survived* where the test came after that run (each of those was checked with",
        "`python tools/mutation.py killers`, which runs the test against the mutant); *not checked*",
        "where no run since reached it.",
        "",
        "| module | line | change | killed by | now |",
        "| --- | ---: | --- | --- | --- |",
    ]
    for n in killed_later:
        now = status_by_key.get((n["module"], n["function"], n["change"]))
        line = now.line if now else "?"
        out.append(
            f"| {n['module']} | {line} | {_code(n['change'])} | `{n['killed_by']}` | "
            f"{now.status if now else 'not found'} |"
        )
    return [*out, ""]


def _row(module: str, total: int, counts: Counter[str]) -> str:
    killed = counts["killed"] + counts["timeout"] + counts["caught by type check"]
    checked = total - counts["not checked"]
    percent = f"{100 * killed / checked:.1f}" if checked else "-"
    # Leaving out the survivors explained as equivalent: what tests could kill and do.
    killable = checked - counts["equivalent"]
    of_rest = f"{100 * killed / killable:.1f}" if killable else "-"
    return (
        f"| {module} | {total} | {counts['killed']} | {counts['survived']} | {counts['equivalent']} | "
        f"{counts['timeout']} | {counts['suspicious'] + counts['segfault']} | {counts['no tests']} | "
        f"{counts['not checked']} | {percent} | {of_rest} |"
    )


def _code(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def _ending(exit_code: int) -> str:
    if exit_code == 0:
        return ""
    if exit_code < 0:
        return f", stopped (signal {-exit_code}) before the end"
    return f", failed (exit code {exit_code}): the unmutated tests did not pass"


def _commit(run: dict[str, Any]) -> str:
    commit = run.get("commit")
    return f" ({commit})" if commit == "working tree" else f" at commit {commit}" if commit else ""


def _load(run: dict[str, Any]) -> str:
    if "load" not in run:
        return ""
    before, *after = run["load"]
    return f", load average {before} at the start, {after[0]} / {after[2]} (1 / 15 min) at the end"


def _whole_run(runs: list[dict[str, Any]]) -> str:
    """The time of the last run that tested every mutant of every module, or that none has."""
    whole = [
        (number, run)
        for number, run in enumerate(runs, 1)
        if run.get("what") == "every mutant"
        and set(run["modules"]) == set(modules())
        and run["exit_code"] == 0
    ]
    if not whole:
        return (
            "No run has tested every mutant of every module to the end yet: each row comes from "
            "the run in its last column."
        )
    number, run = whole[-1]
    mutants = f"{run['mutants']} mutants in " if "mutants" in run else ""
    return (
        f"A whole run (every mutant of every module), run {number}: {mutants}{_duration(run['seconds'])} "
        f"on {_workers(run)}{_load(run)}."
    )


def _workers(run: dict[str, Any]) -> str:
    workers: int = run["workers"]
    return f"{workers} worker" if workers == 1 else f"{workers} workers"


def _count(run: dict[str, Any]) -> str:
    return f"{run['mutants']} mutants, " if "mutants" in run else ""


def _duration(seconds: int) -> str:
    return f"{seconds // 60} min {seconds % 60} s"


def killers(mutants: list[str], tests: list[str]) -> int:
    """Print, per mutant, the first of ``tests`` that fails with it (or that none does)."""
    shutil.copytree(ROOT / "tests", MUTANTS / "tests", dirs_exist_ok=True)  # the tests as they are now
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(MUTANTS / "src"), str(MUTANTS)]),
        "PY_IGNORE_IMPORTMISMATCH": "1",
    }
    for mutant in mutants:
        env["MUTANT_UNDER_TEST"] = mutant
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-rf", *tests]
        completed = subprocess.run(  # noqa: S603
            command, cwd=MUTANTS, env=env, capture_output=True, text=True, check=False
        )
        failed = re.findall(r"^FAILED (\S+)", completed.stdout, re.MULTILINE)
        print(f"{mutant}: {failed[0] if failed else 'survives'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run mutmut, then write docs/mutation.md")
    run_parser.add_argument(
        "--module",
        action="append",
        default=[],
        type=selected_module,
        help="a mutated module: retry, credentials.checker or credentials/checker",
    )
    run_parser.add_argument("--workers", type=int, default=2)
    run_parser.add_argument("--keep", action="store_true", help="reuse .mutation/ and its results")
    run_parser.add_argument("--survivors", action="store_true", help="test the last survivors again")
    run_parser.add_argument(
        "--unfinished", action="store_true", help="test the mutants no run has reached yet"
    )
    run_parser.add_argument(
        "--paired", action="store_true", help="test the survivors the notes pair with a test"
    )
    run_parser.add_argument(
        "--worktree", action="store_true", help="the checkout as it is, not the last commit"
    )
    commands.add_parser("report", help="write docs/mutation.md from the last results")
    killers_parser = commands.add_parser("killers", help="which test kills each mutant")
    killers_parser.add_argument("mutants", nargs="+")
    killers_parser.add_argument("--tests", nargs="+", default=["tests/unit"])
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(
            args.module,
            workers=args.workers,
            keep=args.keep,
            survivors=args.survivors,
            unfinished=args.unfinished,
            paired=args.paired,
            worktree=args.worktree,
        )
    if args.command == "report":
        write_report()
        return 0
    return killers(args.mutants, args.tests)


if __name__ == "__main__":
    sys.exit(main())

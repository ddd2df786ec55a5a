"""Docs that cannot drift: every command, option, setting, error, dashboard page and module is documented, the
generated reference pages are what the code gives now, and every link in the README and docs/ resolves.

When one fails: document the new thing on the page the message names; for a stale generated page run
`make docs-ref` (`python scripts/reference_docs.py`) and commit docs/cli.md and docs/sql-schema.md.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from markdown.extensions.toc import slugify
from support import ROOT

from cbir import errors
from cbir.dashboard.app import PAGES

DOCS = ROOT / "docs"
SCRIPTS = ROOT / "scripts"
GENERATED = ("cli.md", "sql-schema.md")  # written by scripts/reference_docs.py: they document nothing by hand
REGENERATE = "run `make docs-ref` (python scripts/reference_docs.py) and commit the pages"
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def text(path: Path) -> str:
    """A page as MkDocs sees it: snippet includes (`--8<-- "FILE"`) expanded."""
    return SNIPPET.sub(lambda m: (ROOT / m.group(1)).read_text(), path.read_text())


def hand_written() -> dict[Path, str]:
    """README and every docs page a person writes (not the generated reference pages)."""
    pages = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    return {p: text(p) for p in pages if p.name not in GENERATED}


def cli_commands() -> list[tuple[tuple[str, ...], object]]:
    """(path, click command) of every command under `cbir`, from the generator's walk of the typer app."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        import reference_docs
    finally:
        sys.path.remove(str(SCRIPTS))
    return [(path, command) for path, command in reference_docs.commands() if path]


def option_names(command) -> list[str]:
    """Each option as users type it: its long name (else its short one), and a --no- form if it has one."""
    names = []
    for param in command.params:
        if getattr(param, "param_type_name", "") != "option":
            continue
        long = [o for o in param.opts if o.startswith("--")]
        names.append((long or param.opts)[0])
        names += param.secondary_opts
    return names


def mentions(page: str, word: str) -> bool:
    """`word` (a command, an option, a name) appears on the page as a whole word."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", page) is not None


def command_rows(path: tuple[str, ...]) -> str:
    """The rows of docs/commands.md's table that describe `cbir PATH` (a command may have several rows)."""
    name = "`cbir " + " ".join(path)
    rows = [line for line in (DOCS / "commands.md").read_text().splitlines() if line.startswith("| " + name)]
    return "\n".join(row for row in rows if re.match(rf"\| {re.escape(name)}[ `]", row))


def test_every_cli_command_and_option_is_on_the_commands_page() -> None:
    missing = []
    for path, command in cli_commands():
        if hasattr(command, "list_commands"):
            continue  # a group (db, users): its commands have the rows
        rows = command_rows(path)
        if not rows:
            missing.append(f"cbir {' '.join(path)} (no row starting with `cbir {' '.join(path)}`)")
            continue
        missing += [f"cbir {' '.join(path)} {opt}" for opt in option_names(command) if not mentions(rows, opt)]
    assert not missing, f"not in docs/commands.md's command table (add them to the command's row): {missing}"


def settings_variables() -> set[str]:
    """Every `CBIR_*` variable cbir/config.py reads (string literals of the one Settings module)."""
    tree = ast.parse((ROOT / "cbir" / "config.py").read_text())
    literals = (n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str))
    return {name for value in literals for name in re.findall(r"\bCBIR_[A-Z0-9_]+\b", value)}


def test_every_setting_is_on_the_configuration_page() -> None:
    variables = settings_variables()
    assert len(variables) >= 10, variables  # the parse found the settings (there are more than ten)
    page = (DOCS / "configuration.md").read_text()
    missing = sorted(v for v in variables if not mentions(page, v))
    assert not missing, f"CBIR_* settings of cbir/config.py missing from docs/configuration.md's table: {missing}"


def test_every_error_class_is_documented() -> None:
    classes = [
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.CbirError) and value.__module__ == errors.__name__
    ]
    assert "CbirError" in classes and len(classes) > 5
    page = (DOCS / "api.md").read_text()
    missing = [name for name in classes if not mentions(page, name)]
    assert not missing, f"CbirError subclasses of cbir/errors.py missing from docs/api.md: {missing}"


def nav_files(entries) -> list[str]:
    """Every page file named in mkdocs.yml's nav, depth first."""
    files = []
    for entry in entries:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            files += nav_files(value) if isinstance(value, list) else [value]
    return files


def mkdocs_nav() -> list[str]:
    # mkdocs.yml may hold python tags (none now): load it as plain data, which is all the nav is.
    return nav_files(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])


def test_every_dashboard_page_has_a_docs_page_in_the_nav() -> None:
    nav = mkdocs_nav()
    missing = []
    for file, title, _icon in PAGES:
        doc = f"dashboard/{Path(file).stem}.md"
        if not (DOCS / doc).is_file() or doc not in nav:
            missing.append(f"{title} ({file}) -> docs/{doc}")
        elif f"images/{Path(file).stem}.png" not in (DOCS / doc).read_text():
            missing.append(f"{title}: docs/{doc} shows no screenshot images/{Path(file).stem}.png")
    assert not missing, f"dashboard pages without a docs page in mkdocs.yml's nav (or its screenshot): {missing}"


def test_every_docs_page_is_in_the_nav() -> None:
    nav = set(mkdocs_nav())
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert not pages - nav, f"pages not in mkdocs.yml's nav: {sorted(pages - nav)}"
    assert not nav - pages, f"nav entries without a page: {sorted(nav - pages)}"


def test_every_module_is_on_the_architecture_page() -> None:
    page = (DOCS / "architecture.md").read_text()
    modules = sorted(
        str(p.relative_to(ROOT / "cbir")) for p in (ROOT / "cbir").rglob("*.py") if p.name != "__init__.py"
    )
    assert "storage/db.py" in modules
    missing = [m for m in modules if f"`{m}`" not in page]
    assert not missing, f"modules of cbir/ missing from docs/architecture.md (as `path`): {missing}"


def generated(kind: str) -> str:
    """A reference page as scripts/reference_docs.py writes it now (in a subprocess: it fixes the terminal)."""
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); import reference_docs as r; "
        "[os.environ.pop(n, None) for n in r.UNSET]; os.environ.update(r.HELP_ENV); "
        f"print(r.{kind}(), end='')"
    )
    out = subprocess.run([sys.executable, "-c", code, str(SCRIPTS)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_cli_reference_is_what_the_generator_gives_now() -> None:
    assert generated("cli_page") == (DOCS / "cli.md").read_text(), f"docs/cli.md is stale: {REGENERATE}"


def test_the_schema_reference_is_what_the_migrations_give_now() -> None:
    assert generated("fresh_schema") == (DOCS / "sql-schema.md").read_text(), (
        f"docs/sql-schema.md is stale: {REGENERATE}"
    )


def anchors(page: Path) -> set[str]:
    """The heading ids MkDocs gives a page (Python-Markdown's toc slugify, as mkdocs.yml configures it)."""
    body = FENCE.sub("", text(page))
    return {slugify(re.sub(r"[`*]", "", h), "-") for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", body, re.M)}


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))], ids=lambda p: p.name)
def test_every_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", text(page))):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: outside the repository
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: links that do not resolve: {broken}"


def test_the_readme_stays_short() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines < 260, f"README.md has {lines} lines: move detail into a docs/ page and link it"

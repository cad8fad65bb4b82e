"""The house as the README draws it: folders by stage, each with its Dagster definitions, and
imports that only point down the stages (import-linter's contracts in setup.cfg)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["ingest", "features", "model", "nightly", "monitoring", "review", "outcomes"]  # serving: assets only


def layout_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Layout"):]
    return section[section.index("```") + 3 : section.index("```", section.index("```") + 3)]


def test_the_readme_layout_matches_the_tree():
    block = layout_block()
    packages = sorted(p.parent.relative_to(ROOT / "credit_dagster").as_posix() for p in (ROOT / "credit_dagster").rglob("__init__.py")
                      if p.parent != ROOT / "credit_dagster")
    named = set(re.findall(r"^\s{2}([a-z_]+)/", block, re.M))
    # every package is in the drawing, and everything drawn is there
    assert set(packages) <= named, sorted(set(packages) - named)
    for folder in named:
        assert (ROOT / "credit_dagster" / folder / "__init__.py").exists(), folder
    for top in re.findall(r"^([a-z_]+)/", block, re.M):
        assert (ROOT / top).is_dir(), top
    for module in re.findall(r"\b([a-z_]+\.py)\b", block):
        assert list(ROOT.glob(f"**/{module}")), module


def test_each_stage_holds_its_dagster_definitions_beside_its_pure_code():
    for stage in STAGES:
        folder = ROOT / "credit_dagster" / stage
        assert (folder / "assets.py").exists(), stage
        pure = [p for p in folder.glob("*.py") if p.name not in ("__init__.py", "assets.py", "checks.py", "resources.py")]
        assert pure, f"{stage} has no pure module"
    definitions = (ROOT / "credit_dagster" / "definitions.py").read_text()
    # wiring only: one function building the definitions from the settings given, no branching
    assert "@dg." not in definitions and re.findall(r"^def (\w+)", definitions, re.M) == ["build"]
    assert not re.search(r"^\s*(if|for|while) |\bif .* else ", definitions, re.M)


def test_imports_keep_the_layering():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    done = subprocess.run([lint, "--config", str(ROOT / "setup.cfg")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "4 kept, 0 broken" in done.stdout


def test_dagsters_private_api_is_used_in_one_module_checked_against_this_release():
    import dagster
    from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

    from credit_dagster import instance
    from credit_dagster.nightly import schedules

    users = sorted(p.relative_to(ROOT).as_posix() for p in [*(ROOT / "credit_dagster").rglob("*.py"), *(ROOT / "panel_app").rglob("*.py")]
                   if "dagster._" in p.read_text())
    assert users == ["credit_dagster/instance.py"], users
    assert dagster.__version__ == instance.PRIVATE_API_CHECKED_WITH, "Dagster changed: re-check instance.execute_as_launched"
    assert set(schedules.IN_PROGRESS) == set(IN_PROGRESS_RUN_STATUSES)


def test_the_docs_settings_table_is_written_from_the_settings_module_and_every_name_they_use_exists():
    from credit_dagster import cli
    from credit_dagster.core.settings import Settings, env_name, markdown_table

    operations = (ROOT / "docs" / "operations.md").read_text()
    start = operations.index("<!-- settings table: python -m credit_dagster.core.settings -->\n")
    shown = operations[start:operations.index("\n<!-- end of settings table -->")].split("\n", 1)[1]
    assert shown == markdown_table(), "docs/operations.md's settings table is stale: python -m credit_dagster.core.settings"
    # every setting and every command the README and docs/ name exists (a renamed one fails here),
    # and no CREDIT_ variable is read anywhere but through the settings module (tests' own aside)
    texts = "\n".join(p.read_text() for p in [ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "docs").glob("*.md")])
    known = {env_name(f) for f in Settings.model_fields} | {"CREDIT_SCREENSHOTS"}
    named = {re.sub(r"_FILE$", "", n) for n in re.findall(r"CREDIT_[A-Z_]+[A-Z]", texts)}  # CREDIT_<NAME>_FILE: <NAME> from a file
    assert named <= known, sorted(named - known)
    commands = set(re.findall(r"credit-dagster ([a-z][a-z-]+)", texts))
    parser_commands = set(cli.command_names())
    assert commands and commands <= parser_commands, sorted(commands - parser_commands)
    readers = [p.relative_to(ROOT).as_posix() for p in [*(ROOT / "credit_dagster").rglob("*.py"), *(ROOT / "panel_app").rglob("*.py")]
               if re.search(r"environ(\.get)?\(?\[?[\"']CREDIT_", p.read_text())]
    assert readers == [], readers


def test_the_wheel_holds_what_runs_and_no_tests(tmp_path):
    """Everything read at run time ships in the built wheel (every SQL model, the templates, the
    synthetic catalog), and the tests do not (`.ci/wheel` then runs the product from it)."""
    import zipfile

    from credit_dagster.features import sql_models

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    names = zipfile.ZipFile(next(tmp_path.glob("credit_dagster-*.whl"))).namelist()
    shipped_sql = {Path(n).stem for n in names if n.endswith(".sql")}
    assert shipped_sql == {m.name for m in sql_models.discover()}
    tracked = subprocess.run(["git", "ls-files", "*.j2", "*.html", "*.json"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    runtime = [t for t in tracked if t.startswith(("credit_dagster/", "panel_app/"))]
    assert runtime and all(t in names for t in runtime), sorted(set(runtime) - set(names))
    assert not [n for n in names if n.startswith("credit_dagster_tests/")]


def test_the_image_installs_what_ci_installs_outside_the_checkout():
    """deploy/Dockerfile and .ci/wheel install the same thing: the wheel built from the packages the
    project declares, with the same extra, on the Python the project supports; every service's
    command exists and the image's health check names a service `credit-dagster health` knows."""
    import tomllib

    from credit_dagster import cli

    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    ci_wheel = (ROOT / ".ci" / "wheel").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = set(re.findall(r"\.whl\)\[(\w+)\]", dockerfile))
    assert extras == set(re.findall(r"\.whl\)\[(\w+)\]", ci_wheel)) == {"image"} and "image" in project["project"]["optional-dependencies"]
    pythons = set(re.findall(r"FROM python:(\d+\.\d+)", dockerfile))
    assert pythons == {"3.11"} and ">=3.11,<3.12" == project["project"]["requires-python"]
    packages = {p.split(".")[0] for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) ", dockerfile, re.M))
    assert packages <= copied, packages - copied
    service = re.search(r"ENV CREDIT_SERVICE=(\S+)", dockerfile).group(1)
    assert service in cli.HEALTH and re.search(r"^USER \d+:\d+$", dockerfile, re.M)  # a service it checks; never root
    assert "hadolint deploy/Dockerfile" in (ROOT / ".ci" / "run").read_text()


def test_each_assets_group_is_the_folder_its_definition_lives_in():
    """The Dagster UI's groups are the folders a new engineer opens (ingest, features, model,
    nightly, monitoring, serving, review, outcomes)."""
    import inspect

    from credit_dagster.definitions import defs

    seen = {}
    for spec in defs.resolve_all_asset_specs():
        assets_def = defs.resolve_assets_def(spec.key)
        folder = Path(inspect.getfile(assets_def.op.compute_fn.decorated_fn)).parent.name
        seen[spec.key.to_user_string()] = (spec.group_name, folder)
    wrong = {key: pair for key, pair in seen.items() if pair[0] != pair[1]}
    assert seen and not wrong, wrong

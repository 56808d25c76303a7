"""The chosen libraries install and work together (e.g. the Prefect server app builds with the installed
FastAPI: some FastAPI releases break it). Versions are ranges in pyproject.toml and exact in
constraints.txt; this checks that they work, not which versions they are."""


def test_prefect_server_app_builds_with_the_installed_fastapi():
    from prefect.server.api.server import create_app

    app = create_app(ephemeral=True)
    assert app is not None
    assert "/api" in {getattr(r, "path", None) for r in app.routes}  # the API is mounted


def test_chosen_libraries_import():
    import deltalake  # noqa: F401
    import filelock  # noqa: F401
    import great_expectations  # noqa: F401
    import open_data_contract_standard  # noqa: F401
    import pandera.polars  # noqa: F401
    import polars  # noqa: F401
    import pyarrow  # noqa: F401
    import rich  # noqa: F401
    import typer  # noqa: F401


def test_every_imported_library_is_declared():
    """Each third-party package the library imports is a declared dependency (numpy was not)."""
    import ast
    import sys
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower().replace("-", "_") for d in declared}
    module_to_dist = {"yaml": "pyyaml", "great_expectations": "great_expectations", "open_data_contract_standard": "open_data_contract_standard"}
    used = set()
    for path in [*(root / "etl").rglob("*.py"), *(root / "flows").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                used |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                used.add(node.module.split(".")[0])
    third_party = {m for m in used if m not in sys.stdlib_module_names and m not in ("etl", "flows")}
    missing = sorted(m for m in third_party if module_to_dist.get(m, m).lower() not in names)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"

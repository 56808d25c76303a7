"""The pinned dependencies install and import together (the Prefect server import breaks with some FastAPI releases)."""

from importlib.metadata import version


def test_prefect_server_app_builds_with_the_pinned_fastapi():
    from prefect.server.api.server import create_app

    app = create_app(ephemeral=True)
    assert app is not None
    assert version("fastapi") == "0.142.2" and version("prefect") == "3.8.8"


def test_chosen_libraries_import():
    import deltalake  # noqa: F401
    import great_expectations  # noqa: F401
    import open_data_contract_standard  # noqa: F401
    import pandera.polars  # noqa: F401
    import polars  # noqa: F401
    import pyarrow  # noqa: F401
    import rich  # noqa: F401
    import typer  # noqa: F401

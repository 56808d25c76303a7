"""The Great Expectations suites (JSON); shipped as `etl.resources.expectations`."""

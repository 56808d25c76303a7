"""The loading package's names under their former module (callers written before the split import
from here). New code imports from `etl.loading` (or the module that defines the name).

One reason to change: none of its own; it follows `etl.loading.__all__`.
"""

from etl.loading import *
from etl.loading import __all__  # noqa: F401

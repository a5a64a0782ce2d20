"""saedb: an embedded database for the features that sparse autoencoders find in language models.

    import saedb
    with saedb.open("my.saedb") as db:
        db.ingest_dictionary("L2", "sae_L2")
        print(db.sql("TOP 5 ACTIVATIONS OF L2/7 CONTEXT 3"))
        df = db.top_activations("L2/7", k=20).df()

docs/PYTHON.md in the repository walks through it; docs/QUERY.md is the language reference.
"""

from ._saedb import (
    FORMAT_VERSION,
    Database,
    Error,
    InputError,
    QueryError,
    Result,
    StoreLocked,
    __version__,
    models_dir,
    open,
)

__all__ = [
    "open",
    "models_dir",
    "Database",
    "Result",
    "Error",
    "QueryError",
    "StoreLocked",
    "InputError",
    "FORMAT_VERSION",
    "__version__",
]

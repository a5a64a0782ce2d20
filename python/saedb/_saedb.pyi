"""Type stubs of saedb's native module (re-exported by `saedb`)."""

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str
FORMAT_VERSION: int

Feature = Union[str, Tuple[str, int]]
"""A feature: ``"L2/123"`` or ``("L2", 123)``."""

PathLike = Union[str, "os.PathLike[str]"]

ProgressCallback = Callable[[str, int, int], Any]
"""Called about ten times a second during a long ingest as ``progress(phase, done, total)``
(``total`` 0 when unknown). An exception it raises cancels the ingest (nothing is written) and is
re-raised. If it has a ``close()`` method, that is called at the end."""

Progress = Union[ProgressCallback, bool, None]
"""``None`` (default) or ``True``: a tqdm bar when tqdm is installed; ``False``: nothing."""

IngestReport = Dict[str, Any]
"""``{"kind": str, "path": str, "items": int, "unit": str, "seconds": float}``."""

class Error(Exception):
    """Base class of every error saedb raises."""

class QueryError(Error):
    """A statement failed. ``str()`` is the message with the source line and a caret."""

    line: int
    """1-based line of the offending text."""
    column: int
    """1-based column (in characters) of the offending text."""
    message: str
    """The message without position or caret."""
    hint: Optional[str]
    """What to write instead, when known."""
    kind: str
    """'syntax', 'invalid', 'not_found', 'unavailable' or 'engine'."""

class StoreLocked(Error):
    """The store is open for writing elsewhere; open it with ``read_only=True`` or close the other."""

    path: str

class InputError(Error):
    """An input or argument was rejected before anything was written; the store is as it was."""

    path: Optional[str]
    """The input file (or the source name of in-memory data), when there is one."""

class Result:
    """The result of a statement. ``repr()`` is the table the shell prints."""

    @property
    def columns(self) -> List[str]: ...
    @property
    def title(self) -> Optional[str]: ...
    @property
    def note(self) -> Optional[str]: ...
    @property
    def kind(self) -> str:
        """'top_activations', 'neighbours', 'features_at', 'describe', 'message', ..."""
    def __len__(self) -> int: ...
    def rows(self) -> List[Dict[str, Any]]:
        """The rows as dicts keyed by column, in the JSON shapes of docs/QUERY.md."""
    def json(self) -> str:
        """The rows as the CLI's ``--format json`` prints them."""
    def column(self, name: str) -> Union[npt.NDArray[np.int64], npt.NDArray[np.float64], List[Any]]:
        """One column; integers and numbers as a numpy array (not copied), else a list."""
    def df(self) -> Any:
        """A pandas DataFrame (needs pandas)."""
    def arrow(self) -> Any:
        """A pyarrow Table (needs pyarrow), via the Arrow C data interface."""
    def pl(self) -> Any:
        """A polars DataFrame (needs polars and pyarrow)."""

class Database:
    """An open store. A context manager; ``close()`` releases it."""

    @property
    def path(self) -> "os.PathLike[str]": ...
    @property
    def read_only(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Database": ...
    def __exit__(self, *args: Any) -> bool: ...
    def sql(self, text: str) -> Result:
        """Runs a statement or script (final ``;`` optional); the last statement's result."""
    def top_activations(
        self,
        feature: Feature,
        k: int = 20,
        context: int = 8,
        where: Optional[str] = None,
        exclude_special: bool = False,
    ) -> Result:
        """``TOP k ACTIVATIONS OF feature CONTEXT context [WHERE where] [EXCLUDE SPECIAL]``."""
    def features_at(
        self, doc: int, pos: int, dictionary: Optional[str] = None, limit: Optional[int] = None
    ) -> Result:
        """``FEATURES AT DOC doc POS pos [IN dictionary] [LIMIT limit]``."""
    def neighbours(
        self, feature: Feature, dictionary: Optional[str] = None, k: int = 10, exact: bool = False
    ) -> Result:
        """``NEIGHBOURS OF feature [IN dictionary] [EXACT] LIMIT k``."""
    def describe(self, feature: Feature) -> Result:
        """``DESCRIBE feature``."""
    def token_effects(self, feature: Feature, k: int = 10) -> Result:
        """``TOKEN EFFECTS OF feature LIMIT k``."""
    def chains(
        self,
        target: str,
        graph: str,
        *,
        source: Optional[str] = None,
        through: Optional[str] = None,
        min_length: Optional[int] = None,
        max_length: Optional[int] = None,
        exclude_errors: bool = False,
        limit: int = 10,
    ) -> Result:
        """``CHAINS TO "target" IN GRAPH graph [FROM source] [THROUGH through] ...``."""
    def label(self, feature: Feature, text: str) -> Result:
        """``LABEL feature AS "text"``."""
    def search_labels(self, text: str, limit: int = 20) -> Result:
        """``SEARCH LABELS "text" LIMIT limit``."""
    def features_of_text(
        self, text: str, dictionary: Optional[str] = None, k: int = 10
    ) -> Result:
        """``FEATURES OF TEXT "text" [IN dictionary] LIMIT k``: the text through the model the
        dictionary reads (``ingest_model``); rows ``pos, token, token_id, feature, value, label``."""
    def top_features_of_text(
        self, text: str, dictionary: Optional[str] = None, k: int = 10
    ) -> Result:
        """``TOP FEATURES OF TEXT "text" [IN dictionary] LIMIT k``: rows ``feature, max, pos,
        token, label``."""
    def activation_on_text(self, feature: Feature, text: str) -> Result:
        """``ACTIVATION OF feature ON TEXT "text"``: rows ``pos, token, value, fraction_of_max``."""
    def generate(
        self,
        prompt: str,
        *,
        max_tokens: Optional[int] = None,
        clamp: Optional[Union[Dict[Feature, float], Sequence[Tuple[Feature, float]]]] = None,
        steer: Optional[Union[Dict[Feature, float], Sequence[Tuple[Feature, float]]]] = None,
        times_max: bool = False,
        temperature: Optional[float] = None,
        seed: Optional[int] = None,
    ) -> Result:
        """``GENERATE "prompt" [MAX TOKENS n] [CLAMP f TO v [TIMES MAX]] ... [STEER f BY a] ...``:
        rows ``run`` ('default', then 'intervened' when there are edits), ``text``,
        ``token_ids``, ``logprobs`` (the new tokens only)."""
    def info(self) -> Dict[str, Any]:
        """What ``saedb info`` shows."""
    def document(self, doc: int) -> Dict[str, Any]:
        """``{"doc", "tokens", "token_ids", "text", "source"}`` of a stored document."""
    def ingest_dictionary(
        self,
        name: str,
        path: Optional[PathLike] = None,
        *,
        W_enc: Optional[npt.ArrayLike] = None,
        W_dec: Optional[npt.ArrayLike] = None,
        b_enc: Optional[npt.ArrayLike] = None,
        b_dec: Optional[npt.ArrayLike] = None,
        architecture: Optional[str] = None,
        k: Optional[int] = None,
        threshold: Optional[npt.ArrayLike] = None,
        hook: Optional[str] = None,
        apply_b_dec_to_input: bool = True,
        layer: Optional[int] = None,
        model: Optional[str] = None,
        defer_index: bool = False,
        progress: Progress = None,
    ) -> IngestReport:
        """A dictionary from a SAELens / sparsify folder or Gemma Scope file, or from arrays:
        ``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``, ``b_enc [d_sae]``, ``b_dec [d_in]``,
        ``architecture`` 'relu' | 'topk' (with ``k``) | 'jumprelu' (with ``threshold [d_sae]``)."""
    def ingest_tokens(
        self,
        path_or_docs: Union[PathLike, Sequence[Union[Dict[str, Any], Sequence[str]]]],
        *,
        progress: Progress = None,
    ) -> IngestReport:
        """Documents from a JSON-lines file, or a list of documents: dicts with ``doc``,
        ``tokens`` and optional ``token_ids``, ``text``, ``source``, or lists of token strings
        (document ids 0, 1, ...)."""
    def ingest_model(
        self,
        name: str,
        path: PathLike,
        *,
        tokenizer: Optional[PathLike] = None,
        progress: Progress = None,
    ) -> IngestReport:
        """Registers a model (a ``.gguf`` file or a HF safetensors folder) for the dictionaries
        whose hook it has: its path, file hash and configuration, never the weights."""
    def ingest_latents(
        self, dictionary: str, path: PathLike, *, progress: Progress = None
    ) -> IngestReport:
        """Pre-encoded latents (delphi's cache) from a file or split folder."""
    def ingest_activations(
        self,
        dictionary: str,
        *,
        doc: npt.ArrayLike,
        pos: npt.ArrayLike,
        feature: npt.ArrayLike,
        value: npt.ArrayLike,
        progress: Progress = None,
    ) -> IngestReport:
        """Sparse activations as COO arrays of equal length (uint32 doc, pos, feature; float32
        value; other dtypes are converted)."""
    def ingest_dense(
        self,
        dictionary: str,
        activations: Union[PathLike, npt.ArrayLike],
        doc_pos: Optional[npt.ArrayLike] = None,
        *,
        progress: Progress = None,
    ) -> IngestReport:
        """Dense activations ``[n, d_in]`` with ``doc_pos [n, 2]``, encoded by the dictionary;
        or a file holding both."""
    def ingest_vocab(
        self, path: PathLike, tensor: str, vocab: PathLike, *, progress: Progress = None
    ) -> IngestReport:
        """A model's embedding / unembedding matrix with its vocabulary, for token effects."""
    def ingest_graph(self, name: str, path: PathLike, *, progress: Progress = None) -> IngestReport:
        """A circuit-tracer attribution graph (JSON)."""

def models_dir() -> "os.PathLike[str]":
    """Where saedb looks for downloaded model files: ``$SAEDB_MODELS``, else
    ``$XDG_CACHE_HOME/saedb/models``, else ``~/.cache/saedb/models``."""

def open(path: PathLike, read_only: bool = False, *, progress: Progress = None) -> Database:
    """Opens the store at ``path`` (created if missing, unless ``read_only``). A store of an
    older format is upgraded by a writable open, reporting to ``progress``."""

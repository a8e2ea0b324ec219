"""Where notebooks and the demo get their client: real credentials when configured, otherwise the
embedded sandbox (simulated money), and say which."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .client import Client
from .config import Config, read_dotenv
from .ledger import Ledger

__all__ = ["adopt_port_keyed_rows", "connect", "data_dir", "embedded_sandbox", "sandbox_for"]

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

_lock = threading.Lock()
_sandbox: Any = None


def data_dir() -> Path:
    """The project's ``data/`` folder: ``$RECONKIT_DATA``, else the nearest ``data/`` holding
    ``sample/`` above the working directory (notebooks run from ``notebooks/``), else ``./data``."""
    if os.environ.get("RECONKIT_DATA"):
        return Path(os.environ["RECONKIT_DATA"])
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "data" / "sample").is_dir():
            return folder / "data"
    return here / "data"


def _dotenv() -> Path:
    """``.env`` in the working directory, else beside ``data/`` (the project root, where a
    notebook's kernel, started in ``notebooks/``, would not look)."""
    here = Path(".env")
    return here if here.is_file() else data_dir().parent / ".env"


def _credentials_configured() -> bool:
    values = {**read_dotenv(_dotenv()), **os.environ}
    return any(values.get(k) for k in ("CYBERSOURCE_MERCHANT_ID", "CYBERSOURCE_KEY_ID", "CYBERSOURCE_SECRET_KEY"))


def embedded_sandbox() -> Any:
    """The process-wide sandbox the notebooks use when no credentials are configured.

    It keeps its credits in ``data/sandbox.sqlite3`` (first copied from the shipped sample, so
    the sample settlement files' credits can be fetched), shared by every notebook, and its
    clock follows the wall clock (the daily cut-offs passed since are run on start).
    """
    global _sandbox
    from .sandbox import Sandbox

    with _lock:
        if _sandbox is None:
            folder = data_dir()
            db = folder / "sandbox.sqlite3"
            sample = folder / "sample" / "sandbox.sqlite3"
            folder.mkdir(parents=True, exist_ok=True)  # RECONKIT_DATA may name a folder not made yet
            if not db.exists() and sample.exists():
                shutil.copyfile(sample, db)
            # Notebooks run in separate kernels over the same file: salt ids with the process id.
            _sandbox = Sandbox(db=str(db), seed=42, id_salt=str(os.getpid())).start()
            # The sample's clock stopped when it was made; people issuing credits now want now.
            _sandbox.state.resume_real_time()
        return _sandbox


def sandbox_for(config: Config) -> Any:
    """The embedded sandbox when ``config`` points at it (it is running), else None."""
    sandbox = _sandbox
    return sandbox if sandbox is not None and config.base_url == sandbox.url else None


def connect(*, ledger: str | os.PathLike[str] | None = None, **client_options: Any) -> Client:
    """A client for the notebooks and the demo.

    With ``CYBERSOURCE_*`` credentials in the environment or ``.env`` (the working directory's,
    else the project root's) it uses them (test host unless told otherwise); without any, it
    starts the embedded sandbox. The ledger defaults to
    ``data/reconkit.sqlite3``.

    Raises
    ------
    reconkit.ConfigError
        When credentials are configured but incomplete or malformed (the field is named).
    """
    ledger = ledger if ledger is not None else data_dir() / "reconkit.sqlite3"
    if _credentials_configured():
        return Client(Config.from_env(dotenv=_dotenv()), ledger=str(ledger), **client_options)
    sandbox = embedded_sandbox()
    client = Client(sandbox.config, ledger=str(ledger), **client_options)
    adopt_port_keyed_rows(client.ledger, sandbox)
    return client


def _loopback_url(environment: str) -> bool:
    """Whether an environment text is a local address with a port (how the sandbox was keyed)."""
    try:
        parts = urlsplit(environment)
        return parts.scheme in ("http", "https") and parts.hostname in _LOOPBACK and parts.port is not None
    except ValueError:
        return False


def adopt_port_keyed_rows(ledger: Ledger, sandbox: Any) -> int:
    """File the ledger rows an earlier version keyed by one of ``sandbox``'s past addresses
    (``http://127.0.0.1:<port>``) under its :attr:`~reconkit.sandbox.Sandbox.identity`, when the
    sandbox's database holds their credit (by id, or by reference code when no id came back).

    Rows of another sandbox (another database, in memory, or a ``reconkit sandbox`` server) stay
    where they are; so does the fetch cache (see :meth:`Ledger.adopt`). Returns how many rows moved.
    """
    known: tuple[set[str], set[str]] | None = None

    def holds(credit_id: str | None, reference_code: str | None) -> bool:
        nonlocal known
        if known is None:
            rows = sandbox.credits()
            known = {r["id"] for r in rows}, {r["reference_code"] for r in rows if r["reference_code"]}
        ids, references = known
        return credit_id in ids if credit_id else reference_code in references

    return ledger.adopt(sandbox.identity, sandbox.credentials.merchant_id, legacy=_loopback_url, holds=holds)

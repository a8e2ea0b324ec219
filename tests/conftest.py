from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from reconkit.sandbox import Sandbox
from reconkit.sandbox.scenario import populate

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

# Hypothesis: `dev` (the default, and `make test-fast`) tries few examples so a run stays quick;
# `ci` (CI set, as in CI's environment, or HYPOTHESIS_PROFILE=ci) tries each test's full count.
# A test that wants another count than the profile's asks for it through `examples(n)`, with why.
# Neither has a deadline or the too-slow health check: both are wall-clock limits, and a shared
# 2-core machine under load would fail a correct test on them.
settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)


def examples(ci: int) -> int:
    """``max_examples`` for a test whose full count is ``ci``: that count under the ``ci`` profile,
    at most the profile's own under any other (so ``dev`` stays quick whatever the test asks for)."""
    return ci if PROFILE == "ci" else min(ci, settings.get_profile(PROFILE).max_examples)


_TIERS = {"test_browser": "browser", "test_sdk_interop": "sdk", "test_notebooks": "notebook",
          "test_spark_notebook": "notebook", "test_demo": "notebook", "test_spark_read": "spark",
          "test_spark_reconcile": "spark"}
"""The modules outside ``make test-fast``, by what they need: a real browser, the official SDK's
venv, a Jupyter kernel (the demo executes notebook 02) or a JVM."""

_SANDBOX_FIXTURES = {"sandbox", "client", "shared_sandbox", "shared_client", "world", "embedded"}
_SANDBOX_STARTERS = {"test_breaks_intake", "test_breaks_panel", "test_cli", "test_fetch", "test_investigate_app",
                     "test_investigation", "test_issue_app_state", "test_ledger_restart", "test_notebooks",
                     "test_record_run", "test_reporting", "test_sandbox", "test_sandbox_hostile",
                     "test_sandbox_parameters", "test_sdk_interop", "test_demo", "test_spark_notebook",
                     "test_reconcile::test_cli_reconcile_fetches_ids_from_the_embedded_sandbox",
                     "test_docs::test_every_block_runs", "test_docs::test_the_sandbox_commands_run_as_docs_sandbox_md_says"}
"""Modules (or ``module::test``) that start a loopback sandbox themselves: directly, in a child
process or through the embedded one. Elsewhere a test is marked ``sandbox`` when it asks for one of
:data:`_SANDBOX_FIXTURES`."""

_SLOW = {"test_breaks_concurrency", "test_ledger_restart", "test_breaks_state", "test_breaks_demo",
         "test_investigate_app::TestInvestigateApp", "test_investigation::TestInvestigation",
         "test_issue_app_state::TestIssueApp",
         "test_investigate_app::test_each_run_replaces_every_view_and_downloads_belong_to_their_run",
         "test_investigate_app::test_investigate_from_uploads_to_exports_equals_the_truth",
         "test_breakbook_view::test_view_workflow", "test_settlement_fuzz::test_a_thousand_mutants_keep_the_contract",
         "test_breaks_intake::test_withdrawing_the_latest_run_puts_back_what_it_touched",
         "test_breaks_panel::test_the_investigation_app_carries_its_breaks_from_run_to_run",
         "test_breaks_cli::test_the_command_and_the_app_give_the_same_result_and_record_the_same_digests",
         "test_cli::test_an_unreadable_settlement_line_reaches_the_reconciliation",
         "test_cli::test_on_the_shipped_samples_it_uses_the_samples_as_of",
         "test_cli::test_unfetched_ids_stop_the_report_unless_allowed",
         "test_cli::test_the_report_names_the_environment_the_credits_came_from",
         "test_cli::test_a_saved_frame_with_exactly_the_columns_help_names_is_reconciled",
         "test_cli::test_elsewhere_it_says_prominently_which_as_of_it_used",
         "test_unknown_outcomes::test_an_intent_left_by_a_killed_process_shows_as_unknown_on_the_next_start",
         "test_unknown_voids::test_a_void_whose_process_was_killed_on_the_wire_is_unknown_on_the_next_start"}
"""Modules (or ``module::test``) measured to take seconds each (child processes, many reconciliations,
state machines): ``make test`` runs them, ``make test-fast`` does not. A test can also say so itself
with ``@pytest.mark.slow``."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        tier = _TIERS.get(module)
        if tier:
            item.add_marker(tier)
        name = f"{module}::{item.nodeid.split('::')[1].partition('[')[0]}"  # the test function or class
        if {module, name} & _SANDBOX_STARTERS or _SANDBOX_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker("sandbox")
        if {module, name} & _SLOW:
            item.add_marker("slow")
        # Under `pytest -n` (make test, make test-fast) a module runs on one worker, so its module
        # fixtures (a JupyterLab, a world, a kernel) start once; both Spark modules share one JVM.
        item.add_marker(pytest.mark.xdist_group("spark" if tier == "spark" else module))


CARD = {"number": "4111111111111111", "expiration_month": "12", "expiration_year": "2031", "type": "001"}
SEED_SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files), valid for a day, made with
    the openssl CLI."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def sandbox():
    """A fresh sandbox of its own (seed 7, clock frozen at START): for tests that count requests,
    arm faults, move the clock or otherwise need state nobody else touched."""
    with Sandbox(start=START, seed=7) as sb:
        yield sb


@pytest.fixture(scope="session")
def _one_sandbox() -> Iterator[Sandbox]:
    with Sandbox(start=START, seed=13) as sb:
        yield sb


@pytest.fixture
def shared_sandbox(_one_sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session's one sandbox, for tests that need no state of their own.

    Whatever ran before, a test on it sees credits it did not issue: it asserts only on its own
    credits (its own reference codes / ids) or on differences it measures itself, never on totals.
    It must leave the sandbox as it found it (no faults, clock, link or delay changes); teardown
    checks that, so one test cannot change what the next one sees."""
    sb = _one_sandbox
    before = _settings_of(sb)
    yield sb
    changed = [name for name, value in _settings_of(sb).items() if value != before[name]]
    assert not changed, f"a test changed the shared sandbox's {', '.join(changed)}: use the `sandbox` fixture"


def _settings_of(sb: Sandbox) -> dict[str, object]:
    """What a test could change about a sandbox beyond the credits it holds."""
    f = sb.faults
    return {"clock": sb.now(), "faults": (id(f), {k: dict(v) for k, v in f.rates.items()}, f.latency_ms,
                                          f.jitter_ms, f.hang_seconds, f.retry_after),
            "profile": sb.profile, "self_link_status": sb.self_link_status, "tss_delay": sb.state.tss_delay,
            "search_lag": sb.state.search_lag,
            "portfolio_id": sb.portfolio_id, "credentials": sb.credentials}


@pytest.fixture
def shared_client(shared_sandbox, tmp_path):
    """A client of :func:`shared_sandbox` with a ledger of its own."""
    c = shared_sandbox.client(ledger=str(tmp_path / "ledger.sqlite3"), backoff_base=0.01, timeout=(2, 5))
    yield c
    c.close()


@pytest.fixture
def client(sandbox, tmp_path):
    c = sandbox.client(ledger=str(tmp_path / "ledger.sqlite3"), backoff_base=0.01, timeout=(2, 5))
    yield c
    c.close()


def kill_on_the_wire(sandbox, script: str, done: Callable[[], bool], **env: str) -> None:
    """Run ``script`` in a child Python given the sandbox's credentials (``RK_MERCHANT``, ``RK_KEY``,
    ``RK_SECRET``, ``RK_URL``, ``RK_IDENTITY``) and ``env``, and kill it once ``done()`` says the sandbox carried out
    its POST (whose answer a ``lost`` fault holds back)."""
    creds = sandbox.credentials
    env = dict(os.environ, RK_MERCHANT=creds.merchant_id, RK_KEY=creds.key_id, RK_SECRET=creds.secret_key,
               RK_URL=sandbox.url, RK_IDENTITY=sandbox.identity, **env)
    child = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=Path(__file__).parents[1])
    try:
        for _ in range(1200):
            if done() or child.poll() is not None:
                break
            time.sleep(0.1)
        assert child.poll() is None, "the child exited before it could be killed"
        child.kill()
    finally:
        child.wait()


ALL_KINDS = {"missing": 3, "amount": 3, "currency": 2, "duplicate": 2, "unexpected": 3, "voided_settled": 1,
             "next_day": 2, "debit_shared_id": 2, "whitespace": 3, "recon_id_missing": 2}
"""Every discrepancy kind at once."""


@pytest.fixture(scope="session")
def world():
    """A sandbox with 90 credits over three days (declines, voids) and those credits fetched back;
    built once per session, so tests only read it (settlement files are generated from it, not into it)."""
    with Sandbox(start=START.replace(hour=6), seed=21) as sb:
        client = sb.client()
        scenario = populate(sb, client, 90, seed=21, days=3, void_rate=0.08)
        credits = client.fetch_credits(scenario.credit_ids, progress=False).to_frame()
        yield sb, scenario, credits

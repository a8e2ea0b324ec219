"""Two processes (two notebooks) write to one break book at once: nothing is lost."""

from __future__ import annotations

import multiprocessing

from reconkit.breaks import BreakBook
from reconkit.errors import BreakConflictError

from .breaks_helpers import T0, credits_frame, days, run

NOTES = 40


def _worker(path: str, name: str, start, seen_version: int, results) -> None:
    book = BreakBook(path, analyst=name)
    try:
        start.wait(timeout=60)
        for i in range(NOTES):
            book.note("shared", f"{name} {i}")
            if i == NOTES // 2:
                book.assign("other", name)
        # Both act on the version they read before: exactly one may win.
        try:
            book.resolve("contested", "PROCESSOR_CORRECTED", note=f"{name} fixed it", expected_version=seen_version)
            results.put((name, "resolved"))
        except BreakConflictError as exc:
            results.put((name, f"conflict: {exc}"))
    finally:
        book.close()


def test_two_processes_lose_no_update(tmp_path):
    path = str(tmp_path / "ledger.sqlite3")
    with BreakBook(path, analyst="lead") as book:
        book.record(run(credits_frame({"shared": "1.00", "other": "2.00", "contested": "3.00"}), [], T0 + days(1)))
        seen = book.get("contested").version
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results = context.Queue()
    workers = [context.Process(target=_worker, args=(path, name, start, seen, results)) for name in ("ann", "bob")]
    for worker in workers:
        worker.start()
    outcomes = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0

    with BreakBook(path, analyst="lead") as book:
        notes = book.get("shared").notes
        assert len(notes) == 2 * NOTES
        for name in ("ann", "bob"):  # each writer's notes, all of them, in its own order
            assert [n.text for n in notes if n.author == name] == [f"{name} {i}" for i in range(NOTES)]
        assert list(outcomes.values()).count("resolved") == 1
        (loss,) = [o for o in outcomes.values() if o != "resolved"]
        assert loss.startswith(f"conflict: break credit:contested changed since version {seen} ")
        winner = next(name for name, outcome in outcomes.items() if outcome == "resolved")
        contested = book.get("contested")
        assert (contested.status, contested.resolved_by) == ("resolved", winner)
        assert [n.text for n in contested.notes] == [f"{winner} fixed it"]
        assert book.get("other").owner in ("ann", "bob")
        assert len([e for e in book.events("other") if e.kind == "assigned"]) == 2
        log = book.events()
        assert [e.seq for e in log] == list(range(1, len(log) + 1))
        assert book.stored_states() == book.replay()

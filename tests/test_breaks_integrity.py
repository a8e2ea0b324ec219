"""Identities that spelling cannot fake, and a tamper-evident log: the cases of issue 22, each
through the public API, with the tampering done by raw sqlite3 as someone with the file would."""

from __future__ import annotations

import hashlib
import json
import pickle
import sqlite3
import unicodedata

import pandas as pd
import pytest

from reconkit.breakbook_store import GENESIS, TRIGGERS
from reconkit.breaks import SYSTEM, BreakBook, Verification
from reconkit.errors import BookIntegrityError, BreakBookError, IdentityError
from reconkit.identity import display_name, identity_key, os_login, same_person

from .breaks_helpers import T0, credits_frame, days, run


@pytest.fixture
def resolved(tmp_path):
    """A book whose one break ann resolved."""
    with BreakBook(tmp_path / "ledger.sqlite3", analyst="ann") as book:
        book.record(run(credits_frame({"c1": "10.00", "c2": "20.00"}), [], T0 + days(1)))
        book.resolve("c1", "TIMING", status="timing_difference", by="ann")
        yield book


# --- identities -------------------------------------------------------------------------------

SAME_AS_ANN = [
    ("capitalised", "Ann", BreakBookError),
    ("upper case", "ANN", BreakBookError),
    ("zero-width space", "ann\u200b", BreakBookError),
    ("Cyrillic a", "\u0430nn", IdentityError),
    ("fullwidth", "\uff41\uff4e\uff4e", BreakBookError),
    ("soft hyphen", "an\u00adn", BreakBookError),
    ("combining acute", "ann\u0301", BreakBookError),
    ("spaces around", "  ann ", BreakBookError),
    ("zero-width joiner inside", "a\u200dnn", BreakBookError),
]


@pytest.mark.parametrize(("case", "name", "error"), SAME_AS_ANN, ids=[c[0] for c in SAME_AS_ANN])
def test_ann_cannot_sign_off_her_own_resolution_under_another_spelling(resolved, case, name, error):
    with pytest.raises(error) as refused:
        resolved.sign_off("c1", by=name)
    if error is IdentityError:
        assert "mixes scripts" in str(refused.value)
    else:
        assert "cannot also sign it off" in str(refused.value)
    assert resolved.get("c1").signed_off_by is None
    assert resolved.sign_off("c1", by="bob").signed_off_by == "bob"


def test_the_identity_rules_as_a_table():
    cases = [  # name, kept as, compared as
        ("Ann", "Ann", "ann"), ("\uff21\uff4e\uff4e", "Ann", "ann"), ("an\u00adn", "ann", "ann"),
        ("ann\u0301", "ann\u0301", "ann"), ("Jos\u00e9  Garc\u00eda", "Jos\u00e9 Garc\u00eda", "jose garcia"),
        ("\u5c71\u7530 \u592a\u90ce", "\u5c71\u7530 \u592a\u90ce", "\u5c71\u7530 \u592a\u90ce"),  # Han only
        ("\u5c71\u7530 \u30a2\u30f3", "\u5c71\u7530 \u30a2\u30f3", "\u5c71\u7530 \u30a2\u30f3"),  # Han + Katakana
        ("\u0430\u043d\u043d\u0430", "\u0430\u043d\u043d\u0430", "\u0430\u043d\u043d\u0430"),  # Cyrillic only
    ]
    for name, kept, compared in cases:
        assert display_name(name) == unicodedata.normalize("NFKC", kept), name
        assert identity_key(name) == compared, name
    for bad, why in [("\u200b\u00ad", "empty"), ("\u0430nn", "mixes scripts"), ("ann\x07", "control character"),
                     ("\u0391nn", "mixes scripts")]:  # Greek capital alpha
        with pytest.raises(IdentityError, match=why):
            display_name(bad)
    assert same_person("ANN", "a\u200bnn") and not same_person("ann", "anna") and not same_person(None, "ann")


def test_names_are_kept_visible_and_beside_the_os_login(resolved):
    resolved.assign("c2", "\uff42\uff4f\uff42", by="c\u200barol")
    resolved.note("c2", "asked the processor", by="CAROL")
    state = resolved.get("c2")
    assert state.owner == "bob" and state.notes[-1].author == "CAROL"
    audit = resolved.audit()
    actions = audit[audit["event"].isin(["assigned", "noted", "resolved"])]
    assert actions["who"].tolist() == ["ann", "carol", "CAROL"]
    assert actions["login"].tolist() == [os_login()] * 3  # acting as someone else shows
    assert audit[audit["who"] == SYSTEM]["login"].isna().all()
    assert resolved.open(owner="BOB")["key"].tolist() == ["credit:c2"]


def test_refused_names(resolved):
    with pytest.raises(IdentityError, match="book's own runs"):
        resolved.assign("c2", "ann", by="RECONKIT")
    with pytest.raises(IdentityError, match="mixes scripts"):
        resolved.assign("c2", "b\u043eb")  # Cyrillic o
    with pytest.raises(IdentityError, match="empty"):
        resolved.note("c2", "hello", by="\u200b")
    assert resolved.get("c2").version == 2  # nothing was written


# --- the chain ------------------------------------------------------------------------------------

def test_each_event_chains_to_the_one_before_by_the_documented_encoding(resolved):
    events = resolved.events()
    previous = GENESIS
    for event in events:
        encoded = json.dumps([event.seq, event.key, event.kind, event.at, event.actor, event.run_id, event.data],
                             sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        previous = hashlib.sha256(previous.encode() + b"\n" + encoded).hexdigest()
        assert event.hash == previous
    proof = resolved.verify()
    assert proof == Verification(events=len(events), breaks=2, head=previous)
    assert resolved.audit()["hash"].tolist() == [e.hash for e in events]


def _sql(book: BreakBook, *statements: str) -> None:
    conn = sqlite3.connect(book._store.path)  # someone with the file, not the library
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def _refuses_to_act(book: BreakBook, tmp_path) -> BookIntegrityError:
    """Every call that acts is refused with the same error; export_audit still works."""
    with BreakBook(book._store.path, analyst="zoe") as fresh:
        with pytest.raises(BookIntegrityError) as caught:
            fresh.verify()
        for act in (lambda: fresh.record(run(credits_frame({"c1": "10.00"}), [], T0 + days(2))),
                    lambda: fresh.assign("c2", "zoe"), lambda: fresh.note("c2", "x"),
                    lambda: fresh.resolve("c2", "TIMING"), lambda: fresh.sign_off("c1", by="bob"),
                    lambda: fresh.reopen("c1", "why"), lambda: fresh.withdraw(1, "why")):
            with pytest.raises(BookIntegrityError):
                act()
        exported = pd.read_csv(fresh.export_audit(tmp_path / "what_is_there.csv"), dtype=str)
        assert len(exported) == len(fresh.events())
    assert "export_audit" in str(caught.value)
    again = pickle.loads(pickle.dumps(caught.value))
    assert (again.event_id, again.key, str(again)) == (caught.value.event_id, caught.value.key, str(caught.value))
    return caught.value


@pytest.mark.parametrize("statement", [
    "INSERT OR REPLACE INTO break_events (seq, break_key, kind, at, actor, run_id, data, hash) "
    "SELECT seq, break_key, kind, at, 'mallory', run_id, data, hash FROM break_events WHERE kind='resolved'",
    "REPLACE INTO break_events (seq, break_key, kind, at, actor, run_id, data, hash) "
    "SELECT seq, break_key, kind, at, 'mallory', run_id, data, hash FROM break_events WHERE kind='resolved'",
    "INSERT INTO break_events (seq, break_key, kind, at, actor, run_id, data, hash) "
    "SELECT seq, break_key, kind, at, 'mallory', run_id, data, hash FROM break_events WHERE kind='resolved' "
    "ON CONFLICT (seq) DO UPDATE SET actor=excluded.actor",
])
def test_rewriting_an_actor_is_refused_and_caught_once_the_guard_is_gone(resolved, tmp_path, statement):
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        _sql(resolved, statement)
    assert [e.actor for e in resolved.events()][-1] == "ann"
    _sql(resolved, "DROP TRIGGER break_events_no_replace", "DROP TRIGGER break_events_no_update", statement)
    assert [e.actor for e in resolved.events()][-1] == "mallory"  # the rewrite went through
    error = _refuses_to_act(resolved, tmp_path)
    resolved_seq = next(e.seq for e in resolved.events() if e.kind == "resolved")
    assert error.event_id == resolved_seq and error.key is None
    assert f"event {resolved_seq} (resolved of credit:c1 by mallory) does not chain" in str(error)


def test_a_break_hidden_in_break_state_is_caught(resolved, tmp_path):
    _sql(resolved, "UPDATE break_state SET status='resolved' WHERE break_key='credit:c2'")
    assert resolved.open().empty  # hidden from the queue ...
    assert [e.kind for e in resolved.events("c2")] == ["opened"]  # ... while its events say open
    error = _refuses_to_act(resolved, tmp_path)
    assert error.key == "credit:c2" and error.event_id is None
    assert "break_state says status 'resolved'" in str(error)


def test_a_break_state_rewritten_whole_is_caught(resolved, tmp_path):
    state = resolved.get("c2").to_dict() | {"status": "resolved", "reason": "FALSE_BREAK"}
    _sql(resolved, f"UPDATE break_state SET status='resolved', state='{json.dumps(state)}' "
                   "WHERE break_key='credit:c2'")
    error = _refuses_to_act(resolved, tmp_path)
    assert error.key == "credit:c2" and "status, reason differ" in str(error)


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_a_dropped_guard_is_not_recreated_and_is_caught(resolved, tmp_path, name):
    _sql(resolved, f"DROP TRIGGER {name}")
    with BreakBook(resolved._store.path) as reopened:  # opening the book does not put it back
        assert name not in reopened._store.trigger_sql()
    error = _refuses_to_act(resolved, tmp_path)
    assert f"guard trigger {name} on break_events was dropped" in str(error)
    assert error.event_id is None and error.key is None


def test_an_altered_or_extra_trigger_is_caught(resolved, tmp_path):
    _sql(resolved, "DROP TRIGGER break_events_no_delete",
         "CREATE TRIGGER break_events_no_delete BEFORE DELETE ON break_events WHEN 0 "
         "BEGIN SELECT RAISE(ABORT, 'break_events is append-only'); END")
    assert "was altered" in str(_refuses_to_act(resolved, tmp_path))


def test_the_last_event_removed_is_caught(resolved, tmp_path):
    _sql(resolved, "DROP TRIGGER break_events_no_delete",
         "DELETE FROM break_events WHERE seq=(SELECT MAX(seq) FROM break_events)")
    error = _refuses_to_act(resolved, tmp_path)
    assert error.event_id == 3 and "gone from the log" in str(error)


def test_a_book_that_is_sound_keeps_working_after_another_process_writes(resolved, tmp_path):
    resolved.verify()
    with BreakBook(resolved._store.path, analyst="bob") as other:
        other.sign_off("c1")
    assert resolved.note("c1", "seen").version == 5  # the other's event is proved incrementally
    _sql(resolved, "UPDATE break_state SET owner='mallory' WHERE break_key='credit:c2'")
    with pytest.raises(BookIntegrityError, match="credit:c2"):
        resolved.assign("c2", "bob")  # this object proved the log before; the break acted on is checked


# --- a book from before the chain -------------------------------------------------------------------

_OLD_SCHEMA = """
CREATE TABLE break_runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, recorded_at TEXT NOT NULL, analyst TEXT NOT NULL,
    as_of TEXT NOT NULL, parameters TEXT NOT NULL, inputs TEXT NOT NULL);
CREATE TABLE break_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, break_key TEXT NOT NULL, kind TEXT NOT NULL,
    at TEXT NOT NULL, actor TEXT NOT NULL, run_id INTEGER, data TEXT NOT NULL);
CREATE TRIGGER break_events_no_update BEFORE UPDATE ON break_events
BEGIN SELECT RAISE(ABORT, 'break_events is append-only'); END;
CREATE TRIGGER break_events_no_delete BEFORE DELETE ON break_events
BEGIN SELECT RAISE(ABORT, 'break_events is append-only'); END;
CREATE TABLE break_state (break_key TEXT PRIMARY KEY, status TEXT NOT NULL, owner TEXT, version INTEGER NOT NULL,
    state TEXT NOT NULL);
"""


def test_a_book_from_before_the_chain_is_chained_once_on_open(tmp_path):
    path = tmp_path / "old.sqlite3"
    with BreakBook(tmp_path / "new.sqlite3", analyst="ann") as model:  # the same history, to copy rows from
        model.record(run(credits_frame({"c1": "10.00"}), [], T0 + days(1)))
        model.assign("c1", "bob")
        events, states = model.events(), model._store.state_rows()
    conn = sqlite3.connect(path)
    conn.executescript(_OLD_SCHEMA)
    conn.execute("INSERT INTO break_runs VALUES (1, ?, 'ann', ?, '{}', '{}')", (T0.isoformat(), T0.isoformat()))
    for e in events:
        conn.execute("INSERT INTO break_events VALUES (?,?,?,?,?,?,?)",
                     (e.seq, e.key, e.kind, e.at, e.actor, e.run_id, json.dumps(e.data, sort_keys=True)))
    for key, status, owner, version, state in states:
        conn.execute("INSERT INTO break_state VALUES (?,?,?,?,?)", (key, status, owner, version, json.dumps(state)))
    conn.commit()
    conn.close()
    with BreakBook(path, analyst="ann") as book:
        chain = book._store.meta("chain")
        assert chain["chained_on_open"] == 2 and chain["head"] == events[-1].hash
        assert book.verify().head == events[-1].hash  # the same events hash the same
        assert set(book._store.trigger_sql()) == set(TRIGGERS)
        book.note("c1", "carried on")
    with BreakBook(path, analyst="ann") as again:  # chained once: opening again changes nothing
        assert again._store.meta("chain") == chain and again.verify().events == 3

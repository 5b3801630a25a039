"""Repeated work in a connection: statement shapes and endpoints done again and again."""

from __future__ import annotations

import pytest

from asgispy.analysis.repeats import Repeat, call_target, repeats, statement_shape
from asgispy.model.connection import Connection
from asgispy.model.inside import Inside, LogRecord, OutgoingCall, Query
from tests.inside_sessions import BOOK, connection, connection_doc

SHAPE = "SELECT * FROM book WHERE id = ?"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM book WHERE id = 3",
        "select *  from book\n  where id=7;",
        "SELECT * FROM book WHERE id = ?",
        "SELECT * FROM book WHERE id = :id_1",
        "SELECT * FROM book WHERE id = %s",
        "SELECT * FROM book WHERE id = %(id)s",
        "SELECT * FROM book WHERE id = $1",
        "SELECT * FROM book WHERE id = -12.5",
        "SELECT * FROM book WHERE id = 'x'  -- by hand",
        "SELECT * /* hint */ FROM book WHERE id = 4",
    ],
)
def test_runs_of_one_statement_share_a_shape(sql: str) -> None:
    assert statement_shape(sql) == SHAPE


def test_lists_strings_and_rows_become_one_placeholder() -> None:
    assert (
        statement_shape("SELECT a.id FROM a WHERE a.b IN (1, 2, 3) AND t = 'it''s'")
        == "SELECT a.id FROM a WHERE a.b IN (?) AND t = ?"
    )
    assert statement_shape("select x from a where b in (?,?)") == "SELECT x FROM a WHERE b IN (?)"
    assert statement_shape("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')") == statement_shape(
        "insert into t (a,b) values ($1, $2)"
    )
    assert statement_shape("SELECT count(*) FROM t") == "SELECT COUNT(*) FROM t"


def test_different_statements_keep_different_shapes() -> None:
    assert statement_shape("SELECT * FROM book WHERE id = 1") != statement_shape(
        "SELECT * FROM author WHERE id = 1"
    )
    assert statement_shape("SELECT a - 3 FROM t") == "SELECT a - ? FROM t"
    assert statement_shape('SELECT "Book".id FROM "Book"') == 'SELECT "Book".id FROM "Book"'


def test_a_call_target_drops_the_query_and_reads_ids_in_the_path() -> None:
    def target(url: str, method: str = "get") -> str:
        return call_target(OutgoingCall(method=method, url=url))

    assert target("https://api.example/users/12?full=1") == "GET https://api.example/users/{id}"
    assert target("https://api.example/users/7") == "GET https://api.example/users/{id}"
    assert (
        target("http://h/o/3f2a1c4e-1111-2222-3333-444455556666/items", "POST")
        == "POST http://h/o/{id}/items"
    )
    assert target("https://api.example") == "GET https://api.example/"
    assert target("https://api.example/users/me") == "GET https://api.example/users/me"


def conn_with(inside: list[Inside]) -> Connection:
    return Connection.from_document(connection_doc("t0-1", "/x", inside))


def test_forty_queries_of_one_shape_are_an_n_plus_one() -> None:
    found = repeats(connection("/checkout"))
    assert found == [
        Repeat(
            kind="sql", what=statement_shape(BOOK.format(1)), count=40, total=pytest.approx(0.12), first=0.41
        )
    ]
    assert (
        found[0].words()
        == "SELECT book.id, book.title FROM book WHERE book.id = ? \u00d740, 120 ms in all — N+1?"
    )


def test_thresholds_five_statements_and_three_calls() -> None:
    four = [Query(t=n * 0.1, statement=f"SELECT * FROM book WHERE id = {n}", duration=0.01) for n in range(4)]
    assert repeats(conn_with(four)) == []
    five = [*four, Query(t=0.5, statement="SELECT * FROM book WHERE id = 99", duration=0.01)]
    assert [(r.kind, r.what, r.count) for r in repeats(conn_with(five))] == [("sql", SHAPE, 5)]
    assert repeats(conn_with(five), queries=6) == []

    calls = [OutgoingCall(t=n * 0.1, url=f"https://api.example/users/{n}", duration=0.02) for n in range(3)]
    other = [OutgoingCall(t=1.0, method="POST", url="https://api.example/users/1")]  # another method
    logs = [LogRecord(t=0.2, message="SELECT * FROM book WHERE id = 1") for _ in range(9)]  # not SQL
    found = repeats(conn_with([*calls, *other, *logs, *five]))
    assert [(r.kind, r.what, r.count) for r in found] == [
        ("sql", SHAPE, 5),
        ("http", "GET https://api.example/users/{id}", 3),
    ]
    assert found[1].total == pytest.approx(0.06) and found[1].first == 0.0
    assert found[1].words().endswith("\u00d73, 60 ms in all — one call per item?")
    assert repeats(conn_with(calls[:2])) == []


def test_nothing_inside_is_nothing_repeated() -> None:
    assert repeats(connection("/plain")) == [] and repeats(connection("/quiet")) == []

"""Streamed bodies into records: SSE per the HTML standard's event stream rules, NDJSON per line.

Besides rule-by-rule cases, hypothesis checks that how a stream is cut into chunks never changes
its records (cuts inside UTF-8 characters and between CR and LF included) and that the
byte-level SSE parser agrees with a literal, text-level reading of the standard. A real
Starlette app's streamed response, captured through raw ASGI, is parsed at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import time
from collections.abc import AsyncIterator, MutableMapping, Sequence
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from asgispy.analysis.streams import (
    NDJSONParser,
    SSEParser,
    StreamRecord,
    parse_stream,
    parser_for,
    stream_kind,
)


def sse(*chunks: bytes, close: bool = True) -> list[StreamRecord]:
    """Feed chunks at times 1.0, 2.0, ... and close at the last one."""
    parser = SSEParser()
    records: list[StreamRecord] = []
    for n, chunk in enumerate(chunks, start=1):
        records += parser.feed(chunk, float(n))
    if close:
        records += parser.close()
    return records


def events(*chunks: bytes) -> list[StreamRecord]:
    return [r for r in sse(*chunks) if r.kind == "event"]


def datas(*chunks: bytes) -> list[str]:
    return [r.data for r in events(*chunks)]


def timeless(records: Sequence[StreamRecord]) -> list[StreamRecord]:
    return [dataclasses.replace(r, t=0.0) for r in records]


# SSE: line ends ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stream",
    [
        b"data: a\ndata: b\n\ndata: c\n\n",
        b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n",
        b"data: a\rdata: b\r\rdata: c\r\r",
        b"data: a\r\ndata: b\r\rdata: c\n\r\n",
        b"data: a\rdata: b\n\r\ndata: c\r\n\n",
    ],
)
def test_lf_crlf_and_cr_line_ends_and_their_mixes(stream: bytes) -> None:
    assert datas(stream) == ["a\nb", "c"]


def test_cr_then_lf_in_the_next_chunk_is_one_line_end() -> None:
    # Were the LF read as a second, empty line, "a" would be dispatched alone.
    assert datas(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == ["a\nb"]


def test_cr_at_chunk_end_survives_empty_chunks() -> None:
    assert datas(b"data: a\r", b"", b"", b"\ndata: b\n\n") == ["a\nb"]


def test_cr_at_chunk_end_then_another_line_end() -> None:
    assert datas(b"data: a\r", b"\rdata: b\r", b"\r") == ["a", "b"]
    assert datas(b"data: a\r", b"\n", b"\n") == ["a"]


def test_only_the_lf_right_after_a_cr_is_absorbed() -> None:
    # CR | LF LF: the first LF completes the CR LF, the second is the blank line.
    assert datas(b"data: a\r", b"\n\ndata: b\n\n") == ["a", "b"]


def test_lone_cr_and_lf_in_values_are_line_ends() -> None:
    assert datas(b"data: a\rb\n\n") == ["a"]  # "b" is a field named "b"


# SSE: decoding --------------------------------------------------------------------------------


def test_leading_bom_is_dropped() -> None:
    assert datas(b"\xef\xbb\xbfdata: x\n\n") == ["x"]


def test_bom_split_over_chunks_is_dropped() -> None:
    assert datas(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == ["x"]


def test_only_one_bom_and_only_at_the_start() -> None:
    # A second BOM belongs to the field name, which is then unknown.
    assert datas(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []
    assert datas(b"data: x\n\n\xef\xbb\xbfdata: y\n\n") == ["x"]
    assert datas(b"data: \xef\xbb\xbfx\n\n") == ["\ufeffx"]


def test_multibyte_characters_split_over_chunks() -> None:
    stream = "data: é😀€\n\n".encode()
    for cut in range(len(stream) + 1):
        assert datas(stream[:cut], stream[cut:]) == ["é😀€"]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert datas(b"data: a\xffb\xe2\x82\n\n") == ["a\ufffdb\ufffd"]
    assert datas(b"data: \xe2\x82", b"\n\n") == ["\ufffd"]


# SSE: fields ----------------------------------------------------------------------------------


def test_multi_line_data_is_joined_with_lf() -> None:
    assert datas(b"data: one\ndata: two\ndata: three\n\n") == ["one\ntwo\nthree"]


def test_only_one_leading_space_is_removed() -> None:
    assert datas(b"data:  two spaces\n\n") == [" two spaces"]
    assert datas(b"data:none\n\n") == ["none"]
    assert datas(b"data: \n\n") == [""]
    assert datas(b"data:\t tab\n\n") == ["\t tab"]


def test_value_splits_at_the_first_colon_only() -> None:
    assert datas(b"data: a: b:c\n\n") == ["a: b:c"]
    assert datas(b"data::x\n\n") == [":x"]


def test_field_without_colon_has_empty_value() -> None:
    assert datas(b"data\n\n") == [""]
    assert datas(b"data\ndata\n\n") == ["\n"]
    assert datas(b"data: a\ndata\n\n") == ["a\n"]
    [record] = events(b"event: ping\nevent\ndata: x\n\n")
    assert record.event == "message"


def test_data_field_with_trailing_space_is_not_a_field_without_colon() -> None:
    # "data " is a field named "data " (unknown), not "data".
    assert datas(b"data \ndata: x\n\n") == ["x"]


def test_unknown_fields_and_other_cases_are_ignored() -> None:
    assert datas(b"Data: x\nfoo: bar\nDATA: y\ndata: z\n\n") == ["z"]


def test_event_type_default_set_and_reset_after_dispatch() -> None:
    records = events(b"event: add\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n")
    assert [r.event for r in records] == ["add", "message", "message"]


def test_empty_data_dispatches_nothing_and_resets_the_event_type() -> None:
    records = events(b"event: add\n\ndata: x\n\n")
    assert [(r.event, r.data) for r in records] == [("message", "x")]


def test_id_persists_until_changed_and_empty_id_clears_it() -> None:
    records = events(b"data: a\n\nid: 1\ndata: b\n\ndata: c\n\nid\ndata: d\n\nid: 2\ndata: e\n\n")
    assert [r.id for r in records] == [None, "1", "1", "", "2"]


def test_id_containing_nul_is_ignored() -> None:
    parser = SSEParser()
    records = parser.feed(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", 0.0)
    assert [r.id for r in records] == ["1", "1"]
    assert parser.last_event_id == "1"


def test_id_updates_even_when_nothing_is_dispatched() -> None:
    parser = SSEParser()
    assert [r.kind for r in parser.feed(b"id: 7\n\n", 0.0)] == ["control"]
    assert parser.last_event_id == "7"
    [record] = parser.feed(b"data: x\n\n", 1.0)
    assert record.id == "7"


def test_id_set_after_data_within_the_event_applies_to_it() -> None:
    [record] = events(b"data: x\nid: 9\n\n")
    assert record.id == "9"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"1500", 1500),
        (b"0", 0),
        (b"007", 7),
        (b"", None),
        (b"15x", None),
        (b"-1", None),
        (b"+1", None),
        (b"1.5", None),
        (b" 15", None),  # the one leading space is removed, a second is not a digit
        ("١٢".encode(), None),  # Arabic-Indic digits are digits, but not ASCII ones
        ("²".encode(), None),
    ],
)
def test_retry_only_from_ascii_digits(value: bytes, expected: int | None) -> None:
    parser = SSEParser()
    [record] = parser.feed(b"retry: " + value + b"\ndata: x\n\n", 0.0)
    assert record.retry == expected
    assert parser.reconnection_time == expected


def test_retry_belongs_to_its_event_only() -> None:
    parser = SSEParser()
    records = parser.feed(b"retry: 100\ndata: a\n\ndata: b\n\nretry: 200\n\ndata: c\n\n", 0.0)
    assert [(r.kind, r.retry) for r in records] == [
        ("event", 100),
        ("event", None),
        ("control", 200),
        ("event", None),
    ]
    assert parser.reconnection_time == 200


# SSE: blocks without data ----------------------------------------------------------------------


def test_a_retry_only_block_is_a_control_record_at_its_blank_line() -> None:
    records = sse(b"data: a\n\nretry: 25", b"00\n", b"\ndata: b\n\n")
    assert [(r.kind, r.data, r.retry, r.t, r.index) for r in records] == [
        ("event", "a", None, 1.0, 0),
        ("control", "", 2500, 3.0, 1),
        ("event", "b", None, 3.0, 2),
    ]
    control = records[1]
    assert (control.id, control.event, control.is_json, control.incomplete) == (None, "", False, False)
    assert control.size == len(b"retry: 2500\n")


def test_an_id_only_block_is_a_control_record_and_the_id_holds_for_later_events() -> None:
    records = sse(b"id: 1\ndata: a\n\n", b"id: 7\r\n\r", b"\ndata: b\n\n")
    assert [(r.kind, r.id, r.t) for r in records] == [
        ("event", "1", 1.0),
        ("control", "7", 2.0),
        ("event", "7", 3.0),
    ]
    assert records[1].size == len(b"id: 7\r\n")


def test_an_empty_id_block_clears_the_id_visibly() -> None:
    parser = SSEParser()
    records = parser.feed(b"id: 4\ndata: a\n\nid\n\nid:\n\ndata: b\n\n", 0.0)
    assert [(r.kind, r.id) for r in records] == [
        ("event", "4"),
        ("control", ""),
        ("control", ""),
        ("event", ""),
    ]
    assert parser.last_event_id == ""


def test_a_control_record_names_only_what_its_block_set() -> None:
    # A retry-only block after an id: the id stays in effect, but this block did not send one.
    [_, retry_only, both] = sse(b"id: 3\ndata: a\n\n", b"retry: 10\n\n", b"id: 4\nretry: 20\nid: 5\n\n")
    assert (retry_only.kind, retry_only.id, retry_only.retry) == ("control", None, 10)
    # Both fields in one block: one record, as the block is one unit, the last value of each.
    assert (both.kind, both.id, both.retry, both.t) == ("control", "5", 20, 3.0)


@pytest.mark.parametrize(
    "block",
    [
        b"event: ping\n\n",  # dispatches nothing and changes nothing
        b"retry: 2.5s\n\n",  # not ASCII digits: ignored
        b"retry\n\n",
        b"id: 1\x002\n\n",  # a NUL in an id: ignored
        b"foo: bar\n\n",
        b"event: ping\nretry: x\nid: \x00\n\n",
    ],
)
def test_a_block_that_changes_nothing_is_no_record(block: bytes) -> None:
    parser = SSEParser()
    assert parser.feed(block, 0.0) == []
    assert (parser.last_event_id, parser.reconnection_time) == (None, None)


def test_ignored_fields_beside_a_valid_one_do_not_show() -> None:
    [record] = sse(b"event: ping\nid: 6\nretry: soon\nid: 7\x00\n\n")
    assert (record.kind, record.event, record.id, record.retry) == ("control", "", "6", None)


def test_a_block_without_data_the_stream_ends_inside_is_an_incomplete_event() -> None:
    # Its blank line never came: whether data would have followed is unknown.
    [record] = sse(b"retry: 100\nid: 2\n")
    assert (record.kind, record.id, record.retry, record.incomplete) == ("event", "2", 100, True)


# SSE: comments ---------------------------------------------------------------------------------


def test_comments_are_records_at_their_line_end() -> None:
    records = sse(b": keep", b"-alive\n", b"data: a\n: inside\ndata: b\n", b"\n", b":\n:  two\n")
    assert [(r.kind, r.data, r.t) for r in records] == [
        ("comment", "keep-alive", 2.0),
        ("comment", "inside", 3.0),
        ("event", "a\nb", 4.0),
        ("comment", "", 5.0),
        ("comment", " two", 5.0),
    ]
    assert [r.index for r in records] == [0, 1, 2, 3, 4]
    assert all(r.id is None and r.event == "" for r in records if r.kind == "comment")


def test_a_comment_does_not_end_or_dispatch_an_event() -> None:
    assert datas(b"data: a\n:\n\n") == ["a"]
    assert datas(b": only a comment\n\n") == []


# SSE: times, sizes, indexes --------------------------------------------------------------------


def test_event_time_is_that_of_the_chunk_with_its_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n", 1.0) == []
    assert parser.feed(b"data: b\n", 2.0) == []
    [first] = parser.feed(b"\ndata: c\n", 3.0)
    assert (first.data, first.t) == ("a\nb", 3.0)
    [second, third] = parser.feed(b"\ndata: d\n\n", 4.5)
    assert [(second.data, second.t), (third.data, third.t)] == [("c", 4.5), ("d", 4.5)]


def test_cr_ends_the_blank_line_so_its_chunk_gives_the_time() -> None:
    parser = SSEParser()
    [record] = parser.feed(b"data: a\r\n\r", 1.0)
    assert record.t == 1.0
    assert parser.feed(b"\n", 2.0) == []


def test_sizes_count_bytes_up_to_the_completing_line_end() -> None:
    assert [r.size for r in sse(b"data: x\n\n")] == [len(b"data: x\n")]
    assert [r.size for r in sse(b"data: x\r\n\r\n")] == [len(b"data: x\r\n")]
    assert [r.size for r in sse(b"data: x\r", b"\n\r", b"\n")] == [len(b"data: x\r\n")]
    crlf_event = b"event: e\r\ndata: \xc3\xa9\r\n"
    assert [r.size for r in sse(crlf_event + b"\r\n")] == [len(crlf_event)]
    assert [r.size for r in sse(b": ping\r\n")] == [len(b": ping")]
    assert [r.size for r in sse(b"\xef\xbb\xbfdata: x\n\n")] == [3 + len(b"data: x\n")]
    # A comment inside an event is its own record, not part of the event's bytes.
    assert [r.size for r in sse(b"data: a\n: c\ndata: b\n\n")] == [len(b": c"), len(b"data: a\ndata: b\n")]


def test_bytes_fed_counts_everything() -> None:
    parser = SSEParser()
    for chunk in (b"data: a\r", b"", b"\n\r\n", b": x"):
        parser.feed(chunk, 0.0)
    parser.close()
    assert parser.bytes_fed == len(b"data: a\r\n\r\n: x")


# SSE: JSON data ---------------------------------------------------------------------------------


def test_json_data_is_parsed() -> None:
    records = events(
        b'data: {"a": [1, 2]}\n\ndata: null\n\ndata: hello\n\ndata:  12\n\ndata: tru\n\n'
        b'data: {\ndata: "b": true}\n\ndata\n\n'
    )
    assert [(r.is_json, r.json) for r in records] == [
        (True, {"a": [1, 2]}),
        (True, None),
        (False, None),
        (True, 12),
        (False, None),
        (True, {"b": True}),
        (False, None),
    ]


# SSE: end of stream ---------------------------------------------------------------------------


def test_event_without_blank_line_is_returned_incomplete_at_close() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: done\n\nevent: add\nid: 4\nretry: 10\ndata: 1\n", 1.0)[0].data == "done"
    assert parser.feed(b"data: 2", 2.0) == []
    [record] = parser.close(5.0)
    assert (record.kind, record.event, record.data) == ("event", "add", "1\n2")
    assert (record.id, record.retry) == ("4", 10)
    assert record.incomplete
    assert record.t == 5.0
    assert record.index == 1
    assert record.size == len(b"event: add\nid: 4\nretry: 10\ndata: 1\ndata: 2")


def test_close_without_time_uses_the_last_chunk_time() -> None:
    [record] = sse(b"data: a\n", b"data: b\n")
    assert (record.data, record.t, record.incomplete) == ("a\nb", 2.0, True)


def test_incomplete_event_without_data_is_still_shown() -> None:
    [complete, record] = sse(b"data: a\n\nevent: update\n")
    assert not complete.incomplete
    assert record.incomplete
    assert (record.event, record.data, record.is_json) == ("update", "", False)


def test_complete_stream_closes_with_nothing() -> None:
    assert [r.incomplete for r in sse(b"data: a\n\n")] == [False]
    assert [r.incomplete for r in sse(b"data: a\r\r")] == [False]
    assert sse(b"") == []
    assert SSEParser().close() == []


def test_unterminated_comment_at_close_is_incomplete() -> None:
    [record] = sse(b"data: a\n\n: bye")[1:]
    assert (record.kind, record.data, record.incomplete) == ("comment", "bye", True)


def test_unterminated_first_line_with_bom_at_close() -> None:
    [record] = sse(b"\xef\xbb\xbfdata: x")
    assert (record.data, record.incomplete) == ("x", True)


# SSE: chunking never matters, and agrees with a literal reading of the standard ---------------------


def reference_sse(stream: bytes) -> list[tuple[Any, ...]]:
    """The standard read literally, on the whole stream decoded as text, plus the parser's three
    additions: comments as records, blocks without data that set an id or a retry, and what the
    end of the stream interrupted."""
    text = stream.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff")
    *lines, tail = re.split("\r\n|\r|\n", text)
    out: list[tuple[Any, ...]] = []
    data, event, last_id = "", "", None
    retry: int | None = None
    set_id: str | None = None
    block = False

    def dispatch(incomplete: bool) -> None:
        nonlocal data, event, retry, set_id, block
        if incomplete or data:
            body = data[:-1] if data.endswith("\n") else data
            out.append(("event", event or "message", body, last_id, retry, incomplete))
        elif set_id is not None or retry is not None:
            out.append(("control", "", "", set_id, retry, False))
        data, event, retry, set_id, block = "", "", None, None, False

    def line(text: str, incomplete: bool) -> None:
        nonlocal data, event, last_id, retry, set_id, block
        if text == "":
            dispatch(False)
        elif text.startswith(":"):
            comment = text[1:]
            comment = comment[1:] if comment.startswith(" ") else comment
            out.append(("comment", "", comment, None, None, incomplete))
        else:
            field, colon, value = text.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if field == "event":
                event = value
            elif field == "data":
                data += value + "\n"
            elif field == "id" and "\0" not in value:
                last_id = set_id = value
            elif field == "retry" and value and all(c in "0123456789" for c in value):
                retry = int(value)
            block = True

    for each in lines:
        line(each, False)
    if tail:
        line(tail, True)
    if block:
        dispatch(True)
    return out


TOKENS = [
    b"data",
    b"event",
    b"id",
    b"retry",
    b"Data",
    b":",
    b": ",
    b" ",
    b"\r",
    b"\n",
    b"\r\n",
    b"\n\n",
    b"x",
    b"7",
    b"42",
    b"\x00",
    b"{}",
    b'"',
    b"null",
    "é".encode(),
    "😀".encode(),
    "€".encode(),
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xe2\x82",
    b"\xf0\x9f",
]
streams = st.builds(b"".join, st.lists(st.sampled_from(TOKENS), max_size=50))
cuts = st.lists(st.integers(min_value=0, max_value=400), max_size=12)


def chunked(stream: bytes, points: list[int]) -> list[tuple[bytes, float]]:
    bounds = [0, *sorted({p for p in points if p <= len(stream)}), len(stream)]
    return [(stream[a:b], float(n)) for n, (a, b) in enumerate(itertools.pairwise(bounds))]


@settings(deadline=None, max_examples=300)
@given(streams, cuts)
def test_sse_records_do_not_depend_on_chunking(stream: bytes, points: list[int]) -> None:
    whole = parse_stream("sse", [(stream, 0.0)])
    assert timeless(parse_stream("sse", chunked(stream, points))) == timeless(whole)


@settings(deadline=None, max_examples=300)
@given(streams)
def test_sse_matches_a_literal_reading_of_the_standard(stream: bytes) -> None:
    records = parse_stream("sse", [(stream, 0.0)])
    got = [(r.kind, r.event, r.data, r.id, r.retry, r.incomplete) for r in records]
    assert got == reference_sse(stream)
    assert [r.index for r in records] == list(range(len(records)))


@settings(deadline=None)
@given(streams)
def test_sse_byte_by_byte(stream: bytes) -> None:
    chunks = [(stream[i : i + 1], float(i)) for i in range(len(stream))]
    assert timeless(parse_stream("sse", chunks)) == timeless(parse_stream("sse", [(stream, 0.0)]))


# NDJSON ----------------------------------------------------------------------------------------


def ndjson(*chunks: bytes) -> list[StreamRecord]:
    return parse_stream("ndjson", [(chunk, float(n)) for n, chunk in enumerate(chunks, start=1)])


def test_ndjson_lines_across_chunk_boundaries() -> None:
    records = ndjson(b'{"a": 1}\n{"b"', b": [1, 2]}\r", b'\n"\xc3', b'\xa9"\n')
    assert [(r.kind, r.json, r.t, r.index) for r in records] == [
        ("line", {"a": 1}, 1.0, 0),
        ("line", {"b": [1, 2]}, 3.0, 1),
        ("line", "é", 4.0, 2),
    ]
    assert [r.data for r in records] == ['{"a": 1}', '{"b": [1, 2]}', '"é"']
    assert [r.size for r in records] == [8, 13, 4]
    assert all(r.is_json and r.error is None and not r.incomplete for r in records)


def test_ndjson_blank_lines_are_skipped() -> None:
    records = ndjson(b"\n1\n\r\n  \n\t\r\n2\n\n")
    assert [r.json for r in records] == [1, 2]
    assert [r.index for r in records] == [0, 1]


def test_ndjson_invalid_lines_are_reported_not_lost() -> None:
    records = ndjson(b'{"a": 1}\nnot json\n{"a": \n\xff\n[3]\n')
    assert [(r.data, r.is_json) for r in records] == [
        ('{"a": 1}', True),
        ("not json", False),
        ('{"a": ', False),
        ("\ufffd", False),
        ("[3]", True),
    ]
    assert [r.index for r in records] == [0, 1, 2, 3, 4]
    for record in records:
        assert (record.error is None) == record.is_json
        assert not record.incomplete
    assert "utf-8" in (records[3].error or "").lower()


def test_ndjson_null_line_is_json() -> None:
    [record] = ndjson(b"null\n")
    assert (record.json, record.is_json, record.error) == (None, True, None)


def test_ndjson_final_line_without_newline_is_a_record() -> None:
    parser = NDJSONParser()
    assert [r.json for r in parser.feed(b'{"n": 1}\n{"n": 2}', 1.0)] == [{"n": 1}]
    [last] = parser.close(3.0)
    assert (last.json, last.t, last.index, last.incomplete) == ({"n": 2}, 3.0, 1, False)
    assert parser.bytes_fed == len(b'{"n": 1}\n{"n": 2}')


def test_ndjson_truncated_final_line_is_incomplete() -> None:
    [_, last] = ndjson(b'{"n": 1}\n{"n": ')
    assert (last.incomplete, last.is_json, last.data, last.t) == (True, False, '{"n": ', 1.0)
    assert last.error


def test_ndjson_close_after_newline_or_blank_tail_returns_nothing() -> None:
    parser = NDJSONParser()
    parser.feed(b"1\n  ", 0.0)
    assert parser.close() == []


ND_TOKENS = [b'{"a": 1}', b"[1, 2]", b"7", b'"\xc3\xa9"', "😀".encode(), b"x", b"\xff"]
ND_TOKENS += [b" ", b"\r", b"\n", b"\r\n"]


@settings(deadline=None, max_examples=200)
@given(st.builds(b"".join, st.lists(st.sampled_from(ND_TOKENS), max_size=40)), cuts)
def test_ndjson_records_do_not_depend_on_chunking(stream: bytes, points: list[int]) -> None:
    records = parse_stream("ndjson", chunked(stream, points))
    assert timeless(records) == timeless(parse_stream("ndjson", [(stream, 0.0)]))
    *lines, tail = stream.split(b"\n")
    expected = [line.removesuffix(b"\r") for line in lines] + [tail]
    expected = [line for line in expected if line.strip(b" \t\r")]
    assert [r.data for r in records] == [line.decode("utf-8", "replace") for line in expected]
    for record, line in zip(records, expected, strict=True):
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            assert not record.is_json and record.error
        else:
            assert record.is_json and record.json == value


# Kinds and helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("text/event-stream", "sse"),
        ("text/event-stream; charset=utf-8", "sse"),
        (b"Text/Event-Stream;charset=UTF-8", "sse"),
        ("  TEXT/EVENT-STREAM  ", "sse"),
        ("application/x-ndjson", "ndjson"),
        ("application/jsonl; charset=utf-8", "ndjson"),
        (b"application/x-jsonlines", "ndjson"),
        ("Application/JSONLines", "ndjson"),
        ("application/json", None),
        ("application/json-seq", None),
        ("text/plain", None),
        ("text/event-streamx", None),
        ("", None),
        (None, None),
    ],
)
def test_stream_kind(content_type: str | bytes | None, kind: str | None) -> None:
    assert stream_kind(content_type) == kind


def test_parse_stream_closes_at_the_last_chunk_time() -> None:
    records = parse_stream("sse", [(b"data: a\n\n", 1.0), (b"data: b\n", 2.0), (b"", 3.0)])
    assert [(r.data, r.t, r.incomplete) for r in records] == [("a", 1.0, False), ("b", 3.0, True)]
    assert parse_stream("ndjson", []) == []


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown stream kind"):
        parse_stream("csv", [])
    assert isinstance(parser_for("sse"), SSEParser)
    assert isinstance(parser_for("ndjson"), NDJSONParser)


@pytest.mark.timeout(60)
def test_long_line_in_small_chunks_is_linear() -> None:
    stream = b"data: " + b"x" * 4_000_000 + b"\r\n\r\n"
    parser = SSEParser()
    for i in range(0, len(stream), 64):
        records = parser.feed(stream[i : i + 64], 0.0)
    assert [len(r.data) for r in records] == [4_000_000]


@pytest.mark.timeout(60)
def test_hundred_thousand_events_fed_live() -> None:
    parser = SSEParser()
    count = 0
    for n in range(100_000):
        [record] = parser.feed(b'id: %d\ndata: {"n": %d}\n\n' % (n, n), float(n))
        count += record.json["n"] == n and record.index == n and record.id == str(n)
    assert count == 100_000


# A real app, driven through raw ASGI -------------------------------------------------------------

SSE_CHUNKS = [
    b": connected\n\n",
    b"retry: 2500\nevent: greeting\nid: 1\ndata: hello\n\n",
    'data: {"mood": "😀"}\r\nid: 2\r\n\r'.encode()[:18],  # cut inside the emoji
    'data: {"mood": "😀"}\r\nid: 2\r\n\r'.encode()[18:],  # ends between CR and LF
    b"\ndata: line one\ndata: line two\n",
    b"\n: still here\n",
    b"event: bye\ndata: cut off",
]
NDJSON_CHUNKS = [b'{"level": "info"}\n{"level": ', b'"warn"}\nnot json\n', b'{"level": "done"}']


async def sse_endpoint(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        for chunk in SSE_CHUNKS:
            await asyncio.sleep(0.002)
            yield chunk

    return StreamingResponse(body(), media_type="text/event-stream")


async def ndjson_endpoint(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        for chunk in NDJSON_CHUNKS:
            await asyncio.sleep(0.002)
            yield chunk

    return StreamingResponse(body(), media_type="application/x-ndjson")


streaming_app = Starlette(routes=[Route("/events", sse_endpoint), Route("/logs", ndjson_endpoint)])


async def capture(path: str) -> tuple[bytes | None, list[tuple[bytes, float]]]:
    """What the app sends for GET ``path``: its content-type, and body chunks with send times."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"accept", b"text/event-stream")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    requests = [{"type": "http.request", "body": b"", "more_body": False}]
    content_type: bytes | None = None
    chunks: list[tuple[bytes, float]] = []

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal content_type
        if message["type"] == "http.response.start":
            content_type = dict(message["headers"]).get(b"content-type")
        elif message["type"] == "http.response.body":
            chunks.append((message.get("body", b""), time.monotonic()))

    await streaming_app(scope, receive, send)
    return content_type, chunks


def test_real_sse_app_stream() -> None:
    content_type, chunks = asyncio.run(capture("/events"))
    kind = stream_kind(content_type)
    assert kind == "sse"
    nonempty = [(body, t) for body, t in chunks if body]
    assert [body for body, _ in nonempty] == SSE_CHUNKS
    times = [t for _, t in nonempty]
    records = parse_stream(kind, chunks)
    got = [(r.kind, r.event, r.data, r.id, r.retry, r.incomplete, r.t) for r in records]
    assert got == [
        ("comment", "", "connected", None, None, False, times[0]),
        ("event", "greeting", "hello", "1", 2500, False, times[1]),
        ("event", "message", '{"mood": "😀"}', "2", None, False, times[3]),
        ("event", "message", "line one\nline two", "2", None, False, times[5]),
        ("comment", "", "still here", None, None, False, times[5]),
        ("event", "bye", "cut off", "2", None, True, chunks[-1][1]),
    ]
    assert records[2].json == {"mood": "😀"}
    assert [r.index for r in records] == list(range(6))
    assert timeless(records) == timeless(parse_stream(kind, [(b"".join(SSE_CHUNKS), 0.0)]))


def test_real_ndjson_app_stream() -> None:
    content_type, chunks = asyncio.run(capture("/logs"))
    kind = stream_kind(content_type)
    assert kind == "ndjson"
    times = [t for body, t in chunks if body]
    records = parse_stream(kind, chunks)
    assert [(r.json, r.error is None, r.t) for r in records] == [
        ({"level": "info"}, True, times[0]),
        ({"level": "warn"}, True, times[1]),
        (None, False, times[1]),
        ({"level": "done"}, True, chunks[-1][1]),
    ]

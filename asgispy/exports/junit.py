"""``asgispy check --format junit``: the check as JUnit XML, for CI test reports.

Each connection is a test case (class name its route, or its path when no route was
recorded; name ``GET /orders #c12``), so a CI's test view lists the traffic a session holds
and marks the connections that broke a rule. Each violation at or above ``--fail-on`` is a
``<failure>`` (type the rule id); the lesser ones shown are listed in the test case's
``<system-out>``, so they are visible without failing anything.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from asgispy.exports.checkreport import CheckResult, Finding, connection_label, place

__all__ = ["SUITE", "junit_xml"]

SUITE = "asgispy check"
#: characters XML 1.0 cannot hold, even escaped
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def junit_xml(result: CheckResult) -> bytes:
    """The JUnit XML document of ``result``, UTF-8 with its declaration."""
    by_conn: dict[int, list[Finding]] = {}
    for found in result.shown:
        by_conn.setdefault(id(found.conn), []).append(found)
    failures = sum(1 for f in result.shown if f.severity in result.failing)
    counts = {"tests": str(len(result.connections)), "failures": str(failures), "errors": "0", "skipped": "0"}
    total = sum(c.duration or 0.0 for c in result.connections)
    root = ET.Element("testsuites", {"name": SUITE, **counts, "time": f"{total:.6f}"})
    suite = ET.SubElement(root, "testsuite", {"name": SUITE, **counts, "time": f"{total:.6f}"})
    for conn in result.connections:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": _clean(conn.route or conn.path or conn.type),
                "name": _clean(connection_label(conn)),
                "time": f"{conn.duration or 0.0:.6f}",
            },
        )
        notes = []
        for found in by_conn.get(id(conn), ()):
            where = place(found)
            line = f"{found.severity} {found.rule}" + (f" at {where}" if where else "") + f": {found.message}"
            if found.severity in result.failing:
                failure = ET.SubElement(
                    case, "failure", {"message": _clean(found.message), "type": found.rule}
                )
                failure.text = _clean(line)
            else:
                notes.append(line)
        if notes:
            ET.SubElement(case, "system-out").text = _clean("\n".join(notes))
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)

"""``asgispy check --format sarif``: the check as a SARIF 2.1.0 log, for code scanning.

A protocol mistake has no source line; what it has is a connection in a session file. Each
result names the connection as a logical location (``GET /orders #c12``) and, when the session
file is known, points at the line of that file where the connection begins, since GitHub code
scanning accepts only results with a physical location and a ``region.startLine``. The
``partialFingerprints`` leave out the connection id and the line, which change from run to run,
so the same mistake on the same route is one alert across runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from asgispy.analysis.rules import RULES, Rule
from asgispy.exports.checkreport import (
    INFORMATION_URI,
    CheckResult,
    Finding,
    connection_label,
    in_workspace,
    place,
)
from asgispy.version import __version__

__all__ = ["LEVELS", "SCHEMA_URI", "artifact_uri", "sarif_log"]

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
#: asgispy's severities as SARIF levels.
LEVELS = {"error": "error", "warning": "warning", "notice": "note"}
#: the key of the one partial fingerprint, versioned so that a new recipe never matches an old one
FINGERPRINT = "asgispyViolation/v1"
_RULES_PAGE = "docs/rules.md"


def sarif_log(
    result: CheckResult, session: str | None = None, lines: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """The SARIF log of ``result``; ``session`` is the session file's path, ``lines`` where in it
    each connection begins (by id; line 1 for those not given)."""
    rules = list(RULES.values())
    index = {rule.id: number for number, rule in enumerate(rules)}
    uri = artifact_uri(session) if session is not None else None
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "asgispy",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": [_descriptor(rule) for rule in rules],
            }
        },
        "results": [_result(f, index, uri, lines or {}) for f in result.shown],
        "columnKind": "unicodeCodePoints",
        "invocations": [{"executionSuccessful": True, "exitCode": 1 if result.failed else 0}],
    }
    if uri is not None:
        run["artifacts"] = [{"location": {"uri": uri}, "mimeType": "application/json"}]
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def artifact_uri(path: str) -> str:
    """The session file as a URI reference: relative to the working directory when it is under
    it (what code scanning matches against the repository), else an absolute ``file:`` URI."""
    absolute, relative = in_workspace(path)
    return Path(absolute).as_uri() if relative is None else quote(relative)


def _descriptor(rule: Rule) -> dict[str, Any]:
    words = rule.id.replace(".", "-").split("-")
    return {
        "id": rule.id,
        "name": "".join(word.capitalize() for word in words),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": f"{rule.title} ({rule.severity}; see {_RULES_PAGE})"},
        "help": {
            "text": f"{rule.title}\nThe rule, and how to fix it: {_RULES_PAGE}, `{rule.id}`.",
            "markdown": f"{rule.title}\n\nThe rule, and how to fix it: `{_RULES_PAGE}`, section `{rule.id}`.",
        },
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {"tags": ["asgi", rule.id.split(".", 1)[0]]},
    }


def _result(
    found: Finding, index: dict[str, int], uri: str | None, lines: Mapping[str, int]
) -> dict[str, Any]:
    conn = found.conn
    label = connection_label(conn)
    where = place(found)
    location: dict[str, Any] = {
        "logicalLocations": [{"name": label, "fullyQualifiedName": label, "kind": "resource"}],
        "message": {"text": where or label},
    }
    if uri is not None:
        location["physicalLocation"] = {
            "artifactLocation": {"uri": uri, "index": 0},
            "region": {"startLine": lines.get(conn.id, 1)},
        }
    text = f"{label}: {found.message}" + (f"; at {where}" if where else "")
    result: dict[str, Any] = {
        "ruleId": found.rule,
        "level": LEVELS.get(found.severity, "warning"),
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT: _fingerprint(found)},
        "properties": {
            "connection": conn.id,
            "method": conn.method,
            "path": conn.path,
            "status": conn.status,
            "event": found.violation.event,
        },
    }
    if found.rule in index:
        result["ruleIndex"] = index[found.rule]
    return result


def _fingerprint(found: Finding) -> str:
    """Stable across runs: the rule, where (method and route, or path) and what was said."""
    conn = found.conn
    key = "\0".join((found.rule, conn.type, conn.method or "", conn.route or conn.path, found.message))
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]

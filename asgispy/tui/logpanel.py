"""The served app's own output (logs, prints, tracebacks), as the child process wrote it."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

__all__ = ["LogPanel"]

_LEVELS = {"ERROR": "bold red", "CRITICAL": "bold red", "WARNING": "yellow", "Traceback": "bold red"}


class LogPanel(RichLog):
    """A bounded log; lines that look like errors stand out."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=5000, wrap=False, markup=False, highlight=False)
        self.border_title = "app output"
        self.lines_written = 0

    def add_line(self, line: str, style: str = "") -> None:
        if not style:
            for word, level_style in _LEVELS.items():
                if line.startswith(word) or f" {word}" in line[:40] or f"{word}:" in line[:12]:
                    style = level_style
                    break
        self.write(Text(line, style=style))
        self.lines_written += 1

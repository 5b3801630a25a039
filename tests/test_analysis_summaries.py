"""The short texts for people the layer diff's words are made of: sizes and durations."""

from __future__ import annotations

from asgispy.analysis.summaries import format_duration, format_size


def test_sizes_and_durations_for_people() -> None:
    assert [format_size(n) for n in (0, 1023, 5120, 1300, 3 * 1024 * 1024)] == [
        "0 B",
        "1023 B",
        "5.0 KiB",
        "1.3 KiB",
        "3.0 MiB",
    ]
    assert [format_duration(s) for s in (0.0000004, 0.0005, 0.812, 0.99999, 12.34)] == [
        "0.4 µs",
        "500.0 µs",
        "812.0 ms",
        "1.0 s",
        "12.3 s",
    ]

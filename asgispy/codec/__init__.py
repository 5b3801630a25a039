"""The forms a recorded value takes once it leaves the request path: readable JSON (jsonform),
compact MessagePack (pack), masked (redact), and the session file that holds JSON documents."""

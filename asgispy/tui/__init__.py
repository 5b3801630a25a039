"""The Textual dashboard. Imported only when a view opens."""

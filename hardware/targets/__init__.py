"""Hardware targets as data (filled in by the next commit)."""

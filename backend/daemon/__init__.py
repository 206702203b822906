"""The daemon: watch the drop folders, wait for files to settle, load them, move them; health."""

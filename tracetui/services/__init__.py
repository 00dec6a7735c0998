"""The app's work without its widgets: generation, tracing and persistence.

Each service runs its work off the UI thread and reports through one callback (`emit`) with the
plain events of `events.py`; the app wraps that callback around `post_message`, tests around a
list. Nothing here imports Textual (an import-linter contract in pyproject.toml says so), so the
services are unit-tested without Pilot and could run in another process.
"""

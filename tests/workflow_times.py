"""Wall times of the labelled workflow runs of a test session (printed in its summary).

A module of its own: ``conftest.py`` is loaded by pytest and imported again by tests as
``tests.conftest``, so a dict defined there would exist twice."""

from __future__ import annotations

TIMES: dict[str, float] = {}

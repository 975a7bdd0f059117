"""The feature-visualization window's long tasks run on the app's one long-task runner,
:class:`cnnviz.qt.workers.TaskRunner` (re-exported here for the old import path)."""

from __future__ import annotations

from cnnviz.qt.workers import TaskRunner

__all__ = ["TaskRunner"]

"""Where a course lives: its root, its nbgrader configuration and its lessons."""

from __future__ import annotations

import copy
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from ..files import find_up

CONFIG = Path("autograders") / "nbgrader_config.py"
SQLITE_WAIT = 300  # seconds a grader waits for another one's write to the SQLite gradebook


class CourseError(RuntimeError):
    """Something about the course folder or a submission that the instructor must fix."""


@dataclass(frozen=True)
class Course:
    root: Path
    db: str | None = None  # the gradebook's URL, in place of the config's (sqlite:///... or postgresql://...)

    @classmethod
    def find(cls, start: Path | None = None, db: str | None = None) -> Course:
        """The course whose folder contains ``start`` (default: the current directory)."""
        start = Path(start or Path.cwd()).resolve()
        root = find_up(start, CONFIG)
        if root is None:
            raise CourseError(f"No course found at or above {start}: expected a folder with {CONFIG}. "
                              f"Run this from the course folder, or pass --course.")
        return cls(root, db)

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root).resolve())
        if not (self.root / CONFIG).is_file():
            raise CourseError(f"{self.root} is not a course folder: {CONFIG} is missing.")

    @cached_property
    def _config(self) -> Config:
        """The course config, loaded once (it is a Python file: loading it runs it)."""
        config = PyFileConfigLoader(CONFIG.name, path=str(self.root / CONFIG.parent)).load_config()
        config.CourseDirectory.root = str(self.root)  # the config's own ROOT, unless copied elsewhere
        url = self.db or config.CourseDirectory.db_url
        config.CourseDirectory.db_url = url
        if not url.startswith(("sqlite:", "postgresql", "postgres:")):
            raise CourseError(f"Unsupported gradebook URL {url!r}: use sqlite:///path/to/gradebook.db or "
                              f"postgresql://user:password@host/database.")
        if url.startswith("sqlite:") and "?" not in url:
            # parallel graders share one SQLite file: wait for each other's writes instead of failing
            config.CourseDirectory.db_url = url + f"?timeout={SQLITE_WAIT}"
        elif url.startswith(("postgresql://", "postgres://")):
            # the driver this course installs is psycopg 3; SQLAlchemy's plain URL means psycopg2
            config.CourseDirectory.db_url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return config

    def config(self) -> Config:
        """A copy of the course config, for the caller to change (merge a run's overrides into)."""
        return copy.deepcopy(self._config)

    def __getstate__(self) -> dict:
        # to a worker process: the fields only (it loads the config once itself)
        return {"root": self.root, "db": self.db}

    def path(self, key: str) -> Path:
        """One of the CourseDirectory folders: source, release, submitted, autograded, feedback."""
        return self.root / self._config.CourseDirectory[f"{key}_directory"]

    def notebook(self, key: str, assignment: str, student: str | None = None) -> Path:
        """A lesson's notebook in one of the CourseDirectory folders: ``<source>/<lesson>/<lesson>.ipynb``, or
        ``<autograded>/<student>/<lesson>/<lesson>.ipynb`` for one student's (submitted, autograded)."""
        folder = self.path(key) / student if student is not None else self.path(key)
        return folder / assignment / f"{assignment}.ipynb"

    @property
    def db_url(self) -> str:
        return self._config.CourseDirectory.db_url

    def assignments(self) -> list[str]:
        """Every lesson: a folder of ``solutions/`` holding a notebook of the same name."""
        return sorted(p.name for p in self.path("source").iterdir() if self.notebook("source", p.name).is_file())

    def api(self, overrides: dict | None = None):
        """nbgrader's Python API for this course, logging only problems; ``overrides`` are config
        sections set for this run (``{"Execute": {"timeout": 60}}``)."""
        from nbgrader.apps import NbGraderAPI

        tools_on_path()
        config = self.config()
        config.merge(Config(overrides or {}))
        api = NbGraderAPI(config=config)
        api.log.setLevel(logging.ERROR)
        return api


def tools_on_path() -> None:
    """nbgrader runs ``alembic`` by name when it creates or upgrades a gradebook: find the one installed beside
    this Python even when its folder is not on PATH (``.venv/bin/handwritten grade`` from a script or cron)."""
    here = Path(sys.executable).parent
    if shutil.which("alembic") is None and (here / "alembic").exists():
        os.environ["PATH"] = f"{here}{os.pathsep}{os.environ.get('PATH', '')}"

"""``handwritten``: the course's command line.

    handwritten release [LESSON ...] [--check]    regenerate lessons/ from solutions/
    handwritten grade SUBMISSIONS [--out CSV] [--workers N] [--force] [--sandbox MODE] [--timeout S]
                                  [--wall-time S] [--shard I/N]
                                                  grade a folder or an LMS zip of notebooks
    handwritten canvas GRADEBOOK [--grades CSV] [--out CSV] [--column LESSON=HEADER]
                                                  grades.csv into a Canvas gradebook export, for its import
    handwritten data [--mode full] [--drop-archives]   get MNIST ready (Binder's postBuild uses it)
    handwritten doctor                            check this environment
    handwritten demo [--port N] [--no-browser]    the instructor demo in Voilà (pretrained network, no training)
    handwritten class [--students N] [--port N]   a JupyterHub for a class on this machine (as root)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .files import find_up


def _course(args):
    from .grading import Course

    return Course(Path(args.course), args.db) if args.course else Course.find(db=args.db)


def cmd_release(args) -> int:
    from .grading import release

    course = _course(args)
    changed = release(course, args.lessons or None)
    if args.check and changed:
        print("lessons/ is out of date with solutions/; regenerated:\n  " + "\n  ".join(changed)
              + "\nCommit the regenerated notebooks.", file=sys.stderr)
        return 1
    print(f"{len(changed)} file(s) regenerated in {course.path('release')}"
          + (":\n  " + "\n  ".join(changed) if changed else " (already up to date)."))
    return 0


def cmd_grade(args) -> int:
    from .grading import grade

    course = _course(args)
    out = Path(args.out) if args.out else course.root / "autograders" / "grades.csv"
    results, problems = grade(course, Path(args.submissions), out=out, assignments=args.lesson or None,
                              workers=args.workers, force=args.force, sandbox=args.sandbox, timeout=args.timeout,
                              wall_time=args.wall_time, shard=args.shard)
    for problem in problems:
        print(problem if problem.startswith("WARNING") else f"skipped: {problem}")
    errors = [r for r in results if not r.graded]
    for r in results:
        print(f"{r.student:<24} {r.assignment:<28} {r.score:>5g}/{r.max_score:<5g} {r.status}"
              + "".join(f"; {note}" for note in r.notes))
    flagged = [r for r in results if r.flags]
    for r in flagged:
        print(f"integrity: {r.student} {r.assignment}: " + "; ".join(r.flags))
    kept = sum(r.kept for r in results)
    print(f"\n{len(results)} notebook(s): {len(results) - kept} graded now, {kept} kept from an earlier run "
          f"(same file; --force grades them again); {len(errors)} with errors, {len(flagged)} flagged for a look.\n"
          f"Grades: {out}\n"
          f"Item analysis: {out.with_name(out.stem + '-items.csv')} and {out.with_name(out.stem + '-items.png')}\n"
          f"Feedback: {course.path('feedback')}/<student>/<lesson>/<lesson>.html\n"
          f"Log: {course.root / 'autograders' / 'grading.log'}")
    return 0


def cmd_canvas(args) -> int:
    from .grading import CourseError
    from .grading.canvas import fill

    try:
        grades = Path(args.grades) if args.grades else _course(args).root / "autograders" / "grades.csv"
    except CourseError as error:
        raise CourseError(f"{error} Or name the grades.csv to export: --grades PATH.") from None
    gradebook = Path(args.gradebook)
    out = Path(args.out) if args.out else gradebook.with_name(gradebook.stem + "-import.csv")
    filled = fill(gradebook, grades, out, dict(args.column or []))
    for note in filled.notes:
        print(note)
    print(f"\n{filled.rows} score(s) from {grades} written into {out}.\n"
          f"Import it in Canvas: Grades → Import, then check the changes Canvas shows before saving.")
    return 0


def _column(text: str) -> tuple[str, str]:
    lesson, _, header = text.partition("=")
    if not lesson.strip() or not header.strip():
        raise argparse.ArgumentTypeError(f"expected LESSON=COLUMN, e.g. 04-convolutions-by-hand='Lesson 4 (12345)', "
                                         f"got {text!r}")
    return lesson.strip(), header.strip()


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N (shard 0/4 is the first of four), got {text!r}")
    return index, count


def cmd_data(args) -> int:
    from . import data

    return data.main((["--mode", args.mode] if args.mode else []) + (["--drop-archives"] if args.drop_archives else []))


def cmd_doctor(args) -> int:
    from . import env

    try:
        env.setup()
    except env.EnvironmentProblem as error:
        print(error, file=sys.stderr)
        return 1
    return 0


DEMO = Path("demo") / "demo.ipynb"


def demo_notebook(course: str | None = None) -> Path:
    """The demo notebook of the course folder ``course``, else of the folder containing the current directory."""
    start = Path(course or Path.cwd()).resolve()
    folder = find_up(start, DEMO, parents=not course)
    if folder is not None:
        return folder / DEMO
    raise FileNotFoundError(f"no {DEMO} at or above {start}: run this from the course folder (a clone of the "
                            "course's repository), or pass --course.")


def demo_command(notebook: Path, port: int | None = None, browser: bool = True) -> list[str]:
    """The Voilà command that serves ``notebook``: the page runs it on a fresh kernel and shows only the
    widgets and text, no code."""
    return [sys.executable, "-m", "voila", str(notebook), "--Voila.ip=127.0.0.1",
            *([f"--Voila.port={port}"] if port else []), f"--Voila.open_browser={browser}",
            "--VoilaConfiguration.show_tracebacks=True",
            "--VoilaConfiguration.progressive_rendering=True"]  # each widget shows as soon as its cell has run


def cmd_demo(args) -> int:
    import os

    try:
        notebook = demo_notebook(args.course)
    except FileNotFoundError as error:
        print(f"handwritten demo: {error}", file=sys.stderr)
        return 2
    command = demo_command(notebook, args.port, browser=not args.no_browser)
    print("handwritten demo: " + " ".join(command[2:]), flush=True)
    os.execv(command[0], command)  # Voilà replaces this process: Ctrl-C stops it
    return 0  # not reached


def cmd_class(args) -> int:
    from . import classroom

    return classroom.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="handwritten", description=__doc__.split("\n")[0])
    parser.add_argument("--course", help="the course folder (default: the one containing the current directory)")
    parser.add_argument("--db", help="the gradebook: sqlite:///path or postgresql://user:password@host/db "
                                     "(default: $NBGRADER_DB_URL, else autograders/gradebook.db)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="regenerate lessons/ from solutions/")
    p.add_argument("lessons", nargs="*", help="lessons to release (default: all)")
    p.add_argument("--check", action="store_true", help="exit 1 if anything had to be regenerated")
    p.add_argument("--db", default=argparse.SUPPRESS, help="the gradebook URL (as before the command)")
    p.set_defaults(run=cmd_release)

    p = sub.add_parser("grade", help="grade a folder (one sub-folder per student) or an LMS zip")
    p.add_argument("submissions", help="folder or .zip of submitted notebooks")
    p.add_argument("--out", help="where to write grades.csv (default: autograders/grades.csv)")
    p.add_argument("--lesson", action="append", help="grade only this lesson (repeatable)")
    p.add_argument("--db", default=argparse.SUPPRESS, help="the gradebook URL: postgresql://user:password@host/db "
                   "for one gradebook shared by many graders (default: $NBGRADER_DB_URL, else SQLite)")
    p.add_argument("--workers", type=_positive, help="notebooks graded at once (default: the number of cores)")
    p.add_argument("--force", action="store_true", help="grade again what was already graded")
    p.add_argument("--sandbox", choices=["auto", "bwrap", "limits", "off"], default="auto",
                   help="auto (default): bubblewrap where available, else resource limits with a warning")
    p.add_argument("--shard", type=_shard, metavar="I/N",
                   help="grade only shard I of N (0 <= I < N), e.g. one pod of a Kubernetes Indexed Job")
    p.add_argument("--timeout", type=_positive, help="seconds a cell may run (default: the course config's)")
    p.add_argument("--wall-time", type=_positive, help="seconds a whole notebook may run (default: the course "
                   "config's, 1800)")
    p.set_defaults(run=cmd_grade)

    p = sub.add_parser("canvas", help="write grades.csv's scores into a Canvas gradebook export, to import back")
    p.add_argument("gradebook", help="the CSV that Canvas's Grades → Export → Export Entire Gradebook downloaded")
    p.add_argument("--grades", help="the grades.csv to export (default: autograders/grades.csv)")
    p.add_argument("--out", help="where to write the file to import (default: <gradebook>-import.csv beside it)")
    p.add_argument("--column", type=_column, action="append", metavar="LESSON=COLUMN",
                   help="the gradebook column of a lesson whose name is not in its header (repeatable)")
    p.set_defaults(run=cmd_canvas)

    p = sub.add_parser("data", help="get MNIST ready (default: download full MNIST into the cache)")
    p.add_argument("--mode", choices=["auto", "full", "sample"], default=None)
    p.add_argument("--drop-archives", action="store_true", help="delete the downloaded .gz files afterwards")
    p.set_defaults(run=cmd_data)

    p = sub.add_parser("doctor", help="check this environment")
    p.set_defaults(run=cmd_doctor)

    p = sub.add_parser("demo", help="the instructor demo in Voilà: filters, feature maps, shifts, a classifier")
    p.add_argument("--port", type=_positive, help="the port to serve on (default: Voilà's, 8866)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("class", help="a JupyterHub for a class on this machine: accounts, exchange, formgrader")
    p.add_argument("--students", type=_positive, default=2, help="how many student accounts (default: 2)")
    p.add_argument("--dir", default="/srv/handwritten", help="the class folder (default: /srv/handwritten)")
    p.add_argument("--course-id", default="handwritten", help="nbgrader's course id (default: handwritten)")
    p.add_argument("--prefix", default="hw-", help="the accounts' prefix: hw-instructor, hw-student1, hw-grader")
    p.add_argument("--password", help="one password for every account (default: a random one each, kept in "
                   "<dir>/accounts.json)")
    p.add_argument("--ip", default="127.0.0.1", help="the address to serve on (default: 127.0.0.1)")
    p.add_argument("--port", type=_positive, default=8000, help="the hub's port (default: 8000)")
    p.add_argument("--formgrader-port", type=_positive, default=9999, help="the formgrader's local port")
    p.add_argument("--reset", action="store_true", help="copy the course into the class folder again")
    p.set_defaults(run=cmd_class)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("demo", "class"):
        return args.run(args)  # at once: the grading pipeline's imports would add seconds to the demo's start
    from .grading import CourseError

    try:
        return args.run(args)
    except CourseError as error:
        print(f"handwritten {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

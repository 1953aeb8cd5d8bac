"""``handwritten``: the course's command line.

    handwritten release [LESSON ...] [--check]    regenerate lessons/ from solutions/
    handwritten grade SUBMISSIONS [--out CSV]     grade a folder or an LMS zip of notebooks
    handwritten data [--mode full] [--drop-archives]   get MNIST ready (Binder's postBuild uses it)
    handwritten doctor                            check this environment
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _course(args):
    from .grading import Course

    return Course(Path(args.course)) if args.course else Course.find()


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
    results, problems = grade(course, Path(args.submissions), out=out, assignments=args.lesson or None)
    for problem in problems:
        print(f"skipped: {problem}")
    errors = [r for r in results if not r.status.startswith("graded")]
    for r in results:
        print(f"{r.student:<24} {r.assignment:<28} {r.score:>5g}/{r.max_score:<5g} {r.status}")
    print(f"\n{len(results)} notebook(s) graded, {len(errors)} with errors. Grades: {out}\n"
          f"Feedback: {course.path('feedback')}/<student>/<lesson>/<lesson>.html\n"
          f"Log: {course.root / 'autograders' / 'grading.log'}")
    return 0


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="handwritten", description=__doc__.split("\n")[0])
    parser.add_argument("--course", help="the course folder (default: the one containing the current directory)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="regenerate lessons/ from solutions/")
    p.add_argument("lessons", nargs="*", help="lessons to release (default: all)")
    p.add_argument("--check", action="store_true", help="exit 1 if anything had to be regenerated")
    p.set_defaults(run=cmd_release)

    p = sub.add_parser("grade", help="grade a folder (one sub-folder per student) or an LMS zip")
    p.add_argument("submissions", help="folder or .zip of submitted notebooks")
    p.add_argument("--out", help="where to write grades.csv (default: autograders/grades.csv)")
    p.add_argument("--lesson", action="append", help="grade only this lesson (repeatable)")
    p.set_defaults(run=cmd_grade)

    p = sub.add_parser("data", help="get MNIST ready (default: download full MNIST into the cache)")
    p.add_argument("--mode", choices=["auto", "full", "sample"], default=None)
    p.add_argument("--drop-archives", action="store_true", help="delete the downloaded .gz files afterwards")
    p.set_defaults(run=cmd_data)

    p = sub.add_parser("doctor", help="check this environment")
    p.set_defaults(run=cmd_doctor)

    args = parser.parse_args(argv)
    from .grading import CourseError

    try:
        return args.run(args)
    except CourseError as error:
        print(f"handwritten {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

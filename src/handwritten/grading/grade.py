"""Grade a class: collect the notebooks, autograde each with nbgrader, write ``grades.csv``
(one row per student and lesson, one column per test) and the feedback HTML.

A broken notebook never stops the batch: its row says what went wrong, and the next one is
graded. Each submission is graded on its own (``grade_one``), in a pool of worker processes
(``workers``), each kernel in a sandbox (``sandbox.py``); every result is recorded as soon as it
is known (``records.py``), so a run can be interrupted and resumed.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import sys
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from types import MappingProxyType

from tqdm.auto import tqdm

from ..files import write_atomic
from . import records
from .cases import graded_tests
from .cells import grade_ids, nbgrader_meta, read_cells
from .collect import Submission, collect
from .course import Course, CourseError
from .intake import Refused, load_notebook, normalise, read_bytes
from .integrity import scan
from .outputs import cut_note, read_cuts
from .records import Result
from .release import release
from .report import write_item_analysis
from .sandbox import Ending, Sandbox, ending_path, read_ending, resolve

EXCEPTION_LINE = re.compile(r"^\s*((?:\w+\.)*\w+(?:Error|Exception|Timeout)\w*): (.+)$", re.M)
TIMED_OUT = "a cell ran past the time limit and was interrupted"
INCIDENTS = MappingProxyType({  # errors in a graded notebook that an instructor should read about in its row
    "MemoryError": "a cell ran out of memory (the sandbox's limit)",
    "BlockingIOError": "a cell hit the limit on processes",
})
EXPLAINED = MappingProxyType({
    "DeadKernelError": "the kernel died while running the notebook (a cell crashed or exited Python)",
    "CellTimeoutError": "a cell ran longer than the per-cell time limit",
})


def _reason(outcome: dict) -> str:
    """The most telling line of a failed nbgrader run: the innermost exception, not nbgrader's
    "see the above traceback"."""
    text = (outcome.get("log") or "") + "\n" + (outcome.get("error") or "")
    found = [(name, message) for name, message in EXCEPTION_LINE.findall(text)
             if not name.endswith("NbGraderException")]
    if not found:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else "unknown error"
    name, message = found[-1]
    short = name.rsplit(".", 1)[-1]
    return EXPLAINED.get(short, f"{short}: {message.strip()}")


def deduplicate_ids(notebook: dict) -> int:
    """JupyterLab's "split cell" and copy-paste duplicate a cell's nbgrader id. Keep the last cell with
    each id; earlier copies become plain cells. Returns how many were changed.

    nbgrader has its own DeduplicateIds, but it leaves an empty ``nbgrader`` dict in the cells it clears,
    and OverwriteCells (with ``add_missing_cells``, this course's setting) then fails on the whole notebook
    with ``KeyError: 'grade_id'`` (tests/grading/test_grade.py shows it). Done here, the integrity scan
    also sees the cells nbgrader will grade."""
    seen, changed = set(), 0
    for cell in reversed(notebook.get("cells", [])):
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id is None:
            continue
        if grade_id in seen:
            del cell["metadata"]["nbgrader"]
            changed += 1
        seen.add(grade_id)
    return changed


def wrong_lesson(course: Course, assignment: str, notebook: dict, released: dict) -> str:
    """Why this is not a notebook of ``assignment`` (another lesson's, or no lesson's), or ""."""
    ids = grade_ids(notebook["cells"])
    if ids & grade_ids(released["cells"]):
        return ""
    for other in course.assignments():
        path = course.notebook("release", other)
        if other != assignment and path.exists() and ids & grade_ids(read_cells(path)):
            return (f"this is the notebook of lesson {other}, submitted as {assignment}: "
                    f"ask the student for the right one, or rename it to {other}.ipynb and grade again")
    return f"no cell of this notebook belongs to {assignment} (not the released notebook, or its cells were rebuilt)"


# What nbgrader's exchange puts beside a submitted notebook (`nbgrader collect`): when it was submitted (late
# penalties) and the secret that names its returned feedback (`nbgrader release_feedback` needs both).
EXCHANGE_FILES = ("timestamp.txt", "submission_secret.txt")


def place(course: Course, submission: Submission, notebook: dict) -> Path:
    """Write a submission where nbgrader looks for it (the original file is never touched), with the exchange's
    files that came with it."""
    target = course.notebook("submitted", submission.assignment, submission.student)
    kept = {}
    for name in EXCHANGE_FILES:
        with contextlib.suppress(Refused, OSError):
            kept[name] = read_bytes(Path(submission.path).parent / name, limit=4096)
    if target.parent.exists():
        shutil.rmtree(target.parent)
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, data in kept.items():
        (target.parent / name).write_bytes(data)
    return target


def scores(course: Course, student: str, assignment: str) -> Result:
    from nbgrader.api import Gradebook

    result = Result(student, assignment)
    with Gradebook(course.db_url) as gradebook:
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        for grade in sorted(notebook.grades, key=lambda g: g.name):
            if grade.cell_type == "code":
                result.tests[grade.name] = float(grade.auto_score or 0.0)
                result.score += float(grade.auto_score or 0.0)
                result.max_score += float(grade.max_score)
            else:
                result.manual_max += float(grade.max_score)
    return result


LOCKED = "database is locked"  # SQLite under concurrent writers: wait and try again
RETRIES = 3


def autograde(api, submission: Submission) -> dict:
    for attempt in range(RETRIES):
        outcome = api.autograde(submission.assignment, submission.student, force=True, create=True)
        if outcome["success"] or LOCKED not in (outcome.get("log") or "") + (outcome.get("error") or ""):
            return outcome
        time.sleep(1 + attempt)
    return outcome


def incidents(course: Course, submission: Submission, ending: Ending) -> list[str]:
    """What went wrong in the graded notebook that its instructor should read about (see INCIDENTS). Time limits
    and cut outputs come from the grader's own records (``ending``, ``read_cuts``): a cell can print or raise
    anything, the grader's markers included."""
    graded = course.notebook("autograded", submission.assignment, submission.student)
    found = [TIMED_OUT] if ending.timeouts else []
    try:
        cells = read_cells(graded)
    except (OSError, ValueError, KeyError):
        cells = []
    for cell in cells:
        for output in cell.get("outputs", []):
            name = output.get("ename", "")
            if name in INCIDENTS and INCIDENTS[name] not in found:
                found.append(INCIDENTS[name])
    cut = cut_note(read_cuts(graded.parent))
    return found + [cut] if cut else found


def grade_one(course: Course, submission: Submission, api=None, sandbox: str = "") -> Result:
    """Autograde one student's notebook for one lesson and write its feedback."""
    api = api or course.api()
    student, assignment = submission.student, submission.assignment
    late = submission.late
    try:
        notebook = load_notebook(submission.path)  # a regular file, never a link's target, parsed within bounds
    except Refused as error:
        return Result.error(student, assignment, str(error), sandbox=sandbox, late=late)
    duplicates = deduplicate_ids(notebook)
    released = json.loads(course.notebook("release", assignment).read_text(encoding="utf-8"))
    wrong = wrong_lesson(course, assignment, notebook, released)
    if wrong:
        return Result.error(student, assignment, wrong, sandbox=sandbox, late=late)
    flags = scan(notebook, released) + normalise(notebook, released)  # nbgrader grades the release's cells only
    place(course, submission, notebook)
    workdir = course.notebook("autograded", assignment, student).parent
    ending_path(workdir).unlink(missing_ok=True)  # an earlier run's: not this one's to report
    outcome = autograde(api, submission)
    ending, limits = read_ending(workdir), Sandbox(config=api.config)
    if not outcome["success"]:
        return Result.error(student, assignment, ending.killed(limits) or _reason(outcome), sandbox=sandbox,
                            late=late, flags=flags)
    result = scores(course, student, assignment)
    result.sandbox, result.late, result.flags = sandbox, late, flags
    if duplicates:
        result.notes.append(f"{duplicates} duplicated cell id(s) ignored (split or copied cells)")
    result.notes += ending.confirm(incidents(course, submission, ending), INCIDENTS["MemoryError"])
    if submission.renamed:
        result.notes.append(f"the file was named {submission.renamed!r}: matched to this lesson by its cell ids")
    if ending.past_wall:
        result.notes.append(f"the notebook reached its wall-time limit ({limits.wall_seconds} s): "
                            f"the cell then running was cut")
    result.notes += ending.notes()  # it stopped answering; what it left in its folder was not kept
    feedback = api.generate_feedback(assignment, student, force=True)
    html = course.path("feedback") / student / assignment / f"{assignment}.html"
    if feedback["success"] and html.exists():
        result.feedback = html
    else:
        result.notes.append(f"feedback failed: {_reason(feedback)}")
    return result


def grade_and_record(course: Course, submission: Submission, digest: str, api, sandbox: str) -> Result:
    records.forget(course, submission.student, submission.assignment)
    try:
        result = grade_one(course, submission, api, sandbox)
    except Exception as error:  # one notebook must never stop the batch: say why in its row
        traceback.print_exc()
        # not recorded: the next run tries this one again
        return Result.error(submission.student, submission.assignment,
                            f"grading failed ({type(error).__name__}: {error}); see autograders/grading.log, "
                            f"then grade again", sandbox=sandbox)
    result.digest = digest
    records.save(course, result)
    return result


def write_csv(results: list[Result], path: Path) -> None:
    """``grades.csv``: one row per student and lesson, one column per test; ``lms_id`` last, so that the columns
    before it stay where they were."""
    tests = sorted({name for r in results for name in r.tests})
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["student", "lesson", "status", "notes", "score", "max_score", "manual_points_to_grade",
                     "late", "sandbox", "integrity_flags", *tests, "feedback", "lms_id"])
    for r in results:
        writer.writerow([r.student, r.assignment, r.status, "; ".join(r.notes), f"{r.score:g}", f"{r.max_score:g}",
                         f"{r.manual_max:g}", "yes" if r.late else "", r.sandbox, "; ".join(r.flags),
                         *(f"{r.tests[t]:g}" if t in r.tests else "" for t in tests), str(r.feedback or ""), r.lms_id])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.getvalue())


@contextlib.contextmanager
def stderr_to(path: Path):
    """Send this process's stderr, and that of every kernel it starts, to a log file: grading a
    class prints a progress bar and a summary, and keeps nbgrader's and the kernels' chatter here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


# What each worker process keeps between submissions.
_worker: dict = {}


def _pool_context():
    """Workers forked from a fresh interpreter that imported the grader once (torch, nbgrader: about 3 s of CPU),
    instead of one fresh interpreter each importing it all again; neither inherits this process's threads or
    sockets. Where there is no fork server (Windows), fresh interpreters."""
    from multiprocessing import get_all_start_methods

    if "forkserver" not in get_all_start_methods():
        return get_context("spawn")
    context = get_context("forkserver")
    context.set_forkserver_preload([__name__])  # read when the server starts: once per process
    return context


def _take_environment(environ: dict, cwd: str) -> None:
    """A worker takes its run's environment variables and folder: the fork server it comes from may have been
    started by an earlier grading in this process, under another."""
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)


def _start_worker(course: Course, overrides: dict, log: str, environ: dict, cwd: str) -> None:
    _take_environment(environ, cwd)
    # the kernels this worker starts inherit its stdout and stderr: keep their chatter in the log
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    warnings.filterwarnings("ignore", message=".*not in session.*")
    _worker.update(course=course, api=course.api(overrides), sandbox=overrides["Sandbox"]["mode"])


def _work(submission: Submission, digest: str) -> Result:
    return grade_and_record(_worker["course"], submission, digest, _worker["api"], _worker["sandbox"])


def _create_students(course: Course, students: set[str]) -> None:
    """Create every student once, before the workers start: two workers creating the same
    student (two lessons of one student) at the same time would collide."""
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as gradebook:
        for student in sorted(students):
            gradebook.update_or_create_student(student)


def in_shard(student: str, shard: tuple[int, int] | None) -> bool:
    """Whether a student belongs to shard ``(i, n)``: by a hash of the id, so every machine agrees
    without talking, a student's lessons stay together, and a new student moves nobody else."""
    if shard is None:
        return True
    index, count = shard
    return int(hashlib.sha256(student.encode()).hexdigest(), 16) % count == index


def _released(course: Course, assignments: set[str]) -> None:
    """Shards share one gradebook and must not all release into it at once: the instructor releases
    once, before the shards start."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db_url) as gradebook:
        for assignment in sorted(assignments):
            try:
                gradebook.find_assignment(assignment)
            except MissingEntry:
                raise CourseError(f"{assignment} is not in the gradebook yet: run `handwritten release {assignment}` "
                                  f"once against it before starting the shards.") from None


def _cell_ids(course: Course) -> dict[str, set[str]]:
    """Each released lesson's nbgrader cell ids, to recognise a notebook saved under another name."""
    found = {}
    for assignment in course.assignments():
        try:
            found[assignment] = grade_ids(read_cells(course.notebook("release", assignment)))
        except (OSError, ValueError, KeyError):
            continue
    return found


def grade(course: Course, source: Path, *, out: Path | None = None, assignments: list[str] | None = None,
          progress: bool = True, workers: int | None = None, force: bool = False, sandbox: str = "auto",
          timeout: int | None = None, wall_time: int | None = None, shard: tuple[int, int] | None = None
          ) -> tuple[list[Result], list[str]]:
    """Grade every submission in ``source`` (those of ``shard`` (i, n) only, if given); return the
    results and the files that were skipped. Submissions recorded as graded (same file, byte for
    byte) are not graded again unless ``force``."""
    collected = collect(Path(source), course.assignments(), _cell_ids(course))
    submissions = [s for s in collected.submissions
                   if (not assignments or s.assignment in assignments) and in_shard(s.student, shard)]
    problems = list(collected.problems)
    mode, warning = resolve(sandbox)
    if warning:
        problems.append(f"WARNING: {warning}")
    overrides = ({"Sandbox": {"mode": mode} | ({"wall_seconds": wall_time} if wall_time else {})}
                 | ({"Execute": {"timeout": timeout}} if timeout else {}))
    # nbgrader's gradebook trips SQLAlchemy's autoflush warnings on every new submission: noise.
    warnings.filterwarnings("ignore", message=".*not in session.*")
    log = course.root / "autograders" / "grading.log"
    results: dict[tuple[str, str], Result] = {}
    try:
        todo = []
        for s in submissions:
            if s.problem:  # not a file that can be read (a link, a pipe, too large): its row says why
                results[s.student, s.assignment] = Result.error(s.student, s.assignment, s.problem, late=s.late)
                continue
            known = None if force else records.load(course, s.student, s.assignment)
            digest = records.digest(s.path)
            if known is not None and known.digest == digest:
                results[s.student, s.assignment] = known
            else:
                todo.append((s, digest))
        if todo and shard is not None:
            _released(course, {s.assignment for s, _ in todo})
        elif todo:
            changed = release(course, sorted({s.assignment for s, _ in todo}), if_changed=True)
            if changed:
                problems.append(f"lessons/ was out of date with solutions/ and was regenerated: "
                                f"{', '.join(changed)}")
        if todo:
            _create_students(course, {s.student for s, _ in todo})
        workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
        bar = tqdm(total=len(todo), desc="grading", unit="notebook", disable=not progress, file=sys.stdout)
        with stderr_to(log), bar:
            if workers == 1:
                api = course.api(overrides)
                for s, digest in todo:
                    results[s.student, s.assignment] = grade_and_record(course, s, digest, api, mode)
                    bar.update()
            else:
                with ProcessPoolExecutor(workers, mp_context=_pool_context(), initializer=_start_worker,
                                         initargs=(course, overrides, str(log), dict(os.environ), os.getcwd())) as pool:
                    futures = {pool.submit(_work, s, digest): s for s, digest in todo}
                    for future in as_completed(futures):
                        s = futures[future]
                        try:
                            results[s.student, s.assignment] = future.result()
                        except BrokenProcessPool:
                            results[s.student, s.assignment] = Result.error(
                                s.student, s.assignment, "the grading process died; grade again to retry this one",
                                sandbox=mode)
                        bar.update()
    finally:
        if collected.workdir is not None:
            collected.workdir.cleanup()
    ordered = [results[s.student, s.assignment] for s in submissions]
    for s, r in zip(submissions, ordered, strict=True):
        r.lms_id = s.lms_id  # from this run's file names: a kept record may predate them, or the ids
    out = out or course.root / "autograders" / "grades.csv"
    write_csv(ordered, out)
    if ordered:
        worth = {(lesson, test): points for lesson in {r.assignment for r in ordered}
                 for test, points in graded_tests(course, lesson).items()}
        write_item_analysis(ordered, worth, out,
                            notebook=lambda lesson, student: course.notebook("autograded", lesson, student))
    return ordered, problems

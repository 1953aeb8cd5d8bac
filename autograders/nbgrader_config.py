# The course's nbgrader configuration. `handwritten release` and `handwritten grade` load it;
# plain `nbgrader ...` commands read it when run from this folder (autograders/).
import os

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

c.CourseDirectory.root = ROOT
c.CourseDirectory.source_directory = "solutions"       # the instructor notebooks: the one source
c.CourseDirectory.release_directory = "lessons"        # the student notebooks, generated
c.CourseDirectory.submitted_directory = "autograders/submitted"
c.CourseDirectory.autograded_directory = "autograders/autograded"
c.CourseDirectory.feedback_directory = "autograders/feedback"
c.CourseDirectory.course_id = "handwritten"  # a shared PostgreSQL gradebook needs a course row (SQLite never checks)
c.CourseDirectory.db_url = os.environ.get(
    "NBGRADER_DB_URL", "sqlite:///" + os.path.join(HERE, "gradebook.db"))

# nbgrader's default is 30 s per cell; a slow laptop or a busy grading machine needs more.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True

# Any stderr output zeroes a test cell. These lines come from libraries, not from students.
c.IgnorePattern.enabled = True  # off by default: setting only the pattern does nothing
c.IgnorePattern.pattern = r"NNPACK|UserWarning|DeprecationWarning|FutureWarning|Kernel is running over TCP"

# Saved widget state can be broken (and breaks feedback); drop notebook-level metadata,
# but never cell metadata: it holds the grade ids and points.
c.ClearMetadataPreprocessor.enabled = True
c.ClearMetadataPreprocessor.clear_cell_metadata = False
c.ClearMetadataPreprocessor.preserve_nb_metadata_mask = [("language_info", "name"), ("kernelspec",)]

# Feedback shows the student's work and scores, never the hidden tests or mark schemes, and runs none of a
# student's scripts: their HTML is cleaned, and the page's policy forbids scripts (handwritten/grading/feedback.py).
c.GenerateFeedback.exporter_class = "handwritten.grading.feedback.FeedbackExporter"
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "handwritten.grading.feedback.HideHiddenTests",
    "handwritten.grading.feedback.LostPoints",
    "nbgrader.preprocessors.ClearMarkScheme",
    "handwritten.grading.feedback.SanitizeOutputs",
]

# Every graded kernel runs sandboxed (handwritten/grading/sandbox.py): bubblewrap where available,
# resource limits always. This is nbgrader's own list with Execute and LimitOutput replaced, and outputs bounded.
c.Autograde.autograde_preprocessors = [
    "handwritten.grading.sandbox.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "handwritten.grading.outputs.LimitOutputLines",  # nbgrader's LimitOutput, its cuts counted for the row's note
    "handwritten.grading.outputs.LimitOutputSize",   # bounds every output's size, and the notebook's
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# A deleted test cell is put back (from the gradebook's copy) and graded, instead of being skipped.
c.OverwriteCells.add_missing_cells = True

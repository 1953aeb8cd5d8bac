# A JupyterHub for one Handwritten class: real Unix accounts, nbgrader's filesystem exchange, the formgrader
# as a hub service for the instructors, and students who see only their Assignments (fetch, validate, submit).
#
# `make class` (`handwritten class`) creates the accounts and the course folder, then runs
#     jupyterhub -f deploy/jupyterhub/jupyterhub_config.py
# with the HANDWRITTEN_* variables below set. To use it on your own hub: copy this file, set the names in
# SETTINGS (or the variables), create the Unix accounts (`useradd -m`, `passwd`), copy the course folder
# (solutions/, lessons/, autograders/nbgrader_config.py) to COURSE_DIR owned by GRADER, and start the hub as root.
# It needs jupyterhub, nbgrader and the course's environment on the hub machine, and configurable-http-proxy
# (npm) on the PATH.
import json
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (provided by traitlets when JupyterHub loads this file)

# ---------------------------------------------------------------------------------------------------- SETTINGS
CLASS_DIR = Path(os.environ.get("HANDWRITTEN_CLASS_DIR", "/srv/handwritten"))
COURSE = os.environ.get("HANDWRITTEN_COURSE_ID", "handwritten")      # nbgrader's course_id = the service's name
GRADER = os.environ.get("HANDWRITTEN_GRADER", "hw-grader")          # the Unix user the formgrader runs as
INSTRUCTORS = os.environ.get("HANDWRITTEN_INSTRUCTORS", "hw-instructor").split()
STUDENTS = os.environ.get("HANDWRITTEN_STUDENTS", "hw-student1 hw-student2").split()
HUB_IP = os.environ.get("HANDWRITTEN_HUB_IP", "127.0.0.1")
HUB_PORT = int(os.environ.get("HANDWRITTEN_HUB_PORT", "8000"))
FORMGRADER_PORT = int(os.environ.get("HANDWRITTEN_FORMGRADER_PORT", "9999"))
# the Python environment every single-user server and the formgrader run in (default: the hub's own)
BIN = Path(os.environ.get("HANDWRITTEN_BIN", Path(sys.executable).parent))

COURSE_DIR = CLASS_DIR / "course"       # the instructor's nbgrader course folder, owned by GRADER
EXCHANGE = CLASS_DIR / "exchange"       # nbgrader's filesystem exchange: world-writable root, as nbgrader expects
JUPYTER = CLASS_DIR / "jupyter"         # the students' and the instructors' Jupyter config (written below)
STATE = CLASS_DIR / "hub"               # the hub's database, cookie secret and proxy logs: root only

# ---------------------------------------------------------------------------------------------------- the hub
c.JupyterHub.ip = HUB_IP
c.JupyterHub.port = HUB_PORT
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
c.ConfigurableHTTPProxy.command = [os.environ.get("HANDWRITTEN_CHP", "configurable-http-proxy")]

# Real Unix accounts with their own passwords (PAM): every submission is filed under its student's own name.
# One shared Unix user would file them all under one (nbgrader's get_username() is the OS user: nbgrader #667).
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = set(STUDENTS) | set(INSTRUCTORS)
c.PAMAuthenticator.open_sessions = False  # no systemd/logind session needed
# Each user's server runs as that Unix user, in their home folder.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(BIN / "python"), "-m", "jupyterhub.singleuser"]
c.Spawner.default_url = "/lab"
# the environment's commands first (nbgrader runs `alembic` by name; kernels run `python`)
PATH = f"{BIN}:/usr/local/bin:/usr/bin:/bin"
c.Spawner.environment = {"PATH": PATH}
c.Spawner.notebook_dir = "~"
c.Spawner.http_timeout = 60
c.Spawner.start_timeout = 120

# ---------------------------------------------------------------------------------------------------- roles
# Instructors reach the formgrader service. Their servers' API token must carry the same scopes: nbgrader's
# course list calls the hub with it (undocumented: nbgrader #1900); without read:services the hub's answer
# has no 'prefix' and the list fails with KeyError 'prefix' (nbgrader #1831).
FORMGRADER_SCOPES = [f"access:services!service={COURSE}", f"read:services!service={COURSE}", "list:services"]
c.JupyterHub.load_roles = [
    {"name": f"formgrade-{COURSE}", "description": f"grade {COURSE} in its formgrader",
     "scopes": FORMGRADER_SCOPES, "users": INSTRUCTORS},
]
# the default server role, plus what the course list needs (a user's token gets only the scopes the user holds:
# a student's gets none of these)
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", *FORMGRADER_SCOPES]

# ---------------------------------------------------------------------------------------------------- formgrader
# The formgrader runs as a hub service, as GRADER, in the course folder, at /services/<COURSE>/.
c.JupyterHub.services = [{
    "name": COURSE,
    "url": f"http://127.0.0.1:{FORMGRADER_PORT}",
    "command": [str(BIN / "python"), "-m", "jupyterhub.singleuser"],
    "user": GRADER,
    "cwd": str(COURSE_DIR),
    "environment": {"JUPYTERHUB_DEFAULT_URL": "/lab", "PATH": PATH, "JUPYTER_CONFIG_PATH": str(JUPYTER / "formgrader"),
                    "HOME": str(COURSE_DIR)},
    "oauth_no_confirm": True,
}]


# ---------------------------------------------------------------------------------------------------- Jupyter
def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    for folder in [path, *path.parents]:
        if folder == CLASS_DIR:
            break
        folder.chmod(0o755 if folder.is_dir() else 0o644)


# What every server reads (nbgrader looks for nbgrader_config.py on Jupyter's config path).
NBGRADER = f"""c = get_config()
c.CourseDirectory.course_id = {COURSE!r}
c.Exchange.root = {str(EXCHANGE)!r}
c.Execute.timeout = 300  # Validate re-runs the notebook; the default 30 s per cell is too short for training
# nbgrader leaves a submission world-readable, hidden only by its folder's random name; this one is readable
# by its student and the instructor's group only (src/handwritten/exchange.py)
c.ExchangeFactory.submit = "handwritten.exchange.PrivateSubmit"
# and nobody but its owner (and the instructor) may rename or delete a submission: inbound/ is sticky
c.ExchangeFactory.release_assignment = "handwritten.exchange.StickyRelease"
# and a submission is filed under the user who owns its folder, not the name it claims
c.ExchangeFactory.collect = "handwritten.exchange.OwnedCollect"
"""
# Students: Assignments (fetch, validate, submit, feedback) and Validate; no Create Assignment, no Formgrader,
# no course list, on the page or on the server.
HIDDEN = ["@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:course-list"]
_write(JUPYTER / "student" / "nbgrader_config.py", NBGRADER)
_write(JUPYTER / "student" / "labconfig" / "page_config.json",
       json.dumps({"disabledExtensions": dict.fromkeys(HIDDEN, True), "lockedExtensions": dict.fromkeys(HIDDEN, True)})
       + "\n")
_write(JUPYTER / "student" / "jupyter_server_config.json",
       '{"ServerApp": {"jpserver_extensions": {"nbgrader.server_extensions.formgrader": false,'
       ' "nbgrader.server_extensions.course_list": false}}}\n')
# The formgrader service: everything, and a content-security policy that lets the formgrader show in
# JupyterLab's frame (JupyterHub >= 4.1 sends frame-ancestors 'none': nbgrader #1870, #1919).
CSP = ("c = get_config()\n"
       "c.ServerApp.tornado_settings = {'headers': {'Content-Security-Policy': \"frame-ancestors 'self'\"}}\n")
_write(JUPYTER / "formgrader" / "nbgrader_config.py", NBGRADER)
_write(JUPYTER / "formgrader" / "jupyter_server_config.py", CSP)
# Instructors' own servers: Create Assignment, Validate, Assignments and the course list, which links to the
# formgrader service; no second formgrader of their own (it would grade an empty course in their home).
_write(JUPYTER / "instructor" / "nbgrader_config.py", NBGRADER)
_write(JUPYTER / "instructor" / "jupyter_server_config.py", CSP)
_write(JUPYTER / "instructor" / "jupyter_server_config.json",
       '{"ServerApp": {"jpserver_extensions": {"nbgrader.server_extensions.formgrader": false}}}\n')


def pre_spawn_hook(spawner):
    role = "instructor" if spawner.user.name in INSTRUCTORS else "student"
    spawner.environment["JUPYTER_CONFIG_PATH"] = str(JUPYTER / role)


c.Spawner.pre_spawn_hook = pre_spawn_hook

# The exchange: nbgrader creates <COURSE>/inbound (students may write, not list; sticky here), outbound and feedback
# (hashed names) with their own modes when the instructor first releases; the root must be writable by all.
EXCHANGE.mkdir(parents=True, exist_ok=True)
EXCHANGE.chmod(0o777)
STATE.mkdir(parents=True, exist_ok=True)
STATE.chmod(0o700)

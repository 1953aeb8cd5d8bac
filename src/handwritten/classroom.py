"""``handwritten class``: a JupyterHub for a class on this machine, from nothing.

It creates real Unix accounts (an instructor, N students and the grader the formgrader runs as) with their own
passwords, copies the course (solutions/, lessons/, its nbgrader config) into the class folder as nbgrader's
course folder, owned by the grader, and runs JupyterHub with ``deploy/jupyterhub/jupyterhub_config.py`` (the one
config file: read it, copy it to your own hub). It prints the URL and the accounts; Ctrl-C stops the hub, its
proxy, the formgrader and every user's server. Needs root (accounts, servers run as their users).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CONFIG = Path("deploy") / "jupyterhub" / "jupyterhub_config.py"


def ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
    # a home only its owner can read: fetched assignments and returned feedback live there (Debian's useradd
    # makes homes world-readable)
    Path(pwd.getpwnam(name).pw_dir).chmod(0o700)


def set_password(name: str, password: str) -> None:
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)


def chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for folder, _, files in os.walk(path):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def make_course(root: Path, course_dir: Path, course_id: str, exchange: Path, grader: str) -> None:
    """The grader's nbgrader course folder: the course's lessons as nbgrader assignments (source: solutions/,
    release: lessons/), its grading config, and the exchange."""
    (course_dir / "autograders").mkdir(parents=True, exist_ok=True)
    for name in ("solutions", "lessons"):
        shutil.copytree(root / name, course_dir / name, dirs_exist_ok=True)
    config = (root / "autograders" / "nbgrader_config.py").read_text()
    config += (f"\n# the class's hub (handwritten class)\nc.CourseDirectory.course_id = {course_id!r}\n"
               f"c.Exchange.root = {str(exchange)!r}\n"
               "c.ExchangeFactory.release_assignment = 'handwritten.exchange.StickyRelease'  # inbound/ sticky\n"
               "c.ExchangeFactory.collect = 'handwritten.exchange.OwnedCollect'  # by the folder's owner\n")
    (course_dir / "autograders" / "nbgrader_config.py").write_text(config)
    # the formgrader runs in course_dir: nbgrader reads ./nbgrader_config.py
    (course_dir / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\nload_subconfig('autograders/nbgrader_config.py')  # noqa: F821\n")
    chown_tree(course_dir, grader)
    course_dir.parent.chmod(0o755)


def chp_command(root: Path) -> str:
    for candidate in (os.environ.get("HANDWRITTEN_CHP"), shutil.which("configurable-http-proxy"),
                      root / ".tools" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise SystemExit("configurable-http-proxy not found: `make class` installs it (npm install --prefix .tools/chp "
                     "configurable-http-proxy), or put it on the PATH.")


def runs_as(user: str, python: str) -> bool:
    return subprocess.run(["runuser", "-u", user, "--", python, "-c", "import jupyterhub, nbgrader, handwritten"],
                          capture_output=True, cwd="/").returncode == 0


def user_env(class_dir: Path, user: str) -> Path:
    """A bin folder whose Python every user can run, with this environment's packages.

    This environment's interpreter often lives in a folder only its owner can enter (pyenv or uv under /root
    or a home folder). Then: a venv of the system's Python of the same minor version, which loads this
    environment's site-packages (and its .pth files: the editable course package), and its Jupyter config
    and data (etc/, share/)."""
    here = Path(sys.executable).parent
    if runs_as(user, str(here / "python")):
        return here
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")
    if system is None:
        raise SystemExit(f"handwritten class: {sys.executable} cannot be run by other users, and there is no "
                         f"system {version} to run this environment's packages with: install {version}, or put "
                         f"the environment where every user can read it.")
    env = class_dir / "env"
    if not (env / "bin" / "python").exists():
        subprocess.run([system, "-m", "venv", "--without-pip", str(env)], check=True)
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    (env / "lib" / version / "site-packages" / "handwritten-class.pth").write_text(
        f"import site; site.addsitedir({str(site)!r})\n")
    # this environment's commands (jupyter, nbgrader, alembic, which nbgrader runs by name), on the new Python
    shebang = f"#!{env / 'bin' / 'python'}\n".encode()
    for script in here.iterdir():
        with contextlib.suppress(OSError):
            if script.is_file() and not script.name.startswith(("python", "activate")):
                head, _, rest = script.read_bytes().partition(b"\n")
                if head.startswith(b"#!") and head.endswith((b"/python", b"/python3")):
                    (env / "bin" / script.name).write_bytes(shebang + rest)
                    (env / "bin" / script.name).chmod(0o755)
    for name in ("etc", "share"):  # Jupyter's config (the enabled server extensions) and data (lab extensions)
        link = env / name
        if not link.is_symlink():
            shutil.rmtree(link, ignore_errors=True)
            link.symlink_to(Path(sys.prefix) / name)
    if not runs_as(user, str(env / "bin" / "python")):
        raise SystemExit(f"handwritten class: {user} cannot read {site}: make it readable by every user.")
    return env / "bin"


def wait_for(url: str, timeout: float, process: subprocess.Popen) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except Exception:
            time.sleep(0.2)
    return False


def main(args) -> int:
    if os.geteuid() != 0:
        print("handwritten class: run as root (it creates Unix accounts and starts servers as their users)",
              file=sys.stderr)
        return 2
    started = time.monotonic()
    # Ctrl-C (and a TERM) stop the class: also when started from a shell that ignores SIGINT (a background job),
    # whose children would inherit that and never stop on the hub's SIGINT
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    from .files import find_up

    root = Path(args.course).resolve() if args.course else find_up(Path.cwd().resolve(), CONFIG)
    if root is None:
        print(f"handwritten class: no {CONFIG} at or above {Path.cwd()}: run it from the course folder",
              file=sys.stderr)
        return 2
    class_dir = Path(args.dir).resolve()
    course_id, grader = args.course_id, f"{args.prefix}grader"
    instructor = f"{args.prefix}instructor"
    students = [f"{args.prefix}student{i}" for i in range(1, args.students + 1)]

    class_dir.mkdir(parents=True, exist_ok=True)
    class_dir.chmod(0o755)
    accounts_file = class_dir / "accounts.json"
    old = json.loads(accounts_file.read_text()) if accounts_file.exists() else {}
    accounts = {}
    for name in [instructor, *students]:
        ensure_user(name)
        accounts[name] = args.password or old.get(name) or secrets.token_urlsafe(9)
        set_password(name, accounts[name])
    ensure_user(grader)
    subprocess.run(["passwd", "--lock", grader], check=True, capture_output=True)  # no login: only the service
    accounts_file.write_text(json.dumps(accounts, indent=2) + "\n")
    accounts_file.chmod(0o600)
    course_dir = class_dir / "course"
    if not course_dir.exists() or args.reset:
        make_course(root, course_dir, course_id, class_dir / "exchange", grader)

    env = dict(os.environ,
               HANDWRITTEN_CLASS_DIR=str(class_dir), HANDWRITTEN_COURSE_ID=course_id, HANDWRITTEN_GRADER=grader,
               HANDWRITTEN_INSTRUCTORS=instructor, HANDWRITTEN_STUDENTS=" ".join(students),
               HANDWRITTEN_HUB_IP=args.ip, HANDWRITTEN_HUB_PORT=str(args.port),
               HANDWRITTEN_FORMGRADER_PORT=str(args.formgrader_port), HANDWRITTEN_CHP=chp_command(root),
               HANDWRITTEN_BIN=str(user_env(class_dir, students[0])))
    (class_dir / "hub").mkdir(mode=0o700, exist_ok=True)
    log = open(class_dir / "hub" / "jupyterhub.log", "ab")
    command = [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(root / CONFIG)]
    hub = subprocess.Popen(command, env=env, cwd=class_dir / "hub", stdout=log, stderr=subprocess.STDOUT,
                           start_new_session=True)
    url = f"http://{args.ip}:{args.port}/"
    if not wait_for(url + "hub/health", 60, hub):
        print(f"handwritten class: the hub did not start (log: {class_dir / 'hub' / 'jupyterhub.log'})",
              file=sys.stderr)
        _stop(hub, class_dir, [instructor, *students, grader])
        return 1
    print(f"\nThe class's hub is up at {url} ({time.monotonic() - started:.1f} s)\n"
          f"  instructor  {instructor:<16} password {accounts[instructor]}   (formgrader: {url}services/{course_id}/)\n"
          + "".join(f"  student     {s:<16} password {accounts[s]}\n" for s in students)
          + f"  course folder {course_dir} (owned by {grader}); exchange {class_dir / 'exchange'}\n"
          f"  accounts: {accounts_file}; hub log: {class_dir / 'hub' / 'jupyterhub.log'}\n"
          f"Ctrl-C stops the hub, the formgrader and every user's server.", flush=True)
    try:
        return hub.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        print("handwritten class: stopping the hub, the formgrader and the users' servers", flush=True)
        _stop(hub, class_dir, [instructor, *students, grader])


def _stop(hub: subprocess.Popen, class_dir: Path, users: list[str]) -> None:
    """Stop the hub; it stops the proxy, the formgrader and the users' servers (cleanup_servers, cleanup_proxy).
    If it has not within 30 s: the hub, its proxy (by its pid file) and what the class's accounts still run."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave processes behind
    if hub.poll() is None:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(30)
        except subprocess.TimeoutExpired:
            pass
    pids = [hub.pid]
    with contextlib.suppress(OSError, ValueError):
        proxy = int((class_dir / "hub" / "jupyterhub-proxy.pid").read_text())
        if b"configurable-http-proxy" in Path(f"/proc/{proxy}/cmdline").read_bytes():
            pids.append(proxy)
    uids = set()
    for name in users:
        with contextlib.suppress(KeyError):
            uids.add(pwd.getpwnam(name).pw_uid)
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and entry.stat().st_uid in uids:
                pids.append(int(entry.name))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

"""The batch-system recipes in deploy/ cannot run here (no cluster), so they are checked for what
they say: every shard index is covered once, and the command each pod or task runs is a valid
`handwritten grade` command line. tests/test_grading_shards.py runs the shards themselves."""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import PurePosixPath
from types import SimpleNamespace

import pytest
import yaml
from traitlets.config import Config

from handwritten.cli import build_parser

from conftest import ROOT

DEPLOY = ROOT / "deploy"


def parse(command: str, **env: str):
    """The handwritten command line after the shell substitutes ``env``."""
    for name, value in env.items():
        command = re.sub(r"\$\{?" + name + r"\}?", value, command)
    words = shlex.split(command.replace("\\\n", " "))
    return build_parser().parse_args(words[words.index("handwritten") + 1:])


def test_kubernetes_indexed_job_grades_every_shard_once():
    job = yaml.safe_load((DEPLOY / "kubernetes-job.yaml").read_text())
    spec = job["spec"]
    assert job["kind"] == "Job" and spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["NBGRADER_DB_URL"]["valueFrom"]  # the gradebook's password stays a secret
    shards = [parse(" ".join(container["args"]), JOB_COMPLETION_INDEX=str(i)).shard
              for i in range(spec["completions"])]
    assert shards == [(i, spec["completions"]) for i in range(spec["completions"])]


def test_slurm_array_grades_every_shard_once():
    script = (DEPLOY / "slurm-array.sh").read_text()
    first, last = map(int, re.search(r"#SBATCH --array=(\d+)-(\d+)", script).groups())
    command = script[script.index("uv run"):].split("\n\n")[0]
    count = str(last - first + 1)
    shards = [parse(command, SLURM_ARRAY_TASK_ID=str(i), SHARDS=count, SLURM_CPUS_PER_TASK="2",
                    SUBMISSIONS="submissions").shard for i in range(first, last + 1)]
    assert shards == [(i, last - first + 1) for i in range(first, last + 1)]
    assert "set -euo pipefail" in script and "NBGRADER_DB_URL:?" in script
    assert "SHARDS=${SHARDS:-$SLURM_ARRAY_TASK_COUNT}" in script  # one task submitted again keeps the count


def test_the_grader_image_has_bubblewrap_and_the_locked_environment():
    containerfile = (DEPLOY / "Containerfile").read_text()
    assert "bubblewrap" in containerfile and "uv sync --frozen" in containerfile


# ---------------------------------------------------------------------------------------------------- Z2JH values
# deploy/jupyterhub/z2jh-values.yaml is for the Zero to JupyterHub Helm chart: never run on a cluster here. These
# tests check it statically against how chart 4.4.0 reads its values and against the one-machine hub's
# jupyterhub_config.py, whose decisions it must carry over (read as text: it needs get_config to be imported).
HUB = DEPLOY / "jupyterhub"
# the keys chart 4.4.0's values.schema.yaml allows under these sections (additionalProperties: false there)
SCHEMA_KEYS = {
    "hub": {"config", "extraConfig", "loadRoles", "services", "service", "networkPolicy", "extraContainers",
            "extraVolumes", "extraVolumeMounts", "extraFiles", "extraEnv", "image", "podSecurityContext", "db"},
    "singleuser": {"image", "uid", "cmd", "defaultUrl", "extraEnv", "storage", "extraFiles", "fsGid",
                   "networkPolicy", "profileList", "cpu", "memory", "startTimeout"},
    "singleuser.storage": {"type", "homeMountPath", "extraVolumes", "extraVolumeMounts", "capacity", "dynamic",
                           "static", "extraLabels"},
}


def z2jh_values() -> dict:
    return yaml.safe_load((HUB / "z2jh-values.yaml").read_text())


def one_machine(name: str, **names):
    """The value of ``name = ...`` (or ``c.Spawner.name = ...``) in the one-machine config, evaluated with ``names``."""
    for node in ast.walk(ast.parse((HUB / "jupyterhub_config.py").read_text())):
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]).split(".")[-1] == name:
            return eval(compile(ast.Expression(node.value), name, "eval"), names)
    raise KeyError(name)


def one_machine_file(role: str, file: str):
    """What the one-machine config writes to JUPYTER/<role>/<file> (a literal string), as JSON."""
    for node in ast.walk(ast.parse((HUB / "jupyterhub_config.py").read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "_write" \
                and ast.unparse(node.args[0]) == f"JUPYTER / {role!r} / {file!r}":
            return json.loads(eval(compile(ast.Expression(node.args[1]), file, "eval")))
    raise KeyError(role, file)


def pre_spawn_hook(values: dict):
    """The hub.extraConfig code run as the chart runs it (exec with its ``c`` and ``get_config``)."""
    def get_config(key, default=None):  # z2jh.get_config: a dotted path into the values
        value = values
        for level in key.split("."):
            if not isinstance(value, dict) or level not in value:
                return default
            value = value[level]
        return value

    c = Config()
    for key, code in sorted(values["hub"]["extraConfig"].items()):
        exec(compile(code, key, "exec"), {"c": c, "get_config": get_config})
    return c.KubeSpawner.pre_spawn_hook


def test_z2jh_values_sit_where_the_chart_reads_them():
    values = z2jh_values()
    for section, allowed in SCHEMA_KEYS.items():
        keys = values
        for level in section.split("."):
            keys = keys[level]
        assert set(keys) <= allowed, section
    assert all(section[:1].isupper() for section in values["hub"]["config"])  # the chart exits otherwise
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] not in ("dummy", "null")
    assert {"allowed_users", "admin_users"} <= set(values["hub"]["config"]["Authenticator"])
    assert values["singleuser"]["uid"] == 0  # start.sh must start as root to become NB_USER
    assert values["singleuser"]["storage"]["homeMountPath"] == "/home/{username}"
    for key, file in values["singleuser"]["extraFiles"].items():
        assert re.fullmatch(r"[-._a-zA-Z0-9]+", key) and file["mountPath"].startswith("/")  # a Secret's key
        assert len({"data", "stringData", "binaryData"} & set(file)) == 1, key
    image = values["singleuser"]["image"]
    assert {"name", "tag"} <= set(image)


def test_z2jh_each_user_gets_their_own_unix_name_uid_and_role_config():
    values = z2jh_values()
    custom = values["custom"]["handwritten"]
    hook = pre_spawn_hook(values)
    users = {"hw-instructor": 1, "hw-student1": 2, "hw-student2": 3}
    assert set(custom["instructors"]) == {"hw-instructor"}
    env = {}
    for name, hub_id in users.items():
        spawner = SimpleNamespace(user=SimpleNamespace(name=name, id=hub_id), environment={"CHOWN_HOME": "yes"})
        hook(spawner)
        env[name] = spawner.environment
        assert spawner.environment["CHOWN_HOME"] == "yes"  # singleuser.extraEnv kept
        assert spawner.environment["NB_USER"] == name
    uids = [int(e["NB_UID"]) for e in env.values()]
    assert len(set(uids)) == len(users) and not {1000, custom["graderUid"], custom["courseGid"]} & set(uids)
    files = {f["mountPath"] for f in values["singleuser"]["extraFiles"].values()}
    for name, e in env.items():
        role = "instructor" if name in custom["instructors"] else "student"
        assert e["JUPYTER_CONFIG_PATH"] == f"{custom['jupyterConfig']}/{role}"
        assert f"{e['JUPYTER_CONFIG_PATH']}/jupyter_server_config.json" in files
        # instructors read submissions through the course group; a student's group is their own
        assert (e["NB_GID"] == str(custom["courseGid"])) == (role == "instructor")
        assert e["NB_GROUP"] == (custom["courseGroup"] if role == "instructor" else name)
    with pytest.raises(ValueError, match="Unix user name"):
        hook(SimpleNamespace(user=SimpleNamespace(name="Ada@example.org", id=4), environment={}))


def test_z2jh_values_carry_the_one_machine_hubs_decisions():
    values = z2jh_values()
    course = values["custom"]["handwritten"]["course"]
    hub, files = values["hub"], values["singleuser"]["extraFiles"]
    scopes = one_machine("FORMGRADER_SCOPES", COURSE=course)
    role = hub["loadRoles"][f"formgrade-{course}"]
    assert role["scopes"] == scopes and role["users"] == values["custom"]["handwritten"]["instructors"]
    assert hub["config"]["Spawner"]["server_token_scopes"] == one_machine("server_token_scopes",
                                                                          FORMGRADER_SCOPES=scopes)
    assert hub["services"][course]["oauth_no_confirm"] is True
    # the nbgrader config, word for word, with the exchange where every user pod mounts it
    exchange = [m["mountPath"] for m in values["singleuser"]["storage"]["extraVolumeMounts"]]
    assert files["nbgrader-config"]["stringData"] == one_machine("NBGRADER", COURSE=course,
                                                                  EXCHANGE=PurePosixPath(exchange[0]))
    assert files["nbgrader-config"]["mountPath"] == "/etc/jupyter/nbgrader_config.py"
    # the CSP for instructors (and the formgrader); students' hidden extensions, on the page and the server
    assert files["instructor-server-config"]["stringData"] == one_machine("CSP")
    hidden = dict.fromkeys(one_machine("HIDDEN"), True)
    assert files["student-page-config"]["data"] == {"disabledExtensions": hidden, "lockedExtensions": hidden}
    assert files["student-server-config"]["data"] == one_machine_file("student", "jupyter_server_config.json")
    assert files["instructor-server-json"]["data"] == one_machine_file("instructor", "jupyter_server_config.json")


def test_z2jh_formgrader_runs_as_the_grader_beside_the_hub():
    values = z2jh_values()
    custom, hub = values["custom"]["handwritten"], values["hub"]
    course = custom["course"]
    sidecar = next(c for c in hub["extraContainers"] if c["name"] == "formgrader")
    env = {e["name"]: e for e in sidecar["env"]}
    assert env["JUPYTERHUB_SERVICE_NAME"]["value"] == course
    assert env["JUPYTERHUB_SERVICE_PREFIX"]["value"] == f"/services/{course}/"
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == f"hub.services.{course}.apiToken"
    assert sidecar["securityContext"]["runAsUser"] == custom["graderUid"] != 1000  # not the hub's uid
    assert sidecar["securityContext"]["runAsGroup"] == custom["courseGid"]
    # reachable where the service says, through the hub's Service and both network policies
    port = int(hub["services"][course]["url"].rsplit(":", 1)[1])
    assert env["JUPYTERHUB_SERVICE_URL"]["value"].endswith(f":{port}")
    assert port in [p["port"] for p in hub["service"]["extraPorts"]]
    assert port in [p["port"] for rule in hub["networkPolicy"]["ingress"] for p in rule["ports"]]
    assert port in [p["port"] for rule in values["proxy"]["chp"]["networkPolicy"]["egress"] for p in rule["ports"]]
    # its Jupyter config is the users' own files (the chart's `singleuser` Secret), the CSP among them
    volumes = {v["name"]: v for v in hub["extraVolumes"]}
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    config = volumes["handwritten-formgrader-config"]["secret"]
    assert config["secretName"] == "singleuser" and mounts["handwritten-formgrader-config"] == env[
        "JUPYTER_CONFIG_PATH"]["value"]
    assert {i["key"]: i["path"] for i in config["items"]} == {
        "nbgrader-config": "nbgrader_config.py", "instructor-server-config": "jupyter_server_config.py"}
    # the course folder and the exchange: one claim, the exchange at the path every user pod has it
    claim = volumes["handwritten-class"]["persistentVolumeClaim"]["claimName"]
    user_volumes = {v["name"]: v for v in values["singleuser"]["storage"]["extraVolumes"]}
    assert user_volumes["handwritten-class"]["persistentVolumeClaim"]["claimName"] == claim
    user_mount, = values["singleuser"]["storage"]["extraVolumeMounts"]
    assert user_mount["mountPath"] == f"{mounts['handwritten-class']}/{user_mount['subPath']}"
    assert sidecar["workingDir"].startswith(mounts["handwritten-class"] + "/")

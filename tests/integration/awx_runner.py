"""AWX without AWX: a job template of extensions/awx/controller run the way AWX runs a job, through ansible-runner.

AWX does not call ansible-playbook itself: for each job it writes an ansible-runner *private data directory* and
calls `ansible_runner` on it (on an execution node, in the execution environment), then reads the job's status,
return code, events and artifacts back from the runner. `Controller.launch` does the same for one lab:

    <private data dir>/
      project/playbooks/*.yml     the project's checkout (AWX copies the synced project here); the job template's
                                  `playbook` is relative to it, the roles and modules come from the collection
                                  installed in the execution environment (here: .venv/collections)
      inventory/hosts             the inventory as AWX writes it: an executable script printing the JSON of the
                                  inventory's variables and its hosts' (non-secret) variables
      env/extravars               the job's extra variables, YAML: the template's extra_vars, then the survey's
                                  defaults, then the artifacts of the workflow's ancestor nodes, then the answers
                                  (AWX's precedence); every string not set by the template itself tagged !unsafe
      env/envvars                 the job's environment: what the credentials inject (custom types: their `env`
                                  injectors rendered in a Jinja sandbox; the built-in Kubernetes bearer token type:
                                  K8S_AUTH_*), and where the execution environment keeps the collection
      env/tmp*                    the credentials' injected files (`file` injectors, `tower.filename` /
                                  `tower.filename.<name>`; the Kubernetes CA), mode 0600, and the file of a
                                  credential's `extra_vars` injector
      env/cmdline                 --check (job_type: check), --diff (diff_mode), -l <limit>, -e @<credential vars>
      env/settings                the runner's settings (a job timeout; Ansible's output only in the events)
      artifacts/<job id>/         written by the runner: job_events/, status, rc

The job's result is the runner's `status` ("successful", "failed") and `rc`; its artifacts are what AWX keeps:
the `artifact_data` of the `playbook_on_stats` event (the run's set_stats), which a workflow passes on to the
next nodes as extra variables. Nothing is mocked: ansible-playbook runs for real against the lab.
"""
import json
import os
import pathlib
import shlex
import shutil
import stat
import sys
import tempfile

import ansible_runner
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ansible_yaml import from_yaml

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
BIN = pathlib.Path(sys.executable).parent
CONFIG = REPO / "extensions" / "awx" / "controller"
KUBERNETES_TYPE = "OpenShift or Kubernetes API Bearer Token"
# The lab inventory's host variables a site inventory holds (no secret: those come from the credentials).
SITE_HOST_VARS = ("alex_base_url", "alex_namespace", "alex_release", "alex_license_issuer_public_key")
JOB_TIMEOUT = 600


def load_config():
    """Every variable of extensions/awx/controller/*.yml, as plain data (the injectors' templates as text)."""
    merged = {}
    for path in sorted(CONFIG.glob("*.yml")):
        merged.update(from_yaml(path.read_text()))
    return json.loads(json.dumps(merged))


class SurveyError(ValueError):
    """A launch AWX refuses (HTTP 400): a missing required answer, a choice not offered, a value of another type."""


def survey_vars(template, answers):
    """The survey's defaults for unanswered questions, then the answers; validated as AWX validates a launch."""
    if not template.get("survey_enabled"):
        return {}
    out = {}
    for question in template["survey_spec"]["spec"]:
        name = question["variable"]
        if name not in answers:
            if "default" in question:
                out[name] = question["default"]
            elif question.get("required"):
                raise SurveyError("'%s' value missing" % name)
            continue
        value = answers[name]
        kind = question["type"]
        if kind == "multiplechoice" and value not in question["choices"]:
            raise SurveyError("Value %s for '%s' expected to be one of %s." % (value, name, question["choices"]))
        if kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
            raise SurveyError("Value %s for '%s' expected to be an integer." % (value, name))
        if kind == "integer" and not question.get("min", value) <= value <= question.get("max", value):
            raise SurveyError("'%s' value %s is out of range" % (name, value))
        if kind == "text" and not question.get("min", 0) <= len(value) <= question.get("max", len(value)):
            raise SurveyError("'%s' value %r is too short or too long" % (name, value))
        out[name] = value
    return out


class _UnsafeStrings(yaml.SafeDumper):
    """YAML with every string tagged !unsafe: AWX writes extra variables a user or a job gave this way, so that
    Ansible never renders them as templates."""

    def represent_str(self, data):
        return self.represent_scalar("!unsafe", data)


_UnsafeStrings.add_representer(str, _UnsafeStrings.represent_str)


def extravars_yaml(extra_vars, trusted):
    """env/extravars as AWX writes it: a top-level entry the job template set (same value) stays plain, every
    other one (survey answers, artifacts) has its strings tagged !unsafe."""
    parts = []
    for name, value in extra_vars.items():
        dumper = yaml.SafeDumper if name in trusted and trusted[name] == value else _UnsafeStrings
        parts.append(yaml.dump({name: value}, Dumper=dumper, default_flow_style=False))
    return "".join(parts)


def private_file(directory, data, mode=0o600):
    """A new file in directory (mkstemp, as AWX names its injected files), mode 0600."""
    handle, path = tempfile.mkstemp(dir=str(directory))
    with os.fdopen(handle, "w") as out:
        out.write(data)
    os.chmod(path, mode)
    return path


class _Tower:
    """The `tower` namespace of AWX's injector templates (`tower.filename`, `tower.filename.<name>`)."""


def inject_credential(credential_type, inputs, env, args, env_dir):
    """What AWX's CredentialType.inject_credential does for a job: files, then env, then extra_vars injectors."""
    if credential_type["name"] == KUBERNETES_TYPE:  # AWX's built-in injector of this managed type
        env["K8S_AUTH_HOST"] = inputs.get("host", "")
        env["K8S_AUTH_API_KEY"] = inputs.get("bearer_token", "")
        if inputs.get("verify_ssl") and inputs.get("ssl_ca_cert"):
            env["K8S_AUTH_VERIFY_SSL"] = "True"
            env["K8S_AUTH_SSL_CA_CERT"] = private_file(env_dir, inputs["ssl_ca_cert"])
        else:
            env["K8S_AUTH_VERIFY_SSL"] = "False"
        return
    sandbox = ImmutableSandboxedEnvironment()
    tower = _Tower()
    namespace = dict((k, v) for k, v in inputs.items() if v != "")  # an empty input renders as undefined (empty)
    namespace["tower"] = tower
    injectors = credential_type.get("injectors") or {}
    for label, template in (injectors.get("file") or {}).items():
        path = private_file(env_dir, sandbox.from_string(template).render(**namespace))
        if "." not in label:
            tower.filename = path
        else:
            if not isinstance(getattr(tower, "filename", None), _Tower):
                tower.filename = _Tower()
            setattr(tower.filename, label.split(".", 1)[1], path)
    for name, template in (injectors.get("env") or {}).items():
        env[name] = sandbox.from_string(template).render(**namespace)
    extra_vars = dict((name, sandbox.from_string(template).render(**namespace))
                      for name, template in (injectors.get("extra_vars") or {}).items())
    if extra_vars:
        args += ["-e", "@" + private_file(env_dir, yaml.safe_dump(extra_vars), mode=0o400)]


class Job:
    """One finished job: the runner's status and rc, its events, and its artifacts as AWX reads them."""

    def __init__(self, name, private_data_dir, runner, events, artifacts, extra_vars):
        self.name, self.private_data_dir = name, private_data_dir
        self.status, self.rc = runner.status, runner.rc
        self.events, self.artifacts, self.extra_vars = events, artifacts, extra_vars
        self.stats = {}
        for event in events:
            if event.get("event") == "playbook_on_stats":
                self.stats = event["event_data"]
        self.stdout = "\n".join(e["stdout"] for e in events if e.get("stdout"))

    def host(self, name):
        """The set_stats entry alexandria_ee.<name> of this job's artifacts."""
        return self.artifacts["alexandria_ee"][name]

    def record(self, name):
        """The run record (JSON) of inventory host name."""
        return json.loads(pathlib.Path(self.host(name)["record_json"]).read_text())

    def count(self, kind, host):
        """A host's number in the stats event (kind: changed, failures, ok, dark, ...)."""
        return (self.stats.get(kind) or {}).get(host, 0)

    def failure(self):
        """The messages of the failed tasks that were not ignored (runner_on_failed events)."""
        return " | ".join(str(e["event_data"].get("res", {}).get("msg", "")) for e in self.events
                          if e.get("event") == "runner_on_failed" and not e["event_data"].get("ignore_errors"))

    def leaked(self, secrets):
        """The secrets found in the job's output, events or artifacts (what AWX shows and stores)."""
        shown = json.dumps(self.events) + json.dumps(self.artifacts)
        return [s for s in secrets if s and s in shown]

    def tail(self, chars=3000):
        return self.stdout[-chars:]


class Controller:
    """The parts of AWX a job needs, for one inventory of lab deployments.

    hosts: {inventory host: host variables as `alexlab inventory` prints them} (only SITE_HOST_VARS are kept);
    vault: the values of the configuration's vault_* placeholders; inputs: per credential name, inputs that differ
    on this site from the example's (the Kubernetes API's URL); root: where the private data dirs and the
    inventory's report and evidence directories go.
    """

    def __init__(self, root, hosts, vault, inputs=None):
        self.root = pathlib.Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.config = load_config()
        self.templates = dict((t["name"], t) for t in self.config["controller_templates"])
        self.workflows = dict((w["name"], w) for w in self.config["controller_workflows"])
        self.credentials = dict((c["name"], c) for c in self.config["controller_credentials"])
        self.types = dict((t["name"], t) for t in self.config["controller_credential_types"])
        self.types[KUBERNETES_TYPE] = {"name": KUBERNETES_TYPE}
        self.vault, self.inputs = dict(vault), dict(inputs or {})
        inventory, = self.config["controller_inventories"]
        # The inventory's storage paths (/var/lib/alexandria-ee/...) and the drill's default backup directory
        # (/var/tmp/...) moved under root: the tests write only in the temp dir.
        group_vars = dict(inventory["variables"], alex_report_dir=str(self.root / "run-records"),
                          audit_chain_evidence_dir=str(self.root / "evidence") + "/{{ inventory_hostname }}",
                          backup_restore_dir=str(self.root / "restore-drill") + "/{{ inventory_hostname }}")
        host_vars = dict((host, dict((k, v) for k, v in variables.items() if k in SITE_HOST_VARS))
                         for host, variables in hosts.items())
        # AWX's inventory script data: groups with their hosts, and every host's variables under _meta.
        self.inventory_data = {"all": {"vars": group_vars, "children": ["alexandria"]},
                               "alexandria": {"hosts": sorted(host_vars)}, "_meta": {"hostvars": host_vars}}
        self.jobs = 0
        injected = set(n for t in self.types.values() for n in (t.get("injectors") or {}).get("env", {}))
        leaking = sorted(n for n in os.environ if n in injected or n.startswith("K8S_AUTH_"))
        if leaking:  # ansible-runner starts from this process's environment: a job must get these from credentials
            raise RuntimeError("unset %s before running jobs through the runner" % ", ".join(leaking))

    def credential_inputs(self, name):
        credential = self.credentials[name]
        inputs = {}
        for key, value in credential["inputs"].items():
            if isinstance(value, str):
                for placeholder, secret in self.vault.items():
                    value = value.replace("{{ %s }}" % placeholder, secret)
                assert "{{" not in value, "no vault value for %s of %s" % (key, name)
            inputs[key] = value
        inputs.update(self.inputs.get(name, {}))
        return inputs

    def write_private_data_dir(self, template, pdd, extra_vars, credentials, limit):
        env_dir, project = pdd / "env", pdd / "project"
        for directory in (pdd, env_dir, pdd / "inventory"):
            directory.mkdir(mode=0o700)
        shutil.copytree(REPO / "playbooks", project / "playbooks")
        script = "#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint(%r)\n" % json.dumps(self.inventory_data)
        hosts = pdd / "inventory" / "hosts"
        hosts.write_text(script)
        os.chmod(hosts, stat.S_IRWXU)
        (env_dir / "extravars").write_text(extravars_yaml(extra_vars, template.get("extra_vars") or {}))
        os.chmod(env_dir / "extravars", 0o600)
        args = []
        args += ["--check"] if template["job_type"] == "check" else []
        args += ["--diff"] if template.get("diff_mode") else []
        args += ["-l", limit] if limit else []
        env = {"AWX_PRIVATE_DATA_DIR": str(pdd), "JOB_ID": str(self.jobs), "ANSIBLE_RETRY_FILES_ENABLED": "False",
               # The execution environment: its ansible-playbook and the collection installed in it.
               "PATH": str(BIN) + os.pathsep + os.environ.get("PATH", ""),
               "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".venv" / "collections"),
               "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false", "ANSIBLE_NOCOLOR": "1"}
        for name in credentials:
            credential_type = self.types[self.credentials[name]["credential_type"]]
            inject_credential(credential_type, self.credential_inputs(name), env, args, env_dir)
        (env_dir / "envvars").write_text(yaml.safe_dump(env))
        os.chmod(env_dir / "envvars", 0o600)
        (env_dir / "cmdline").write_text(shlex.join(args))  # the runner splits it with shlex
        (env_dir / "settings").write_text(json.dumps({"job_timeout": JOB_TIMEOUT, "suppress_ansible_output": True,
                                                      "suppress_output_file": True}))

    def launch(self, template_name, answers=None, artifacts=None, workflow_vars=None, credentials=None,
               limit=None):
        """Launch a job of the template and wait for it; returns its Job.

        answers: the survey's answers (strings for text and multiplechoice, int for integer); artifacts: the
        ancestor nodes' artifacts in a workflow; workflow_vars: the workflow's own extra variables (its survey
        answers), which win over the artifacts; credentials: the credentials given at launch (instead of the
        template's, where it asks for them).
        """
        template = self.templates[template_name]
        if credentials is not None:
            assert template.get("ask_credential_on_launch"), "%s does not ask for credentials" % template_name
        if limit is not None:
            assert template.get("ask_limit_on_launch"), "%s does not ask for a limit" % template_name
        self.jobs += 1
        ident = str(self.jobs)
        extra_vars = dict(template.get("extra_vars") or {})
        extra_vars.update(survey_vars(template, dict(answers or {}, **(workflow_vars or {}))))
        extra_vars.update(artifacts or {})
        extra_vars.update(answers or {})
        extra_vars.update(workflow_vars or {})
        extra_vars.update(awx_job_id=self.jobs, awx_job_template_name=template_name)
        pdd = self.root / ("job-%s" % ident)
        self.write_private_data_dir(template, pdd, extra_vars, template["credentials"] if credentials is None
                                    else credentials, limit)
        events, artifacts_of_job = [], {}

        def event_handler(event):
            events.append(event)
            # AWX's RunnerCallback: the event that carries artifact_data (playbook_on_stats) gives the artifacts.
            if event.get("event_data", {}).get("artifact_data"):
                artifacts_of_job.clear()
                artifacts_of_job.update(event["event_data"]["artifact_data"])
            return True

        runner = ansible_runner.run(private_data_dir=str(pdd), playbook=template["playbook"],
                                    inventory=str(pdd / "inventory" / "hosts"), ident=ident, quiet=True,
                                    process_isolation=False, event_handler=event_handler)
        return Job(template_name, pdd, runner, events, artifacts_of_job, extra_vars)

    def workflow(self, name, answers, approve, credentials=None):
        """Run the workflow's nodes as AWX's workflow manager does: from the root, each node's children on its
        success or failure, every ancestor's artifacts passed on (a child's overriding its parents'), the
        workflow's survey answers winning over them. `approve(artifacts)` answers an approval node.
        Returns {node identifier: Job, or the approval's answer} in the order they ran."""
        workflow = self.workflows[name]
        nodes = dict((n["identifier"], n) for n in workflow["simplified_workflow_nodes"])
        children = set(c for n in nodes.values() for key in ("success_nodes", "failure_nodes", "always_nodes")
                       for c in n.get(key) or [])
        queue = [(identifier, {}) for identifier in nodes if identifier not in children]
        workflow_vars = survey_vars(workflow, answers)
        ran = {}
        while queue:
            identifier, artifacts = queue.pop(0)
            node = nodes[identifier]
            if "approval_node" in node:
                ok, passed_on = approve(artifacts), artifacts
                ran[identifier] = ok
            else:
                job = self.launch(node["unified_job_template"], artifacts=artifacts, workflow_vars=workflow_vars,
                                  credentials=credentials)
                ok, passed_on = job.status == "successful", dict(artifacts, **job.artifacts)
                ran[identifier] = job
            for child in (node.get("success_nodes" if ok else "failure_nodes") or []) + (node.get("always_nodes") or []):
                queue.append((child, passed_on))
        return ran


def lab_site(lab, host):
    """(host variables, vault, credential inputs) that make the configuration's example credentials this lab's."""
    info = lab.info
    printed = json.loads(lab.cli("inventory", "--host", host).stdout)["all"]["children"]["alexandria"]["hosts"]
    vault = {"vault_prod_eu_admin_token": info["admin_token"], "vault_prod_eu_k8s_token": info["k8s_token"],
             "vault_prod_eu_k8s_ca_cert": pathlib.Path(info["k8s_ca"]).read_text(),
             "vault_alexandria_checkpoint_key": info["checkpoint_key"], "vault_alexandria_license_blob": info["license_blob"]}
    for deployment in ("prod_eu", "prod_us"):
        vault.update({"vault_%s_dsn" % deployment: info["dsn"], "vault_%s_audit_hmac_key" % deployment: info["hmac_key"]})
    inputs = {"Alexandria EE prod-eu - Kubernetes": {"host": info["k8s_url"]}}
    return printed, vault, inputs


def lab_secrets(lab):
    info = lab.info
    return [info[k] for k in ("admin_token", "hmac_key", "k8s_token", "checkpoint_key", "license_blob")]

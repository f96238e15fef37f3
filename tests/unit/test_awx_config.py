"""The AWX/Controller configuration as code in extensions/awx/controller/ (infra.controller_configuration format).

Read with Ansible's own YAML loader (the injectors are `!unsafe`), and checked against the playbooks, the roles'
meta/argument_specs.yml and docs/awx.md:
- every job template runs a playbook of playbooks/, every playbook has a template, rehearsals are job_type check;
- every survey and extra variable is declared for the role entry point the playbook runs (or is a common variable
  documented in docs/awx.md), with a compatible type, choices and default; no survey asks for a secret;
- every reference (project, inventory, execution environment, credential, credential type, node template) resolves;
- the credential types inject what the roles read; the credentials hold vault placeholders only;
- the workflow puts an approval node between the check-mode rehearsal and every destructive node, and the
  destructive node takes its approved plan from the rehearsal;
- the roles read every gate and number a survey may set through | bool / | int (survey answers are strings).
"""
import json
import pathlib
import re

import pytest
import yaml

from ansible_yaml import from_yaml

from ansible_collections.alexandria.ee.plugins.module_utils import pg

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = REPO / "extensions" / "awx" / "controller"
DISPATCH_VARS = {"controller_credential_types", "controller_credentials", "controller_execution_environments",
                 "controller_projects", "controller_inventories", "controller_inventory_sources",
                 "controller_templates", "controller_workflows", "controller_schedules"}
# Credential types every AWX/Controller has, with their secret input fields.
BUILTIN_CREDENTIAL_TYPES = {"OpenShift or Kubernetes API Bearer Token": {"bearer_token"}}
SECRET_NAME = re.compile(r"(token|dsn|hmac|password|secret|_blob$|private)", re.I)
SURVEY_TYPES = {"text": {"str", "path", "raw"}, "textarea": {"str", "raw"}, "password": {"str", "raw"},
                "integer": {"int", "float", "raw"}, "float": {"float", "raw"},
                "multiplechoice": {"str", "bool", "raw"}, "multiselect": {"list"}}


def load_yaml(path):
    """The file as Ansible reads it (!unsafe strings included), then plain JSON types, as Controller stores them."""
    return json.loads(json.dumps(from_yaml(path.read_text())))


@pytest.fixture(scope="module")
def config():
    merged = {}
    for path in sorted(CONFIG.glob("*.yml")):
        data = load_yaml(path)
        assert isinstance(data, dict) and set(data) <= DISPATCH_VARS, path
        assert not set(data) & set(merged), path
        merged.update(data)
    assert set(merged) == DISPATCH_VARS
    return merged


def by_name(items):
    names = [item["name"] for item in items]
    assert len(names) == len(set(names)), names
    return dict((item["name"], item) for item in items)


def entry_point(playbook):
    """(role, entry point) that a playbook of playbooks/ runs."""
    play = yaml.safe_load((REPO / playbook).read_text())[0]  # the deployments' play (health.yml adds a report play)
    if play.get("roles"):
        role, = play["roles"]
        return role["role"].split(".")[-1], "main"
    task, = play["tasks"]
    include = task["ansible.builtin.include_role"]
    return include["name"].split(".")[-1], include.get("tasks_from", "main")


def argspec(role, entry):
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    return specs[entry]["options"]


def common_options():
    """The variables every scenario reads through run_record's plan entry point (alex_expected_plan_hash, ...)."""
    return dict((k, v) for k, v in argspec("run_record", "plan").items() if not k.startswith("run_record_"))


def documented_common_variables():
    """Names in the first column of the "Common variables" table of docs/awx.md."""
    text = (REPO / "docs" / "awx.md").read_text()
    section = text.split("### Common variables", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))


def options_for(playbook):
    options = dict(common_options())
    options.update(argspec(*entry_point(playbook)))
    return options


def check_question(question, options, where):
    name = question["variable"]
    assert name in options, "%s: survey variable %s is not declared in the role's argument_specs" % (where, name)
    option = options[name]
    kind, otype = question["type"], option.get("type", "str")
    assert otype in SURVEY_TYPES[kind], (where, name, kind, otype)
    assert not option.get("no_log") and not SECRET_NAME.search(name), "%s: %s is a secret" % (where, name)
    assert kind != "password", (where, name)
    if kind == "multiplechoice":
        choices = question["choices"]
        assert isinstance(choices, list) and all(isinstance(c, str) for c in choices), (where, name)
        if otype == "bool":
            assert sorted(choices) == ["false", "true"], (where, name, choices)
        if "choices" in option:
            assert set(choices) <= set(str(c) for c in option["choices"]), (where, name)
        if "default" in question:
            assert question["default"] in choices, (where, name)
    if kind == "integer":
        for key in ("default", "min", "max"):
            if key in question:
                assert isinstance(question[key], int) and not isinstance(question[key], bool), (where, name, key)
        if "default" in question:
            assert question["min"] <= question["default"] <= question["max"], (where, name)
    if kind == "text" and "default" in question:
        # AWX passes a survey default as an extra variable: an empty one must mean what the role's default means.
        assert question["default"] == "" and option.get("default") == "", (where, name, option.get("default"))
    if question.get("required") and "default" not in question and kind == "text":
        assert question.get("min", 0) >= 1, (where, name)


def test_one_template_per_playbook_and_a_rehearsal_where_it_changes_something(config):
    templates = by_name(config["controller_templates"])
    playbooks = sorted("playbooks/" + p.name for p in (REPO / "playbooks").glob("*.yml"))
    assert len(playbooks) >= 6
    for template in templates.values():
        assert template["playbook"] in playbooks, template["name"]
        assert template["project"] == "Alexandria EE collection", template["name"]
        assert template["job_type"] in ("run", "check"), template["name"]
        rehearsal = template["name"].endswith("(rehearsal)")
        assert (template["job_type"] == "check") == rehearsal, template["name"]
        if rehearsal:
            assert template.get("diff_mode") is True, template["name"]
    for playbook in playbooks:
        of_playbook = [t for t in templates.values() if t["playbook"] == playbook]
        assert len([t for t in of_playbook if t["job_type"] == "check"]) == 1, playbook
        operator_runs = [t for t in of_playbook if t["job_type"] == "run" and t.get("survey_enabled")]
        assert len(operator_runs) == 1, playbook


def test_survey_and_extra_variables_are_declared_with_compatible_types(config):
    documented = documented_common_variables()
    assert {"alex_target", "alex_expected_plan_hash", "alex_expected_plan_hash_from", "alexandria_ee"} <= documented
    for template in config["controller_templates"]:
        options = options_for(template["playbook"])
        where = template["name"]
        for name in template.get("extra_vars", {}):
            assert name in options or name in documented, (where, name)
            assert not SECRET_NAME.search(name), (where, name)
        if template.get("survey_enabled"):
            spec = template["survey_spec"]["spec"]
            assert spec and len(set(q["variable"] for q in spec)) == len(spec), where
            for question in spec:
                check_question(question, options, where)
        else:
            assert not template.get("survey_spec"), where
    for workflow in config["controller_workflows"]:
        templates = by_name(config["controller_templates"])
        playbooks = set(templates[n["unified_job_template"]]["playbook"]
                        for n in workflow["simplified_workflow_nodes"] if "unified_job_template" in n)
        for question in workflow["survey_spec"]["spec"]:
            for playbook in playbooks:  # a workflow's survey answers reach every node
                check_question(question, options_for(playbook), workflow["name"])
    every_option = set()
    for playbook in REPO.glob("playbooks/*.yml"):
        every_option |= set(options_for(playbook.relative_to(REPO)))
    for inventory in config["controller_inventories"]:
        for name in inventory.get("variables", {}):
            assert name.startswith("ansible_") or name in every_option or name in documented, name


def test_plan_affecting_answers_are_the_same_in_rehearsal_and_real_run(config):
    """A rehearsal asks what changes the plan exactly as its real run does, so both plans can hash the same."""
    templates = by_name(config["controller_templates"])
    for name, rehearsal in templates.items():
        if rehearsal["job_type"] != "check":
            continue
        real = templates[name[:-len(" (rehearsal)")]]
        assert real["playbook"] == rehearsal["playbook"] and real["extra_vars"] == rehearsal["extra_vars"], name
        asked = dict((q["variable"], comparable(q)) for q in real["survey_spec"]["spec"])
        for question in rehearsal["survey_spec"]["spec"]:
            assert comparable(question) == asked[question["variable"]], (name, question["variable"])


def comparable(question):
    return dict((k, v) for k, v in question.items() if k not in ("question_name", "question_description"))


def test_no_secret_is_asked_or_passed_in_clear(config):
    for template in config["controller_templates"] + config["controller_workflows"]:
        for question in (template.get("survey_spec") or {}).get("spec", []):
            assert question["type"] != "password" and not SECRET_NAME.search(question["variable"]), question
            if question["type"] == "password":
                assert "default" not in question
        for name, value in (template.get("extra_vars") or {}).items():
            assert not SECRET_NAME.search(name) and "vault" not in str(value), (template["name"], name)
    types = by_name(config["controller_credential_types"])
    for credential in config["controller_credentials"]:
        ctype = credential["credential_type"]
        if ctype in types:
            fields = types[ctype]["inputs"]["fields"]
            secret = set(f["id"] for f in fields if f.get("secret"))
            assert set(credential["inputs"]) <= set(f["id"] for f in fields), credential["name"]
        else:
            secret = BUILTIN_CREDENTIAL_TYPES[ctype]
        for field in secret & set(credential["inputs"]):
            assert re.fullmatch(r"\{\{ vault_[a-z0-9_]+ \}\}", credential["inputs"][field]), (credential["name"], field)


def test_credential_types_inject_what_the_roles_read(config):
    defaults = "".join(p.read_text() for p in REPO.glob("roles/*/defaults/main.yml"))
    pg_fallbacks = set(name for option in pg.postgres_argument_spec().values()
                       for name in (option.get("fallback") or (None, []))[1])
    for ctype in config["controller_credential_types"]:
        fields = dict((f["id"], f) for f in ctype["inputs"]["fields"])
        assert set(ctype["inputs"]["required"]) <= set(fields)
        assert all(f.get("secret") for f in fields.values()), ctype["name"]
        injectors = ctype["injectors"]
        for kind, values in injectors.items():
            templates = values.values() if kind != "file" else [values["template"]]
            for template in templates:
                for ref in re.findall(r"\{\{\s*([a-z_.]+)\s*\}\}", template):
                    assert ref in fields or ref == "tower.filename", (ctype["name"], ref)
        for env in injectors.get("env", {}):
            if env.startswith("PG"):  # libpq's own variable: the modules' PostgreSQL options fall back to it
                assert env in pg_fallbacks, env
            else:
                assert "lookup('ansible.builtin.env', '%s')" % env in defaults, env
        for name, value in injectors.get("extra_vars", {}).items():
            assert value == "{{ tower.filename }}", (name, value)  # a path, never the secret itself
            role = name.split("_license")[0].split("_blob")[0]
            assert name in argspec(role, "main"), name
    env_injected = set(e for t in config["controller_credential_types"] for e in t["injectors"].get("env", {}))
    assert env_injected == {"ALEX_ADMIN_TOKEN", "ALEX_DSN", "ALEX_AUDIT_HMAC_KEY", "ALEX_CHECKPOINT_KEY",
                            "PGSSLROOTCERT"}


def test_references_resolve(config):
    ees = by_name(config["controller_execution_environments"])
    projects = by_name(config["controller_projects"])
    inventories = by_name(config["controller_inventories"])
    credentials = by_name(config["controller_credentials"])
    ctypes = set(by_name(config["controller_credential_types"])) | set(BUILTIN_CREDENTIAL_TYPES)
    templates = by_name(config["controller_templates"])
    for credential in credentials.values():
        assert credential["credential_type"] in ctypes, credential["name"]
    for project in projects.values():
        assert project.get("default_environment", next(iter(ees))) in ees, project["name"]
    for source in config["controller_inventory_sources"]:
        assert source["inventory"] in inventories and source["source_project"] in projects, source["name"]
    for template in templates.values():
        assert template["execution_environment"] in ees, template["name"]
        assert template["project"] in projects and template["inventory"] in inventories, template["name"]
        assert template["credentials"] and set(template["credentials"]) <= set(credentials), template["name"]
    for workflow in config["controller_workflows"]:
        assert workflow.get("inventory", next(iter(inventories))) in inventories
        for node in workflow["simplified_workflow_nodes"]:
            assert ("unified_job_template" in node) != ("approval_node" in node), node["identifier"]
            if "unified_job_template" in node:
                assert node["unified_job_template"] in templates, node["identifier"]
                # A workflow's limit reaches a node only when the node's template prompts for the limit.
                if workflow.get("ask_limit_on_launch"):
                    assert templates[node["unified_job_template"]].get("ask_limit_on_launch"), node["identifier"]
    for item in [x for key in DISPATCH_VARS for x in config[key]]:
        assert item.get("organization", "Default") == "Default", item["name"]
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    collection = projects["Alexandria EE collection"]
    assert collection["scm_branch"] == version  # the playbooks of the release the EE holds
    assert collection["scm_url"] == yaml.safe_load((REPO / "galaxy.yml").read_text())["repository"] + ".git"
    for ee in ees.values():
        assert ee["image"].endswith(":" + version), ee["image"]


def paths(nodes, start, path=()):
    """Every path from start to a leaf, as lists of (identifier, edge taken to reach it)."""
    path = path + (start,)
    children = [(child, edge) for edge in ("success_nodes", "failure_nodes", "always_nodes")
                for child in nodes[start[0]].get(edge) or []]
    if not children:
        yield list(path)
    for child, edge in children:
        yield from paths(nodes, (child, edge), path)


def test_schedules_run_a_template_with_answers_it_accepts(config):
    templates = by_name(config["controller_templates"])
    assert config["controller_schedules"], "the audit chain watch is scheduled"
    for schedule in config["controller_schedules"]:
        template = templates[schedule["unified_job_template"]]
        # Controller's rrule subset: DTSTART in UTC, then one RRULE with an INTERVAL.
        assert re.fullmatch(r"DTSTART:\d{8}T\d{6}Z RRULE:FREQ=(MINUTELY|HOURLY|DAILY|WEEKLY|MONTHLY);INTERVAL=\d+"
                            r"(;[A-Z]+=[A-Z0-9,]+)*", schedule["rrule"]), schedule["name"]
        options = options_for(template["playbook"])
        spec = dict((q["variable"], q) for q in template["survey_spec"]["spec"])
        for name, value in (schedule.get("extra_data") or {}).items():
            assert name in spec, (schedule["name"], name)  # a schedule answers the template's survey
            if spec[name]["type"] == "multiplechoice":
                assert value in spec[name]["choices"], (schedule["name"], name, value)
            assert name in options, (schedule["name"], name)
    watched = set(s["unified_job_template"] for s in config["controller_schedules"])
    assert "Alexandria EE - audit chain watch" in watched


def test_workflow_approval_sits_between_the_rehearsal_and_the_destructive_step(config):
    templates = by_name(config["controller_templates"])
    workflow, = config["controller_workflows"]
    nodes = dict((n["identifier"], n) for n in workflow["simplified_workflow_nodes"])
    children = set(c for n in nodes.values() for e in ("success_nodes", "failure_nodes", "always_nodes")
                   for c in n.get(e) or [])
    assert children <= set(nodes)
    roots = sorted(set(nodes) - children)
    assert roots == ["rehearse"]

    def template(identifier):
        node = nodes[identifier]
        return templates[node["unified_job_template"]] if "unified_job_template" in node else None

    destructive = [i for i in nodes if template(i) and template(i)["job_type"] == "run"]
    assert destructive == ["retire"]
    reached = set()
    for path in paths(nodes, ("rehearse", None)):
        for index, (identifier, edge) in enumerate(path):
            reached.add(identifier)
            if identifier not in destructive:
                continue
            before = path[:index]
            kinds = ["approval" if template(i) is None else template(i)["job_type"] for i, _edge in before]
            assert kinds == ["check", "approval"], (path, kinds)  # rehearsal, then approval, then this
            assert all(e in (None, "success_nodes") for _node, e in path[:index + 1]), path  # only on success
            rehearsal, approval = before[0][0], before[1][0]
            assert template(rehearsal)["playbook"] == template(identifier)["playbook"]
            retire_vars = dict(template(identifier)["extra_vars"])
            assert retire_vars.pop("alex_expected_plan_hash_from") == "rehearsal"
            assert template(rehearsal)["extra_vars"] == retire_vars  # nothing else differs: the plans can agree
            assert not template(identifier).get("ask_variables_on_launch")
            assert 0 < nodes[approval]["approval_node"]["timeout"] <= 86400
            assert nodes[approval]["approval_node"]["name"]
    assert reached == set(nodes)
    # No failure or always path runs anything destructive (a rollback needs a human: docs/awx.md).
    for node in nodes.values():
        for child in (node.get("failure_nodes") or []) + (node.get("always_nodes") or []):
            assert not template(child) or template(child)["job_type"] == "check", child
    # The workflow's survey is what the rehearsal needs to walk the destructive path: no defaults for the gates.
    spec = dict((q["variable"], q) for q in workflow["survey_spec"]["spec"])
    for name in ("audit_chain_incident_id", "audit_chain_signoff", "audit_chain_confirm"):
        assert spec[name]["required"] is True and "default" not in spec[name], name


# ------------------------------------------------------------------ survey answers are strings

GATE_TYPES = {"bool": "bool", "int": "int", "float": "float"}
CONDITION_KEYS = ("when", "that", "failed_when", "changed_when", "until")


def typed_options():
    """Every bool/int/float option of the scenario roles (what a survey or an extra variable may set)."""
    typed = {}
    for path in REPO.glob("roles/*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(path.read_text())["argument_specs"].values():
            for name, option in entry["options"].items():
                if option.get("type") in GATE_TYPES:
                    typed[name] = GATE_TYPES[option["type"]]
    return typed


def strings(node, key=None):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from strings(v, k)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item, key)
    elif isinstance(node, str):
        yield key, node


def bare_uses(text, condition, typed):
    """Uses of a typed variable that Jinja would take as the string it may be: in a condition, an inline if, a
    comparison or arithmetic, without | bool / | int / | float."""
    found = []
    expressions = [text] if condition else re.findall(r"\{\{(.*?)\}\}|\{%(.*?)%\}", text, re.S)
    for expression in expressions:
        if isinstance(expression, tuple):
            expression = "".join(expression)
        expression = re.sub(r"'[^']*'", "''", expression)  # prose in string literals
        for match in re.finditer(r"\b(%s)\b" % "|".join(map(re.escape, sorted(typed))), expression):
            after = expression[match.end():].lstrip()
            if after.startswith("|"):
                continue
            before = expression[:match.start()].rstrip()
            if not condition and not before and not after:
                continue  # "{{ var }}" alone: a module option, converted by the module
            found.append(match.group(1))
    return found


def test_the_scan_finds_bare_gates():
    typed = {"x_allow": "bool", "x_min": "int"}
    assert bare_uses("x_allow", True, typed) == ["x_allow"]
    assert bare_uses("x_allow | bool", True, typed) == []
    assert bare_uses("{{ '' if x_allow else 'set x_allow=true' }}", False, typed) == ["x_allow"]
    assert bare_uses("{{ h < x_min | int }}, x_min in prose", False, typed) == []
    assert bare_uses("{{ h < x_min }}", False, typed) == ["x_min"]
    assert bare_uses("{{ x_allow }}", False, typed) == []


def test_roles_read_every_gate_and_number_through_a_filter():
    typed = typed_options()
    assert {"audit_chain_confirm", "quota_exceeded_free_seats", "quota_exceeded_min_headroom",
            "license_renewal_allow_downgrade", "api_not_serving_allow_restart"} <= set(typed)
    problems = []
    for path in sorted(REPO.glob("roles/*/tasks/*.yml")):
        for key, text in strings(yaml.safe_load(path.read_text())):
            for name in bare_uses(text, key in CONDITION_KEYS, typed):
                problems.append("%s: %s in %r" % (path.relative_to(REPO), name, text.strip()[:80]))
    assert problems == []


def empty_text_answers(config):
    """The survey variables of type text whose answer may be empty (a default "" or not required)."""
    names = set()
    for survey in [t for t in config["controller_templates"] if t.get("survey_enabled")] + config["controller_workflows"]:
        for question in survey["survey_spec"]["spec"]:
            if question["type"] == "text" and (question.get("default") == "" or not question.get("required")):
                names.add(question["variable"])
    return names


def test_roles_read_an_empty_text_answer_as_empty_not_none(config):
    """AWX writes survey answers tagged !unsafe, and ansible-core 2.19 reads `!unsafe ''` back as None: every use of
    a text answer that may be empty goes through | default('', true) (None | length fails, None | trim is "None")."""
    names = empty_text_answers(config)
    assert {"alex_expected_plan_hash", "audit_chain_signoff", "backup_restore_backup"} <= names
    pattern = re.compile(r"\b(%s)\b(?!\s*\|\s*default\(''\s*,\s*true\))" % "|".join(map(re.escape, sorted(names))))
    problems = []
    for path in sorted(REPO.glob("roles/*/tasks/*.yml")):
        for _key, text in strings(yaml.safe_load(path.read_text())):
            for expression in re.findall(r"\{\{(.*?)\}\}|\{%(.*?)%\}", text, re.S):
                expression = re.sub(r"'[^']*'", "''", "".join(expression))  # prose in string literals
                problems += ["%s: %s in %r" % (path.relative_to(REPO), m.group(1), expression.strip()[:80])
                             for m in pattern.finditer(expression)]
    assert problems == [], "\n".join(problems)

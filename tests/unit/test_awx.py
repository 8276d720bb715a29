"""AWX job templates as code: every survey question is a variable its playbook
accepts, with the same type, choices and required-ness, every required
variable is asked (or comes from the template's extra variables), and the
defaults the surveys, the specs and the playbooks give agree."""
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.toolhive.k8s.plugins.module_utils.specs import load_playbook_spec

REPO = Path(__file__).resolve().parents[2]
AWX = REPO / "awx"
TEMPLATES = yaml.safe_load((AWX / "job_templates.yml").read_text())["awx_job_templates"]
SERVERS = yaml.safe_load((REPO / "playbooks" / "vars" / "example.yml").read_text())

# Survey question types for each argument-spec type; AWX has no boolean type, so
# a bool is a multiple choice of "true" and "false" (the spec converts them).
SURVEY_TYPES = {"str": {"text", "textarea", "password", "multiplechoice"}, "int": {"integer"},
                "float": {"float"}, "bool": {"multiplechoice"}, "list": {"multiselect"}}
SAMPLE_ANSWERS = {"text": "gateway", "integer": 2, "float": 0.5}


def survey_problems(survey, options, provided=()):
    """Everything wrong between a survey and the options of its playbook."""
    problems = []
    asked = set()
    for question in survey["spec"]:
        var = question["variable"]
        asked.add(var)
        option = options.get(var)
        if option is None:
            problems.append(f"{var}: the playbook does not accept it")
            continue
        spec_type = option.get("type", "str")
        if question["type"] not in SURVEY_TYPES.get(spec_type, ()):
            problems.append(f"{var}: survey type {question['type']} for a {spec_type}")
        if bool(question.get("required")) != bool(option.get("required")):
            problems.append(f"{var}: survey required={question.get('required')}, "
                            f"playbook required={option.get('required', False)}")
        choices = question.get("choices")
        if spec_type == "bool" and sorted(choices or []) != ["false", "true"]:
            problems.append(f"{var}: a bool is asked as the choices true and false")
        if "choices" in option and sorted(choices or []) != sorted(option["choices"]):
            problems.append(f"{var}: survey choices {choices} differ from the playbook's {option['choices']}")
        if "default" in question and "default" in option and str(question["default"]).lower() != \
                str(option["default"]).lower():
            problems.append(f"{var}: survey default {question['default']!r}, playbook default {option['default']!r}")
    for var, option in options.items():
        if option.get("required") and var not in asked and var not in provided:
            problems.append(f"{var}: required by the playbook but not asked")
    return problems


def answers(survey):
    """What AWX passes when every question is answered with its default or a sample."""
    values = {}
    for question in survey["spec"]:
        if "default" in question and question["default"] != "":
            values[question["variable"]] = question["default"]
        elif question["type"] == "multiplechoice":
            values[question["variable"]] = question["choices"][0]
        else:
            values[question["variable"]] = SAMPLE_ANSWERS[question["type"]]
    return values


def play_vars(playbook):
    return yaml.safe_load((REPO / "playbooks" / f"{playbook}.yml").read_text())[0].get("vars", {})


@pytest.mark.parametrize("template", TEMPLATES, ids=[t["playbook"] for t in TEMPLATES])
def test_survey_matches_playbook(template):
    assert (REPO / "playbooks" / f"{template['playbook']}.yml").is_file()
    survey = yaml.safe_load((AWX / "surveys" / f"{template['playbook']}.yml").read_text())
    options = load_playbook_spec(template["playbook"], root=REPO)[1]
    provided = SERVERS if template.get("extra_vars") else {}
    assert survey_problems(survey, options, provided) == []

    # AWX's answers (with the template's extra variables) pass the playbook's own validation.
    result = ArgumentSpecValidator(options).validate(dict(provided, **answers(survey)),
                                                     validate_role_argument_spec=True)
    assert result.error_messages == []


@pytest.mark.parametrize("template", TEMPLATES, ids=[t["playbook"] for t in TEMPLATES])
def test_defaults_live_in_the_spec_only(template):
    """The spec's defaults are set by the first task (toolhive.k8s.validate_variables) for what nobody set: play
    vars would be written twice and would shadow inventory host variables (one namespace per cluster)."""
    assert play_vars(template["playbook"]) == {}


def test_the_check_finds_each_kind_of_mismatch():
    options = {"toolhive_replicas": {"type": "int", "required": True},
               "toolhive_state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
               "toolhive_force": {"type": "bool", "default": False},
               "toolhive_name": {"type": "str", "required": True}}
    survey = {"spec": [
        {"variable": "toolhive_replicas", "type": "text", "required": False},
        {"variable": "toolhive_state", "type": "multiplechoice", "choices": ["present"], "default": "absent"},
        {"variable": "toolhive_force", "type": "multiplechoice", "choices": ["yes", "no"]},
        {"variable": "toolhive_unknown", "type": "text"},
    ]}
    assert survey_problems(survey, options) == [
        "toolhive_replicas: survey type text for a int",
        "toolhive_replicas: survey required=False, playbook required=True",
        "toolhive_state: survey choices ['present'] differ from the playbook's ['present', 'absent']",
        "toolhive_state: survey default 'absent', playbook default 'present'",
        "toolhive_force: a bool is asked as the choices true and false",
        "toolhive_unknown: the playbook does not accept it",
        "toolhive_name: required by the playbook but not asked",
    ]


def test_configure_playbook_creates_one_template_per_playbook_with_its_survey():
    play = yaml.safe_load((AWX / "configure.yml").read_text())[0]
    modules = [next(k for k in task if k.startswith(("awx.awx.", "ansible.builtin."))) for task in play["tasks"]]
    assert {"awx.awx.project", "awx.awx.inventory", "awx.awx.credential", "awx.awx.job_template",
            "awx.awx.execution_environment"} <= set(modules)
    credential = next(t for t in play["tasks"] if "awx.awx.credential" in t)
    assert credential["awx.awx.credential"]["credential_type"] == "OpenShift or Kubernetes API Bearer Token"
    assert credential["no_log"] is True
    assert sorted(t["playbook"] for t in TEMPLATES) == sorted(
        p.stem for p in (REPO / "playbooks").glob("*.yml"))

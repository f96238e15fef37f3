"""The shared argument specs: env fallbacks resolve through AnsibleModule, secrets are no_log."""
import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.alexandria.ee.plugins.module_utils import api_client, k8s_client, pg

SECRET_OPTIONS = {"api_key", "admin_token", "dsn", "login_password"}


def _module(spec, args):
    with patch_module_args(args):
        return AnsibleModule(argument_spec=spec, supports_check_mode=True)


def _all_specs():
    spec = {}
    spec.update(k8s_client.k8s_auth_argument_spec())
    spec.update(k8s_client.deployment_argument_spec())
    spec.update(api_client.api_argument_spec(admin=True))
    spec.update(pg.postgres_argument_spec())
    spec.pop("validate_certs")  # defined by both k8s and api specs; each module uses one
    return spec


def test_secret_options_are_no_log():
    spec = _all_specs()
    spec["api_key"] = k8s_client.k8s_auth_argument_spec()["api_key"]
    for name in SECRET_OPTIONS:
        assert spec[name].get("no_log") is True, name
    for name, opts in spec.items():
        if name not in SECRET_OPTIONS:
            assert not opts.get("no_log"), name


@pytest.mark.parametrize("env,option,value", [
    ("K8S_AUTH_KUBECONFIG", "kubeconfig", "/tmp/kc"),
    ("K8S_AUTH_CONTEXT", "context", "lab"),
    ("K8S_AUTH_HOST", "host", "https://127.0.0.1:6443"),
    ("K8S_AUTH_API_KEY", "api_key", "tok"),
    ("PGHOST", "login_host", "db.local"),
    ("PGPASSWORD", "login_password", "pw"),
    ("ALEX_DSN", "dsn", "postgresql:///x"),
    ("ALEX_ADMIN_TOKEN", "admin_token", "adm"),
])
def test_env_fallbacks(monkeypatch, env, option, value):
    monkeypatch.setenv("ALEX_BASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("ALEX_ADMIN_TOKEN", "admin-token")
    monkeypatch.setenv(env, value)
    module = _module(_all_specs(), {})
    assert module.params[option] == value
    if option in SECRET_OPTIONS:
        assert value in module.no_log_values


def test_defaults_follow_the_contract(monkeypatch):
    monkeypatch.setenv("ALEX_BASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("ALEX_ADMIN_TOKEN", "x")
    module = _module(_all_specs(), {})
    assert module.params["namespace"] == "alexandria"
    assert module.params["release"] == "alexandria-ee"
    assert module.params["timeout"] == 10.0


def test_connection_kwargs_map_login_options():
    kwargs = pg.connection_kwargs({"login_host": "h", "login_port": 5433, "login_user": "u", "login_password": "p",
                                   "login_db": "d", "ssl_mode": "require", "dsn": None})
    assert kwargs == {"host": "h", "port": 5433, "user": "u", "password": "p", "dbname": "d", "sslmode": "require"}

"""Bad values for every option of every module, generated from the modules' argument specs.

A case is (module, option, label, args). Values that need the run's scratch directory or a closed port are
written as placeholders ({tmp}, {closed}) and filled in by the runner (tests/unit/bad_input_runner.py), so the
case list is the same at collection time on every machine. Nothing here reaches past localhost: URLs and DSNs
point at a closed local port, and paths stay under the scratch directory (the runner's HOME and cwd too).
"""
import importlib
import pathlib

from ansible_collections.alexandria.ee.plugins.module_utils import run_record

REPO = pathlib.Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("alex_*.py"))

# Secrets in the baseline arguments: no answer may ever contain them.
SECRETS = {
    "dsn_password": "DsnPw-5ecret-do-not-print",
    "admin_token": "AdminTok-5ecret-do-not-print",
    "api_key": "K8sTok-5ecret-do-not-print",
    "hmac_key": "HmacKey-5ecret-do-not-print",
}

CLOSED_URL = "http://127.0.0.1:{closed}"
CLOSED_DSN = "postgresql://alex:%s@127.0.0.1:{closed}/audit?connect_timeout=2" % SECRETS["dsn_password"]
K8S_AUTH = dict(host=CLOSED_URL, api_key=SECRETS["api_key"], kubeconfig="{tmp}/no-kubeconfig")
K8S = dict(K8S_AUTH, request_timeout=2)
API = dict(base_url=CLOSED_URL, timeout=2)
AUDIT = dict(dsn=CLOSED_DSN, host=CLOSED_URL, kubeconfig="{tmp}/no-kubeconfig")

# The smallest valid arguments of each module, pointing nowhere; each case changes one option.
BASELINE = {
    "alex_api_log": dict(K8S, wait_timeout=1, wait_sleep=0.5),
    "alex_audit_backup": dict(AUDIT, dest="{tmp}/out/backup.dump"),
    "alex_audit_key": dict(AUDIT, reason="planned", change_ref="CHG-1", wait_timeout=1),
    "alex_audit_export": dict(AUDIT, hmac_key=SECRETS["hmac_key"], tenant="acme", dest="{tmp}/out/acme.csv"),
    "alex_audit_report": dict(dest="{tmp}/out/report", incident_id="INC-1", verify={"tenants": {}, "broken": []}),
    "alex_audit_retire": dict(AUDIT, hmac_key=SECRETS["hmac_key"], tenant="acme"),
    "alex_audit_scratch_db": dict(AUDIT, name="alex_drill_bad_input", state="absent"),
    "alex_audit_verify": dict(AUDIT, hmac_key=SECRETS["hmac_key"]),
    "alex_fleet_report": dict(dest_dir="{tmp}/out/fleet", hosts={}),
    "alex_health": dict(API, **K8S_AUTH, dsn=CLOSED_DSN, hmac_key=SECRETS["hmac_key"], admin_token=SECRETS["admin_token"],
                        inventory_host="prod-eu"),
    "alex_helm_release": dict(K8S),
    "alex_license": dict(K8S_AUTH, **API),
    "alex_license_issuers": dict(K8S_AUTH, **API),
    "alex_plan": dict(plan=[{"action": "none"}]),
    "alex_pod_restart": dict(K8S, wait_timeout=1, wait_sleep=0.5),
    "alex_ready": dict(API, retries=0, retry_delay=0, wait_timeout=1, wait_sleep=0.5),
    "alex_run_report": dict(dest_dir="{tmp}/out/runs", scenario=sorted(run_record.SCENARIOS)[0], result="ok",
                            started_at="2026-11-27T09:52:00Z"),
    "alex_seats": dict(API, admin_token=SECRETS["admin_token"]),
    # Probing too, so the API options reach the probe (a closed port: refused at once, no retry).
    "alex_triage": dict(K8S, base_url=CLOSED_URL, timeout=2, probe_api=True, probe_retries=0),
}

HUGE = "x" * 100000
# Any option: wrong types and text that fits no use.
EVERY = [
    ("dict", {"a": 1}), ("empty-dict", {}), ("list", [1, 2]), ("empty-list", []), ("bool-true", True),
    ("bool-false", False), ("int-neg", -7), ("float-frac", 3.5), ("empty", ""), ("blank", "  "),
    ("huge", HUGE), ("nul", "a\x00b"), ("lone-surrogate-high", "\ud800"), ("lone-surrogate-low", "x\udcff"),
    ("non-latin1", "\u017c\u00f3\u0142\u0107 \u2603 \u65e5\u672c"), ("rtl-override", "a\u202eb"),
    ("newline", "line\nbreak"), ("trailing-newline", "alexandria\n"), ("control", "\x1b[31mred\x07"),
    ("template", "{{ lookup('env', 'HOME') }}"),
    ("sql", "x'; DROP TABLE audit_logs; --"), ("format", "%s%n%(x)s{0}"),
]
NUMBERS = [
    ("zero", 0), ("zero-float", 0.0), ("neg-one", -1), ("neg-float", -0.5), ("nan", float("nan")),
    ("nan-text", "nan"), ("inf", float("inf")), ("neg-inf", float("-inf")), ("inf-text", "inf"), ("e308", 1e308),
    ("neg-e308", -1e308), ("e999-text", "1e999"), ("int64-over", 2 ** 63), ("uint64-over", 2 ** 64),
    ("googol", 10 ** 100), ("int64-over-text", "9223372036854775808"), ("tiny", 1e-300), ("text", "ten"),
    ("hex-text", "0x10"),
]
PATHS = [
    ("missing", "{tmp}/missing/deeper/file"), ("directory", "{tmp}/a-directory"), ("dangling-link", "{tmp}/dangling"),
    ("file-as-dir", "{tmp}/a-file/child"), ("nul-path", "{tmp}/a\x00b"), ("name-too-long", "{tmp}/" + "n" * 300),
    ("path-too-long", "{tmp}/" + "/".join(["d" * 200] * 30)), ("surrogate-name", "{tmp}/bad-\udcff-name"),
    ("dev-null", "/dev/null"), ("relative-missing", "no/such/relative/path"), ("dot", "."),
]
URLS = [
    ("no-scheme", "localhost:8080"), ("ftp", "ftp://127.0.0.1/"), ("no-host", "http://"),
    ("broken-ipv6", "http://[::1"), ("port-too-big", "http://127.0.0.1:99999"), ("port-zero", "http://127.0.0.1:0"),
    ("closed-port", CLOSED_URL + "/"), ("closed-port-tls", "https://127.0.0.1:{closed}"),
    ("credentials", "http://op:UrlPw-5ecret@127.0.0.1:{closed}"), ("space", "http://exa mple"),
    ("javascript", "javascript:alert(1)"), ("encoded-nul", CLOSED_URL + "/%00"), ("file", "file:///etc/passwd"),
]
DSNS = [
    ("closed-port", "postgresql://127.0.0.1:{closed}/x?connect_timeout=2"),
    ("keyword-closed", "host=127.0.0.1 port={closed} dbname=x connect_timeout=2"),
    ("not-a-dsn", "not a dsn at all"), ("scheme-only", "postgresql://"), ("mysql", "mysql://127.0.0.1/x"),
    ("missing-socket", "host={tmp}/no-socket-dir dbname=x"), ("unterminated-quote", "dbname='unterminated"),
    ("bad-port", "postgresql://127.0.0.1:notaport/x"), ("password-closed",
                                                        "postgresql://u:DsnPw2-5ecret@127.0.0.1:{closed}/db"),
    ("bad-sslmode", "postgresql://127.0.0.1:{closed}/x?sslmode=sometimes"),
]
LIST_ELEMENTS = [
    ("elem-none", [None]), ("elem-dict", [{"a": 1}]), ("elem-nul", ["a\x00b"]), ("elem-surrogate", ["\ud800"]),
    ("elem-empty", [""]), ("elem-huge", [HUGE]), ("elem-list", [[1]]), ("many", ["t%d" % i for i in range(2000)]),
]
DEEP = []
for _depth in range(200):
    DEEP = [DEEP]
STRUCTURES = [("deep", DEEP), ("wide-dict", {"k%d" % i: i for i in range(5000)}), ("mixed", {"a": [1, None, "\x00"]}),
              ("nested-surrogate", {"k": ["ok", "\ud800"]}), ("surrogate-key", {"\udcff": 1}),
              ("list-of-surrogate", [{"a": "\udc80"}])]

URL_OPTIONS = {"base_url", "host"}
DSN_OPTIONS = {"dsn"}
# Options whose bad value is best tested without the Kubernetes host (so the kubeconfig is read).
KUBECONFIG_OPTIONS = {"kubeconfig", "context", "ca_cert"}
# Options that exclude a baseline option.
EXCLUDES = {"tenants": "tenant", "probe": "probe_api"}


def spec_of(name):
    module = importlib.import_module("ansible_collections.alexandria.ee.plugins.modules." + name)
    return module.argument_spec()


def _kind(opts):
    wanted = opts.get("type", "str")
    return str(wanted) if isinstance(wanted, str) else "raw"


def values_for(option, opts):
    """(label, value) pairs that are bad, or at least strange, for this option."""
    kind = _kind(opts)
    values = list(EVERY)
    if kind in ("int", "float"):
        values += NUMBERS
    if kind == "path":
        values += PATHS
    if option in URL_OPTIONS:
        values += URLS
    if option in DSN_OPTIONS:
        values += DSNS
    if opts.get("choices"):
        values += [("not-a-choice", "no-such-choice"), ("choice-case", str(opts["choices"][0]).upper())]
    if kind == "list":
        values += LIST_ELEMENTS
        if opts.get("options"):
            first = sorted(opts["options"])[0]
            values += [("sub-unknown", [{"bogus": 1}]), ("sub-not-dict", ["text"]),
                       ("sub-nul", [dict((k, "a\x00b") for k in opts["options"])]),
                       ("sub-missing", [{first: None}])]
    if kind in ("dict", "raw", "list"):
        values += STRUCTURES
    return values


def cases():
    """Every case: (case id, module, option, args); option None is the module's baseline."""
    out = []
    for name in MODULES:
        spec = spec_of(name)
        base = BASELINE[name]
        out.append(("%s-baseline" % name, name, None, dict(base)))
        for option in sorted(spec):
            for label, value in values_for(option, spec[option]):
                args = dict(base)
                if option in KUBECONFIG_OPTIONS:
                    args.pop("host", None)
                args.pop(EXCLUDES.get(option), None)
                args[option] = value
                out.append(("%s-%s-%s" % (name, option, label), name, option, args))
    return out

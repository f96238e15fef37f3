"""arg_checks: each type is its documented type name and a checker that refuses a class of bad values."""
import copy
import pathlib
import sys

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks as ac

DOC_TYPES = {"str", "int", "float", "path", "raw", "dict"}


def refused(checker, value):
    with pytest.raises((TypeError, ValueError)) as info:
        checker(value)
    return str(info.value)


def test_a_type_is_its_doc_name_and_survives_copies():
    timeout = ac.seconds()
    assert timeout == "float" and callable(timeout)
    assert copy.deepcopy({"t": timeout})["t"] is timeout
    assert timeout.__name__ == "a number of seconds"


@pytest.mark.parametrize("value", [0, -1, "nan", float("nan"), float("inf"), "inf", 1e308, "1e999", True, "ten"])
def test_seconds_refuses_what_no_clock_can_use(value):
    assert "give a number of seconds greater than 0 and at most 86400" in refused(ac.seconds(), value)


def test_seconds_accepts_numbers_and_numeric_text():
    assert ac.seconds()(2) == 2.0 and ac.seconds()("0.5") == 0.5
    assert ac.seconds(maximum=60, zero=True)(0) == 0.0
    assert "at least 0 and at most 60" in refused(ac.seconds(maximum=60, zero=True), 61)


@pytest.mark.parametrize("value", [2 ** 63, "9223372036854775808", "inf", float("inf"), float("nan"), 1.5, False, -1])
def test_count_refuses_out_of_range_and_non_whole(value):
    message = refused(ac.count(0, 10), value)
    assert "give a whole number from 0 to 10" in message


def test_count_accepts_whole_floats_and_text():
    assert ac.count(0, 10)(3.0) == 3 and ac.count(0, 10)("7") == 7


def test_fraction_is_more_than_zero_at_most_one():
    assert ac.fraction()(1) == 1.0
    for value in (0, 1.01, "nan"):
        refused(ac.fraction(), value)


@pytest.mark.parametrize("value", ["S3cr\u00e9t", "S3cr et", "S3cret\n", "", "S3cr\x00et", "S3cr\ud800"])
def test_token_is_visible_ascii_and_never_echoed(value):
    message = refused(ac.token("the admin token"), value)
    assert "S3cr" not in message


def test_text_refuses_nul_surrogates_and_huge():
    check = ac.text(10, "a tenant id")
    assert check("t\u00e9nant") == "t\u00e9nant"
    assert "NUL" in refused(check, "a\x00b")
    assert "lone surrogate" in refused(check, "x\udcff")
    assert "at most 10" in refused(check, "x" * 11)
    assert "not a tenant id" in refused(check, {"a": 1})


def test_path_refuses_nul_and_empty_and_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ac.path()("~/x") == str(tmp_path / "x")
    assert "NUL" in refused(ac.path(), "/tmp/a\x00b")
    assert "empty" in refused(ac.path(), "")


@pytest.mark.parametrize("value", ["localhost:8080", "ftp://h/", "http://", "http://[::1", "http://h:99999",
                                   "http://h:0", "http://a b", "javascript:alert(1)"])
def test_url_needs_http_scheme_host_and_port(value):
    message = refused(ac.url(), value)
    assert "give an http:// or https:// URL" in message


def test_url_never_echoes_its_value():
    assert "s3cret" not in refused(ac.url(), "ftp://user:s3cret@h/")
    assert ac.url()("https://user:pw@127.0.0.1:8443/base") == "https://user:pw@127.0.0.1:8443/base"


def test_dsn_never_echoes_its_value():
    message = refused(ac.dsn(), "mysql://u:s3cret@h/db")
    assert "s3cret" not in message and "mysql://" in message
    assert ac.dsn()("host=h password=p dbname=d") == "host=h password=p dbname=d"


def test_kubernetes_names_and_keys():
    assert ac.k8s_name(label=True)("alexandria") == "alexandria"
    for value in ("", "Alexandria", "a_b", "-a", "a" * 64, "alexandria\n"):
        refused(ac.k8s_name(label=True), value)
    assert "at most 53" in refused(ac.k8s_name(label=True, limit=53), "a" * 54)
    assert ac.k8s_name()("alexandria-ee.license") == "alexandria-ee.license"
    assert ac.k8s_key()("license.blob") == "license.blob"
    for value in ("", ".", "a/b", "a b", "license.blob\n"):
        refused(ac.k8s_key(), value)


def test_pg_identifier_counts_bytes():
    assert ac.pg_identifier()('audit "logs"; --') == 'audit "logs"; --'
    refused(ac.pg_identifier(), "\u00e9" * 32)  # 64 bytes
    refused(ac.pg_identifier(), "")


def test_data_refuses_lone_surrogates_anywhere_and_deep_nesting():
    deep = []
    for _depth in range(150):
        deep = [deep]
    assert ac.data()({"a": [1, "\u00e9"]}) == {"a": [1, "\u00e9"]}
    assert "lone surrogate" in refused(ac.data(), {"a": ["\ud800"]})
    assert "lone surrogate" in refused(ac.data("dict"), {"\udcff": 1})
    assert "100 levels" in refused(ac.data(), deep)
    assert "not a mapping" in refused(ac.data("dict"), [1])


def test_record_checks_keys_and_each_field():
    check = ac.record(dict(kind=ac.choice(["a", "b"], "a kind"), tenant=ac.text(5, "a tenant")), "a mapping")
    assert check({"kind": "a", "tenant": "t"}) == {"kind": "a", "tenant": "t"}
    assert "unknown key" in refused(check, {"kind": "a", "tenant": "t", "x": 1})
    assert "tenant is missing" in refused(check, {"kind": "a"})
    assert refused(check, {"kind": "c", "tenant": "t"}).startswith("kind: 'c' is not a kind: a, b")
    assert "not a mapping" in refused(check, "kind=a")


def test_every_module_option_has_a_type_validate_modules_knows():
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    import bad_input_cases as bic  # pylint: disable=import-outside-toplevel
    for name in bic.MODULES:
        for option, opts in bic.spec_of(name).items():
            wanted = opts.get("type", "str")
            assert isinstance(wanted, str) and str(wanted) in DOC_TYPES | {"bool", "list"}, (name, option)

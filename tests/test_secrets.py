"""Secrets by any name and by value stay out of everything pytest and the plugin print or write (issue 27)."""
from __future__ import annotations

import json
import re

import pytest

from pytest_snowpipe.redact import REDACTED, Redactor, is_secret_name, is_shipped_secret_name

# --- by name ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["db_pass", "DB-PASS", "dbPass", "snowflake_pat", "SNOWFLAKE_PAT", "SNOWSQL_PWD", "db_pwd", "passwd", "dbpassword",
     "api_token", "apiToken", "client_secret", "clientSecret", "api_key", "x-api-key", "private_key", "PRIVATE_KEY_FILE",
     "credential", "aws_credentials", "auth", "basic_auth", "oauth_url", "webhook_url"],
)
def test_secret_names_by_whole_part_any_case_and_separator(name):
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["monkey", "keyboard", "keyring", "path", "pattern", "passenger", "author", "tokenizer", "threshold", "metric_name",
     "raw_table", "n_rows", "compass", "spatial"],
)
def test_words_that_merely_contain_a_secret_part_are_not_secret_names(name):
    assert not is_secret_name(name)


def test_pwd_variables_are_masked_but_the_shells_working_directory_is_not():
    environ = {"SNOWSQL_PWD": "Zq9-wa1-pwd-value", "PWD": "/home/alice/project", "OLDPWD": "/home/alice"}
    redactor = Redactor.for_run({}, None, environ=environ)
    assert redactor.text("login Zq9-wa1-pwd-value from /home/alice/project") == f"login {REDACTED} from /home/alice/project"


def test_a_deploy_refuses_secret_names_except_plain_keys():
    assert all(is_shipped_secret_name(n) for n in ("db_pass", "snowflake_pat", "SNOWSQL_PWD", "api_key", "private_key", "auth_token"))
    assert not any(is_shipped_secret_name(n) for n in ("model_key", "partition_key", "monkey", "threshold"))


# --- by value ----------------------------------------------------------------------------------------


def test_a_secret_is_masked_as_a_whole_token_never_inside_other_words():
    redactor = Redactor(["snowpipe1"])
    text = "pytest-snowpipe1x snowpipe1_gate py_snowpipe1 (snowpipe1) 'snowpipe1', user=snowpipe1."
    assert redactor.text(text) == (
        f"pytest-snowpipe1x snowpipe1_gate py_snowpipe1 ({REDACTED}) '{REDACTED}', user={REDACTED}."
    )


@pytest.mark.parametrize("order", [["abcdefgh", "abcdefgh-suffix"], ["abcdefgh-suffix", "abcdefgh"]])
def test_overlapping_secrets_are_masked_longest_first_leaving_no_tail(order):
    assert Redactor(order).text("a abcdefgh-suffix b abcdefgh c") == f"a {REDACTED} b {REDACTED} c"


@pytest.mark.parametrize(("line", "key"), [("password = test", "password"), ("db_pass = short7!", "db_pass")])
def test_a_secret_too_short_to_mask_is_refused_naming_the_key(pipeline_suite, line, key):
    pytester = pipeline_suite(ini=f"[pytest]\nsnowpipe_config =\n    threshold = 0.5\n    {line}\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"snowpipe_config: {key!r} is a secret by its name" in err and "at least 8 characters" in err
    assert "rename the key if it holds no secret" in err


# --- end to end: every place a config is shown ---------------------------------------------------

DB_PASS = "hunter2-db-pass-91c"
PAT = "pat-abc123-def456-ghi"
SECRET_INI = f"[pytest]\nsnowpipe_config =\n    threshold = 0.5\n    db_pass = {DB_PASS}\n    snowflake_pat = {PAT}\n"

LEAKY_TESTS = '''
import pytest

def login(user, password):
    raise AssertionError(f"login refused for {user}")

def test_copy_of_the_config(snowpipe_config):
    copy = dict(snowpipe_config)
    assert copy == {}

def test_password_passed_into_a_call(snowpipe_config):
    login("bob", snowpipe_config["db_pass"])

def test_assertion_rewrite(snowpipe_config):
    token = snowpipe_config["snowflake_pat"]
    print("using", token)
    assert token == "something else"
'''


def test_secrets_by_other_names_appear_nowhere(pipeline_suite):
    pytester = pipeline_suite(ini=SECRET_INI)
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    result = pytester.runpytest("-l", "-vv", "-rA", "--junitxml=junit.xml", "--snowpipe-report=out")
    result.assert_outcomes(passed=1, failed=3)
    shown = {
        "terminal": result.stdout.str() + result.stderr.str(),
        "junit.xml": (pytester.path / "junit.xml").read_text(),
        "report.json": (pytester.path / "out" / "report.json").read_text(),
        "report.md": (pytester.path / "out" / "report.md").read_text(),
    }
    (meta,) = (pytester.path / ".snowpipe" / "registry").rglob("meta.json")
    shown["meta.json"] = meta.read_text()
    for where, text in shown.items():
        for secret in (DB_PASS, PAT):
            assert secret not in text, f"{secret} in {where}"
    assert re.search(r"^copy\s+= \{.*'db_pass': '<redacted>'", shown["terminal"], re.M)  # -l locals: shown, masked
    assert json.loads(shown["report.json"])["config"] == {"threshold": 0.5, "db_pass": REDACTED, "snowflake_pat": REDACTED}
    assert json.loads(shown["meta.json"])["config"]["db_pass"] == REDACTED


def test_a_deploy_dry_run_refuses_a_secret_in_the_shipped_config(pipeline_suite):
    pytester = pipeline_suite(ini=SECRET_INI)
    result = pytester.runpytest("--snowpipe-deploy", "--snowpipe-dry-run")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "key 'db_pass' looks like a secret" in err and "key 'snowflake_pat' looks like a secret" in err
    assert DB_PASS not in err + result.stdout.str() and PAT not in err + result.stdout.str()


def test_the_plan_masks_a_key_named_config_value(pipeline_suite):
    value = "mortgage-model-v1"
    pytester = pipeline_suite(ini=f"[pytest]\nsnowpipe_config =\n    threshold = 0.5\n    model_key = {value}\n")
    result = pytester.runpytest("--snowpipe-deploy", "--snowpipe-dry-run")
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines([f"*config:*model_key='{REDACTED}'*"])
    assert value not in result.stdout.str()

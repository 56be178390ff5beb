"""Checks on user input that happen before any request (no server needed)."""

from __future__ import annotations

import pytest

from prefect_nbauth import ConfigurationError, Secret
from prefect_nbauth._inputs import (
    Credential,
    check_api_key,
    check_api_url,
    check_auth_string,
    check_headers,
    is_loopback_url,
    plain_http_warning,
)

CANARY = "s3cr3t-CANARY-9f2c"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("admin:pässwörd", "non-ASCII"),
        ("admin:pa\0ss", "NUL"),
        ('"admin:pass"', "quotes"),
        ("'admin:pass'", "quotes"),
        ("admin:pass\n", "newline"),
        (" admin:pass", "space"),
        (123, "must be a string"),
    ],
)
def test_bad_auth_strings_are_refused_with_a_fix(value: object, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        check_auth_string(value)


def test_colon_less_auth_strings_are_accepted_and_name_no_user() -> None:
    # Prefect's server compares the whole decoded value (PREFECT_FACTS.md): no ':' needed.
    secret = check_auth_string("Zq7-SECRET-x9")
    assert secret.reveal() == "Zq7-SECRET-x9"
    assert Credential("http://x/api", auth_string=secret).username is None


def test_auth_string_punctuation_is_fine_and_never_split() -> None:
    secret = check_auth_string("admin@corp:p@ss:w#rd%&!")
    assert secret.reveal() == "admin@corp:p@ss:w#rd%&!"
    assert Credential("http://x/api", auth_string=secret).username == "admin@corp"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("", "empty"), ("pnu_abc def", "whitespace"), ("pnu_abc\n", "whitespace"),
     ('"pnu_abcdef"', "quotes"), ("pnu_ä", "characters")],
)
def test_bad_api_keys_are_refused(value: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        check_api_key(value)


def test_error_messages_never_contain_the_secret() -> None:
    for bad in (f'"{CANARY}:x"', f"{CANARY}:ü", f"{CANARY}\0", f" {CANARY}:x"):
        with pytest.raises(ConfigurationError) as info:
            check_auth_string(bad)
        assert CANARY not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        check_api_key(f"pnu_{CANARY} x")
    assert CANARY not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        check_headers({"X-Token": f"{CANARY}\n"})
    assert CANARY not in str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [("http://127.0.0.1:4200/api/", "http://127.0.0.1:4200/api"),
     ("https://prefect.example.com/api", "https://prefect.example.com/api")],
)
def test_api_url_is_normalised(url: str, expected: str) -> None:
    assert check_api_url(url) == expected


@pytest.mark.parametrize(
    ("url", "fragment"),
    [(None, "No Prefect API URL"), ("", "No Prefect API URL"), ("127.0.0.1:4200/api", "not an http"),
     ("ftp://h/api", "not an http"), ("http://u:p@h/api", "not in the URL"),
     ("http://h/api\n", "whitespace"), ("http://h:99999/api", "port")],
)
def test_bad_urls(url: object, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        check_api_url(url)


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [({"Bad Name": "v"}, "not a valid HTTP header name"), ({"User-Agent": "x"}, "manages"),
     ({"X-A": ""}, "empty"), ({"X-A": "a\r\nInjected: 1"}, "line break"),
     ({"X-A": "1", "x-a": "2"}, "twice"), ({"X-A": 3}, "must be a string"), ("x", "dict")],
)
def test_bad_headers(headers: object, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        check_headers(headers)


def test_credential_headers_follow_prefect_precedence() -> None:
    # Prefect: auth string wins over an API key; a custom Authorization header wins over both.
    basic = Credential("http://x/api", auth_string=Secret("a:b"))
    assert basic.request_headers() == {"Authorization": "Basic YTpi"}
    custom = Credential("http://x/api", headers={"Authorization": Secret("Bearer t")})
    assert custom.request_headers() == {"Authorization": "Bearer t"}
    assert "b" not in repr(basic) or "Secret('****')" in repr(basic)


def test_loopback_and_plain_http() -> None:
    assert is_loopback_url("http://127.0.0.1:4200/api")
    assert is_loopback_url("http://localhost/api")
    assert is_loopback_url("http://[::1]:4200/api")
    assert not is_loopback_url("http://10.0.0.5/api")
    assert plain_http_warning("http://127.0.0.1/api") is None
    assert plain_http_warning("https://prefect.example.com/api") is None
    assert "plain http" in (plain_http_warning("http://prefect.example.com/api") or "")

"""Credentials in URLs: what mask_url hides and what redact removes from error texts."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncq import App
from asyncq._urls import mask_url, redact, scheme_of, secrets_of


@pytest.mark.parametrize(("url", "masked"), [
    ("redis://:hunter2@host:6379/0", "redis://:***@host:6379/0"),
    ("redis://user:hunter2@host/0", "redis://user:***@host/0"),
    ("redis://hunter2@host/0", "redis://***@host/0"),
    ("redis://host/0?username=u&password=hunter2", "redis://host/0?username=u&password=***"),
    ("redis://host/0?PASSWORD=hunter2&db=1", "redis://host/0?PASSWORD=***&db=1"),
    ("rediss://host/0?ssl_password=a&ssl_keyfile_password=b&ssl_cert_reqs=none",
     "rediss://host/0?ssl_password=***&ssl_keyfile_password=***&ssl_cert_reqs=none"),
    ("amqp://h/?passwd=a&pwd=b&pass=c&secret=d&token=e&api_key=f&apikey=g&Auth_Token=h",
     "amqp://h/?passwd=***&pwd=***&pass=***&secret=***&token=***&api_key=***&apikey=***"
     "&Auth_Token=***"),
    ("amqp://h/?sasl_password=a&x_auth=b&access_key=c&heartbeat=10",
     "amqp://h/?sasl_password=***&x_auth=***&access_key=***&heartbeat=10"),
    ("redis://host/0?pass%77ord=hunter2", "redis://host/0?pass%77ord=***"),
    # file names are shown (to debug with); a password for a key file is not
    ("rediss://h/0?ssl_keyfile=/k.pem&ssl_certfile=/c.pem&ssl_ca_path=/ca&ssl_password=x",
     "rediss://h/0?ssl_keyfile=/k.pem&ssl_certfile=/c.pem&ssl_ca_path=/ca&ssl_password=***"),
    ("amqps://h/?keyfile=/k.pem&keyfile_password=x&token_file=/t",
     "amqps://h/?keyfile=/k.pem&keyfile_password=***&token_file=***"),
    ("redis://u:p@host/0?token=t#frag", "redis://u:***@host/0?token=***#***"),
    # an unencoded '#', '?' or '/' cuts the user-info short: mask up to the last '@'
    ("redis://:pa#ss@host:1/0", "redis://***@host:1/0"),
    ("redis://u:pa?ss@host/0", "redis://***@host/0"),
    ("redis://u:pa/ss@host/0", "redis://***@host/0"),
    ("redis://u:p@ss@host/0", "redis://u:***@host/0"),
    # nothing to hide: unchanged, byte for byte
    ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"),
    ("memory://", "memory://"),
    ("redis://127.0.0.1:abc/0", "redis://127.0.0.1:abc/0"),
    ("redis://[::1/0", "<unparsable url>"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_redact_removes_the_url_and_every_secret_raw_or_decoded() -> None:
    url = "redis://u:p%40ss1@host/0?password=s%2Fcret&token=tok123"
    text = f"cannot reach {url}: AUTH p@ss1 failed; s/cret tok123 p%40ss1"
    out = redact(text, url)
    for secret in ("p@ss1", "p%40ss1", "s/cret", "s%2Fcret", "tok123"):
        assert secret not in out
    assert "redis://u:***@host/0?password=***&token=***" in out
    assert sorted(secrets_of(url)) == sorted(["p%40ss1", "p@ss1", "s%2Fcret", "s/cret",
                                              "tok123"])


def test_scheme_of_an_unparsable_url_is_empty() -> None:
    assert scheme_of("REDIS://h") == "redis"
    assert scheme_of("redis://[::1") == ""


def test_app_repr_and_configuration_errors_mask_query_passwords() -> None:
    app = App("masked", broker="redis://127.0.0.1:6379/0?username=u&password=hunter2")
    assert "hunter2" not in repr(app)
    assert "password=***" in repr(app)
    with pytest.raises(Exception, match=r"password=\*\*\*") as info:
        App("masked", broker="nosuch://h/?password=hunter2")
    assert "hunter2" not in str(info.value)


#: Everything around the secret below: a secret inside it could not be told apart.
_AROUND = ("redis://user:@example.test:6379/0?db=0&password=ssl_password=Token=api_key=pwd="
           "amqps://example.test/vhost?heartbeat=5 error at with AUTH ***")
SECRET = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)),
                 min_size=6, max_size=30).filter(lambda s: quote(s, safe="") not in _AROUND
                                                 and s not in _AROUND)


@given(SECRET, st.sampled_from(["password", "ssl_password", "Token", "api_key", "pwd"]))
def test_no_secret_survives_masking(secret: str, name: str) -> None:
    encoded = quote(secret, safe="")
    for url in (f"redis://user:{encoded}@example.test:6379/0",
                f"redis://example.test:6379/0?db=0&{name}={encoded}",
                f"amqps://user:{encoded}@example.test/vhost?{name}={encoded}&heartbeat=5"):
        masked = mask_url(url)
        assert encoded not in masked
        assert redact(f"error at {url} with {secret} and {encoded}", url).count("***") >= 2
        assert secret not in redact(f"AUTH {secret}", url)


def test_redact_keeps_the_masked_url_readable() -> None:
    url = "amqp://guest:guest@h:5672/"
    assert redact(f"at {url}: login guest refused", url) == (
        "at amqp://guest:***@h:5672/: login *** refused")
    assert redact("at amqp://guest:***@h:5672/ again", url) == "at amqp://guest:***@h:5672/ again"

"""Database URLs are masked by parsing them, and known secrets are scrubbed from any text."""

from __future__ import annotations

import pytest

from backend.config import Settings
from backend.masking import mask_url, remember, scrub, url_secrets


class TestMaskUrl:
    @pytest.mark.parametrize(
        ("url", "masked", "secret"),
        [
            ("postgresql://u:secret@h/db", "postgresql://u:***@h/db", "secret"),
            (
                "postgresql+psycopg://rt@127.0.0.1:5432/rt?password=S3cret",
                "postgresql+psycopg://rt@127.0.0.1:5432/rt?password=***",
                "S3cret",
            ),
            (
                "postgresql://rt:p@ss@w0rdTail@host:5432/db",
                "postgresql://rt:***@host:5432/db",
                "p@ss@w0rdTail",
            ),
            (
                "mssql+pyodbc://u:pa/ss?x@srv:1433/db?driver=X",
                "mssql+pyodbc://u:***@srv:1433/db?driver=X",
                "pa/ss?x",
            ),
            ("postgresql://u:pw@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db", "pw"),
            (
                "mssql+pyodbc:///?odbc_connect=DRIVER%3DX%3BUID%3Du%3BPWD%3D%7Bs%3Bx%7D%3B",
                "mssql+pyodbc:///?odbc_connect=DRIVER%3DX%3BUID%3Du%3BPWD%3D***%3B",
                "%7Bs%3Bx%7D",
            ),
        ],
    )
    def test_the_password_is_hidden_wherever_the_url_puts_it(self, url, masked, secret):
        """User info (with unescaped @ or /), ?password= and ODBC PWD= are all masked."""
        assert mask_url(url) == masked
        assert secret in url_secrets(url)

    def test_a_url_without_secrets_is_unchanged(self):
        """Nothing to hide, nothing changed."""
        assert mask_url("sqlite:///data/refdata.db") == "sqlite:///data/refdata.db"


class TestScrub:
    def test_remembered_secrets_and_urls_in_text_are_masked(self):
        """A known secret and a URL with a password inside a message are both masked."""
        remember({"hunter2-xyz"})
        text = scrub("failed: postgresql://a:b@h/d said hunter2-xyz")
        assert "hunter2-xyz" not in text and "a:b@" not in text and "postgresql://a:***@h/d" in text

    def test_settings_know_their_secrets(self):
        """The settings' URL password, SQL Server password and health token are its secrets."""
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url="postgresql://u:from-url@h/db?password=from-query",
            health_token="tok-abc",
        )
        assert {"from-url", "from-query", "tok-abc"} <= settings.secret_values()
        assert "from-url" not in settings.masked_url and "from-query" not in settings.masked_url

"""Detection of personal and payment data in sampled values, and the hash / mask functions."""

from __future__ import annotations

import hashlib

import pytest

from backend.masking import mask_value, sha256_hex
from backend.quality.sensitive import classify, iban_ok, kind_of_value, luhn_ok


class TestChecksums:
    @pytest.mark.parametrize("number", ["4111111111111111", "5500005555555559", "378282246310005"])
    def test_luhn_accepts_valid_card_numbers(self, number):
        """Well-known test card numbers pass the Luhn check."""
        assert luhn_ok(number)

    def test_luhn_rejects_a_changed_digit(self):
        """One wrong digit breaks the checksum."""
        assert not luhn_ok("4111111111111112")

    def test_iban_mod_97(self):
        """A valid IBAN passes mod 97; a changed digit does not."""
        assert iban_ok("GB82WEST12345698765432")
        assert not iban_ok("GB82WEST12345698765433")


class TestValues:
    @pytest.mark.parametrize(
        "value,kind",
        [
            ("ann.lee+tag@example.co.uk", "email"),
            ("+44 20 7946 0958", "phone"),
            ("(555) 123-4567", "phone"),
            ("4111-1111-1111-1111", "payment_card"),
            ("DE89 3704 0044 0532 0130 00", "iban"),
            ("123-45-6789", "national_id"),
            ("AB 12 34 56 C", "national_id"),
        ],
    )
    def test_sensitive_values_are_recognised(self, value, kind):
        """Each supported kind is recognised in its usual spellings."""
        assert kind_of_value(value) == kind

    @pytest.mark.parametrize(
        "value",
        [
            "2024-01-31",  # a date has digits and dashes, not a phone number
            "31/01/2024 10:00",
            "192.168.10.1",
            "1234567890123456",  # 16 digits failing Luhn: an id, not a card
            "0000012345",  # zero-padded code without separators
            "12.50",
            "not @ mail",
            "DE00 0000",
            "Germany",
        ],
    )
    def test_ordinary_values_are_not_flagged(self, value):
        """Dates, addresses, ids, amounts and words are not mistaken for sensitive data."""
        assert kind_of_value(value) is None

    def test_column_needs_most_values_to_match(self):
        """A column is flagged at 80 % matching values, not for an occasional one."""
        emails = [f"u{i}@example.com" for i in range(8)]
        assert classify([*emails, "n/a", "-"]) == "email"
        assert classify([*emails[:3], "x", "y", "z", "w", "v"]) is None
        assert classify([]) is None


class TestProtection:
    def test_hash_is_sha256_hex_of_utf8_and_keeps_empty(self):
        """hash gives the SHA-256 hex digest of the UTF-8 value; empty and NULL stay as they are."""
        assert sha256_hex("Zoë") == hashlib.sha256("Zoë".encode()).hexdigest()
        assert (sha256_hex(""), sha256_hex(None)) == ("", None)

    def test_mask_keeps_the_last_four_characters(self):
        """mask hides all but the last four characters; short values are hidden entirely."""
        assert mask_value("4111111111111111") == "************1111"
        assert mask_value("abc") == "***"
        assert mask_value("") == ""

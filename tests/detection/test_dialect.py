"""Dialect detection on decoded samples."""

from __future__ import annotations

import pytest

from backend.detection.dialect import Dialect, detect_dialect, parse_records, split_lines


def rows(text: str, dialect: Dialect) -> list[list[str]]:
    return [r.values for r in parse_records(split_lines(text), dialect) if r.values]


class TestDelimiter:
    @pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
    def test_allowlisted_delimiters(self, delimiter: str) -> None:
        """Each allowlisted delimiter is found in an ordinary table."""
        text = "".join(
            delimiter.join(r) + "\n" for r in [["a", "b", "c"], ["1", "x y", "2.5"], ["3", "z", "4.0"]]
        )
        assert detect_dialect(text).dialect.delimiter == delimiter

    def test_semicolon_wins_over_decimal_commas(self) -> None:
        """Decimal commas in a semicolon file do not make the comma the delimiter."""
        text = "name;price;qty\nA;1,50;3\nB;2,75;4\nC;3,00;5\n"
        assert detect_dialect(text).dialect.delimiter == ";"

    def test_colon_inside_times_is_not_a_delimiter(self) -> None:
        """Times like 10:30 do not make the colon a delimiter (CleverCSV#35)."""
        text = "when,what\n2024-01-01 10:30:00,a\n2024-01-02 11:45:00,b\n2024-01-03 12:00:00,c\n"
        assert detect_dialect(text).dialect.delimiter == ","

    def test_colon_file(self) -> None:
        """A colon-separated file (like /etc/passwd) is read with the colon."""
        text = "user:uid:home\nroot:0:/root\nbin:1:/bin\ndaemon:2:/sbin\n"
        assert detect_dialect(text).dialect.delimiter == ":"

    def test_delimiter_inside_quoted_fields(self) -> None:
        """Pipes inside quoted fields do not beat the comma that separates them."""
        text = 'a,b\n"x|y|z",1\n"p|q|r",2\n"s|t|u",3\n'
        guess = detect_dialect(text)
        assert (guess.dialect.delimiter, guess.width) == (",", 2)

    def test_single_column(self) -> None:
        """Lines without any delimiter are one column, read with a delimiter that never occurs."""
        guess = detect_dialect("name\nAnna\nBob\nChloé\n")
        assert guess.width == 1
        assert guess.dialect.delimiter not in "name\nAnna\nBob\nChloé\n"

    def test_single_column_with_quoted_commas_stays_whole(self) -> None:
        """A single column whose quoted values hold commas is not split on them."""
        text = 'name\n"Smith, John"\n"Doe, Jane"\n"Roe, Rick"\n'
        guess = detect_dialect(text)
        assert rows(text, guess.dialect) == [["name"], ["Smith, John"], ["Doe, Jane"], ["Roe, Rick"]]


class TestQuoting:
    def test_stray_quote_does_not_swallow_the_file(self) -> None:
        """One cell opening a quote that never closes makes quotes literal instead of merging lines."""
        text = 'a,b,c\n1,"oops,3\n4,5,6\n7,8,9\n10,11,12\n'
        guess = detect_dialect(text, complete=True)
        assert guess.dialect.quotechar is None
        assert rows(text, guess.dialect)[1] == ["1", '"oops', "3"]

    def test_stray_quote_in_the_last_cell_of_the_file(self) -> None:
        """An open quote in the file's very last cell is literal, not an empty field."""
        text = 'a,b\n1,2\n3,4\n5,"6\n'
        assert detect_dialect(text, complete=True).dialect.quotechar is None

    def test_quoted_line_breaks_keep_double_quotes(self) -> None:
        """Quoted fields spanning lines are legitimate: the quote character stays."""
        text = 'id,note\n1,"two\nlines"\n2,"x"\n3,"y, z"\n'
        guess = detect_dialect(text, complete=True)
        assert guess.dialect.quotechar == '"'
        assert rows(text, guess.dialect)[1] == ["1", "two\nlines"]

    def test_single_quotes(self) -> None:
        """Fields wrapped in single quotes are read with the single quote."""
        text = "'a','b'\n'x, y','1'\n'O''Neil','2'\n'z','3'\n"
        guess = detect_dialect(text)
        assert guess.dialect.quotechar == "'"
        assert rows(text, guess.dialect)[2] == ["O'Neil", "2"]

    def test_apostrophes_do_not_make_single_quotes(self) -> None:
        """Apostrophes inside words leave the double quote as the quote character."""
        text = "name,n\nO'Neil,1\nit's,2\nD'Arcy,3\n"
        assert detect_dialect(text).dialect.quotechar == '"'

    def test_backslash_escapes(self) -> None:
        """Backslash-escaped quotes are read with a backslash escape character."""
        text = 'id,quote\n1,"say \\"hi\\""\n2,"a \\"b\\" c"\n3,"plain"\n'
        guess = detect_dialect(text)
        assert (guess.dialect.escapechar, guess.dialect.doublequote) == ("\\", False)
        assert rows(text, guess.dialect)[1] == ["1", 'say "hi"']

    def test_doubled_quotes(self) -> None:
        """Doubled quotes inside quoted fields are one quote each."""
        text = 'id,quote\n1,"say ""hi"""\n2,"a ""b"" c"\n3,plain\n'
        guess = detect_dialect(text)
        assert guess.dialect.doublequote
        assert rows(text, guess.dialect)[2] == ["2", 'a "b" c']


class TestPaddingAndLineEndings:
    def test_padding_after_delimiters_is_recognised(self) -> None:
        """A space after (nearly) every delimiter is padding."""
        text = 'a, b, c\n1, "x, y", 3\n4, z, 6\n'
        guess = detect_dialect(text)
        assert guess.dialect.skipinitialspace
        assert rows(text, guess.dialect)[1] == ["1", "x, y", "3"]

    def test_occasional_spaces_are_data(self) -> None:
        """Spaces after only some delimiters are part of the values."""
        text = "a,b,c\n1, x,3\n4,y,6\n7,z,9\n"
        assert not detect_dialect(text).dialect.skipinitialspace

    @pytest.mark.parametrize(
        ("text", "ending"),
        [
            ("a,b\n1,2\n", "\n"),
            ("a,b\r\n1,2\r\n", "\r\n"),
            ("a,b\r1,2\r", "\r"),
            ("a,b\r\n1,2\n3,4\n", "mixed"),
            ('a,b\r\n1,"x\ny"\r\n', "\r\n"),
        ],
    )
    def test_line_terminator(self, text: str, ending: str) -> None:
        """The record terminator is reported; line breaks inside quoted fields do not count."""
        assert detect_dialect(text).line_terminator == ending

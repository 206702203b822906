"""Encoding detection: BOM, binary refusal, strict UTF-8, legacy code pages."""

from __future__ import annotations

import codecs

import pytest

from backend.detection.encoding import decode_sample, detect_encoding, reject_binary
from backend.errors import DetectionError

CSV = "name,city\nJosé,Genève\nZoë,Tromsø\n"


class TestByteOrderMark:
    @pytest.mark.parametrize(
        ("bom", "encoding", "codec"),
        [
            (codecs.BOM_UTF8, "utf-8-sig", "utf-8"),
            (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16-le"),
            (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16-be"),
            (codecs.BOM_UTF32_LE, "utf-32-le", "utf-32-le"),
        ],
    )
    def test_bom_decides_with_full_confidence(self, bom: bytes, encoding: str, codec: str) -> None:
        """A byte order mark names the codec, with confidence 1 and the BOM recorded."""
        guess = detect_encoding(bom + CSV.encode(codec), complete=True)
        assert (guess.encoding, guess.confidence, guess.bom) == (encoding, 1.0, bom)

    def test_utf16_without_bom_is_recognised_from_nul_pattern(self) -> None:
        """ASCII-heavy UTF-16 without a BOM is read as UTF-16, not refused as binary."""
        guess = detect_encoding(CSV.encode("utf-16-le"), complete=True)
        assert guess.encoding == "utf-16-le"
        assert guess.warnings


class TestBinaryFiles:
    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            pytest.param(b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, "ZIP archive \\(xlsx\\?\\)", id="zip"),
            pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40, "PNG image", id="png"),
            pytest.param(b"%PDF-1.7\n%\xe2\xe3", "PDF document", id="pdf"),
            pytest.param(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 20, "OLE2 document", id="xls"),
        ],
    )
    def test_known_signatures_are_refused_by_name(self, data: bytes, reason: str) -> None:
        """A file that starts like an archive, image or document is refused, naming what it looks like."""
        with pytest.raises(DetectionError, match=reason):
            detect_encoding(data, complete=True)

    def test_nul_byte_is_refused_with_its_offset(self) -> None:
        """A NUL byte in otherwise ordinary text is refused, naming its offset."""
        with pytest.raises(DetectionError, match="NUL byte at offset 10"):
            reject_binary(b"a,b\n1,2\nxy\x00z\n")

    def test_many_control_bytes_are_refused(self) -> None:
        """Bytes full of C0 controls are not text."""
        with pytest.raises(DetectionError, match="control bytes"):
            detect_encoding(bytes(range(1, 9)) * 20 + b"a,b\n", complete=True)


class TestUtf8:
    def test_ascii_is_utf8(self) -> None:
        """Pure ASCII is reported as UTF-8 with full confidence."""
        assert detect_encoding(b"a,b\n1,2\n", complete=True).encoding == "utf-8"

    def test_sample_cut_inside_a_character_is_still_utf8(self) -> None:
        """A sample that ends in the middle of a multi-byte character is trimmed, not misread."""
        data = ("x,é\n" * 100).encode("utf-8")
        cut = data[: data.index(b"\xc3", 50) + 1]
        assert detect_encoding(cut, complete=False).encoding == "utf-8"
        text, used = decode_sample(cut, "utf-8", final=False)
        assert used == len(cut) - 1
        assert text.endswith("x,")

    def test_damaged_utf8_is_an_error_naming_the_offset_in_strict_mode(self) -> None:
        """Mostly valid UTF-8 with a bad byte is a damaged file: strict mode names the byte offset."""
        data = ("é,ü\n" * 20).encode("utf-8") + b"bad\xff,x\n"
        offset = data.index(b"\xff")
        with pytest.raises(DetectionError, match=f"offset {offset}"):
            detect_encoding(data, complete=True)

    def test_damaged_utf8_is_accepted_with_a_warning_in_replace_mode(self) -> None:
        """In replace mode a damaged UTF-8 sample is UTF-8 with lower confidence and a warning."""
        data = ("é,ü\n" * 20).encode("utf-8") + b"bad\xff,x\n"
        guess = detect_encoding(data, complete=True, decode_errors="replace")
        assert guess.encoding == "utf-8"
        assert guess.confidence < 1.0
        assert "replaced" in guess.warnings[0]

    def test_ascii_head_with_legacy_tail_uses_the_tail(self) -> None:
        """When the sample is ASCII but the file's tail is cp1252, the tail decides."""
        tail = ("Café crème, 3€ “quoted” – dash\n" * 5).encode("cp1252")
        assert detect_encoding(b"a,b\n" * 100, tail, complete=False).encoding == "cp1252"

    def test_damage_after_real_utf8_stays_utf8(self) -> None:
        """A bad byte in the tail of a file whose sample has real UTF-8 is left for the reader to report."""
        head = ("é,x\n" * 100).encode("utf-8")
        assert detect_encoding(head, b"ok\n\xff\n", complete=False).encoding == "utf-8"


class TestLegacyEncodings:
    def test_cp1252_with_euro_and_smart_quotes(self) -> None:
        """Euro sign and smart quotes in a single-byte file mean cp1252."""
        data = ("item,price\nCafé “crème”,3€\nSeñor Müller’s,5€\nNaïve – ok,7€\n" * 3).encode("cp1252")
        assert detect_encoding(data, complete=True).encoding == "cp1252"

    def test_latin1_text_decodes_identically_as_cp1252(self) -> None:
        """Latin-1 letters without C1 bytes are reported as cp1252, which decodes them the same way."""
        data = ("word\nJosé\nSão Paulo\nFrançois\nÆrøskøbing\nÜbermaß\n" * 3).encode("latin-1")
        guess = detect_encoding(data, complete=True)
        assert guess.encoding == "cp1252"
        assert data.decode(guess.encoding) == data.decode("latin-1")

    def test_bytes_undefined_in_cp1252_mean_latin1(self) -> None:
        """Bytes cp1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) make it latin-1."""
        data = "a,b\nJosé,x\x81y\n".encode("latin-1")
        assert detect_encoding(data, complete=True).encoding == "latin-1"

    def test_short_file_falls_back_to_cp1252(self) -> None:
        """Too few non-ASCII bytes for statistics: cp1252, with a warning."""
        guess = detect_encoding("a,b\nCafé,1\n".encode("cp1252"), complete=True)
        assert guess.encoding == "cp1252"
        assert guess.confidence == 0.5
        assert "non-ASCII" in guess.warnings[0]

    def test_shift_jis(self) -> None:
        """Japanese text in Shift-JIS is recognised (as cp932, its Windows superset)."""
        data = ("名前,都市\n山田太郎,東京\n鈴木花子,大阪\n佐藤次郎,名古屋\n" * 3).encode("shift_jis")
        assert detect_encoding(data, complete=True).encoding in ("cp932", "shift_jis")

    def test_gb18030(self) -> None:
        """Chinese text in GB18030 is recognised."""
        data = ("姓名,城市\n张伟,北京\n王芳,上海\n李娜,广州\n" * 3).encode("gb18030")
        assert detect_encoding(data, complete=True).encoding == "gb18030"

    def test_cyrillic_cp1251(self) -> None:
        """Russian text in cp1251 is recognised."""
        data = ("Имя,Город\nИван,Москва\nПётр,Санкт-Петербург\nОльга,Казань\n" * 3).encode("cp1251")
        assert detect_encoding(data, complete=True).encoding == "cp1251"

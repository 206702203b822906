"""Which delimiter, quote and escape characters a file uses, from its decoded sample.

Every candidate dialect (delimiters from an allowlist, quote ``"``, ``'`` or none, backslash
escapes when the sample has any) is parsed with the stdlib csv reader and scored like
CleverCSV's data consistency measure: a pattern score that rewards many records of one width
and more than one column, times the share of "clean" cells (numbers, dates, plain words; not
quote residue or another candidate delimiter). CleverCSV itself runs on a small bounded slice
of the sample (it can be very slow on large inputs: alan-turing-institute/CleverCSV#15) and its
answer only breaks near-ties.

Decisions:

* A quote character stays ``"`` unless parsing with it breaks the file: when one record swallows
  several lines and reading the quotes as plain characters gives consistent rows (one stray
  quote in a cell), quotes are literal (QUOTE_NONE).
* ``:`` is only a candidate when most colons are not inside times (``10:30``) or URLs
  (CleverCSV#35).
* Padding: values are kept exactly as written, except that spaces right after a delimiter are
  dropped (``skipinitialspace``) when at least 90% of the delimiters in the sample are followed
  by a space (``a, b, c``); then ``a, "b, c"`` reads as two fields, as the writer meant.
* No delimiter candidate gives more than one column: a single-column file; its delimiter is the
  first allowlisted character that does not occur in the sample (``,`` if all do).
* Space is no candidate (prose is full of spaces), except when no allowlisted delimiter reads
  the sample consistently and most lines hold quoted fields standing between spaces
  (``2024-02-11 08:30 3 "Tea towel, blue" 4.50``): then a space reading that gives one width of
  three or more columns to 90% of the records wins.
* A delimiter the file names itself (Excel's ``sep=;`` first line) is the only candidate.
* ``#`` comment lines at the top are left out of the scoring: a long comment block would
  otherwise outvote the table's rows.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from backend.detection.clever import NUDGE, clevercsv_dialect, may_decide

log = structlog.get_logger(__name__)

#: Delimiters we consider, in order of preference on ties.
ALLOWED_DELIMITERS = (",", ";", "\t", "|", ":")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", ":": "colon", " ": "space"}

_SCORE_RECORDS = 1000
_SCORE_CHARS = 256 * 1024
_TYPE_RECORDS = 200
_EPS = 0.001
_PADDING_SHARE = 0.9
#: A space-delimited reading must give this share of records one width (and 3+ columns).
_SPACE_CONSISTENCY = 0.9
#: A quoted field standing between spaces or line ends: the mark of a space-delimited file.
_SPACED_QUOTE = re.compile(r'(?:^| )"[^"\n]*"(?= |\r?$)', re.MULTILINE)

_NUMBER = re.compile(
    r"[-+(]?[$€£¥]?\s?(?:\d+|\d{1,3}(?:[,. '\u00a0]\d{3})+)(?:[.,]\d+)?(?:[eE][-+]?\d+)?\s?[%$€£¥)]?"
)
_DATEISH = re.compile(
    r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_TIMEISH = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s?[AaPp][Mm])?")
_COLON_NOT_DELIMITER = re.compile(r"(?<![0-9])[0-9]{1,2}:[0-5][0-9](?![0-9])|:/")


@dataclass(frozen=True, slots=True)
class Dialect:
    """How fields are separated and quoted."""

    delimiter: str
    quotechar: str | None = '"'
    escapechar: str | None = None
    doublequote: bool = True
    skipinitialspace: bool = False

    def reader_options(self) -> dict[str, Any]:
        """Keyword arguments for `csv.reader`."""
        options: dict[str, Any] = {
            "delimiter": self.delimiter,
            "doublequote": self.doublequote,
            "skipinitialspace": self.skipinitialspace,
            "escapechar": self.escapechar,
            "strict": False,
        }
        if self.quotechar is None:
            options["quoting"] = csv.QUOTE_NONE
        else:
            options["quotechar"] = self.quotechar
        return options


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One record of the sample: physical lines `line`..`end` (1-based) and its values."""

    line: int
    end: int
    values: list[str]

    @property
    def blank(self) -> bool:
        return not self.values


@dataclass(frozen=True, slots=True)
class DialectGuess:
    """The chosen dialect and the evidence behind it."""

    dialect: Dialect
    width: int
    consistency: float
    line_terminator: str
    clevercsv: Dialect | None = None
    scores: dict[str, float] = field(default_factory=dict)


def split_lines(text: str) -> list[str]:
    """Physical lines as the reader sees them (``\\n``, ``\\r\\n`` and ``\\r`` end a line)."""
    return list(io.StringIO(text, newline=""))


def parse_records(lines: Iterable[str], dialect: Dialect, *, first_line: int = 1) -> list[SampleRecord]:
    """Parse physical lines into records, blank lines included (as records without values)."""
    reader = csv.reader(iter(lines), **dialect.reader_options())
    records: list[SampleRecord] = []
    previous = 0
    offset = first_line - 1
    try:
        for values in reader:
            start = previous + 1
            previous = reader.line_num
            records.append(SampleRecord(start + offset, previous + offset, values))
    except csv.Error:
        pass  # the candidate is broken from here on; what parsed so far is its evidence
    return records


def line_terminator(lines: Sequence[str], records: Sequence[SampleRecord], first_line: int = 1) -> str:
    """The line break that ends records: "\\n", "\\r\\n", "\\r" or "mixed"."""
    kinds: Counter[str] = Counter()
    for record in records:
        line = lines[record.end - first_line] if 0 <= record.end - first_line < len(lines) else ""
        if line.endswith("\r\n"):
            kinds["\r\n"] += 1
        elif line.endswith("\n"):
            kinds["\n"] += 1
        elif line.endswith("\r"):
            kinds["\r"] += 1
    if not kinds:
        return "\n"
    if len(kinds) == 1:
        return next(iter(kinds))
    return "mixed"


def _pattern_score(widths: Sequence[int]) -> tuple[float, int, float]:
    """CleverCSV's pattern score over record widths, the modal width and its share."""
    if not widths:
        return 0.0, 0, 0.0
    counts = Counter(widths)
    score = sum(n * max(_EPS, width - 1) / width for width, n in counts.items()) / len(counts)
    modal, n_modal = max(counts.items(), key=lambda item: (item[1], item[0]))
    return score, modal, n_modal / len(widths)


def _clean(cell: str, dialect: Dialect, others: str) -> bool:
    """A cell that looks like a value, not like the debris of a wrong dialect."""
    text = cell.strip()
    if not text:
        return True
    if _NUMBER.fullmatch(text) or _DATEISH.fullmatch(text) or _TIMEISH.fullmatch(text):
        return True
    for quote in "\"'":
        # Residue of a wrong quoting choice: a wrapped value ("x"), an opening quote that
        # never closed ("x), or an escape left in place (\"). A value may end with a quote (5").
        if text[0] == quote and (len(text) == 1 or text[-1] == quote or text.count(quote) == 1):
            if quote == "'" and text.count("'") == 1 and len(text) > 1:
                continue  # an apostrophe ('tis) is not a quote residue
            return False
        if "\\" + quote in text:
            return False
    for ch in others:
        if ch in text:
            # ", " "; " ": " are ordinary punctuation in prose; a bare one looks like a delimiter.
            if ch in ",;:" and text.count(ch) == text.count(ch + " "):
                continue
            return False
    return True


@dataclass(slots=True)
class _Candidate:
    dialect: Dialect
    records: list[SampleRecord]
    pattern: float
    width: int
    consistency: float
    clean: float

    @property
    def score(self) -> float:
        return self.pattern * self.clean


def _evaluate(lines: Sequence[str], dialect: Dialect, present: str) -> _Candidate:
    records = parse_records(lines, dialect)
    nonblank = [r for r in records if r.values]
    widths = [len(r.values) for r in nonblank]
    pattern, width, consistency = _pattern_score(widths)
    others = "".join(ch for ch in present if ch != dialect.delimiter)
    cells = [cell for r in nonblank[:_TYPE_RECORDS] for cell in r.values]
    clean = sum(1 for cell in cells if _clean(cell, dialect, others)) / len(cells) if cells else 0.0
    return _Candidate(dialect, records, pattern, width, consistency, clean)


def _candidate_delimiters(text: str) -> list[str]:
    present = [d for d in ALLOWED_DELIMITERS if d in text]
    if ":" in present:
        colons = text.count(":")
        if len(_COLON_NOT_DELIMITER.findall(text)) * 2 >= colons:
            present.remove(":")
    return present


def _padded(text: str, delimiter: str) -> bool:
    total = text.count(delimiter)
    if total < 3:
        return False
    return text.count(delimiter + " ") >= _PADDING_SHARE * total


def detect_dialect(text: str, *, complete: bool = False, delimiter: str | None = None) -> DialectGuess:
    """Choose the dialect of a decoded sample made of complete lines.

    Args:
        text: decoded sample, cut after its last complete line.
        complete: `text` is the whole file (an open quote at its end is then a stray quote).
        delimiter: the delimiter the file names (a ``sep=`` hint); only its quoting is chosen.
    """
    lines = split_lines(text)
    score_lines: list[str] = []
    size = 0
    # A block of '#' comment lines on top (BLAST, many instruments) is no evidence of the dialect.
    comments = next((k for k, line in enumerate(lines) if not line.startswith("#")), len(lines))
    for line in lines[comments if comments < len(lines) else 0 :]:
        score_lines.append(line)
        size += len(line)
        if len(score_lines) >= _SCORE_RECORDS or size >= _SCORE_CHARS:
            break
    score_text = "".join(score_lines)
    delimiters = [delimiter] if delimiter else _candidate_delimiters(score_text)
    present = "".join(_candidate_delimiters(score_text) if delimiter else delimiters)

    scores: dict[str, float] = {}
    per_delimiter: list[_Candidate] = []
    whole = complete and len(score_lines) == len(lines)
    for candidate in delimiters:
        chosen = _best_quoting(score_lines, score_text, candidate, present, complete=whole)
        scores[repr(chosen.dialect)] = chosen.score
        per_delimiter.append(chosen)

    cleverc: Dialect | None = None
    if not delimiter and may_decide([c.score for c in per_delimiter]):
        found = clevercsv_dialect(score_lines, delimiters)
        if found is not None:
            cleverc = Dialect(found[0], found[1], found[2], doublequote=not found[2])

    def nudged(candidate: _Candidate) -> float:
        if cleverc is not None and cleverc.delimiter == candidate.dialect.delimiter:
            return candidate.score * NUDGE
        return candidate.score

    # max() keeps the first of equal scores: the allowlist order breaks exact ties.
    best = max(per_delimiter, key=nudged, default=None)
    if not delimiter and (best is None or best.width <= 1 or best.consistency < _SPACE_CONSISTENCY):
        spaced = _space_delimited(score_lines, score_text, present, whole)
        if spaced is not None and (best is None or best.width <= 1 or spaced.score > best.score):
            best = spaced
            scores[repr(spaced.dialect)] = spaced.score

    if best is None or best.width <= 1:
        # One column: pick a delimiter the sample never uses so that every line stays whole.
        if delimiter:
            single = Dialect(delimiter, '"')
        else:
            single = Dialect(next((d for d in (",", "\t", ";", "|") if d not in score_text), ","), '"')
        records = parse_records(score_lines, single)
        widths = [len(r.values) for r in records if r.values]
        share = widths.count(1) / len(widths) if widths else 1.0
        return DialectGuess(single, 1, share, line_terminator(score_lines, records), cleverc, scores)

    return DialectGuess(
        best.dialect,
        best.width,
        best.consistency,
        line_terminator(score_lines, best.records),
        cleverc,
        scores,
    )


def _space_delimited(lines: Sequence[str], text: str, present: str, complete: bool) -> _Candidate | None:
    """The space-delimited reading, when most lines hold quoted fields between spaces."""
    nonblank = [line for line in lines if line.strip()]
    if not nonblank:
        return None
    quoted = sum(1 for line in nonblank if _SPACED_QUOTE.search(line))
    if quoted * 2 < len(nonblank):
        return None
    candidate = _best_quoting(lines, text, " ", present + " ", complete=complete)
    if candidate.width < 3 or candidate.consistency < _SPACE_CONSISTENCY:
        return None
    return candidate


def _swallows(candidate: _Candidate, delimiter: str) -> bool:
    """A quoted field holds line breaks followed by lines that look like whole records."""
    needed = max(1, candidate.width - 1)
    for record in candidate.records:
        if record.end == record.line:
            continue
        for value in record.values:
            if "\n" in value or "\r" in value:
                inner = split_lines(value)[1:]
                if any(line.count(delimiter) >= needed for line in inner):
                    return True
    return False


def _ends_inside_quotes(lines: Sequence[str], dialect: Dialect) -> bool:
    """The text ends inside an open quoted field (only meaningful for a whole file)."""
    options = dialect.reader_options()
    options["strict"] = True
    try:
        for _ in csv.reader(iter(lines), **options):
            pass
    except csv.Error as exc:
        return "end of data" in str(exc)
    return False


def _best_quoting(
    lines: Sequence[str], text: str, delimiter: str, present: str, *, complete: bool = False
) -> _Candidate:
    """The quoting that reads `lines` best with `delimiter`."""
    padded = _padded(text, delimiter)
    default = _evaluate(lines, Dialect(delimiter, '"', skipinitialspace=padded), present)
    best = default
    if '"' in text:
        if '\\"' in text:
            escaped = _evaluate(
                lines, Dialect(delimiter, '"', "\\", doublequote=False, skipinitialspace=padded), present
            )
            if _better(escaped, best):
                best = escaped
        if _swallows(best, delimiter) or (complete and _ends_inside_quotes(lines, best.dialect)):
            # One stray quote opened a field that runs over whole records (or to the end):
            # when reading quotes as plain characters is at least as consistent, it is right.
            literal = _evaluate(lines, Dialect(delimiter, None, skipinitialspace=padded), present)
            if literal.consistency >= best.consistency and literal.pattern >= best.pattern * 0.9:
                best = literal
    if "'" in text and re.search(rf"(?:^|{re.escape(delimiter)}) *'", text, re.MULTILINE):
        single = _evaluate(lines, Dialect(delimiter, "'", skipinitialspace=padded), present)
        if _better(single, best, margin=1.02):
            best = single
            if "\\'" in text:
                escaped = _evaluate(
                    lines, Dialect(delimiter, "'", "\\", doublequote=False, skipinitialspace=padded), present
                )
                if _better(escaped, best):
                    best = escaped
    return best


def _better(challenger: _Candidate, incumbent: _Candidate, margin: float = 1.0) -> bool:
    """The challenger parses at least as consistently and leaves cleaner cells."""
    if challenger.pattern < incumbent.pattern * 0.98:
        return False
    return challenger.score > incumbent.score * margin

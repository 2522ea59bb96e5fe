"""Reading one raw input text file: UTF-8 only, lines split, and problems quoted for error messages.

A file in another encoding, with NUL bytes or with old-Mac line endings is refused by what it is, since
the parsers would otherwise report it as some baffling problem on some line.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from dhns.data.graph import DataFormatError

# A carriage return that neither ends a CRLF pair nor the file: the line ending of old Mac files.
_LONE_CR = re.compile(r"\r(?!\n|\Z)")
# Longest piece of a line an error message quotes: a file with the wrong line endings is one giant line.
_QUOTE_LIMIT = 100
# Byte-order marks of the encodings that are not UTF-8 (UTF-32 first: its little-endian mark starts like UTF-16's).
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32 (little-endian)"),
    (codecs.BOM_UTF32_BE, "UTF-32 (big-endian)"),
    (codecs.BOM_UTF16_LE, "UTF-16 (little-endian)"),
    (codecs.BOM_UTF16_BE, "UTF-16 (big-endian)"),
)
# How much of a file the NUL-byte pattern (UTF-16 or UTF-32 without a byte-order mark) is judged on.
_ENCODING_SAMPLE = 4096


def _read_text(path: Path) -> str:
    """Decode as UTF-8 (a BOM is tolerated); a file in another encoding is refused by the encoding's name.

    Left to the parsers, a UTF-16 file would fail as "unknown name 'E\\x00n\\x00...'" and a Latin-1 one
    as a bare undecodable byte, neither of which says that saving the file as UTF-8 fixes it.
    """
    if not path.is_file():
        raise DataFormatError(f"{path}: required file is missing")
    data = path.read_bytes()
    _check_not_wide_or_binary(path, data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataFormatError(_not_utf8_message(path, data, error)) from None
    _check_line_endings(path, text)
    return text


def _check_not_wide_or_binary(path: Path, data: bytes) -> None:
    """Refuse UTF-16/UTF-32 text (with or without a byte-order mark) and NUL bytes, which UTF-8 text never holds."""
    for bom, encoding in _WIDE_BOMS:
        if data.startswith(bom):
            raise DataFormatError(f"{path}: starts with a {encoding} byte-order mark, so it is {encoding.split()[0]} "
                                  f"text; save it as UTF-8")
    first_nul = data.find(b"\x00")
    if first_nul < 0:
        return
    encoding = _wide_encoding(data[:_ENCODING_SAMPLE])
    if encoding is not None:
        raise DataFormatError(f"{path}: looks like {encoding} text (NUL bytes between characters) without a "
                              f"byte-order mark; save it as UTF-8")
    line = data.count(b"\n", 0, first_nul) + 1
    raise DataFormatError(f"{path}, line {line}: NUL byte at offset {first_nul}; text files hold none "
                          f"(a binary or damaged file?)")


def _wide_encoding(sample: bytes) -> str | None:
    """The encoding whose NUL pattern `sample` has, if any: mostly-ASCII text in UTF-32 is NUL in three of
    every four bytes, in UTF-16 in every other byte (the odd ones little-endian, the even ones big-endian)."""
    if sum(_mostly_nul(sample[start::4]) for start in range(4)) == 3:
        return "UTF-32"
    if _mostly_nul(sample[0::2]) != _mostly_nul(sample[1::2]):
        return "UTF-16"
    return None


def _mostly_nul(lane: bytes) -> bool:
    return 2 * lane.count(0) > len(lane) > 0


def _not_utf8_message(path: Path, data: bytes, error: UnicodeDecodeError) -> str:
    """Name the line, the byte and, when the whole file reads as Windows-1252, that likely encoding."""
    line = data.count(b"\n", 0, error.start) + 1
    start = data.rfind(b"\n", 0, error.start) + 1
    end = data.find(b"\n", error.start)
    excerpt = data[start : end if end >= 0 else len(data)].decode("latin-1").rstrip("\r")
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        guess = ""
    else:
        guess = "; it looks like Latin-1 / Windows-1252 text: save it as UTF-8"
    byte = f"byte 0x{data[error.start]:02X} at offset {error.start}"
    return f"{path}, line {line}: not valid UTF-8 ({byte}: {error.reason}) in {_quote(excerpt)}{guess}"


def _check_line_endings(path: Path, text: str) -> None:
    """Refuse lone-CR line endings by name: split on \\n, such a file is one giant line, and every later
    check would report that line as some other, baffling problem. CRLF (and a final lone CR) stays accepted."""
    if "\r" not in text:
        return
    lone = _LONE_CR.search(text)
    if lone is not None:
        line = text.count("\n", 0, lone.start()) + 1
        raise DataFormatError(
            f"{path}, line {line}: lines end in a lone carriage return (\\r), as old Mac files do; "
            f"convert to \\n (e.g. `tr '\\r' '\\n'`)"
        )


def _quote(text: str) -> str:
    """`text` for an error message: repr'd, and cut to an excerpt with its length when it is long,
    so that a malformed multi-megabyte line does not end up in the message (and the log) whole."""
    if len(text) <= _QUOTE_LIMIT:
        return repr(text)
    return f"{text[:_QUOTE_LIMIT]!r}... ({len(text)} characters)"


def _split_lines(text: str) -> list[str]:
    """Lines without their terminators; trailing blank lines are dropped, inner ones kept for the checks."""
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _blank_line_error(path: Path, line_number: int) -> DataFormatError:
    return DataFormatError(f"{path}, line {line_number}: blank line inside the file (only trailing ones are allowed)")

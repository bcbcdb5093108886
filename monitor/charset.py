"""Turn response bytes into text. Hong Kong sites send UTF-8 and Big5, and some declare the wrong one."""

from __future__ import annotations

import codecs
import re

META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I)
LOSSY_UTF8 = "utf-8, invalid bytes replaced"
MAX_STRAY = 8  # invalid characters a page may hold and still be read in its own charset
HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)
BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))

# Plain Big5 lacks the Hong Kong Supplementary Character Set used in names and places; Big5-HKSCS
# is a superset, so decoding every "big5" label with it loses nothing. GB2312 likewise -> GB18030.
SUPERSETS = {"big5": "big5hkscs", "big5-hkscs": "big5hkscs", "gb2312": "gb18030", "gbk": "gb18030"}
# Labels a server gives by default (Apache's, old IIS's, a proxy's): they decode any bytes, so a wrong
# one never fails. A document that declares a Chinese charset itself is believed over them (one that
# declares UTF-8 may be a template's meta on a Windows-1252 page: the label is tried after it).
WESTERN_DEFAULTS = {"iso8859-1", "cp1252", "ascii", "iso8859-15"}
CHINESE = {"big5hkscs", "cp950", "gb18030"}


def content_type_charset(content_type: str) -> str:
    """The charset a Content-Type header names ('' if none)."""
    match = HEADER_CHARSET.search(content_type)
    return match[1].lower() if match else ""


def declared_charset(body: bytes) -> str:
    """The charset a document declares for itself in its first few KB (meta tag or XML declaration)."""
    head = body[:4096]
    match = XML_ENCODING.match(head) or META_CHARSET.search(head)
    return match[1].decode("ascii").lower() if match else ""


def decode(body: bytes, header_charset: str = "") -> tuple[str, str]:
    """(text, encoding used). Order: BOM, valid UTF-8, the header, the document's declaration, Big5-HKSCS;
    the declaration before a header naming a Western single-byte charset (WESTERN_DEFAULTS).

    Valid UTF-8 is tried before the labels because Big5 bytes practically never form valid UTF-8,
    while a server or template that labels Big5 as UTF-8 (or the reverse) is common.
    """
    for bom, encoding in BOMS:
        if body.startswith(bom):
            return body.decode(encoding, errors="replace"), encoding
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass  # the labels, then the usual Hong Kong encodings (the declaration is looked for only now)
    header, declared = _codec(header_charset.lower()), _codec(declared_charset(body))
    if header in WESTERN_DEFAULTS and declared in CHINESE:  # <meta charset="big5"> served as ISO-8859-1:
        header = ""  # out of every reading too, as it never fails (a stray byte would pick it)
    labelled = [e for e in (header, declared) if e]
    for encoding in dict.fromkeys((*labelled, "big5hkscs")):
        try:
            return body.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    # A stray byte (a bad pair in a Big5 comment, a cut character) fails every strict decoding:
    # the reading it costs fewest characters wins, if only a few, not another charset for the page.
    readings = [
        (e, body.decode(e, errors="replace")) for e in dict.fromkeys((*labelled, "utf-8", "big5hkscs"))
    ]
    best, text = min(readings, key=lambda reading: reading[1].count("\ufffd"))
    if text.count("\ufffd") <= max(MAX_STRAY, len(body) // 1000):
        return text, LOSSY_UTF8 if best == "utf-8" else f"{best}, invalid bytes replaced"
    if "cp1252" not in labelled:
        try:
            return body.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            pass
    # Not "utf-8": the text is not the body's decoding (extract.dom parses a UTF-8 body's own bytes).
    return body.decode("utf-8", errors="replace"), LOSSY_UTF8


def _codec(label: str) -> str:
    label = SUPERSETS.get(label, label)
    if not label:
        return ""
    try:
        return codecs.lookup(label).name
    except LookupError:
        return ""

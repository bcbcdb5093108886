"""Normalisation shared by extraction, diffing and classification: what counts as 'the same'."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

HKT = timezone(timedelta(hours=8), "HKT")

# Zero-width characters, the BOM, variation selectors (the SFC's TC titles carry U+FE01 after a
# full-width colon), bidirectional overrides and C0/C1 controls other than whitespace: invisible,
# and never meaningful. (ESC among them: scraped text can never drive a terminal.) Lone surrogates
# too: a JSON "\ud800" without its pair is no character, and no UTF-8 can store it.
BIDI = "\u200e\u200f\u202a-\u202e\u2066-\u2069"
INVISIBLE = re.compile(
    rf"[\u200b-\u200d\u2060\ufeff\ufe00-\ufe0f{BIDI}\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]"
)
# For text shown in a terminal that keeps its lines (a diff, a log line's traceback): the same
# controls and overrides, but line breaks and tabs stay.
UNPRINTABLE = re.compile(rf"[{BIDI}\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SPACES = re.compile(r"\s+")  # str patterns match \u3000 and \xa0 as whitespace too
# HKMA circular titles end in " (PDF File, 131.0 KB)"; the size changes when a file is re-saved.
FILE_SUFFIX = re.compile(
    r"\s*[(（]\s*(?:PDF|Word|Excel|DOCX?|XLSX?)\s*(?:File|檔案|文件)?\s*[,，]?\s*[\d.,]+\s*[KMG]B\s*[)）]\s*$",
    re.I,
)
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")  # a Chinese (Han) character
TRACKING_PARAMS = re.compile(
    r"^(utm_\w+|rev|ver|v|ts|timestamp|_|fbclid|gclid|mc_cid|mc_eid|sc_lang|jsessionid|phpsessid|aspsessionid)$",
    re.I,
)
# A Java server's session id in the path ("/a.htm;jsessionid=..."): new for every visitor.
SESSION_IN_PATH = re.compile(r";jsessionid=[^/?#]*", re.I)
DATE_FORMATS = ("%d %b %Y", "%d %B %Y", "%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%b %d, %Y", "%B %d, %Y")
NUMBER_PUNCTUATION = re.compile(r"(?<=\d)[.,](?=\d)")
# What a fingerprint drops: all but letters and digits (\w is str.isalnum() and "_"), "·" and "%".
NOT_IN_FINGERPRINT = re.compile(r"[^\w·%]|_")
# A link normalize_link leaves as it is (bar a "/" path): see _already_normal.
PLAIN_LINK = re.compile(r"https?://[a-z0-9._\-]+(?::([1-9][0-9]{0,4}))?(?:/[^?#;]*)?\Z")
CJK_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}$")  # what parse_date makes of a date that names its day


def clean_text(text: str) -> str:
    """Invisible characters dropped, every run of white space (CR/LF, U+3000, NBSP) one space."""
    if text.isascii() and text.isprintable() and "  " not in text and text[:1] != " " != text[-1:]:
        return text  # already clean (printable ASCII has no white space but the space): the usual case
    return SPACES.sub(" ", INVISIBLE.sub("", text)).strip()


def printable(text: str) -> str:
    """Text safe to write to a terminal: no escape sequences, bell or bidi overrides; lines kept."""
    return UNPRINTABLE.sub("", text)


def one_line(text: str) -> str:
    """Text safe to write to a terminal as one line (a log line, an error)."""
    return " ".join(printable(text).split())


def clean_title(title: str) -> str:
    """A title as shown to users: clean text without a trailing file-size suffix."""
    title = clean_text(title)
    if not title.endswith((")", "）")) or not title[:-1].rstrip().endswith(("B", "b")):
        return title  # no "... KB)" ending: FILE_SUFFIX, tried at every position, cannot match
    return FILE_SUFFIX.sub("", title).strip()


def chinese_title(title: str) -> bool:
    """Whether its first letter is a Chinese character: "證監會就JPEX Exchange Limited發出警告" and
    "《2026年保險業條例草案》" are Chinese titles, "SFC warns public about 恒星交易所" an English one."""
    first = next((ch for ch in title if ch.isalpha()), "")
    return bool(CJK.match(first))


def fingerprint(text: str) -> str:
    """What two titles must share to be 'the same': letters and digits only, width- and case-folded.

    'A.I.' and 'AI', a doubled space, a full-width colon or a re-saved PDF's size do not make an
    item 'changed'; a changed word does.
    """
    folded = unicodedata.normalize("NFKC", clean_title(text)).casefold()
    folded = NUMBER_PUNCTUATION.sub("·", folded)  # HK$1.5 million is not HK$15 million
    return NOT_IN_FINGERPRINT.sub("", folded)


def normalize_link(url: str, ignore_params: tuple[str, ...] = ()) -> str:
    """Lower-case scheme and host, no fragment, no default port, no tracking/cache-busting params,
    nor the source's `ignore_params` (lower-case names)."""
    url = clean_text(url)
    if not url:
        return ""
    if _already_normal(url):  # most links of a listing: ~1 us against ~20 us for parsing it
        return url if url.find("/", url.index("://") + 3) != -1 else url + "/"
    return _normalize_parsed(url, ignore_params)


def _normalize_parsed(url: str, ignore_params: tuple[str, ...] = ()) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.port and (parts.scheme, parts.port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{parts.port}"
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not TRACKING_PARAMS.match(k) and k.lower() not in ignore_params
    )
    path = SESSION_IN_PATH.sub("", parts.path) or "/"
    return urlunsplit((parts.scheme.lower(), host, path, urlencode(query), ""))


def _already_normal(url: str) -> bool:
    """An http(s) link that normalize_link would at most give a "/" path: lower-case scheme and
    host, no default or odd port, no user, IPv6 literal, query or fragment."""
    match = PLAIN_LINK.match(url)
    if not match:
        return False
    port = match[1]
    return not port or (int(port) <= 65535 and (url[:5], port) not in (("http:", "80"), ("https", "443")))


def join_link(base_url: str, href: str) -> str:
    """urljoin(base_url, href), with a fast path for a listing's usual root-relative link
    ("/en/news/..."): urljoin re-parses the base for each of a page's 50 links."""
    if (
        href[:1] == "/"
        and href[1:2] != "/"
        and "/." not in href
        and "#" not in href
        and ";" not in href
        and not href.endswith("?")
    ):
        origin = _origin(base_url)
        if origin:
            return origin + href
    return urljoin(base_url, href)


@lru_cache(maxsize=256)
def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


@lru_cache(maxsize=4096)  # a listing repeats its dates, and strptime is slow: ~25 us a try
def parse_date(text: str) -> str:
    """A listing's date as ISO (YYYY-MM-DD) when it is one of the common forms, else the clean text."""
    text = clean_text(text)
    match = CJK_DATE.search(text)
    if match:
        return f"{int(match[1]):04d}-{int(match[2]):02d}-{int(match[3]):02d}"
    for form in DATE_FORMATS:
        try:
            return datetime.strptime(text, form).date().isoformat()
        except ValueError:
            continue
    return _date_within(text) or text


MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# A month's name or its abbreviation, a whole word ("Dec", "December", "Sept."; not "decisions").
_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march|april|june|july|august|september|october|november|december)\b\.?"
# A date among other words ("Date: 30 Jul 2026", "Thu, 30 Jul 2026", "30-Jul-2026"): a cell's
# wording may change with the site's templates, while the date it holds does not.
DATES_WITHIN = (
    (re.compile(r"(?<!\d)(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?!\d)"), "y-md"),
    (re.compile(r"(?<!\d)(\d{1,2})[\s\-/.]*" + _MONTH + r"[\s\-/.,]*(\d{4})(?!\d)", re.I), "dmy"),
    (re.compile(r"\b" + _MONTH + r"\s+(\d{1,2}),?\s+(\d{4})(?!\d)", re.I), "mdy"),
    (re.compile(r"(?<!\d)(\d{1,2})([-/.])(\d{1,2})\2(\d{4})(?!\d)"), "d-my"),  # Hong Kong: day first
    # 29-Jul-26; not "2 Mar 26, 2026" (the 26th) nor "16:21 July 30, 2026"
    (
        re.compile(
            r"(?<!\d)(\d{1,2})[\s\-/.]*" + _MONTH + r"[\s\-/.,]*'?(\d{2})(?!\d)(?!,?\s*(?:19|20)\d\d(?!\d))",
            re.I,
        ),
        "dmY",
    ),
)


def _date_within(text: str) -> str:
    """The first date written in `text` (by position: "5 Mar 2026 (first issued 2025-01-02)")."""
    found = []
    for pattern, order in DATES_WITHIN:
        for match in pattern.finditer(text):
            parts = dict(zip(order, match.groups(), strict=True))  # "-": the separator, written twice
            month = parts["m"]
            number = MONTHS.index(month[:3].lower()) + 1 if month.isalpha() else int(month)
            year = int(parts["y"]) if "y" in parts else 2000 + int(parts["Y"])
            try:
                found.append((match.start(), date(year, number, int(parts["d"])).isoformat()))
            except ValueError:
                continue  # no such day: another match may be a date
    return min(found)[1] if found else ""


def iso_from_struct(value: tuple | None) -> str:
    """A feed date (UTC struct_time from feedparser) in Hong Kong time; date-only when at midnight."""
    if not value:
        return ""
    moment = datetime(*value[:6], tzinfo=UTC).astimezone(HKT)
    if (moment.hour, moment.minute, moment.second) == (0, 0, 0):
        return moment.date().isoformat()
    return moment.isoformat()

"""Random and mutated inputs for the config loader and every extractor (hypothesis).

Only the documented errors may escape: ConfigError from load_config, ExtractError (and its children
LayoutChanged, SuspiciousContent) from extract; charset.decode never raises. Anything else would be
an 'internal error' for a source, or a traceback for `validate`.

Derandomized (a fixed seed derived from each test), no example database: CI sees the same inputs
every run. HYPOTHESIS_PROFILE=deep runs ten times as many examples, randomly, for a bug hunt.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.charset import decode
from monitor.config import KIND_KEYS, SETTINGS_KEYS, TELEGRAM_KEYS, load_config
from monitor.errors import ConfigError, ExtractError
from monitor.extract import extract
from monitor.models import Page
from tests.conftest import FSTB_LISTING, REGISTER, ROOT, ROUND1, SFC_PRESS, TEST_SETTINGS, TOPICS

settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)  # fmt: skip
settings.register_profile("deep", parent=settings.get_profile("ci"), derandomize=False, max_examples=1500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SHIPPED = (ROOT / "sources.toml").read_text(encoding="utf-8")
FIXTURE_CONFIG = TEST_SETTINGS + TOPICS + "\n".join([SFC_PRESS, FSTB_LISTING, REGISTER])


# --- the config loader ---------------------------------------------------------------------------


def load_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sources.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_config(path)
        except ConfigError as exc:
            assert str(exc).startswith(str(path)), exc  # every error names the file


def mutate(text: str, data: st.DataObject) -> str:
    """Line-level edits of a real config: drop, repeat, swap, or overwrite part of a line."""
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 6), label="edits")):
        if not lines:
            break
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        edit = data.draw(st.sampled_from(["drop", "repeat", "swap", "overwrite", "truncate"]), label="edit")
        if edit == "drop":
            del lines[i]
        elif edit == "repeat":
            lines.insert(i, lines[i])
        elif edit == "swap":
            j = data.draw(st.integers(0, len(lines) - 1), label="other")
            lines[i], lines[j] = lines[j], lines[i]
        elif edit == "truncate":
            lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i])), label="cut")]
        else:
            start = data.draw(st.integers(0, len(lines[i])), label="at")
            lines[i] = (
                lines[i][:start] + data.draw(st.text(max_size=12), label="text") + lines[i][start + 3 :]
            )
    return "\n".join(lines)


@given(st.data())
def test_mutated_real_configs_fail_only_with_config_errors(data):
    load_text(mutate(data.draw(st.sampled_from([SHIPPED, FIXTURE_CONFIG]), label="config"), data))


@given(st.text(max_size=400))
def test_random_text_fails_only_with_config_errors(text):
    load_text(text)


# TOML values of every type, including inf, nan, huge numbers and nested tables.
SCALARS = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["15m", "0s", "-1h", "1e309", ".*", "[", "a::b", "div >", "", " ", "GET", "POST"]),
    st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -0.0, 0, -1, 2**63 - 1]),  # the edges, often
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=2),
    max_leaves=6,
)  # fmt: skip


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is JSON's string syntax for these
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def table(keys, data: st.DataObject, label: str) -> str:
    chosen = data.draw(st.lists(st.sampled_from(sorted(keys)), unique=True, max_size=4), label=label)
    return "".join(f"{key} = {toml_value(data.draw(VALUES, label=key))}\n" for key in chosen)


@given(st.data())
def test_wrongly_typed_values_fail_only_with_config_errors(data):
    kind = data.draw(st.sampled_from(sorted(KIND_KEYS)), label="kind")
    source = {"id": '"s"', "regulator": '"SFC"', "kind": f'"{kind}"', "url": '"https://www.sfc.hk/x"'}
    required = {
        "html": {"items": '"li"', "title": '"a"', "link": '"a"'},
        "json": {"items_path": '"i"', "title": '"t"'},
    }
    source.update(required.get(kind, {}))
    overridden = data.draw(
        st.lists(st.sampled_from(sorted(source)), unique=True, max_size=2), label="override"
    )
    lines = [
        f"{k} = {toml_value(data.draw(VALUES, label=k)) if k in overridden else v}" for k, v in source.items()
    ]
    text = (
        "[settings]\n" + table(SETTINGS_KEYS, data, "settings")
        + "[telegram]\n" + table(TELEGRAM_KEYS, data, "telegram")
        + "[topics.t]\nterms = [\"stablecoin\"]\n" + table({"requires", "exclude"}, data, "topic")
        + "[[sources]]\n" + "\n".join(lines) + "\n" + table(KIND_KEYS[kind] | {"topics", "interval", "name"}, data, "source")
    )  # fmt: skip
    load_text(text)


# --- the extractors ------------------------------------------------------------------------------

SAMPLES = {
    "rss": ("sfc/en/rss/press-releases.xml", SFC_PRESS, "application/rss+xml"),
    "html": ("fstb/tc/press-releases.htm", FSTB_LISTING, "text/html"),
    "page": ("hkma/eng/stablecoin-register.html", REGISTER, "text/html; charset=utf-8"),
}
JSON_SOURCE = """[[sources]]
id = "sfc-news-api-tc"
regulator = "SFC"
kind = "json"
url = "https://apps.sfc.hk/api"
items_path = "items"
item_id = "refNo"
title = "title"
date = "date"
link = "https://apps.sfc.hk/doc?refNo={refNo}"
"""


def sources() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sources.toml"
        blocks = [block for _, block, _ in SAMPLES.values()] + [JSON_SOURCE]
        path.write_text(
            TEST_SETTINGS + TOPICS + "\n".join(blocks).replace("{base}", "https://x.org"), encoding="utf-8"
        )
        by_kind = {s.kind: s for s in load_config(path).sources}
    return by_kind


SOURCES = sources()
BODIES = {kind: (ROUND1 / path).read_bytes() for kind, (path, _, _) in SAMPLES.items()}
BODIES["json"] = (ROOT / "tests" / "fixtures" / "real" / "sfc_tc_news.json").read_bytes()
TYPES = {kind: content_type for kind, (_, _, content_type) in SAMPLES.items()} | {"json": "application/json"}
JUNK = [
    b"<",
    b">",
    b"</",
    b"&",
    b"&#x0;",
    b"\x00",
    b"\xff\xfe",
    b"]]>",
    b"<!DOCTYPE x [",
    b'"',
    b"{",
    b"[",
    b"\xe7\xa9",
]


def page(kind: str, body: bytes) -> Page:
    text, encoding = decode(body, "")
    url = "https://x.org/listing"
    headers = {"content-type": TYPES[kind]}
    return Page("s", url, url, 200, headers, body, text, encoding, "2026-11-25T01:00:00+00:00", 5, "sha")


def must_extract_or_fail_cleanly(kind: str, body: bytes) -> None:
    try:
        snapshot = extract(SOURCES[kind], page(kind, body))
    except ExtractError:
        return
    assert snapshot.hash and (snapshot.items or snapshot.text)


@st.composite
def mutated(draw, kind: str) -> bytes:
    body = bytearray(BODIES[kind])
    for _ in range(draw(st.integers(1, 8), label="edits")):
        at = draw(st.integers(0, len(body)), label="at")
        edit = draw(st.sampled_from(["flip", "cut", "insert", "junk", "truncate"]), label="edit")
        if edit == "flip" and at < len(body):
            body[at] = draw(st.integers(0, 255), label="byte")
        elif edit == "cut":
            del body[at : at + draw(st.integers(1, 400), label="length")]
        elif edit == "insert":
            body[at:at] = draw(st.binary(max_size=20), label="bytes")
        elif edit == "junk":
            body[at:at] = draw(st.sampled_from(JUNK), label="junk")
        else:
            del body[at:]
    return bytes(body)


KINDS = ["rss", "html", "page", "json"]


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_mutated_real_documents_extract_or_fail_cleanly(kind, data):
    must_extract_or_fail_cleanly(kind, data.draw(mutated(kind), label="body"))


@pytest.mark.parametrize("kind", KINDS)
@given(body=st.binary(max_size=2000))
def test_random_bytes_extract_or_fail_cleanly(kind, body):
    must_extract_or_fail_cleanly(kind, body)


# Around the limits: libxml2's default depth of 256, Python's recursion limit of 1000 (json).
NESTED = st.builds(
    lambda depth, opener, closer: opener * depth + closer * depth,
    st.sampled_from([0, 1, 255, 257, 999, 1001, 5000, 20_000]),
    st.sampled_from([b"[", b"{\"a\":", b"<div>", b"<item>"]), st.sampled_from([b"]", b"}", b"</div>", b""]),
)  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=30)
@given(body=NESTED)
def test_deeply_nested_documents_extract_or_fail_cleanly(kind, body):
    must_extract_or_fail_cleanly(kind, body)


FOUND_BY_FUZZING = [
    ("rss", BODIES["rss"].replace(b'encoding="UTF-8"', b'encoding="\x00TF-8"')),  # ValueError in feedparser
    ("json", b"[" * 5000 + b"]" * 5000),  # RecursionError in json.loads
]


@pytest.mark.parametrize(("kind", "body"), FOUND_BY_FUZZING, ids=["nul-in-xml-encoding", "json-nested-5000"])
def test_what_fuzzing_found(kind, body):
    if kind == "rss":  # the declaration is no longer feedparser's to read (monitor.charset decodes the feed)
        assert extract(SOURCES[kind], page(kind, body)).items
        return
    with pytest.raises(ExtractError):
        extract(SOURCES[kind], page(kind, body))


@given(
    body=st.binary(max_size=3000),
    label=st.sampled_from(["", "utf-8", "big5", "gb2312", "x-unknown", "utf-16"]),
)
def test_decoding_never_raises(body, label):
    text, encoding = decode(body, label)
    assert isinstance(text, str) and encoding

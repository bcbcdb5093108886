"""Change -> the topics it is about and the exact terms that matched. English and Chinese."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from monitor.models import Change, Topic
from monitor.normalize import CJK, INVISIBLE

HYPHENS = re.compile(r"[\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d]")  # e‑HKD, e–HKD
# Simplified forms of the characters in our Chinese terms, so a simplified text still matches.
SIMPLIFIED = str.maketrans(
    "稳币数码虚拟资产发监证会货实体汇现钞银钱场设备结构筹续约权杠区块链",
    "穩幣數碼虛擬資產發監證會貨實體匯現鈔銀錢場設備結構籌續約權槓區塊鏈",
)


def fold(text: str) -> str:
    """One form for matching: width-folded (NFKC), case-folded, one hyphen, one space, traditional."""
    text = unicodedata.normalize("NFKC", INVISIBLE.sub("", text)).casefold()
    text = HYPHENS.sub("-", text).translate(SIMPLIFIED)
    return " ".join(text.split())


def term_pattern(term: str) -> re.Pattern[str]:
    """English: whole words, plural allowed, space/hyphen optional between words ('e-HKD' = 'eHKD').
    Chinese has no word boundaries: a plain substring, white space inside it optional."""
    folded = fold(term)
    if CJK.search(folded):
        return re.compile(r"\s*".join(re.escape(ch) for ch in folded.replace(" ", "")))
    words = [re.escape(word) for word in re.split(r"[\s\-]+", folded) if word]
    if words[-1].endswith("y") and len(words[-1]) > 2:  # currency -> currencies
        words[-1] = words[-1][:-1] + "(?:y|ies)"
    elif folded[-1:].isalpha():
        words[-1] += "(?:s|es)?"
    # A boundary only beside a letter or digit: "Securities and Futures (" must match "(Amendment)".
    start = r"(?<![a-z0-9])" if folded[:1].isalnum() else ""
    end = r"(?![a-z0-9])" if folded[-1:].isalnum() else ""
    return re.compile(start + r"[\s\-]*".join(words) + end)


@dataclass(frozen=True)
class CompiledTopic:
    topic: Topic
    terms: tuple[tuple[str, re.Pattern[str]], ...]
    requires: tuple[tuple[str, re.Pattern[str]], ...]
    exclude: tuple[tuple[str, re.Pattern[str]], ...]


def compile_topics(topics: Mapping[str, Topic]) -> dict[str, CompiledTopic]:
    def patterns(terms: Iterable[str]) -> tuple[tuple[str, re.Pattern[str]], ...]:
        return tuple((term, term_pattern(term)) for term in terms)

    return {
        name: CompiledTopic(topic, patterns(topic.terms), patterns(topic.requires), patterns(topic.exclude))
        for name, topic in topics.items()
    }


NEAR = 200  # characters: a co-term further than this from the term is about something else


def match_topics(
    text: str, topics: Mapping[str, CompiledTopic], names: Iterable[str], min_mentions: int = 1
) -> dict[str, tuple[str, ...]]:
    """{topic: matched terms} for the topics among `names` that `text` is about.

    `exclude` phrases are masked before matching, so "Securities and Futures Commission" is not
    "futures", yet "OTC derivatives regime and virtual asset derivatives" still is about VA
    derivatives. A `requires` co-term must appear within NEAR characters of a term: in a release's
    body, "options" in one paragraph and "virtual asset" five paragraphs later are not a topic.
    """
    folded = fold(text)
    found: dict[str, tuple[str, ...]] = {}
    for name in names:
        compiled = topics[name]
        masked = _mask(folded, compiled.exclude)
        terms = _found(masked, compiled.terms)
        if not terms or _mentions(masked, compiled.terms) < min_mentions:
            continue
        if compiled.requires:
            co_terms = _near(masked, compiled.terms, compiled.requires)
            if not co_terms:
                continue
            terms += tuple(t for t in co_terms if t not in terms)
        found[name] = terms
    return found


BODY_MIN_MENTIONS = 2  # a release about a topic names it more than once; a speech in passing, once


def classify(change: Change, topics: Mapping[str, CompiledTopic], names: Iterable[str]) -> Change:
    """The change with its topics and matched terms: on its title, description and changed lines,
    and on its fetched body (detail page and PDFs), where a topic must be named at least twice."""
    names = tuple(names)
    text = "\n".join([change.title, change.text, *change.added, *change.removed])
    matches = match_topics(text, topics, names)
    if change.body:
        for name, terms in match_topics(change.body, topics, names, BODY_MIN_MENTIONS).items():
            matches[name] = tuple(dict.fromkeys((*matches.get(name, ()), *terms)))
    ordered = {name: matches[name] for name in names if name in matches}
    return replace(change, topics=tuple(ordered), matches=ordered)


def _mentions(text: str, patterns: tuple[tuple[str, re.Pattern[str]], ...]) -> int:
    """Places the topic is named: overlapping matches are one ("stablecoin issuer" also holds "stablecoin")."""
    spans = sorted(m.span() for _, pattern in patterns for m in pattern.finditer(text))
    count, reach = 0, -1
    for start, end in spans:
        if start >= reach:
            count += 1
        reach = max(reach, end)
    return count


def _mask(text: str, patterns: tuple[tuple[str, re.Pattern[str]], ...]) -> str:
    for _, pattern in patterns:
        text = pattern.sub(lambda m: " " * len(m[0]), text)  # same length: positions stay true
    return text


def _near(
    text: str,
    terms: tuple[tuple[str, re.Pattern[str]], ...],
    requires: tuple[tuple[str, re.Pattern[str]], ...],
) -> tuple[str, ...]:
    """The co-terms that appear within NEAR characters of some term."""
    spots = [m.start() for _, pattern in terms for m in pattern.finditer(text)]
    return tuple(
        term
        for term, pattern in requires
        if any(abs(m.start() - spot) <= NEAR for m in pattern.finditer(text) for spot in spots)
    )


def _found(text: str, patterns: tuple[tuple[str, re.Pattern[str]], ...]) -> tuple[str, ...]:
    return tuple(term for term, pattern in patterns if pattern.search(text))

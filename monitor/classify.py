"""Change -> the topics it is about and the exact terms that matched. English and Chinese."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from monitor.models import Change, Topic
from monitor.normalize import INVISIBLE

HYPHENS = re.compile(r"[\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d]")  # e‑HKD, e–HKD
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# Simplified forms of the characters in our Chinese terms, so a simplified text still matches.
SIMPLIFIED = str.maketrans(
    "稳币数码虚拟资产发监证会货实体汇现钞银钱场设备结构筹",
    "穩幣數碼虛擬資產發監證會貨實體匯現鈔銀錢場設備結構籌",
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
    return re.compile(r"(?<![a-z0-9])" + r"[\s\-]*".join(words) + r"(?![a-z0-9])")


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


def match_topics(
    text: str, topics: Mapping[str, CompiledTopic], names: Iterable[str]
) -> dict[str, tuple[str, ...]]:
    """{topic: matched terms} for the topics among `names` that `text` is about."""
    folded = fold(text)
    found: dict[str, tuple[str, ...]] = {}
    for name in names:
        compiled = topics[name]
        terms = _found(folded, compiled.terms)
        if not terms or _found(folded, compiled.exclude):
            continue
        if compiled.requires:
            co_terms = _found(folded, compiled.requires)
            if not co_terms:
                continue
            terms += tuple(t for t in co_terms if t not in terms)
        found[name] = terms
    return found


def classify(change: Change, topics: Mapping[str, CompiledTopic], names: Iterable[str]) -> Change:
    text = "\n".join([change.title, change.text, *change.added, *change.removed])
    matches = match_topics(text, topics, names)
    return replace(change, topics=tuple(matches), matches=matches)


def _found(text: str, patterns: tuple[tuple[str, re.Pattern[str]], ...]) -> tuple[str, ...]:
    return tuple(term for term, pattern in patterns if pattern.search(text))

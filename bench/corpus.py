"""A deterministic corpus of regulator-like listing pages for the performance benchmark.

Page `i` of round `r` is a function of (seed, i, r) only: ~100 KB of HTML shaped like a press-release
listing (head with CSS and scripts, a bilingual navigation menu, a search form, 50 items with date,
title and link, some of them in Traditional Chinese, a footer). Round 0 is the base; in each later
round 10% of the pages gain one item at the top. Every response also carries noise a real site
sends: a "generated at" timestamp and a random CSRF token, filled in per request by `render`.

The items sit in `ul.press-list > li.press-item` (title in `a.title`, date in `span.date`); the noise
sits outside that list, as it does on the SFC and HKMA sites.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache

ITEMS = 50
CHANGED_SHARE = 0.10
HOSTS = 20
TIMESTAMP, TOKEN = "\x00TS\x00", "\x00TOKEN\x00"  # placeholders for the per-request noise
LIST_CSS = "ul.press-list"
ITEM_CSS, TITLE_CSS, LINK_CSS, DATE_CSS = "ul.press-list li.press-item", "a.title", "a.title", "span.date"

# Titles: on-topic ones match the shipped topics (stablecoin, derivatives, e-hkd, virtual-assets);
# off-topic ones match none of them. `{n}` makes each title distinct.
ON_TOPIC = (
    "SFC consults on custody requirements for stablecoin issuers ({n})",
    "HKMA announces the next phase of the e-HKD pilot ({n})",
    "Circular to virtual asset trading platforms on client asset protection ({n})",
    "SFC grants licence to a virtual asset trading platform operator ({n})",
    "HKMA publishes guidance on tokenised deposits ({n})",
    "金管局公布穩定幣發行人牌照申請安排（{n}）",
    "證監會就虛擬資產交易平台發出通函（{n}）",
)
OFF_TOPIC = (
    "Exchange Fund Bills tender results ({n})",
    "SFC reprimands and fines a broker for internal control failures ({n})",
    "HKMA announces the appointment of a Senior Executive Director ({n})",
    "Court sentences a former account executive for insider dealing ({n})",
    "SFC publishes its quarterly report for the quarter ended June ({n})",
    "Consultation conclusions on the review of the listing regime for small companies ({n})",
    "金管局公布外匯基金數據（{n}）",
    "證監會檢控一名人士無牌進行受規管活動（{n}）",
    "財經事務及庫務局局長出席立法會會議（{n}）",
)


@dataclass(frozen=True)
class Item:
    date: str  # ISO
    title: str
    link: str
    on_topic: bool


@dataclass(frozen=True)
class Corpus:
    n: int
    seed: int = 8

    def host(self, i: int) -> str:
        """Pages are spread over 127.0.0.1 .. 127.0.0.20, so per-host limits apply as in real life."""
        return f"127.0.0.{i % HOSTS + 1}"

    def path(self, i: int) -> str:
        return f"/listing/{i}.html"

    def source_id(self, i: int) -> str:
        return f"listing-{i:05d}"

    @cached_property
    def _boilerplate(self) -> tuple[str, str, str]:
        """Head, navigation and footer, shared by every page of the site (as on a real site)."""
        rng = random.Random(f"{self.seed}:boilerplate")
        return _head(rng), _navigation(rng), _footer(rng)

    def changed_in(self, round_: int) -> frozenset[int]:
        """The pages that gain one item in round `round_` (none in round 0): 10% of them."""
        if round_ <= 0:
            return frozenset()
        rng = random.Random(f"{self.seed}:changed:{round_}")
        return frozenset(rng.sample(range(self.n), max(1, round(self.n * CHANGED_SHARE))))

    def items(self, i: int, round_: int) -> list[Item]:
        """The page's items, newest first: the 50 base items and one per round that changed it."""
        rng = random.Random(f"{self.seed}:items:{i}")
        day = date(2026, 7, 31)
        base = []
        for serial in range(ITEMS):
            base.append(self._item(rng, i, f"b{serial}", day))
            day -= timedelta(days=rng.choice((0, 1, 1, 2, 3)))
        added = [
            self._item(random.Random(f"{self.seed}:added:{i}:{r}"), i, f"r{r}", date(2026, 8, r))
            for r in range(1, round_ + 1)
            if i in self.changed_in(r)
        ]
        return added[::-1] + base

    def _item(self, rng: random.Random, i: int, serial: str, day: date) -> Item:
        on_topic = rng.random() < 0.5
        title = rng.choice(ON_TOPIC if on_topic else OFF_TOPIC).format(n=f"{i}-{serial}")
        return Item(day.isoformat(), title, f"/en/news/{i}/{serial}.html", on_topic)

    def template(self, i: int, round_: int) -> str:
        """The page with placeholders for the per-request noise (see `render`)."""
        return _template(self, i, round_)

    def etag(self, i: int, round_: int) -> str:
        """A validator of the page's content (the noise aside), for the --validators switch."""
        latest = max((r for r in range(1, round_ + 1) if i in self.changed_in(r)), default=0)
        return '"' + hashlib.sha1(f"{self.seed}:{i}:{latest}".encode()).hexdigest()[:20] + '"'

    def expected_alerts(self, round_: int) -> set[tuple[str, str]]:
        """(source id, title) of every alert round `round_` should raise: its on-topic new items."""
        return {
            (self.source_id(i), item.title)
            for i in self.changed_in(round_)
            for item in self.items(i, round_)[:1]
            if item.on_topic
        }

    def expected_changes(self, round_: int) -> int:
        """New items in round `round_` (alerted or not): one per changed page."""
        return len(self.changed_in(round_))


@lru_cache(maxsize=8192)
def _template(corpus: Corpus, i: int, round_: int) -> str:
    head, nav, footer = corpus._boilerplate
    listing = "\n".join(
        f'<li class="press-item"><span class="date">{_display_date(item.date, j)}</span>'
        f'<a class="title" href="{item.link}">{item.title}</a>'
        f'<span class="meta">Press release · {corpus.source_id(i)}</span></li>'
        for j, item in enumerate(corpus.items(i, round_))
    )
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><title>Press releases {corpus.source_id(i)} - Regulator</title>"
        f'<meta name="csrf-token" content="{TOKEN}">{head}</head>\n<body>{nav}'
        f'<form class="search" action="/search"><input type="hidden" name="_csrf" value="{TOKEN}">'
        f'<input name="q"></form>\n<main id="content"><h1>Press releases</h1>\n'
        f'<ul class="press-list">\n{listing}\n</ul></main>\n'
        f'{footer}<p class="generated">Page generated at {TIMESTAMP}</p>'
        f'<script>window.__RENDERED_AT = "{TIMESTAMP}";</script></body></html>\n'
    )


def render(template: str) -> bytes:
    """The page as served: a fresh timestamp and CSRF token in every response."""
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    token = secrets.token_hex(16)
    return template.replace(TIMESTAMP, now).replace(TOKEN, token).encode("utf-8")


def _display_date(iso: str, j: int) -> str:
    """Listings mix date forms: '30 Jul 2026' and '2026年7月30日'."""
    day = date.fromisoformat(iso)
    return f"{day.year}年{day.month}月{day.day}日" if j % 7 == 3 else day.strftime("%d %b %Y")


def _words(rng: random.Random, count: int) -> str:
    vocabulary = [
        "regulator",
        "market",
        "investor",
        "licensed",
        "intermediary",
        "circular",
        "guideline",
        "consultation",
        "policy",
        "enforcement",
        "disclosure",
        "statistics",
        "research",
        "publication",
        "speech",
        "annual",
        "report",
        "careers",
        "監管",
        "市場",
        "投資者",
        "持牌",
        "中介人",
        "通函",
        "指引",
        "諮詢",
        "政策",
        "執法",
        "統計",
        "研究",
        "刊物",
        "演辭",
        "年報",
    ]
    return " ".join(rng.choice(vocabulary) for _ in range(count))


def _head(rng: random.Random) -> str:
    rules = "\n".join(
        f".c{k} {{ margin: {rng.randint(0, 40)}px; padding: {rng.randint(0, 20)}px; "
        f"color: #{rng.randrange(16**6):06x}; font-size: {rng.randint(10, 24)}px; }}"
        for k in range(420)
    )
    config = ",".join(f'"k{k}":"{_words(rng, 3)}"' for k in range(300))
    return (
        f"<style>{rules}</style><script>window.SITE_CONFIG = {{{config}}};</script>"
        "<script>function track(e){ /* analytics */ return e; }</script>"
    )


def _navigation(rng: random.Random) -> str:
    links = "".join(
        f'<li class="c{rng.randrange(420)}"><a href="/en/section/{k}">{_words(rng, 3)}</a>'
        f'<a href="/tc/section/{k}" lang="zh-HK">{_words(rng, 2)}</a></li>'
        for k in range(260)
    )
    return f'<header><nav class="menu"><ul>{links}</ul></nav></header>'


def _footer(rng: random.Random) -> str:
    links = "".join(f'<a href="/en/footer/{k}">{_words(rng, 2)}</a> ' for k in range(160))
    text = "".join(f"<p>{_words(rng, 30)}</p>" for _ in range(12))
    return f'<footer class="site-footer">{links}{text}<p>© Regulator. 版權所有。</p></footer>'

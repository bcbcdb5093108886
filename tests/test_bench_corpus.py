"""The benchmark's corpus (bench/corpus.py) is deterministic: a quick check, not a benchmark."""

from __future__ import annotations

import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from corpus import TIMESTAMP, TOKEN, Corpus, render


def test_the_same_seed_gives_the_same_pages_and_another_seed_does_not():
    first, again, other = Corpus(50, seed=8), Corpus(50, seed=8), Corpus(50, seed=9)
    for i in (0, 7, 49):
        assert first.template(i, 1) == again.template(i, 1)
        assert first.template(i, 0) != other.template(i, 0)
    assert first.changed_in(1) == again.changed_in(1) != other.changed_in(1)
    assert first.expected_alerts(1) == again.expected_alerts(1)


def test_a_page_looks_like_a_regulator_listing_and_a_tenth_gain_one_item():
    corpus = Corpus(200)
    page = corpus.template(3, 0)
    assert 80_000 < len(page.encode("utf-8")) < 120_000
    assert page.count('<li class="press-item">') == 50
    assert "金管局" in page or "證監會" in page
    assert len(corpus.changed_in(1)) == 20 and not corpus.changed_in(0)
    changed = next(iter(corpus.changed_in(1)))
    assert corpus.template(changed, 1).count('<li class="press-item">') == 51
    unchanged = next(i for i in range(200) if i not in corpus.changed_in(1))
    assert corpus.template(unchanged, 1) == corpus.template(unchanged, 0)


def test_every_response_carries_fresh_noise():
    template = Corpus(10).template(0, 0)
    assert TIMESTAMP in template and TOKEN in template
    assert render(template) != render(template)

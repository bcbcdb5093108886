"""Topic classification with the shipped topics, on real SFC, HKMA and Government titles."""

from __future__ import annotations

import pytest

from monitor.classify import classify, compile_topics, match_topics
from monitor.config import load_config
from monitor.extract import wanted
from monitor.models import Change, Topic
from tests.conftest import ROOT

CONFIG = load_config(ROOT / "sources.toml")
TOPICS = compile_topics(CONFIG.topics)
FOCUS = ("stablecoin", "derivatives", "e-hkd")


def topics_of(title: str) -> set[str]:
    return set(match_topics(title, TOPICS, FOCUS))


def all_topics_of(title: str) -> set[str]:
    return set(match_topics(title, TOPICS, TOPICS))


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        # Real titles from ../shared/fixtures/real (development set, before 2026-03-01) and the issue's examples.
        ("Implementation of regulatory regime for stablecoin issuers", {"stablecoin"}),
        ("HKMA completes e-HKD Pilot Programme Phase 2", {"e-hkd"}),
        ("HKMA announces the new phase of Project Ensemble to foster tokenisation", {"e-hkd"}),
        (
            "Circular on provision of Relevant Stablecoin service by virtual asset trading platforms",
            {"stablecoin"},
        ),
        ("SFC consults on framework for virtual asset derivatives trading", {"derivatives"}),
        (
            "Circular to licensed VATP operators on offering perpetual contracts to professional investors",
            {"derivatives"},
        ),
        ("證監會就虛擬資產衍生工具交易發出通函", {"derivatives"}),
        ("金管局公布《穩定幣條例》下的首批持牌人", {"stablecoin"}),
        ("金管局宣布數碼港元先導計劃第二階段", {"e-hkd"}),
        ("HKMA launches eHKD pilot phase", {"e-hkd"}),
        ("HKMA launches e\u2011HKD pilot phase", {"e-hkd"}),  # non-breaking hyphen
        ("金管局就稳定币发行人发牌", {"stablecoin"}),  # simplified characters
        ("港交所推出比特币永续合约及期权", {"derivatives"}),  # simplified: 永續合約, 期權
        ("HKMA research on central bank digital currencies", {"e-hkd"}),  # -y -> -ies plural
        ("Perpetual futures on cryptocurrencies: SFC consults", {"derivatives"}),
        ("證監會就虛擬資產衍生品交易發出通函", {"derivatives"}),
        (
            "SFC allows licensed platforms to offer crypto perpetuals to professional investors",
            {"derivatives"},
        ),
        ("以太幣期貨ETF獲證監會認可", {"derivatives"}),
        ("SFC issues guidance on margin financing for virtual asset trading", {"derivatives"}),
    ],
)
def test_on_topic_titles(title, expected):
    assert topics_of(title) == expected


@pytest.mark.parametrize(
    "title",
    [
        "Over-the-counter Derivatives Regulatory Regime: Consultation Conclusions on Revised Clearing Rules",
        "SFC and HKEX jointly announce enhancements to the exchange-traded derivatives market",
        "Derivatives After-Hours Trading: extension to more index futures",
        "BIS Triennial Survey of Foreign Exchange and OTC Derivatives Markets",
        "Exchange Fund Abridged Balance Sheet and Currency Board Account",
        "Stable funding requirements for authorized institutions",
        "LCQ5: Promoting the development of the Northern Metropolis",
        "天文台發出寒冷天氣警告",
        # The law, the Commission and the Tribunal are not "futures".
        "Securities and Futures (Amendment) Ordinance 2026 gazetted: virtual asset dealers",
        "Securities and Futures Appeals Tribunal affirms SFC ban on former virtual asset platform manager",
        "SFC consults on policy options for virtual asset staking",
    ],
)
def test_off_topic_titles(title):
    assert topics_of(title) == set()


def test_matched_terms_are_recorded():
    found = match_topics("SFC circular on virtual asset derivatives and stablecoins", TOPICS, FOCUS)
    assert found["stablecoin"] == ("stablecoin",)
    assert "virtual asset derivative" in found["derivatives"] and "virtual asset" in found["derivatives"]


def test_a_source_only_gets_its_own_topics():
    assert set(match_topics("e-HKD and stablecoin update", TOPICS, ["e-hkd"])) == {"e-hkd"}


def test_a_body_is_matched_on_terms_near_each_other_with_excluded_phrases_masked():
    sfc_body = (
        "The Securities and Futures Commission (SFC) today reprimanded and fined a licensed "
        "corporation for failures in its anti-money laundering controls. "
        + "The SFC found that the firm did not monitor client accounts adequately. " * 5
        + "The firm also distributed virtual asset funds to professional investors."
    )
    assert "derivatives" not in topics_of(sfc_body)  # "Futures" there is part of a name
    far = "Investors have several options. " + "Nothing else of note here. " * 10 + "virtual asset"
    assert "derivatives" not in topics_of(far)
    near = "The SFC allows options and futures on virtual assets for professional investors."
    assert "derivatives" in topics_of(near)
    both = "The OTC derivatives regulatory regime, and separately virtual asset derivatives."
    assert "derivatives" in topics_of(both)  # the excluded phrase is masked, not a veto
    assert "derivatives" not in topics_of("Consultation on the OTC derivatives regulatory regime for crypto")


def test_a_body_naming_a_topic_once_in_passing_is_not_about_it():
    """The Financial Secretary at Davos (a real release of 2026-01-22) mentions blockchain once."""
    speech = (
        "The Financial Secretary, Mr Paul Chan, continued his visit to Davos today. "
        "He highlighted that breakthroughs in technologies such as artificial intelligence and "
        "blockchain are driving profound industrial transformation and economic growth."
    )
    title = "FS promotes Hong Kong's advantages to global leaders in Switzerland (with photos/video)"
    assert classify(Change("gov-press-en", "new", title, body=speech), TOPICS, TOPICS).topics == ()
    release = "The HKMA granted stablecoin issuer licences today. " + "Each licensed stablecoin issuer ..."
    found = classify(Change("hkma-press-en", "new", "Granting of licences", body=release), TOPICS, TOPICS)
    assert "stablecoin" in found.topics


def test_virtual_assets_named_by_the_coin():
    assert all_topics_of("SFC authorises spot bitcoin and ether ETFs") == {"virtual-assets"}
    assert all_topics_of("證監會認可以太坊現貨ETF") == {"virtual-assets"}
    assert all_topics_of("香港期貨交易所推出比特幣期貨") == {"derivatives", "virtual-assets"}
    assert all_topics_of("LCQ3: whether government offices will upgrade their ethernet") == set()


def test_crypto_perpetuals_but_not_a_banks_perpetual_securities():
    assert topics_of("Crypto perpetuals: SFC sets leverage limits") == {"derivatives"}
    assert topics_of("Bank issues perpetual capital securities to fund digital asset custody") == set()


def test_chinese_terms_are_not_read_inside_other_words():
    # 短期貨幣 (short-term money), 長期權益 (long-term equity) and 槓桿比率 (the Basel leverage
    # ratio) hold 期貨, 期權 and 槓桿; 數碼港元宇宙 is Cyberport's metaverse, not 數碼港元 (e-HKD).
    assert topics_of("金管局公布短期貨幣市場及數字資產發展報告") == set()
    assert topics_of("保險業監管局就長期權益投資及加密資產風險承擔發出指引") == set()
    assert topics_of("金管局就認可機構加密資產風險承擔的槓桿比率計算發出通函") == set()
    assert topics_of("數碼港元宇宙峰會2026開幕") == set()
    # The real ones still are.
    assert topics_of("金管局公布短期貨幣市場報告；證監會批准比特幣期貨") == {"derivatives"}
    assert topics_of("證監會准許向專業投資者提供虛擬資產期權") == {"derivatives"}
    assert "數碼港元" in match_topics("數碼港元宇宙峰會上，金管局介紹數碼港元", TOPICS, FOCUS)["e-hkd"]


def test_the_government_chinese_feed_does_not_keep_cyberports_metaverse_summit():
    source = next(s for s in CONFIG.sources if s.id == "gov-press-zh")
    assert not wanted(source, "數碼港元宇宙峰會2026開幕")
    assert wanted(source, "金管局宣布數碼港元先導計劃第二階段")


def test_an_exclusion_ending_in_punctuation_masks_the_words_after_it():
    law = compile_topics(
        {"derivatives": Topic("derivatives", ("futures",), exclude=("Securities and Futures (",))}
    )
    title = "Securities and Futures (Amendment) Ordinance 2026 gazetted"
    assert match_topics(title, law, ["derivatives"]) == {}


@pytest.mark.parametrize(
    "passing",
    ["a licensed stablecoin issuer", "the Stablecoins Ordinance", "持牌穩定幣發行人", "Project e-HKD"],
)
def test_a_body_naming_a_topic_once_in_overlapping_terms_is_not_about_it(passing):
    """ "stablecoin issuer" is one mention, not two (stablecoin + stablecoin issuer)."""
    body = (
        "The Financial Secretary spoke on Hong Kong's role as an international financial centre. "
        + "He met business leaders and discussed trade, investment and talent. " * 5
        + f"He also mentioned {passing} in passing."
    )
    change = Change("gov-press-en", "new", "FS meets business leaders", body=body)
    assert classify(change, TOPICS, FOCUS).topics == ()

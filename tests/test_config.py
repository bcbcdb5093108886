"""sources.toml: the shipped file is valid; a bad one is refused with file, source id, key and reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.config import load_config, parse_interval
from monitor.errors import ConfigError
from monitor.models import Window
from tests.conftest import ROOT, TOPICS, run_cli

GOOD_SOURCE = """
[[sources]]
id = "sfc-press-en"
regulator = "SFC"
kind = "rss"
url = "https://www.sfc.hk/en/RSS-Feeds/Press-releases"
"""


def test_shipped_sources_toml_is_valid_and_covers_the_regulators():
    config = load_config(ROOT / "sources.toml")
    ids = {s.id for s in config.sources}
    assert {"sfc-press-en", "sfc-circulars-en", "sfc-consultations-en"} <= ids
    assert {"hkma-press-en", "hkma-circulars-en", "hkma-guidelines-en", "hkma-consultations-en"} <= ids
    assert {"gov-press-en", "hkma-stablecoin-register"} <= ids
    assert {"stablecoin", "derivatives", "e-hkd"} <= set(config.topics)
    assert all(s.url.startswith("https://") for s in config.sources)


def test_validate_command_accepts_the_shipped_file():
    result = run_cli("validate")
    assert result.returncode == 0, result.stderr
    assert "sources.toml: 25 sources, 4 topics: OK" in result.stdout


def test_validate_warns_of_a_source_polled_more_often_than_a_regulator_would_accept(tmp_path):
    path = tmp_path / "sources.toml"
    path.write_text(
        "[settings]\nretries = 0\n"  # the run below fails at once: no network here
        + TOPICS
        + '[[sources]]\nid = "sfc-fast"\nregulator = "SFC"\nkind = "rss"\n'
        + 'url = "https://www.sfc.hk/en/RSS-Feeds/Press-releases"\ninterval = "10s"\n'
        + '[[sources]]\nid = "test-site"\nregulator = "SFC"\nkind = "rss"\n'
        + 'url = "http://127.0.0.1:8000/rss.xml"\ninterval = "1s"\n'  # one's own machine: as often as wanted
        + '[[sources]]\nid = "test-site-short"\nregulator = "SFC"\nkind = "rss"\n'
        + 'url = "http://127.1:8000/rss.xml"\ninterval = "1s"\n'  # 127.0.0.1 as resolvers read it
        + '[[sources]]\nid = "test-site-dot"\nregulator = "SFC"\nkind = "rss"\n'
        + 'url = "http://localhost.:8000/rss.xml"\ninterval = "1s"\n',
        encoding="utf-8",
    )
    result = run_cli("--config", str(path), "validate")
    assert result.returncode == 0 and "4 sources, 4 topics: OK" in result.stdout
    assert result.stderr == (
        f"warning: {path}: source 'sfc-fast' polls www.sfc.hk every 10s: a regulator may block a "
        "client that polls this often (60s or more is polite)\n"
    )
    ran = run_cli("--config", str(path), "--db", str(tmp_path / "m.db"), "run", "--once", "--dry-run")
    assert "source 'sfc-fast' polls www.sfc.hk every 10s" in ran.stdout + ran.stderr


def test_demo_topics_are_the_shipped_topics():
    demo = (ROOT / "monitor" / "demo" / "sources.toml").read_text(encoding="utf-8")
    assert TOPICS.strip() in demo


BAD_CONFIGS = [
    pytest.param(
        '\n[topic.x]\nterms = ["y"]',
        "topic: unknown table (expected [settings], [topics.NAME], [[sources]], [telegram]) (line 2)",
        id="unknown-table",
    ),
    pytest.param(
        'interval = "5m"',
        "interval: unknown key outside any table (a setting goes under [settings]) (line 1)",
        id="setting-outside-a-table",
    ),
    pytest.param(
        GOOD_SOURCE.replace('kind = "rss"', 'kind = "rss"\ntitel = "x"'),
        'sfc-press-en: titel: unknown key for kind = "rss" (line 6)',  # the key's own line
        id="unknown-key",
    ),
    pytest.param(
        GOOD_SOURCE + GOOD_SOURCE, "sfc-press-en: id: duplicate source id (line 9)", id="duplicate-id"
    ),
    pytest.param(
        GOOD_SOURCE + 'ignore_params = "sid"',
        "sfc-press-en: ignore_params: must be a list of non-empty strings (line 7)",
        id="ignore-params-not-a-list",
    ),
    pytest.param(
        GOOD_SOURCE.replace('"rss"', '"atom"'),
        "sfc-press-en: kind: must be one of rss, html, page",
        id="kind",
    ),
    pytest.param(
        GOOD_SOURCE + 'topics = ["crypto-art"]',
        "sfc-press-en: topics: unknown topic 'crypto-art' (declare it under [topics])",
        id="unknown-topic",
    ),
    pytest.param(
        GOOD_SOURCE.replace('"rss"', '"html"') + 'items = "div..x"\ntitle = "a"\nlink = "a"',
        "sfc-press-en: items: invalid CSS 'div..x'",
        id="invalid-css",
    ),
    pytest.param(
        GOOD_SOURCE + 'interval = "soon"', "sfc-press-en: interval: 'soon' is not like", id="interval"
    ),
    pytest.param(
        GOOD_SOURCE.replace('id = "sfc-press-en"', 'id = "SFC Press"'),
        "SFC Press: id: 'SFC Press' has other characters than lowercase letters, digits and '-'",
        id="id",
    ),
    # URLs no request can go to: refused here, not mid-round by the HTTP client (a round crashed on one)
    pytest.param(
        GOOD_SOURCE.replace("https://www.sfc.hk", "https://[::1"),
        "sfc-press-en: url: is not a valid URL (Invalid IPv6 URL) (line 6)",
        id="url-ipv6",
    ),
    pytest.param(
        GOOD_SOURCE.replace("https://www.sfc.hk", "http://127.0.0.1:abc"),
        "sfc-press-en: url: is not a valid URL (Port could not be cast to integer value as 'abc')",
        id="url-port",
    ),
    pytest.param(
        GOOD_SOURCE.replace("www.sfc.hk", "www..sfc.hk"),
        "sfc-press-en: url: host name 'www..sfc.hk' is not valid",
        id="url-host",
    ),
    pytest.param(
        GOOD_SOURCE.replace("www.sfc.hk", "www.sfc .hk"),
        "sfc-press-en: url: must not contain white space",
        id="url-space",
    ),
    pytest.param(
        GOOD_SOURCE + '[settings]\ninterval = "15m"\ntimeout = 0',
        "[settings]: timeout: must be more than 0 (seconds per request) (line 9)",  # a table's key: its line
        id="timeout-0",
    ),
    pytest.param(
        GOOD_SOURCE.replace("https://www", "ftp://www"), "sfc-press-en: url: must be an http", id="url"
    ),
    pytest.param(
        GOOD_SOURCE.replace('"rss"', '"html"'),
        "sfc-press-en: items: required (line 2)",
        id="html-needs-items",
    ),
    pytest.param(
        GOOD_SOURCE + "[settings]\ntimeoutt = 3", "[settings]: timeoutt: unknown key", id="settings-key"
    ),
    pytest.param(GOOD_SOURCE + "ignore = ['(']", "unknown key", id="ignore-only-for-pages"),
    pytest.param('[[sources]\nid = "x"', "not valid TOML: ", id="toml-syntax"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_config_is_refused_naming_file_source_and_key(tmp_path, text, message):
    path = tmp_path / "sources.toml"
    path.write_text(text + "\n" + TOPICS, encoding="utf-8")
    result = run_cli("--config", str(path), "validate")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_toml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "sources.toml"
    path.write_text('[settings]\ninterval = "15m"\n[[sources]\n', encoding="utf-8")
    result = run_cli("--config", str(path), "validate")
    assert result.returncode == 2
    assert re.search(r"line 3", result.stderr)


def test_missing_config_file_says_how_to_point_at_one(tmp_path):
    result = run_cli("--config", str(tmp_path / "nope.toml"), "validate")
    assert result.returncode == 2
    assert "file not found (set --config or MONITOR_CONFIG)" in result.stderr


def test_run_refuses_a_bad_config_before_fetching(tmp_path):
    path = tmp_path / "sources.toml"
    path.write_text(TOPICS + GOOD_SOURCE + 'colour = "red"', encoding="utf-8")
    result = run_cli("--config", str(path), "--db", str(tmp_path / "m.db"), "run", "--once")
    assert result.returncode == 2
    assert "sfc-press-en: colour: unknown key" in result.stderr
    assert not (tmp_path / "m.db").exists()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("6h", 21600), ("1d", 86400), (300, 300), ("0m", None), ("fast", None)],
)
def test_intervals(text, seconds):
    assert parse_interval(text) == seconds


def test_every_command_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in (
        "run --once",
        "run --dry-run",
        "check",
        "validate",
        "log",
        "show",
        "review",
        "export",
        "report",
        "prune",
        "bot",
        "demo",
        "health",
    ):
        assert f"policy-monitor {command}" in readme, command


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            GOOD_SOURCE.replace("[[sources]]", "[[sources]]  # SFC press")
            + GOOD_SOURCE.replace("sfc-press-en", "b").replace('kind = "rss"', 'kind = "rss"\ncolour = 1'),
            'b: colour: unknown key for kind = "rss" (line 12)',
            id="commented-header-line",
        ),
        pytest.param(
            GOOD_SOURCE.replace('regulator = "SFC"', "regulator = 5"),
            "regulator: must be a non-empty string",
            id="type",
        ),
        pytest.param(
            GOOD_SOURCE + "include_titles = ['(FSTB']",
            "include_titles: invalid regular expression '(FSTB'",
            id="regex",
        ),
    ],
)
def test_more_bad_configs(tmp_path, text, message):
    path = tmp_path / "sources.toml"
    path.write_text(text + "\n" + TOPICS, encoding="utf-8")
    result = run_cli("--config", str(path), "validate")
    assert result.returncode == 2 and message in result.stderr


def test_a_config_without_topics_is_refused(tmp_path):
    path = tmp_path / "sources.toml"
    path.write_text(GOOD_SOURCE, encoding="utf-8")
    result = run_cli("--config", str(path), "validate")
    assert result.returncode == 2
    assert "topics: no [topics.NAME] declared: nothing could ever alert" in result.stderr


# --- working hours and the long-running schedule -------------------------------------------------

OFFICE_HOURS = 'interval = "15m"\nhours = "08:00-22:00"\ndays = "mon-fri"\noff_hours_interval = "3h"\n'


@pytest.fixture
def write(tmp_path):
    def write(text: str) -> Path:
        path = tmp_path / "sources.toml"
        path.write_text(text + "\n" + TOPICS, encoding="utf-8")
        return path

    return write


def test_working_hours_are_read(write):
    config = load_config(write(GOOD_SOURCE + OFFICE_HOURS))
    (source,) = config.sources
    assert source.window == Window(frozenset(range(5)), 8 * 60, 22 * 60)
    assert (source.interval, source.off_hours_interval) == (900, 3 * 3600)


@pytest.mark.parametrize(
    ("days", "numbers"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("Mon-Wed, Fri", {0, 1, 2, 4}),
        ("fri-mon", {4, 5, 6, 0}),
    ],
)
def test_days(days, numbers, write):
    text = GOOD_SOURCE + OFFICE_HOURS.replace('"mon-fri"', f'"{days}"')
    assert load_config(write(text)).sources[0].window.days == frozenset(numbers)


def test_hours_past_midnight_and_until_midnight(write):
    late = load_config(write(GOOD_SOURCE + OFFICE_HOURS.replace("08:00-22:00", "22:00-02:00")))
    assert (late.sources[0].window.start, late.sources[0].window.end) == (22 * 60, 2 * 60)
    evening = load_config(write(GOOD_SOURCE + OFFICE_HOURS.replace("08:00-22:00", "18:00-00:00")))
    assert evening.sources[0].window.end == 24 * 60


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            OFFICE_HOURS.replace("08:00-22:00", "8-22"),
            "hours: must be like \"08:00-22:00\" (Hong Kong time), not '8-22' (line 8)",
            id="hours-format",
        ),
        pytest.param(OFFICE_HOURS.replace("22:00", "25:00"), "hours: must be like", id="hours-range"),
        pytest.param(
            OFFICE_HOURS.replace("22:00", "08:00"), "hours: start and end are the same time", id="hours-empty"
        ),
        pytest.param(
            OFFICE_HOURS.replace("mon-fri", "weekdays"),
            'days: must be days like "mon-fri" or "mon,wed,fri", not \'weekdays\' (line 9)',
            id="days",
        ),
        pytest.param(
            OFFICE_HOURS.replace('off_hours_interval = "3h"\n', ""),
            "off_hours_interval: required with hours (the interval outside those hours) (line 2)",
            id="off-hours-missing",
        ),
        pytest.param(
            OFFICE_HOURS.replace('"3h"', '"later"'),
            "off_hours_interval: 'later' is not like",
            id="off-hours-bad",
        ),
        pytest.param(
            'off_hours_interval = "3h"\n',
            'off_hours_interval: needs hours = "HH:MM-HH:MM" (the working hours it goes with) (line 7)',
            id="off-hours-alone",
        ),
        pytest.param('days = "sat"\n', "days: needs hours", id="days-alone"),
    ],
)
def test_bad_working_hours_are_refused(text, message, write):
    path = write(GOOD_SOURCE + text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: sfc-press-en: ")
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("jitter = 0.8", "[settings]: jitter: must be at most 0.5 (a fraction of the interval)"),
        ("host_spacing = -1", "[settings]: host_spacing: must be a non-negative number"),
        ("catch_up = '1m'", "[settings]: catch_up: must be a non-negative number"),
        ("processes = -1", "[settings]: processes: must be a non-negative number"),
        ("processes = 'all'", "[settings]: processes: must be a non-negative number"),
    ],
)
def test_bad_schedule_settings_are_refused(settings, message, write):
    path = write(f"[settings]\n{settings}\n" + GOOD_SOURCE)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path)


def test_schedule_settings_are_read(write):
    config = load_config(write("[settings]\njitter = 0.2\nhost_spacing = 5\ncatch_up = 30\n" + GOOD_SOURCE))
    assert (config.settings.jitter, config.settings.host_spacing, config.settings.catch_up) == (
        0.2,
        5.0,
        30.0,
    )

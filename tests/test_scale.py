"""What keeps a round cheap as the source list grows (state loaded late, noise never extracted), and shards."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from dataclasses import replace

import pytest

from monitor import fetch, noise
from monitor.config import load_config
from monitor.extract import html, page
from monitor.fetch import Fetcher
from monitor.localsite import Response
from monitor.shard import select_shard, shard_of
from monitor.store import Store
from tests.conftest import (
    FSTB_LISTING,
    REGISTER,
    ROOT,
    ROUND2,
    SFC_PRESS,
    TEST_SETTINGS,
    TOPICS,
    rss_source,
    run_cli,
)
from tests.test_pipeline import rows
from tests.test_service import schedule


def test_a_source_s_stored_state_is_loaded_only_when_its_turn_comes(monitor, capsys, monkeypatch):
    """Loading every source's state before any fetch holds them all in memory at once; and a
    round whose bodies did not change never loads a snapshot at all."""
    monitor.write(*(rss_source(f"feed-{i}", "/sfc/en/rss/press-releases.xml") for i in range(6)))
    monitor.round(capsys)
    events: list[tuple[str, str]] = []
    fetch, state, previous = Fetcher.fetch, Store.state, Store.previous

    async def recorded_fetch(self, source, last=None):
        page = await fetch(self, source, last)
        events.append(("fetched", source.id))
        return page

    def recorded_state(self, source_id):
        events.append(("state", source_id))
        return state(self, source_id)

    def recorded_previous(self, source_id, state):
        events.append(("snapshot", source_id))
        return previous(self, source_id, state)

    monkeypatch.setattr(Fetcher, "fetch", recorded_fetch)
    monkeypatch.setattr(Store, "state", recorded_state)
    monkeypatch.setattr(Store, "previous", recorded_previous)
    assert monitor.round(capsys)[0] == 0
    loaded_not_fetched = [
        sum(kind == "state" for kind, _ in events[:n]) - sum(kind == "fetched" for kind, _ in events[:n])
        for n in range(len(events) + 1)
    ]
    assert max(loaded_not_fetched) == 2  # per_host: one per request in flight
    assert sorted(events) == sorted(
        [("state", f"feed-{i}") for i in range(6)] + [("fetched", f"feed-{i}") for i in range(6)]
    )


def noisy(site, path: str):
    """The page as served, with a fresh CSRF token in every response (as the FSTB's carries)."""

    def route(handler):
        page = site.serve_file(path)
        fresh = secrets.token_hex(32).encode()
        return Response(200, re.sub(rb'(csrf-token" content=")[0-9a-f]+', rb"\g<1>" + fresh, page.body),
                        {"Content-Type": "text/html"})  # fmt: skip

    return route


def test_a_listing_whose_items_are_unchanged_is_not_extracted_again(monitor, capsys, monkeypatch):
    """Noise outside the listing defeats the raw-body hash; the listing's own markup decides."""
    monitor.site.routes["/noisy.htm"] = noisy(monitor.site, "/fstb/tc/press-releases.htm")
    monitor.write(FSTB_LISTING.replace("/fstb/tc/press-releases.htm", "/noisy.htm"))
    monitor.round(capsys)
    items_built = []
    item = html._item
    monkeypatch.setattr(html, "_item", lambda *args: items_built.append(1) or item(*args))

    code, out, _ = monitor.round(capsys)
    assert (code, out, items_built) == (0, "", [])
    code, out, _ = monitor.round(capsys, ROUND2)  # a new release in the listing
    assert code == 0 and "NEW: 財經事務及庫務局歡迎《穩定幣條例》修訂生效" in out
    assert items_built
    assert rows(monitor.db, "SELECT status FROM fetches ORDER BY id") == [
        ("baseline",), ("unchanged",), ("changed",),
    ]  # fmt: skip


def test_a_changed_selector_extracts_again_though_the_page_is_the_same(monitor, capsys):
    monitor.site.routes["/noisy.htm"] = noisy(monitor.site, "/fstb/tc/press-releases.htm")
    monitor.write(FSTB_LISTING.replace("/fstb/tc/press-releases.htm", "/noisy.htm"))
    monitor.round(capsys)
    monitor.write(
        FSTB_LISTING.replace("/fstb/tc/press-releases.htm", "/noisy.htm").replace('date = "td.date"\n', "")
    )
    monitor.round(capsys)
    # The dates are gone: the new settings were applied to the same bytes (a date gone is no edit).
    assert rows(monitor.db, "SELECT status FROM fetches ORDER BY id") == [("baseline",), ("updated",)]
    assert rows(monitor.db, "SELECT DISTINCT date FROM items") == [("",)]


def test_a_page_whose_region_is_unchanged_is_not_extracted_again(monitor, capsys, monkeypatch):
    monitor.site.routes["/register.html"] = noisy(monitor.site, "/hkma/eng/stablecoin-register.html")
    monitor.write(REGISTER.replace("/hkma/eng/stablecoin-register.html", "/register.html"))
    monitor.round(capsys)
    lines_read = []
    text_lines = page.text_lines
    monkeypatch.setattr(page, "text_lines", lambda region: lines_read.append(1) or text_lines(region))
    monitor.round(capsys)
    assert lines_read == []
    code, out, _ = monitor.round(capsys, ROUND2)
    assert code == 0 and lines_read
    assert "+ Pearl Delta Bank Stablecoin (Hong Kong) Limited | SC0003" in out


def test_the_state_database_syncs_at_checkpoints_not_at_every_commit(tmp_path):
    """One commit per source per round; an fsync each cost ~0.4 ms of wall time per source."""
    store = Store.open(tmp_path / "monitor.db")
    try:
        assert next(iter(store.db.execute("PRAGMA journal_mode")))[0] == "wal"
        assert next(iter(store.db.execute("PRAGMA synchronous")))[0] == 1  # NORMAL
    finally:
        store.close()


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_shards_partition_the_sources_exactly(count):
    config = load_config(ROOT / "sources.toml")
    many = replace(config, sources=tuple(replace(config.sources[0], id=f"src-{i}") for i in range(500)))
    for whole in (config, many):
        ids = [s.id for s in whole.sources]
        owned = [
            [s.id for s in select_shard(whole, i, count).sources]
            for i in range(1, count + 1)
            if any(shard_of(s, count) == i for s in ids)
        ]
        assert sorted(i for shard in owned for i in shard) == sorted(ids)  # every source in exactly one shard
    shares = [sum(1 for s in many.sources if shard_of(s.id, count) == i) for i in range(1, count + 1)]
    assert min(shares) > 500 / count * 0.6  # and the shares are even enough to be worth it


def test_a_shard_is_the_same_on_every_run_and_mostly_stays_when_one_is_added():
    ids = [f"src-{i}" for i in range(1000)]
    assert [shard_of(i, 4) for i in ids] == [shard_of(i, 4) for i in ids]
    moved = sum(1 for i in ids if shard_of(i, 4) != shard_of(i, 5))
    assert moved < 1000 * 0.3  # about 1/5 move to the new shard; none move between the old ones
    assert all(shard_of(i, 5) == 5 for i in ids if shard_of(i, 4) != shard_of(i, 5))


def test_run_with_a_shard_polls_only_the_sources_it_owns(monitor, capsys):
    sources = [rss_source(f"feed-{i}", "/sfc/en/rss/press-releases.xml") for i in range(6)]
    monitor.write(*sources)
    polled = []
    for i in (1, 2):
        monitor.db = monitor.db.with_name(f"shard-{i}.db")  # one database per shard
        assert monitor("run", "--once", "--shard", f"{i}/2", capsys=capsys)[0] == 0
        polled.append({source for (source,) in rows(monitor.db, "SELECT source_id FROM fetches")})
    assert polled[0] | polled[1] == {f"feed-{i}" for i in range(6)}
    assert not polled[0] & polled[1]
    assert polled[0] == {f"feed-{i}" for i in range(6) if shard_of(f"feed-{i}", 2) == 1}


@pytest.mark.parametrize("shard", ["0/2", "3/2", "two", "1/0"])
def test_a_bad_shard_is_a_usage_error(monitor, capsys, shard):
    monitor.write(SFC_PRESS)
    with pytest.raises(SystemExit) as exit_:
        monitor("run", "--once", "--shard", shard, capsys=capsys)
    assert exit_.value.code == 2
    assert "is not a shard i/n" in capsys.readouterr().err


def test_a_shard_that_owns_no_source_says_so(monitor, capsys):
    monitor.write(SFC_PRESS)
    empty = next(i for i in range(1, 5) if shard_of("sfc-press-en", 4) != i)
    code, _, err = monitor("run", "--once", "--shard", f"{empty}/4", capsys=capsys)
    assert code == 2 and f"shard {empty}/4 owns none of the 1 sources" in err


def test_per_request_tokens_do_not_count_as_a_different_body():
    from monitor.noise import stable_digest

    page = (
        '<html><head><META NAME="CSRF-Token" content="{token}"><script nonce="{token}"></script></head>'
        '<body><form><input type="hidden" name="_csrf" value="{token}"></form>'
        "<p>Register of licensed stablecoin issuers: {issuers}</p><p>CSRF notice {notice}</p>"
        '<p class="generated">Page generated at {when}</p>'
        '<script>window.__RENDERED_AT = "{when}";</script></body></html>'
    )

    def digest(token="a1", issuers="SC0001", when="2026-11-25T10:00:00+08:00", config="page", notice="1"):
        markup = page.format(token=token, issuers=issuers, when=when, notice=notice)
        return stable_digest(markup.encode(), config).sha256

    assert digest() == digest(token="ff93", when="2026-11-25 10:15:02")
    assert digest() != digest(issuers="SC0001, SC0002")  # content is never noise
    assert digest() != digest(notice="2")  # nor is text that merely mentions a token
    assert digest() != digest(config="page with another selector")  # a new config reads again
    # A feed or an API answer is digested whole: its item text may well say "generated at".
    feed = "<rss><channel><item><title>Report generated at {when}</title></item></channel></rss>"
    first, later = (feed.format(when=when).encode() for when in ("2026-11-25 10:00", "2026-11-26 10:00"))
    assert stable_digest(first, "rss", markup=False) != stable_digest(later, "rss", markup=False)


def test_a_page_whose_only_change_is_its_csrf_token_is_not_parsed_again(monitor, capsys, monkeypatch):
    monitor.site.routes["/register.html"] = noisy(monitor.site, "/hkma/eng/stablecoin-register.html")
    monitor.write(REGISTER.replace("/hkma/eng/stablecoin-register.html", "/register.html"))
    monitor.round(capsys)
    parsed, scanned, decoded = [], [], []
    parse_page, scan, decode = page.parse_page, noise._noise_spans, fetch.decode
    monkeypatch.setattr(page, "parse_page", lambda *args: parsed.append(1) or parse_page(*args))
    monkeypatch.setattr(noise, "_noise_spans", lambda lowered: scanned.append(len(lowered)) or scan(lowered))
    monkeypatch.setattr(fetch, "decode", lambda *args: decoded.append(1) or decode(*args))
    assert monitor.round(capsys)[:2] == (0, "")
    assert parsed == decoded == []  # not even decoded: the raw bytes, less the token, are the last ones
    # nor scanned whole: the new token is where the last was (checked with its surroundings)
    assert scanned and max(scanned) < 2 * noise.MARGIN + 200
    code, out, _ = monitor.round(capsys, ROUND2)
    assert code == 0 and parsed and "+ Pearl Delta Bank Stablecoin (Hong Kong) Limited | SC0003" in out


def test_a_big_round_is_split_by_site_with_a_child_process_and_alerts_the_same(monitor, capsys, monkeypatch):
    from monitor import cores
    from tests.test_pipeline import ALL

    monkeypatch.setattr(cores, "SPLIT_MIN_SOURCES", 0)  # as if every round had hundreds of new sources
    monkeypatch.setattr(cores, "CHILD_START", 0)
    monkeypatch.setattr(cores, "usable_cores", lambda: 2)
    # The local site is one host: here its top folders stand for the regulators' sites.
    monkeypatch.setattr(cores, "site_of", lambda url: url.split("/")[3])
    monitor.write(*ALL)
    code, out, err = monitor.round(capsys)
    assert (code, out) == (0, "")
    assert "round of 6 sources: 3 of them polled by 1 child process on other cores" in err
    assert all(f"{source}: baseline" in err for source in ("sfc-press-en", "fstb-press-tc", "hkma-press-en"))
    code, out, err = monitor.round(capsys, ROUND2)
    assert code == 0 and "polled by 1 child process" in err
    assert "NEW: HKMA announces next phase of Project e-HKD+ and tokenised deposit pilots" in out
    assert "NEW: Circular to licensed virtual asset trading platform operators on offering virtual" in out
    assert "+ Pearl Delta Bank Stablecoin (Hong Kong) Limited | SC0003" in out
    assert len([line for line in out.splitlines() if line.startswith("== ")]) == 5  # as in one process
    logged = rows(monitor.db, "SELECT source_id, kind, topics FROM changes ORDER BY source_id, id")
    assert ("sfc-circulars-en", "new", "[]") in logged and not any(k == "removed" for _, k, _ in logged)
    # an operator who would rather spend memory than time keeps a round in one process
    schedule(monitor, "processes = 1")
    code, out, err = monitor.round(capsys, ROUND2)
    assert code == 0 and "child process" not in err and "round: 6 of 6 sources polled, 0 failed" in err
    monitor.config.write_text(monitor.config.read_text(encoding="utf-8").replace("processes = 1\n", ""))
    # a layout change found in the child is the same one-line source error, and is remembered
    redesigned = b"<html><body><div class='news'><p>Press releases</p></div></body></html>"
    monitor.site.routes["/fstb/tc/press-releases.htm"] = lambda handler: Response(200, redesigned)
    code, out, err = monitor.round(capsys, ROUND2)
    assert code != 0 and out == ""
    assert (
        "source fstb-press-tc failed: items selector 'table.press-list tr.press-item' matched nothing" in err
    )
    assert rows(monitor.db, "SELECT consecutive_failures FROM health WHERE source_id = 'fstb-press-tc'") == [
        (1,)
    ]


def test_only_a_round_of_many_new_sources_is_split(monitor, capsys, monkeypatch):
    """New sources are parsed whole for their baseline (CPU-bound); known ones mostly are not."""
    from monitor import cores
    from tests.test_pipeline import ALL

    monkeypatch.setattr(cores, "SPLIT_MIN_SOURCES", len(ALL))  # as if this were a round of hundreds
    monkeypatch.setattr(cores, "CHILD_START", 0)
    monkeypatch.setattr(cores, "usable_cores", lambda: 2)
    monkeypatch.setattr(cores, "site_of", lambda url: url.split("/")[3])
    monitor.write(*ALL)
    assert "polled by 1 child process" in monitor.round(capsys)[2]
    code, out, err = monitor.round(capsys, ROUND2)
    assert code == 0 and "child process" not in err and "round: 6 of 6 sources polled, 0 failed" in err
    assert "+ Pearl Delta Bank Stablecoin (Hong Kong) Limited | SC0003" in out


def test_new_sources_that_keep_failing_do_not_split_a_round(monitor, capsys, monkeypatch, tmp_path):
    """A first run while the sites are down: every round would spawn a child to poll nothing."""
    from monitor import cores
    from tests.test_pipeline import ALL

    monkeypatch.setattr(cores, "SPLIT_MIN_SOURCES", len(ALL))
    monkeypatch.setattr(cores, "CHILD_START", 0)
    monkeypatch.setattr(cores, "usable_cores", lambda: 2)
    monkeypatch.setattr(cores, "site_of", lambda url: url.split("/")[3])
    monitor.write(*ALL)
    down = tmp_path / "down"  # every page answers 404
    down.mkdir()
    code, _, err = monitor.round(capsys, down)
    assert code != 0 and "polled by 1 child process" in err  # nothing known about them yet
    code, _, err = monitor.round(capsys, down)
    assert code != 0 and "child process" not in err and "round: 6 of 6 sources polled, 6 failed" in err
    code, _, err = monitor.round(capsys, ROUND2)  # back: their baselines, parsed in one process
    assert code == 0 and "child process" not in err and err.count(": baseline,") == 6


def test_sites_are_split_whole_and_evenly():
    from monitor.cores import site_of, split_by_site

    assert site_of("https://apps.sfc.hk/edistributionWeb/api/news/search") == "sfc.hk"
    assert site_of("https://www.sfc.hk/en/RSS-Feeds") == "sfc.hk"
    assert site_of("https://api.hkma.gov.hk/public/press-releases") == "hkma.gov.hk"
    assert site_of("https://www.info.gov.hk/gia/rss/general_en.xml") == "info.gov.hk"
    assert site_of("https://www.fstb.gov.hk/fsb/en/publication/consult/index.htm") == "fstb.gov.hk"
    assert site_of("http://127.0.0.7:8080/list-7.html") == "127.0.0.7"
    config = load_config(ROOT / "sources.toml")
    sources = [
        replace(config.sources[0], id=f"s{i}", url=f"http://127.0.0.{i % 20 + 1}/{i}") for i in range(1000)
    ]
    groups = split_by_site(sources, 2, child_start=100)
    assert sorted(s.id for group in groups for s in group) == sorted(s.id for s in sources)
    assert [len(group) for group in groups] == [550, 450]  # the child starts later: it gets less
    assert not {site_of(s.url) for s in groups[0]} & {site_of(s.url) for s in groups[1]}
    assert len(split_by_site(config.sources, 2)) == 1  # 25 sources: a child would only cost time
    shipped = split_by_site(config.sources, 2, child_start=0)  # the SFC and the HKMA apart
    sites = [{site_of(s.url) for s in group} for group in shipped]
    assert not sites[0] & sites[1] and sum(map(len, shipped)) == len(config.sources)


def test_a_round_starts_without_the_extras_its_libraries_would_import(tmp_path):
    """Every round (and each child of a split round) pays for its imports: numpy (through
    sqlite-utils) and rich/pygments (through httpx's command-line client) are never needed, yet
    stay importable afterwards. (A stand-in numpy, in case the real one is not installed.)"""
    (tmp_path / "numpy").mkdir()
    (tmp_path / "numpy" / "__init__.py").write_text("STAND_IN = True\n")
    probe = (
        "import sys, monitor.cli, monitor.commands, monitor.run, monitor.store\n"
        "print(sorted(m for m in ('numpy', 'rich', 'pygments') if m in sys.modules))\n"
        "import sqlite_utils.db, httpx\n"
        "print(sqlite_utils.db.np is None, httpx.main.__module__)\n"
        "import numpy, rich.console\n"
        "print(numpy.STAND_IN)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    )
    assert shown.stdout.splitlines() == ["[]", "True httpx", "True"]


COMMANDS = (["run", "--once"], ["log"], ["health"])  # each opens the state database its own way


def test_a_sqlite_utils_plugin_installed_beside_the_monitor_never_runs_inside_it(tmp_path):
    """sqlite-utils runs every installed plugin's hooks on each Database it opens (an entry-point
    scan, ~10 ms a process): code written for its command line, not for the monitor's state."""
    plugins, marks = tmp_path / "plugins", tmp_path / "plugin-ran"
    info = plugins / "sqlite_utils_hello-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sqlite-utils-hello\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[sqlite_utils]\nhello = sqlite_utils_hello\n")
    (plugins / "sqlite_utils_hello.py").write_text(
        "import os, sqlite_utils\n"
        "@sqlite_utils.hookimpl\n"
        "def prepare_connection(conn):\n"
        "    with open(os.environ['PLUGIN_MARKS'], 'a') as marks:\n"
        "        marks.write('ran\\n')\n"
    )
    config = tmp_path / "sources.toml"
    unreachable = rss_source("sfc-press", "/rss.xml").replace("{base}", "http://127.0.0.1:9")
    config.write_text("\n".join([TEST_SETTINGS, TOPICS, unreachable]), encoding="utf-8")
    env = {
        "PYTHONPATH": os.pathsep.join([str(plugins), str(ROOT)]),
        "PLUGIN_MARKS": str(marks),
    }
    db = tmp_path / "state" / "monitor.db"
    ran = [run_cli("--config", str(config), "--db", str(db), *command, env=env) for command in COMMANDS]
    assert [r.returncode for r in ran] == [1, 0, 0]  # the source is down; the database is read
    assert "no changes recorded yet" in ran[1].stdout and "healthy" in ran[2].stdout
    probe = "import sqlite_utils; sqlite_utils.Database(memory=True)"  # the plugin loads
    subprocess.run([sys.executable, "-c", probe], env={**os.environ, **env}, check=True)
    assert db.exists() and marks.read_text() == "ran\n"  # once: the probe's, none of the monitor's

"""Reviewing the change log: review states with history, evidence, pruning, exports."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import random
import re
import sqlite3
import subprocess
import sys
import zlib

import pytest
from rich.cells import cell_len

from monitor.localsite import Response
from monitor.models import Change, LoggedChange
from monitor.review import print_log
from monitor.store.blobs import ZSTD_MAGIC, Blobs
from tests.conftest import REGISTER, ROUND2, SFC_PRESS, run_cli


@pytest.fixture
def reviewed(monitor, capsys, monkeypatch):
    """Two rounds over the SFC feed and the stablecoin register: two changes in the log."""
    monkeypatch.setenv("USER", "amy")  # who reviews when --by is not given
    monitor.write(SFC_PRESS, REGISTER)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    return monitor


def change_ids(monitor) -> dict[str, int]:
    with sqlite3.connect(monitor.db) as conn:
        return dict(conn.execute("SELECT kind, id FROM changes"))


def titles(monitor) -> dict[int, str]:
    with sqlite3.connect(monitor.db) as conn:
        return dict(conn.execute("SELECT id, title FROM changes"))


def test_review_states_are_kept_as_history(reviewed, capsys):
    page = change_ids(reviewed)["page"]
    code, out, _ = reviewed(
        "review", str(page), "--state", "escalated", "--note", "new issuer", "--by", "amy", capsys=capsys
    )
    assert (code, out) == (0, f"change {page}: escalated by amy: {titles(reviewed)[page]}\n")
    code, out, _ = reviewed("review", str(page), "--state", "reviewed", "--by", "ben", capsys=capsys)
    assert code == 0
    code, out, _ = reviewed("show", str(page), capsys=capsys)
    assert "State:     reviewed" in out
    assert [line.split(" HKT ", 1)[1] for line in out.splitlines() if line.startswith("Review:")] == [
        "escalated by amy: new issuer",
        "reviewed by ben",
    ]
    with sqlite3.connect(reviewed.db) as conn:
        assert conn.execute("SELECT state FROM change_log WHERE id = ?", [page]).fetchone() == ("reviewed",)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE reviews SET state = 'dismissed'")


def test_reviewing_an_unknown_change_is_an_error(reviewed, capsys):
    code, _, err = reviewed("review", "999", "--state", "reviewed", capsys=capsys)
    assert (code, err) == (2, "error: no change with id 999 (see `policy-monitor log`)\n")


def test_new_is_not_a_state_a_reviewer_can_set(reviewed, capsys):
    with pytest.raises(SystemExit) as exit_info:
        reviewed("review", str(change_ids(reviewed)["page"]), "--state", "new", capsys=capsys)
    assert exit_info.value.code == 2 and "invalid choice: 'new'" in capsys.readouterr().err


def test_a_closed_review_cannot_be_reopened(reviewed, capsys):
    new = change_ids(reviewed)["new"]
    reviewed("review", str(new), "--state", "dismissed", capsys=capsys)
    code, _, err = reviewed("review", str(new), "--state", "escalated", capsys=capsys)
    assert code == 2
    assert f"error: change {new} is already dismissed, which closes it: it stays so" in err


def test_a_review_names_who_made_it(reviewed, capsys, monkeypatch):
    monkeypatch.delenv("USER")  # a container's shell often has no $USER
    new = str(change_ids(reviewed)["new"])
    code, _, err = reviewed("review", new, "--state", "reviewed", capsys=capsys)
    assert (code, err) == (2, "error: who reviewed? give --by NAME ($USER is not set here)\n")
    code, out, _ = reviewed("review", new, "--state", "Reviewed", "--by", "ben", capsys=capsys)
    assert code == 0 and out.startswith(f"change {new}: reviewed by ben: ")  # the state in any case
    assert out.rstrip().endswith(titles(reviewed)[int(new)])  # so that a review of the wrong one shows


def test_an_until_not_after_since_is_an_error_not_an_empty_log(reviewed, capsys):
    code, _, err = reviewed("log", "--since", "2026-12-07", "--until", "2026-12-01", capsys=capsys)
    assert (code, err) == (
        2,
        "error: --until 2026-12-01 is not after --since 2026-12-07 (--until is exclusive)\n",
    )
    assert reviewed("log", "--state", "NEW", capsys=capsys)[0] == 0


def test_inbox_and_filters(reviewed, capsys):
    ids = change_ids(reviewed)
    reviewed("review", str(ids["new"]), "--state", "reviewed", capsys=capsys)
    _, out, _ = reviewed("log", "--state", "new", "--format", "json", capsys=capsys)
    assert [row["id"] for row in json.loads(out)] == [ids["page"]]
    _, out, _ = reviewed("log", "--regulator", "sfc", "--format", "json", capsys=capsys)
    assert [row["id"] for row in json.loads(out)] == [ids["new"]]
    _, out, _ = reviewed("log", "--until", "2020-01-01", "--format", "json", capsys=capsys)
    assert json.loads(out) == []
    _, out, _ = reviewed("log", "--limit", "1", "--format", "json", capsys=capsys)
    assert len(json.loads(out)) == 1


def test_a_filter_matching_nothing_is_not_an_empty_log(monitor, capsys):
    monitor.write(SFC_PRESS, REGISTER)
    monitor.round(capsys)  # the baseline: the log exists and holds no change yet
    for filters in ((), ("--state", "escalated")):
        assert monitor("log", *filters, capsys=capsys)[1] == "no changes recorded yet\n"
    monitor.round(capsys, ROUND2)
    code, out, _ = monitor("log", "--state", "escalated", capsys=capsys)
    assert (code, out) == (0, "no change matches these filters (`policy-monitor log` lists every change)\n")
    _, out, _ = monitor("log", "--source", "SFC-PRESS-EN", "--since", "2030-01-01", capsys=capsys)
    assert out.startswith("no change matches these filters")


def test_a_filter_naming_no_source_regulator_or_topic_is_an_error_not_an_empty_log(reviewed, capsys):
    for command in (["log"], ["export"], ["report", "--out", str(reviewed.db.parent / "report")]):
        code, out, err = reviewed(*command, "--source", "sfc-press", capsys=capsys)
        assert (code, out) == (2, "")
        assert (
            err
            == "error: --source 'sfc-press': no such source (known: hkma-stablecoin-register, sfc-press-en)\n"
        )
    code, _, err = reviewed("log", "--regulator", "HKMX", capsys=capsys)
    assert (code, err) == (2, "error: --regulator 'HKMX': no such regulator (known: HKMA, SFC)\n")
    code, _, err = reviewed("log", "--topic", "stablecoins", capsys=capsys)
    assert code == 2 and err.startswith("error: --topic 'stablecoins': no such topic (known: ")
    assert err.endswith("(known: derivatives, e-hkd, stablecoin, virtual-assets)\n")
    # names are matched as the filters match them: case aside
    assert reviewed("log", "--regulator", "hkma", "--topic", "STABLECOIN", capsys=capsys)[0] == 0
    # a regulator renamed in the config still names the changes logged under it
    reviewed.config.write_text(
        reviewed.config.read_text().replace('regulator = "SFC"', 'regulator = "SFCHK"')
    )
    reviewed.round(capsys, ROUND2)
    code, out, _ = reviewed("log", "--regulator", "SFC", "--format", "json", capsys=capsys)
    assert code == 0 and [c["regulator"] for c in json.loads(out)] == ["SFC"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_table_in_a_terminal_wraps_chinese_titles_as_it_wraps_english(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    titles = [
        "財經事務及庫務局歡迎《穩定幣條例》修訂生效",
        "Government welcomes passage of Stablecoins (Amendment) Bill 2025",
    ]
    changes = [
        LoggedChange(
            id=n,
            regulator="FSTB",
            detected_at="2026-08-01T09:12:00+00:00",
            fetched_at="2026-08-01T09:11:58+00:00",
            change=Change(
                source_id="gov-press", kind="new", title=title, topics=("stablecoin", "virtual-assets")
            ),
        )
        for n, title in enumerate(titles, 1)
    ]
    terminal = Terminal()
    print_log(changes, "table", terminal)
    rows = re.sub(r"\x1b\[[0-9;]*m", "", terminal.getvalue()).splitlines()
    assert max(cell_len(row) for row in rows) <= 80 and "…" not in terminal.getvalue()
    pieces: list[list[str]] = []  # each change's title cell, line by line
    for row in (row.split("│") for row in rows if row.startswith("│")):
        if row[1].strip():  # the ID column: a change's first line
            pieces.append([])
        pieces[-1].append(row[-2].strip())
    assert ["".join(pieces[0]), " ".join(pieces[1])] == titles


def test_show_raw_writes_the_exact_bytes_of_both_versions(reviewed, capsys, tmp_path):
    page = change_ids(reviewed)["page"]
    after, before = tmp_path / "after.html", tmp_path / "before.html"
    assert reviewed("show", str(page), "--raw", "--out", str(after), capsys=capsys)[0] == 0
    assert reviewed("show", str(page), "--before", "--out", str(before), capsys=capsys)[0] == 0
    register = "hkma/eng/stablecoin-register.html"
    assert after.read_bytes() == (ROUND2 / register).read_bytes()
    assert before.read_bytes() == (ROUND2.parent / "round1" / register).read_bytes()
    result = run_cli("--config", str(reviewed.config), "--db", str(reviewed.db), "show", str(page), "--raw")
    assert result.returncode == 0 and "Pearl Delta Bank Stablecoin" in result.stdout


def test_show_raw_to_a_terminal_is_refused_naming_the_ways_that_are_safe(reviewed):
    """The raw bytes are the server's: an escape sequence in them would drive the terminal."""
    terminal, side = pty.openpty()
    command = [sys.executable, "-m", "monitor", "--config", str(reviewed.config), "--db", str(reviewed.db)]
    page = change_ids(reviewed)["page"]
    result = subprocess.run(
        [*command, "show", str(page), "--raw"], stdout=side, stderr=subprocess.PIPE, text=True
    )
    os.close(side)
    os.close(terminal)
    assert result.returncode == 2
    assert result.stderr == (
        "error: --raw writes the exact bytes the server sent, which can drive a terminal: "
        f"give --out FILE, or pipe it (policy-monitor show {page} --raw | less)\n"
    )


@pytest.mark.parametrize(
    ("where", "reason"),
    [("missing/after.html", "no such file or directory"), (".", "is a directory")],
    ids=["no-such-folder", "a-folder"],
)
def test_show_raw_to_a_path_that_cannot_be_written_is_a_one_line_error(
    reviewed, capsys, tmp_path, where, reason
):
    out = str(tmp_path / where)
    code, printed, err = reviewed(
        "show", str(change_ids(reviewed)["page"]), "--raw", "--out", out, capsys=capsys
    )
    assert (code, printed) == (2, "")
    assert err == (
        f"error: --out {out}: cannot write there: {reason} "
        "(--out names the file to write the raw bytes to, in a folder that exists)\n"
    )


def test_show_out_without_raw_is_an_error_naming_the_fix(reviewed, capsys, tmp_path):
    page, out = change_ids(reviewed)["page"], tmp_path / "change.txt"
    code, printed, err = reviewed("show", str(page), "--out", str(out), capsys=capsys)
    assert (code, printed) == (2, "")
    assert err == (
        "error: --out writes the raw bytes of --raw or --before; "
        f"to save the change as text: policy-monitor show {page} > {out}\n"
    )
    assert not out.exists()


def test_a_database_written_by_an_earlier_version_reads_as_before(reviewed, capsys, tmp_path):
    """Earlier versions compressed bodies and snapshots with zlib: evidence and diffs still read."""
    with sqlite3.connect(reviewed.db) as conn:
        for table, column, key in (("bodies", "content", "sha256"), ("snapshots", "content", "hash")):
            rows = conn.execute(f"SELECT {key}, {column} FROM {table}").fetchall()
            assert rows and all(blob.startswith(ZSTD_MAGIC) for _, blob in rows)
            conn.executemany(
                f"UPDATE {table} SET {column} = ? WHERE {key} = ?",
                [(zlib.compress(Blobs().unpack(blob)), k) for k, blob in rows],
            )
        conn.execute("UPDATE source_state SET stable_sha256 = '', region_sha256 = ''")  # extract again
    page, after = change_ids(reviewed)["page"], tmp_path / "after.html"
    assert reviewed("show", str(page), "--raw", "--out", str(after), capsys=capsys)[0] == 0
    assert after.read_bytes() == (ROUND2 / "hkma/eng/stablecoin-register.html").read_bytes()
    assert reviewed.round(capsys, ROUND2)[:2] == (0, "")  # compared with the stored snapshots: no alert


def test_show_gives_the_evidence(reviewed, capsys):
    page = change_ids(reviewed)["page"]
    _, out, _ = reviewed("show", str(page), capsys=capsys)
    assert "HTTP:      200 content-type: text/html; charset=utf-8" in out
    assert "Raw body:  sha256 " in out and "(before: " in out
    assert "UTC) from http://127.0.0.1:" in out


def test_prune_keeps_evidence_and_reclaims_space(monitor, capsys, monkeypatch):
    from monitor.store import prune

    # in short transactions, a running round's write waits little; each source's latest stay: its last
    monkeypatch.setattr(prune, "PRUNE_BATCH", 2)
    monkeypatch.setattr(prune, "KEEP_LATEST", 1)
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    feed = (monitor.site.root / "sfc/en/rss/press-releases.xml").read_bytes()
    for n in range(5):  # cache-busting link parameters: a new body and snapshot, but no change
        noise = random.Random(n).randbytes(20_000).hex().encode()  # does not compress away
        padded = feed.replace(b"refNo=26PR121<", b"refNo=26PR121&amp;rev=%d<" % n)
        padded = padded.replace(b"</channel>", b"<!-- " + noise + b" --></channel>")
        monitor.site.routes["/sfc/en/rss/press-releases.xml"] = _serving(padded)
        monitor.round(capsys)
    monitor.site.routes["/sfc/en/rss/press-releases.xml"] = lambda handler: Response(404, b"gone", {})
    monitor.round(capsys)  # a failed poll: a gap in the watch, which an audit asks about
    del monitor.site.routes["/sfc/en/rss/press-releases.xml"]
    monitor.round(capsys, ROUND2)  # a real change: its before and after bodies are evidence
    monitor.round(capsys, ROUND2)  # and a poll that found nothing new since
    with sqlite3.connect(monitor.db) as conn:
        conn.execute("UPDATE bodies SET created_at = '2020-01-01T00:00:00+00:00'")
        conn.execute("UPDATE fetches SET fetched_at = '2020-01-01T00:00:00+00:00'")
        evidence = set(conn.execute("SELECT raw_sha256, old_raw_sha256 FROM changes").fetchone())
        assert conn.execute("SELECT count(*) FROM changes").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM fetches").fetchone() == (9,)
    code, out, _ = monitor("prune", "--keep-days", "30", capsys=capsys)
    assert code == 0 and out.startswith("removed 5 raw bodies that no change refers to; reclaimed ")
    # Each of the five bodies holds 20,000 random bytes (as hex): ~19.5 KB however compressed.
    assert float(out.split("reclaimed ")[1].split(" KB")[0]) > 5 * 19.5 * 0.9
    with sqlite3.connect(monitor.db) as conn:
        assert {sha for (sha,) in conn.execute("SELECT sha256 FROM bodies")} == evidence
        assert conn.execute("SELECT count(*) FROM fetches").fetchone() == (9,)  # only on request
    code, out, _ = monitor("prune", "--keep-days", "30", "--fetch-records", capsys=capsys)
    assert code == 0 and out.startswith("removed 0 raw bodies and 5 fetch records that no change refers to")
    with sqlite3.connect(monitor.db) as conn:  # the five polls that found nothing new went
        kept = conn.execute("SELECT f.status, c.id FROM fetches f LEFT JOIN changes c ON c.fetch_id = f.id")
        # the baseline, the failed poll, the change's, the last poll's
        assert kept.fetchall() == [("baseline", None), ("error", None), ("changed", 1), ("unchanged", None)]
    assert monitor("show", "1", capsys=capsys)[0] == 0


def test_prune_beside_a_running_monitor_removes_but_does_not_vacuum(monitor, capsys):
    """VACUUM rewrites the file under a lock; on a big database the run's next write timed out."""
    from monitor.store.lock import hold_lock

    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    feed = (monitor.site.root / "sfc/en/rss/press-releases.xml").read_bytes()
    for n in range(3):  # bodies no change refers to: prune may remove them
        noise = random.Random(n).randbytes(20_000).hex().encode()
        monitor.site.routes["/sfc/en/rss/press-releases.xml"] = _serving(
            feed.replace(b"refNo=26PR121<", b"refNo=26PR121&amp;rev=%d<" % n).replace(
                b"</channel>", b"<!-- " + noise + b" --></channel>"
            )
        )
        monitor.round(capsys)
    with sqlite3.connect(monitor.db) as conn:
        conn.execute("UPDATE bodies SET created_at = '2020-01-01T00:00:00+00:00'")
        pages = conn.execute("PRAGMA page_count").fetchone()
    with hold_lock(monitor.db):  # as a running `run` holds it
        code, out, _ = monitor("prune", "--keep-days", "30", capsys=capsys)
    assert code == 0
    assert out.startswith("removed 3 raw bodies that no change refers to; the database is in use (pid ")
    assert "prune while the monitor is stopped to shrink it" in out
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("PRAGMA page_count").fetchone() == pages  # not rewritten: no VACUUM
        assert conn.execute("SELECT count(*) FROM bodies").fetchone() == (1,)  # the current body


def _serving(body: bytes):
    from monitor.localsite import Response

    return lambda handler: Response(200, body, {"Content-Type": "application/rss+xml"})


def test_exports_parse_and_round_trip(reviewed, capsys):
    page = change_ids(reviewed)["page"]
    reviewed(
        "review", str(page), "--state", "escalated", "--by", "amy", "--note", "check licence", capsys=capsys
    )
    _, out, _ = reviewed("export", "--format", "csv", capsys=capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2
    row = next(r for r in rows if int(r["id"]) == page)
    assert (row["state"], row["reviewed_by"], row["review_note"]) == ("escalated", "amy", "check licence")
    _, out, _ = reviewed("export", "--format", "jsonl", capsys=capsys)
    records = [json.loads(line) for line in out.splitlines()]
    assert {r["id"] for r in records} == {int(r["id"]) for r in rows}
    assert all(set(r) == set(rows[0]) for r in records)


def test_an_export_for_excel_has_a_byte_order_mark_and_no_cell_excel_would_run(reviewed, capsys):
    page = change_ids(reviewed)["page"]
    note = '=HYPERLINK("http://example.invalid","穩定幣")'
    reviewed("review", str(page), "--state", "escalated", "--by", "amy", "--note", note, capsys=capsys)
    _, plain, _ = reviewed("export", capsys=capsys)
    code, out, _ = reviewed("export", "--excel", capsys=capsys)
    assert code == 0 and out.startswith("\ufeffid,detected_at,") and not plain.startswith("\ufeff")
    (row,) = [r for r in csv.DictReader(io.StringIO(out.removeprefix("\ufeff"))) if int(r["id"]) == page]
    assert row["review_note"] == "'" + note  # Excel shows it as text
    (row,) = [r for r in csv.DictReader(io.StringIO(plain)) if int(r["id"]) == page]
    assert row["review_note"] == note  # for scripts, as it was written
    code, _, err = reviewed("export", "--excel", "--format", "jsonl", capsys=capsys)
    assert (code, err) == (2, "error: --excel is for --format csv\n")


def test_prune_keeps_the_body_the_next_change_will_call_before(monitor, capsys):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    assert monitor("prune", "--keep-days", "0", capsys=capsys)[1].startswith("removed 0 raw bodies")
    monitor.round(capsys, ROUND2)
    new = change_ids(monitor)["new"]
    assert (
        monitor("show", str(new), "--before", "--out", str(monitor.db.parent / "b.xml"), capsys=capsys)[0]
        == 0
    )


def test_the_review_history_cannot_be_replaced(reviewed, capsys):
    page = change_ids(reviewed)["page"]
    reviewed("review", str(page), "--state", "escalated", "--by", "alice", capsys=capsys)
    with sqlite3.connect(reviewed.db) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(
            "INSERT OR REPLACE INTO reviews (id, change_id, state, by, at) VALUES (1, ?, 'dismissed', 'mallory', 'x')",
            [page],
        )


def test_an_older_database_gains_the_new_columns(monitor, capsys):
    monitor.db.parent.mkdir(parents=True)
    with sqlite3.connect(monitor.db) as conn:  # the changes table as first shipped, without later columns
        conn.execute(
            "CREATE TABLE changes (id INTEGER PRIMARY KEY, source_id TEXT, regulator TEXT, kind TEXT, item_key TEXT DEFAULT '', title TEXT, link TEXT DEFAULT '', date TEXT DEFAULT '', text TEXT DEFAULT '', before TEXT DEFAULT '', added TEXT DEFAULT '[]', removed TEXT DEFAULT '[]', diff TEXT DEFAULT '', topics TEXT DEFAULT '[]', matches TEXT DEFAULT '{}', fetch_id INTEGER, old_snapshot TEXT DEFAULT '', new_snapshot TEXT DEFAULT '', raw_sha256 TEXT DEFAULT '', final_url TEXT DEFAULT '', fetched_at TEXT, detected_at TEXT)"
        )
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    code, out, _ = monitor.round(capsys, ROUND2)
    assert code == 0 and "NEW: SFC and HKMA issue joint circular" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("prune", "--keep-days", "-1"),
            "argument --keep-days: invalid number of days (0 to 36500) value: '-1'",
        ),
        (("prune", "--keep-days", "1000000"), "invalid number of days (0 to 36500) value: '1000000'"),
        (
            ("show", "99999999999999999999"),
            "argument change_id: invalid change id value: '99999999999999999999'",
        ),
        (("review", "0", "--state", "reviewed"), "argument change_id: invalid change id value: '0'"),
        (("log", "--limit", "-1"), "argument --limit: invalid number of 0 or more value: '-1'"),
        (("log", "--source", ""), "argument --source: invalid non-empty value: ''"),
        (("export", "--topic", " "), "argument --topic: invalid non-empty value: ' '"),
    ],
)
def test_a_bad_count_or_empty_filter_is_refused_before_the_database_is_touched(tmp_path, args, message):
    db = tmp_path / "monitor.db"
    result = run_cli("--db", str(db), *args)
    assert result.returncode == 2 and message in result.stderr
    assert not db.exists()


def test_log_titles_stay_in_their_column_whatever_the_topics():
    def logged(change_id: int, topics: tuple[str, ...], title: str) -> LoggedChange:
        change = Change(source_id="sfc-press-en", kind="new", title=title, topics=topics)
        return LoggedChange(
            change_id, "SFC", "2026-08-03T09:05:00+00:00", "2026-08-03T09:05:00+00:00", change
        )

    out = io.StringIO()
    changes = [
        logged(2, ("stablecoin", "virtual-assets", "derivatives"), "SFC and HKMA issue joint circular"),
        logged(1, ("e-hkd",), "HKMA announces e-HKD pilot phase 2"),
    ]
    print_log(changes, "table", out)  # not a terminal: the plain table
    header, *lines = out.getvalue().splitlines()
    column = header.index("TITLE")
    assert [line[column:] for line in lines] == [c.change.title for c in changes]


def test_show_before_of_a_change_with_no_earlier_body_says_so(reviewed, capsys, tmp_path):
    """A database from before old_raw_sha256 was kept has '' there: no crash, a sentence."""
    new = change_ids(reviewed)["new"]
    with sqlite3.connect(reviewed.db) as conn:
        conn.execute("UPDATE changes SET old_raw_sha256 = '' WHERE id = ?", [new])
    code, _, err = reviewed("show", str(new), "--before", "--out", str(tmp_path / "b"), capsys=capsys)
    assert code == 2 and "no earlier version (the change came from the first fetch)" in err


@pytest.mark.parametrize("command", [["export", "--excel"], ["log"], ["log", "--format", "json"]])
def test_the_change_log_is_written_whole_to_a_non_utf8_stdout(reviewed, command):
    """Windows redirects stdout in its ANSI code page: a Chinese title must not end the file early."""
    with sqlite3.connect(reviewed.db) as conn:
        conn.execute("UPDATE changes SET title = '證監會就穩定幣發出通函' WHERE kind = 'new'")
    done = run_cli("--db", str(reviewed.db), *command, env={"PYTHONIOENCODING": "cp1252"})
    assert done.returncode == 0, done.stderr
    assert "證監會就穩定幣發出通函" in done.stdout


def test_a_piped_log_keeps_each_title_whole(reviewed, capsys):
    """For grep and scripts: a title cut at a column width loses the words searched for."""
    long = "SFC and HKMA issue joint circular on intermediaries' virtual asset-related activities including stablecoin distribution"
    with sqlite3.connect(reviewed.db) as conn:
        conn.execute("UPDATE changes SET title = ? WHERE kind = 'new'", [long])
    code, out, _ = reviewed("log", capsys=capsys)
    assert code == 0 and long in out


def test_prune_keeps_what_the_guards_count_a_sources_refusals_from(tmp_path):
    """Refusals ten days ago and one now, with polls between them: pruned, the polls would join the
    two runs, and one refusal now would read as three rounds held for ten days (taken at once)."""
    from monitor.guards import GUARD_REASONS, TURNOVER_REASON
    from monitor.store import Store

    store = Store.open(tmp_path / "monitor.db")
    old, now = "2026-11-20T00:00:00+00:00", "2026-12-06T00:00:00+00:00"
    rows = [("error", old, TURNOVER_REASON + "of the 50 items")] * 2
    rows += [("unchanged", f"2026-11-2{n}T00:00:00+00:00", "") for n in range(1, 4)]
    rows += [("error", now, TURNOVER_REASON + "of the 50 items")]
    with store.db.conn:
        store.db.conn.executemany(
            "INSERT INTO fetches (source_id, status, fetched_at, error) VALUES ('sfc', ?, ?, ?)", rows
        )
    store.prune(0, fetch_records=True, vacuum=False)
    assert store.held_back("sfc", GUARD_REASONS) == (1, now)

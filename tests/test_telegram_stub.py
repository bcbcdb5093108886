"""The Telegram stub, checked through the real client (python-telegram-bot 22).

Each test drives ``telegram.Bot(token, base_url=tg.base_url)`` against the stub and checks
the exception or object PTB produces, so the stub keeps behaving like the Bot API as far
as PTB can tell.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import threading
import time

import httpx
import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    ChatMigrated,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.request import HTTPXRequest

try:
    from telegram_stub import MAX_MESSAGE_LENGTH, TelegramStub
except ModuleNotFoundError:  # tests/ is a package
    from tests.telegram_stub import MAX_MESSAGE_LENGTH, TelegramStub

TOKEN = "123:ABC"

# PTB 22 warns that RetryAfter.retry_after will become a timedelta; both forms are handled.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*attribute `retry_after` will be of type:telegram.warnings.PTBDeprecationWarning"
)


@pytest.fixture
def tg():
    with TelegramStub(token=TOKEN) as stub:
        yield stub
    assert not stub.errors, f"the stub itself failed: {stub.errors!r}"


def make_bot(base_url: str, token: str = TOKEN, read_timeout: float = 2.0) -> telegram.Bot:
    def request() -> HTTPXRequest:
        return HTTPXRequest(
            connect_timeout=1.0, read_timeout=read_timeout, write_timeout=1.0, pool_timeout=1.0
        )

    return telegram.Bot(token, base_url=base_url, request=request(), get_updates_request=request())


def run_with_bot(tg: TelegramStub, scenario, **bot_kwargs):
    """Run ``await scenario(bot)`` with an initialised Bot talking to the stub."""

    async def main():
        async with make_bot(tg.base_url, **bot_kwargs) as bot:
            return await scenario(bot)

    return asyncio.run(main())


def seconds(value) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


# ------------------------------------------------------------------------- basics


def test_get_me(tg):
    me = run_with_bot(tg, lambda bot: bot.get_me())
    assert me.is_bot is True
    assert me.id == 123
    assert me.username == tg.username
    assert [c.method for c in tg.calls] == ["getMe", "getMe"]  # initialize() + ours


def test_send_message_html_returns_messages_with_incrementing_ids(tg):
    async def scenario(bot):
        first = await bot.send_message(42, "<b>SFC</b> circular &amp; notice", parse_mode="HTML")
        second = await bot.send_message(42, "second", parse_mode="HTML")
        other = await bot.send_message(-555, "to a group")
        channel = await bot.send_message("@hk_alerts", "to a channel")
        return first, second, other, channel

    first, second, other, channel = run_with_bot(tg, scenario)
    assert (first.message_id, second.message_id) == (1, 2)
    assert other.message_id == 1  # ids count per chat
    assert first.chat.id == 42 and first.chat.type == "private"
    assert first.text == "SFC circular & notice"
    assert [(e.type, e.offset, e.length) for e in first.entities] == [("bold", 0, 3)]
    assert first.from_user.id == 123
    assert other.chat.type == "group"
    assert channel.chat.type == "channel" and channel.chat.username == "hk_alerts"

    assert [s["message_id"] for s in tg.sent] == [1, 2, 1, 1]
    assert tg.sent[0]["chat_id"] == 42
    assert tg.sent[0]["parse_mode"] == "HTML"
    assert tg.sent[0]["text"] == "<b>SFC</b> circular &amp; notice"
    assert tg.sent[3]["chat_id"] == "@hk_alerts"
    assert all(c.status == 200 for c in tg.calls_for("sendMessage"))


# ------------------------------------------------------------------------- injected failures


@pytest.mark.parametrize(
    ("kind", "options", "exc_type"),
    [
        ("retry_after", {}, RetryAfter),
        ("parse_entities", {}, BadRequest),
        ("blocked", {}, Forbidden),
        ("migrated", {"migrate_to_chat_id": -1009876543210}, ChatMigrated),
        ("bad_gateway", {}, NetworkError),
        ("text_too_long", {}, BadRequest),
    ],
)
def test_injected_failure_maps_to_ptb_exception(tg, kind, options, exc_type):
    tg.fail_next("sendMessage", kind, **options)

    async def scenario(bot):
        with pytest.raises(exc_type) as caught:
            await bot.send_message(42, "alert")
        after = await bot.send_message(42, "alert again")  # the failure was consumed
        return caught.value, after

    exc, after = run_with_bot(tg, scenario)
    assert type(exc) is exc_type
    if kind == "retry_after":
        assert seconds(exc.retry_after) == 1
    elif kind == "parse_entities":
        assert "can't parse entities" in str(exc).lower()
    elif kind == "blocked":
        assert "blocked by the user" in str(exc)
    elif kind == "migrated":
        assert exc.new_chat_id == -1009876543210
    elif kind == "text_too_long":
        assert "too long" in str(exc).lower()
    assert after.message_id == 1  # nothing was delivered by the failed call
    assert [s["text"] for s in tg.sent] == ["alert again"]
    assert [c.failure for c in tg.calls_for("sendMessage")] == [kind, None]


def test_failures_are_queued_in_order_and_per_chat(tg):
    tg.fail_next("sendMessage", "retry_after", retry_after=7)
    tg.fail_next("sendMessage", "blocked", chat_id=99)

    async def scenario(bot):
        with pytest.raises(RetryAfter) as first:
            await bot.send_message(99, "a")
        ok = await bot.send_message(42, "b")  # the blocked failure is only for chat 99
        with pytest.raises(Forbidden):
            await bot.send_message(99, "c")
        return first.value, ok, await bot.send_message(99, "d")

    first, ok, last = run_with_bot(tg, scenario)
    assert seconds(first.retry_after) == 7
    assert ok.chat.id == 42 and last.chat.id == 99
    assert tg.pending_failures == 0


def test_hang_triggers_timed_out_and_stop_does_not_wait_for_it():
    tg = TelegramStub(token=TOKEN)
    try:
        tg.fail_next("sendMessage", "hang", seconds=30)

        async def scenario(bot):
            started = time.monotonic()
            with pytest.raises(TimedOut):
                await bot.send_message(42, "slow")
            return time.monotonic() - started

        elapsed = run_with_bot(tg, scenario, read_timeout=0.3)
        assert elapsed < 2.0
        assert tg.calls_for("sendMessage")[0].status is None  # still held by the stub
    finally:
        started = time.monotonic()
        tg.stop()
        assert time.monotonic() - started < 2.5
    assert tg.sent == []


def test_wrong_token_is_invalid_token(tg):
    async def main():
        async with make_bot(tg.base_url, token="999:WRONG"):
            pass

    with pytest.raises(InvalidToken):
        asyncio.run(main())
    assert tg.calls[0].status == 401


def test_unknown_method_is_404(tg):
    answer = httpx.post(f"{tg.base_url}{TOKEN}/noSuchMethod", data={"a": "1"}, timeout=2)
    assert answer.status_code == 404
    assert answer.json() == {"ok": False, "error_code": 404, "description": "Not Found"}

    with pytest.raises(EndPointNotFound):
        run_with_bot(tg, lambda bot: bot.do_api_request("noSuchMethod"))


# ------------------------------------------------------------------------- getUpdates


def test_get_updates_returns_a_pushed_command_once(tg):
    pushed = tg.push_command(42, "/start", user_id=42)

    async def scenario(bot):
        first = await bot.get_updates(timeout=0)
        again = await bot.get_updates(offset=first[-1].update_id + 1, timeout=0)
        return first, again

    first, again = run_with_bot(tg, scenario)
    assert len(first) == 1
    update = first[0]
    assert update.update_id == pushed["update_id"]
    assert update.message.text == "/start"
    assert update.message.from_user.id == 42
    assert update.message.entities[0].type == "bot_command"
    assert update.message.entities[0].length == len("/start")
    assert again == ()
    assert tg.pending_updates == []


def test_get_updates_long_poll_waits_for_a_push_and_is_capped():
    with TelegramStub(token=TOKEN, max_long_poll=0.6) as tg:

        async def scenario(bot):
            started = time.monotonic()
            empty = await bot.get_updates(timeout=30)  # capped at max_long_poll
            empty_took = time.monotonic() - started
            threading.Timer(0.1, tg.push_command, args=(42, "/status")).start()
            started = time.monotonic()
            got = await bot.get_updates(timeout=30)
            return empty, empty_took, got, time.monotonic() - started

        empty, empty_took, got, got_took = run_with_bot(tg, scenario)
    assert empty == ()
    assert 0.5 <= empty_took < 2.0
    assert [u.message.text for u in got] == ["/status"]
    assert got_took < 0.55  # woken by the push, not by the cap


# ------------------------------------------------------------------------- text validation


def test_html_longer_than_4096_after_parsing_is_refused(tg):
    fits = "<b>" + "a" * MAX_MESSAGE_LENGTH + "</b>"  # 4103 characters of markup
    escaped = "&amp;" * MAX_MESSAGE_LENGTH  # 4096 characters once unescaped
    too_long = "<b>" + "a" * (MAX_MESSAGE_LENGTH + 1) + "</b>"
    emoji = "😀" * (MAX_MESSAGE_LENGTH // 2 + 1)  # 2049 characters, 4098 UTF-16 units

    async def scenario(bot):
        await bot.send_message(42, fits, parse_mode="HTML")
        await bot.send_message(42, escaped, parse_mode="HTML")
        for text in (too_long, emoji):
            with pytest.raises(BadRequest, match="too long"):
                await bot.send_message(42, text, parse_mode="HTML")

    run_with_bot(tg, scenario)
    assert len(tg.sent) == 2


@pytest.mark.parametrize(
    ("html", "message"),
    [
        ("<b>unclosed", 'end tag corresponding to start tag "b"'),
        ("SFC <foo>x</foo>", 'unsupported start tag "foo" at byte offset 4'),
        ("price < 100", 'unsupported start tag "" at byte offset 6'),
        ("<b>x</i>", "unmatched end tag at byte offset 4"),
        ("x</b>", "unexpected end tag at byte offset 1"),
    ],
)
def test_invalid_html_is_refused_like_telegram(tg, html, message):
    async def scenario(bot):
        with pytest.raises(BadRequest) as caught:
            await bot.send_message(42, html, parse_mode="HTML")
        return caught.value

    exc = run_with_bot(tg, scenario)
    assert "can't parse entities" in str(exc).lower()
    assert message in str(exc).lower()
    assert tg.sent == []


# ------------------------------------------------------------------------- outages


def test_down_up_and_connection_refused(tg):
    async def scenario(bot):
        tg.down()
        with pytest.raises(NetworkError):
            await bot.send_message(42, "while down (reset)")
        tg.down("502")
        with pytest.raises(NetworkError):
            await bot.send_message(42, "while down (502)")
        tg.up()
        return await bot.send_message(42, "back up")

    back = run_with_bot(tg, scenario)
    assert back.text == "back up"
    assert [c.status for c in tg.calls_for("sendMessage")] == [0, 502, 200]

    async def refused():
        bot = make_bot(TelegramStub.refused_base_url())
        started = time.monotonic()
        with pytest.raises(NetworkError) as caught:
            await bot.get_me()
        return caught.value, time.monotonic() - started

    exc, took = asyncio.run(refused())
    assert not isinstance(exc, TimedOut)
    assert took < 1.0


# ------------------------------------------------------------------------- other methods


def test_housekeeping_and_edit_methods(tg):
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Mute", callback_data="mute:1")]])

    async def scenario(bot):
        assert await bot.delete_webhook(drop_pending_updates=True) is True
        assert await bot.set_my_commands([("start", "Subscribe"), ("status", "Status")])
        sent = await bot.send_message(42, "<i>draft</i>", parse_mode="HTML", reply_markup=keyboard)
        edited = await bot.edit_message_text(
            "<i>final</i>", chat_id=42, message_id=sent.message_id, parse_mode="HTML"
        )
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text(
                "<i>final</i>", chat_id=42, message_id=sent.message_id, parse_mode="HTML"
            )
        markup = await bot.edit_message_reply_markup(
            chat_id=42, message_id=sent.message_id, reply_markup=keyboard
        )
        tg.push_callback_query(42, "mute:1")
        (update,) = await bot.get_updates(timeout=0)
        answered = await bot.answer_callback_query(update.callback_query.id, text="Muted")
        return sent, edited, markup, update, answered

    sent, edited, markup, update, answered = run_with_bot(tg, scenario)
    assert sent.reply_markup == keyboard
    assert edited.text == "final" and edited.edit_date is not None
    assert markup.reply_markup == keyboard
    assert update.callback_query.data == "mute:1"
    assert update.callback_query.message.message_id == sent.message_id
    assert answered is True
    assert tg.commands == [
        {"command": "start", "description": "Subscribe"},
        {"command": "status", "description": "Status"},
    ]
    assert tg.sent[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "mute:1"
    assert tg.calls_for("deleteWebhook")[0].params["drop_pending_updates"] is True


def test_json_and_multipart_bodies_are_understood(tg):
    url = f"{tg.base_url}{TOKEN}/sendMessage"
    as_json = httpx.post(url, json={"chat_id": 7, "text": "json"}, timeout=2).json()
    as_multipart = httpx.post(
        url, data={"chat_id": "7", "text": "multipart"}, files={"doc": ("a.txt", b"x")}, timeout=2
    ).json()
    assert as_json["ok"] and as_json["result"]["message_id"] == 1
    assert as_multipart["ok"] and as_multipart["result"]["text"] == "multipart"
    assert [s["chat_id"] for s in tg.sent] == [7, 7]
    assert tg.sent[1]["doc"]["data"] == b"x"


def test_concurrent_sends_get_unique_ids(tg):
    async def scenario(bot):
        return await asyncio.gather(*(bot.send_message(42, f"alert {i}") for i in range(40)))

    messages = run_with_bot(tg, scenario)
    assert sorted(m.message_id for m in messages) == list(range(1, 41))
    assert sorted(s["message_id"] for s in tg.sent) == list(range(1, 41))

"""Who may change what the bot does: chats of TELEGRAM_CHAT_IDS and users of [telegram] admins.
Anyone else gets a polite refusal and nothing changes; anyone may ask /help, /topics, /recent."""

from __future__ import annotations

import os

import pytest

from tests.conftest import ROUND2, SFC_PRESS, TEST_SETTINGS
from tests.faults.conftest import GROUP, PRIVATE, rows, sent_to, write_config


def admins(monitor, *ids: int) -> None:
    text = monitor.config.read_text(encoding="utf-8")
    monitor.config.write_text(
        text.replace("[telegram]\n", f"[telegram]\nadmins = {list(ids)}\n"), encoding="utf-8"
    )


def chats(monitor) -> list[tuple]:
    return rows(monitor.db, "SELECT chat_id, active, topics FROM chats ORDER BY chat_id")


def test_strangers_get_a_polite_no_and_nothing_changes(monitor, telegram, capsys):
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    admins(monitor, 77)
    monitor.round(capsys)
    before = chats(monitor)
    stranger = 5005  # a private chat nobody configured
    for command in ("/start", "/subscribe stablecoin", "/unsubscribe e-hkd", "/stop", "/status"):
        telegram.push_command(stranger, command)
    telegram.push_command(stranger, "/help")
    telegram.push_command(stranger, "/topics")
    telegram.push_command(int(GROUP), "/start", user_id=5005)  # the stranger, inside a configured group
    assert monitor("bot", "--once", capsys=capsys)[0] == 0
    replies = sent_to(telegram, str(stranger))
    refusal = (
        "Sorry, this bot only takes that command from the chats it was set up for. Its operator can add "
        "you to <code>[telegram] admins</code> (your user id is 5005). /help lists what anyone can ask."
    )
    assert replies[:5] == [refusal] * 5  # /status too: its errors can name the operator's hosts
    assert "/subscribe" in replies[5] and "Topics" in replies[6]  # public read-only commands are answered
    assert "Subscribed." in sent_to(telegram, GROUP)[-1]  # the group is configured: any member may
    assert chats(monitor) == before  # the stranger's chat was never added


def test_a_strangers_odd_commands_are_unknown_and_the_bot_keeps_going(monitor, telegram, capsys):
    """Method names of the bot (/topic, /receiving, /bot) were called with what the stranger typed."""
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    stranger = 5005
    for command in ("/topic", "/receiving", "/topic_help x", "/bot", "/store", "/recent ²", "/help"):
        telegram.push_command(stranger, command)
    assert monitor("bot", "--once", capsys=capsys)[0] == 0
    replies = sent_to(telegram, str(stranger))
    assert len(replies) == 7
    for command, reply in zip(
        ("/topic", "/receiving", "/topic_help", "/bot", "/store"), replies, strict=False
    ):
        assert reply.startswith(f"Unknown command {command}. <b>hk-policy-monitor</b>")
    assert replies[5] == "No alerts yet for this chat's topics."  # /recent ²: the default count
    assert "/subscribe" in replies[6]


def test_an_admin_may_subscribe_any_chat_and_review_from_it(monitor, telegram, capsys):
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    admins(monitor, 77)
    monitor.round(capsys)
    team_room = -6006  # a new group, not in TELEGRAM_CHAT_IDS
    telegram.push_command(team_room, "/start", user_id=77)
    telegram.push_command(team_room, "/subscribe stablecoin", user_id=77)
    telegram.push_command(team_room, "/unsubscribe stablecoin", user_id=88)  # a member, not an admin
    monitor("bot", "--once", capsys=capsys)
    replies = sent_to(telegram, str(team_room))
    assert "Subscribed." in replies[0] and "This chat now receives: stablecoin" in replies[1]
    assert replies[2].startswith("Sorry, this bot only takes that command")
    assert (str(team_room), 1, '["stablecoin"]') in chats(monitor)

    monitor.round(capsys, ROUND2)  # the room now gets the stablecoin alert, with review buttons
    alert = [c for c in telegram.calls_for("sendMessage") if str(c.params["chat_id"]) == str(team_room)][-1]
    button = alert.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    telegram.push_callback_query(team_room, button, user_id=88)
    telegram.push_callback_query(team_room, button, user_id=77)
    monitor("bot", "--once", capsys=capsys)
    answers = [c.params.get("text") for c in telegram.calls_for("answerCallbackQuery")]
    change_id = button.split(":")[1]
    assert answers == [
        "Only the team's chats (TELEGRAM_CHAT_IDS) and [telegram] admins can review alerts.",
        f"Change {change_id} marked reviewed.",
    ]
    assert rows(monitor.db, "SELECT by FROM reviews") == [("telegram:@user77",)]


def test_a_person_whose_username_is_a_configured_channel_s_name_is_not_the_team(
    monitor, telegram, capsys, monkeypatch
):
    """TELEGRAM_CHAT_IDS may name a channel by @name; a freed name can be taken by anyone."""
    monkeypatch.setenv("TELEGRAM_CHAT_IDS", f"{GROUP},@user5005")  # the stub names chat 5005 user5005
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    telegram.push_command(5005, "/status")
    monitor("bot", "--once", capsys=capsys)
    assert sent_to(telegram, "5005")[0].startswith("Sorry, this bot only takes that command")


def test_in_a_channel_only_admins_review_since_every_reader_can_press_its_buttons(
    monitor, telegram, capsys, monkeypatch
):
    channel = "-1001000000001"  # the id the stub gives the first channel it sees by name
    monkeypatch.setenv("TELEGRAM_CHAT_IDS", channel)
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    admins(monitor, 77)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    (alert,) = [c for c in telegram.calls_for("sendMessage") if str(c.params["chat_id"]) == channel]
    button = alert.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    for user in (5005, 77):  # a reader, an admin; under a post of the channel (the stub's own message)
        telegram.push_callback_query("@hk_policy_alerts", button, message_id=999, user_id=user)
    monitor("bot", "--once", capsys=capsys)
    answers = [c.params.get("text") for c in telegram.calls_for("answerCallbackQuery")]
    assert answers == [
        "In a channel, only [telegram] admins can review alerts.",
        f"Change {button.split(':')[1]} marked reviewed.",
    ]
    assert rows(monitor.db, "SELECT by FROM reviews") == [("telegram:@user77",)]


def test_a_reply_telegram_refuses_does_not_hold_back_the_next_command(monitor, telegram, capsys):
    """A stranger who blocked the bot right after writing to it: that reply is refused (403); the
    team's command after it is answered in the same poll, not after a pause as for an outage."""
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    telegram.fail_next("sendMessage", "blocked", chat_id=5005)
    telegram.push_command(5005, "/help")
    telegram.push_command(int(GROUP), "/help")
    code, _, err = monitor("bot", "--once", capsys=capsys)
    assert code == 0 and "reading commands failed" not in err
    assert "/subscribe" in sent_to(telegram, GROUP)[-1]


def test_a_command_menu_telegram_refuses_is_given_up_and_commands_are_answered(monitor, telegram, capsys):
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    telegram.fail_next("setMyCommands", "parse_entities", times=None)  # a 400, every time
    telegram.push_command(int(GROUP), "/help")
    code, _, err = monitor("bot", "--once", capsys=capsys)
    assert code == 0 and "the command menu was refused" in err
    assert "/subscribe" in sent_to(telegram, GROUP)[-1]
    assert len(telegram.calls_for("setMyCommands")) == 2  # at start, then once more: not every poll


def test_a_forged_button_is_refused_and_the_bot_goes_on(monitor, telegram, capsys):
    """Button data comes from the client: a team member's own client can send anything."""
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    for forged in ("review:²:reviewed", "review:1:reviewed:x", "review::", "\x00" * 64):
        telegram.push_callback_query(int(GROUP), forged)
    telegram.push_command(int(GROUP), "/help")
    code, _, err = monitor("bot", "--once", capsys=capsys)
    assert code == 0, err
    answers = [c.params.get("text") for c in telegram.calls_for("answerCallbackQuery")]
    assert answers[0] == "Unknown button." and answers[3] == "Unknown button." and len(answers) == 4
    assert "/subscribe" in sent_to(telegram, GROUP)[-1]
    assert rows(monitor.db, "SELECT count(*) FROM reviews") == [(0,)]


def test_a_button_answers_in_the_words_of_telegram_not_of_the_terminal(monitor, telegram, capsys):
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    ((change_id,),) = rows(monitor.db, "SELECT id FROM changes")
    for data in ("review:999:reviewed", f"review:0{change_id}:reviewed"):
        telegram.push_callback_query(int(GROUP), data)
    monitor("bot", "--once", capsys=capsys)
    answers = [c.params.get("text") for c in telegram.calls_for("answerCallbackQuery")]
    assert answers == ["No change 999 in the change log.", f"Change {change_id} marked reviewed."]


@pytest.mark.parametrize("value", ['["@boss"]', "[0]", "123", "[true]", '["12a"]'])
def test_admins_must_be_user_ids(monitor, capsys, value):
    write_config(
        monitor, SFC_PRESS, settings=TEST_SETTINGS.replace("[telegram]\n", f"[telegram]\nadmins = {value}\n")
    )
    code, _, err = monitor("validate", capsys=capsys)
    assert code == 2
    assert "[telegram]: admins: must be a list of Telegram user ids (numbers such as 123456789)" in err


def test_a_chat_flooding_the_bot_gets_ten_answers_a_minute_and_one_notice(monitor, telegram, capsys):
    """Replies go out at once: hundreds of /help would draw Telegram's flood limits on the bot
    that sends the team's alerts."""
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    stranger = 5005
    for _ in range(14):
        telegram.push_command(stranger, "/help")
    telegram.push_command(stranger, "/topics")
    telegram.push_command(int(GROUP), "/topics")
    code, _, err = monitor("bot", "--once", capsys=capsys)
    assert code == 0
    replies = sent_to(telegram, str(stranger))
    assert len(replies) == 11
    assert all("/subscribe" in reply for reply in replies[:10])
    assert replies[10] == "Too many commands from this chat: the next ones get no answer for a minute."
    assert "Topics" in sent_to(telegram, GROUP)[-1]  # another chat's command is answered
    assert "telegram: chat 5005 sent over 10 commands in a minute: not answered for now" in err


def test_telegram_asking_for_quiet_to_one_chat_holds_only_its_replies(monitor, telegram, capsys):
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    stranger = 5005
    telegram.fail_next("sendMessage", "retry_after", chat_id=stranger, retry_after=30)
    for command in ("/help", "/topics", "/recent"):
        telegram.push_command(stranger, command)
    telegram.push_command(int(GROUP), "/topics")
    code, _, err = monitor("bot", "--once", capsys=capsys)
    assert code == 0
    assert sent_to(telegram, str(stranger)) == []  # the 429'd reply, then nothing while it lasts
    assert len([c for c in telegram.calls_for("sendMessage") if str(c.params["chat_id"]) == "5005"]) == 1
    assert "Topics" in sent_to(telegram, GROUP)[-1]
    assert "telegram: replies to chat 5005 paused for 30 s at Telegram's request" in err


def test_a_steady_flood_gets_ten_answers_and_one_notice_a_minute(monitor, telegram, capsys):
    """One /help a second for five minutes, on a clock the test moves: the notice says "no answer
    for a minute", and it is so; then the chat has its ten answers again."""
    import asyncio

    from monitor.bot import CommandBot
    from monitor.config import load_config
    from monitor.store import Store
    from monitor.telegram import TelegramEnv, make_bot

    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    now = [0.0]
    stranger = 5005

    async def flood() -> list[str]:
        bot = make_bot(TelegramEnv.from_environ(os.environ))
        store = Store.open(monitor.db)
        commands = CommandBot(bot, store, load_config(monitor.config), clock=lambda: now[0])
        async with bot:
            for second in range(300):
                now[0] = float(second)
                telegram.push_command(stranger, "/help")
                await commands.poll(timeout=0)
        store.close()
        return [m["text"] for m in telegram.sent if str(m["chat_id"]) == str(stranger)]

    replies = asyncio.run(flood())
    minutes = [replies[n : n + 11] for n in range(0, len(replies), 11)]
    notice = "Too many commands from this chat: the next ones get no answer for a minute."
    assert len(minutes) == 5  # 11 replies in each of the 5 minutes
    for minute in minutes:
        assert len(minute) == 11 and minute[-1] == notice and notice not in minute[:10]


def test_review_buttons_pressed_in_a_flood_are_budgeted_and_a_429_on_one_holds_no_one_else(
    monitor, telegram, capsys
):
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    alert = [c for c in telegram.calls_for("sendMessage") if str(c.params["chat_id"]) == GROUP][-1]
    button = alert.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    for _ in range(15):
        telegram.push_callback_query(int(GROUP), button, user_id=5005)
    monitor("bot", "--once", capsys=capsys)
    answers = [c.params.get("text") for c in telegram.calls_for("answerCallbackQuery")]
    assert len(answers) == 11 and answers[-1].startswith("Too many commands from this chat")

    telegram.fail_next("answerCallbackQuery", "retry_after", retry_after=30)
    telegram.push_callback_query(int(PRIVATE), button, user_id=5005)
    telegram.push_command(int(PRIVATE), "/topics")  # held with the button's chat
    telegram.push_command(5005, "/topics")  # another chat: answered
    code, _, err = monitor("bot", "--once", capsys=capsys)
    assert code == 0
    assert "Topics" in sent_to(telegram, "5005")[-1]
    assert not any("Topics" in text for text in sent_to(telegram, PRIVATE))
    assert f"telegram: replies to chat {PRIVATE} paused for 30 s at Telegram's request" in err


def test_a_team_chat_that_sent_stop_stays_stopped_across_restarts_until_start(monitor, telegram, capsys):
    """TELEGRAM_CHAT_IDS are re-enabled at each start (the operator may have fixed the bot's
    rights), but not one that asked to stop: the bot told it "stopped", and under cron every
    round is a start."""
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    telegram.push_command(int(GROUP), "/stop")
    monitor("bot", "--once", capsys=capsys)
    assert sent_to(telegram, GROUP)[-1] == "Alerts to this chat are stopped. /start subscribes again."
    code, _, err = monitor.round(capsys, ROUND2)  # a start: the new alert goes to PRIVATE only
    assert code == 0
    assert not any("joint circular" in text for text in sent_to(telegram, GROUP))
    assert any("joint circular" in text for text in sent_to(telegram, PRIVATE))
    stopped = f"telegram: chat {GROUP} of TELEGRAM_CHAT_IDS asked to stop with /stop: no alerts to it until /start there"
    assert stopped in err
    telegram.push_command(int(GROUP), "/start")
    monitor("bot", "--once", capsys=capsys)
    assert "Subscribed." in sent_to(telegram, GROUP)[-1]
    assert (GROUP, 1, None) in chats(monitor)  # subscribed again, to every topic


def test_subscribe_takes_several_topics_and_commands_for_another_bot_are_left_to_it(
    monitor, telegram, capsys
):
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    telegram.push_command(int(GROUP), "/subscribe e-hkd stablecoin")
    telegram.push_command(int(GROUP), "/unsubscribe e-hkd, bogus")  # one unknown name: nothing changes
    telegram.push_command(int(GROUP), "/recent@some_other_bot")  # a group with several bots
    telegram.push_command(int(GROUP), "/topics@hk_policy_monitor_bot")
    monitor("bot", "--once", capsys=capsys)
    replies = sent_to(telegram, GROUP)
    assert replies[0] == "This chat now receives: e-hkd, stablecoin. /start receives every topic again."
    assert replies[1].startswith("Name one or more topics: /unsubscribe ")
    assert len(replies) == 3 and "✅ e-hkd" in replies[2] and "✅ stablecoin" in replies[2]
    assert (GROUP, 1, '["e-hkd", "stablecoin"]') in chats(monitor)


def test_an_alert_reviewed_from_telegram_shows_who_did_it_under_it(monitor, telegram, capsys):
    """Without it, the rest of a group cannot see that someone already took the alert."""
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    alert = [m for m in telegram.sent if str(m["chat_id"]) == GROUP][-1]
    escalate = alert["reply_markup"]["inline_keyboard"][0][2]["callback_data"]
    change_id = escalate.split(":")[1]
    telegram.push_callback_query(int(GROUP), escalate, user_id=77)
    monitor("bot", "--once", capsys=capsys)
    # the pressed message at once, and the alert's copy in the other chat at the same delivery
    edit, copy = telegram.calls_for("editMessageReplyMarkup")
    assert str(edit.params["chat_id"]) == GROUP and edit.params["message_id"] == alert["message_id"]
    private_alert = [m for m in telegram.sent if str(m["chat_id"]) == PRIVATE][-1]
    assert str(copy.params["chat_id"]) == PRIVATE and copy.params["message_id"] == private_alert["message_id"]
    assert copy.params["reply_markup"] == edit.params["reply_markup"]
    rows_shown = [
        [(b["text"], b["callback_data"]) for b in row]
        for row in edit.params["reply_markup"]["inline_keyboard"]
    ]
    assert rows_shown == [
        [("⚠️ Escalated by @user77", f"review:{change_id}:show")],
        [("Reviewed", f"review:{change_id}:reviewed"), ("Dismiss", f"review:{change_id}:dismissed")],
    ]
    telegram.push_callback_query(int(GROUP), f"review:{change_id}:show", user_id=88)
    telegram.push_callback_query(int(GROUP), f"review:{change_id}:reviewed", user_id=88)
    monitor("bot", "--once", capsys=capsys)
    answers = [c.params.get("text") for c in telegram.calls_for("answerCallbackQuery")]
    assert answers[1:] == [f"Change {change_id} is escalated.", f"Change {change_id} marked reviewed."]
    last = telegram.calls_for("editMessageReplyMarkup")[-1].params["reply_markup"]["inline_keyboard"]
    assert [[b["text"] for b in row] for row in last] == [
        ["✅ Reviewed by @user88"]
    ]  # closed: no buttons left


def test_a_stopped_team_chat_is_not_turned_back_on_by_a_topic_choice(monitor, telegram, capsys):
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    for command in ("/stop", "/unsubscribe e-hkd", "/subscribe stablecoin", "/topics"):
        telegram.push_command(int(GROUP), command)
    monitor("bot", "--once", capsys=capsys)
    stopped = "Alerts to this chat are stopped (/stop). /start subscribes it again, to every topic."
    assert sent_to(telegram, GROUP)[1:] == [stopped] * 3
    monitor.round(capsys, ROUND2)
    assert not any("joint circular" in text for text in sent_to(telegram, GROUP))


def test_a_stopped_chat_taken_out_of_the_list_is_no_longer_the_team_s(monitor, telegram, capsys, monkeypatch):
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    telegram.push_command(int(GROUP), "/stop")
    monitor("bot", "--once", capsys=capsys)
    monkeypatch.setenv("TELEGRAM_CHAT_IDS", PRIVATE)  # the operator takes the group out
    telegram.push_command(int(GROUP), "/status", user_id=9999)
    telegram.push_command(int(GROUP), "/start", user_id=9999)
    monitor("bot", "--once", capsys=capsys)
    assert all(
        text.startswith("Sorry, this bot only takes that command") for text in sent_to(telegram, GROUP)[-2:]
    )
    assert (GROUP, 0, None) in chats(monitor)
    monkeypatch.setenv("TELEGRAM_CHAT_IDS", f"{PRIVATE},{GROUP}")  # put back: it still asked to stop
    _, _, err = monitor.round(capsys, ROUND2)
    assert f"telegram: chat {GROUP} of TELEGRAM_CHAT_IDS asked to stop with /stop" in err
    assert not any("joint circular" in text for text in sent_to(telegram, GROUP))


@pytest.mark.parametrize("notice", ["in the old group", "in the new supergroup"])
def test_a_stopped_group_that_becomes_a_supergroup_can_start_again_under_its_new_id(
    monitor, telegram, capsys, notice
):
    """A stopped group is never sent to: Telegram's service message is what tells of its new id."""
    import time

    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    monitor.round(capsys)
    telegram.push_command(int(GROUP), "/stop")
    monitor("bot", "--once", capsys=capsys)
    supergroup = -1001234567
    if notice == "in the old group":
        chat, field = {"id": int(GROUP), "type": "group", "title": "Team"}, {"migrate_to_chat_id": supergroup}
    else:
        chat, field = (
            {"id": supergroup, "type": "supergroup", "title": "Team"},
            {"migrate_from_chat_id": int(GROUP)},
        )
    telegram.push_update({"message": {
        "message_id": 900, "date": int(time.time()), "chat": chat,
        "from": {"id": 4242, "is_bot": False, "first_name": "Amy"}, **field,
    }})  # fmt: skip
    monitor("bot", "--once", capsys=capsys)
    _, _, err = monitor.round(capsys)  # a start: the old id is followed to the new one, still stopped
    assert f"telegram: chat {supergroup} of TELEGRAM_CHAT_IDS asked to stop with /stop" in err
    telegram.push_command(supergroup, "/start")
    monitor("bot", "--once", capsys=capsys)
    assert "Subscribed." in sent_to(telegram, str(supergroup))[-1]
    monitor.round(capsys, ROUND2)
    assert any("joint circular" in text for text in sent_to(telegram, str(supergroup)))


def test_with_group_admins_only_a_team_group_s_members_cannot_change_what_it_receives(
    monitor, telegram, capsys
):
    """Any member may by default; a team that wants it so lets only the group's admins."""
    write_config(monitor, SFC_PRESS, settings=TEST_SETTINGS)
    config = monitor.config.read_text(encoding="utf-8")
    monitor.config.write_text(
        config.replace("[telegram]\n", "[telegram]\ngroup_admins_only = true\n"), encoding="utf-8"
    )
    telegram.group_admins.add((int(GROUP), 31))
    monitor.round(capsys)
    telegram.push_command(int(GROUP), "/stop", user_id=88)  # a member
    telegram.push_command(int(GROUP), "/topics", user_id=88)  # reading is anyone's
    telegram.push_command(int(GROUP), "/subscribe stablecoin", user_id=31)  # the group's admin
    telegram.push_command(int(PRIVATE), "/unsubscribe e-hkd")  # a private chat is its own admin
    monitor("bot", "--once", capsys=capsys)
    replies = sent_to(telegram, GROUP)
    assert (
        replies[0]
        == "In this group, only its admins can change what it receives ([telegram] group_admins_only)."
    )
    assert "Topics" in replies[1] and replies[2].startswith("This chat now receives: stablecoin.")
    assert sent_to(telegram, PRIVATE)[-1].startswith("This chat now receives: ")
    assert (GROUP, 1, '["stablecoin"]') in chats(monitor)
    assert [c.params["user_id"] for c in telegram.calls_for("getChatMember")] == [88, 31]
    import time  # an admin writing anonymously, as the group itself: only admins can

    group = {"id": int(GROUP), "type": "group", "title": "Team"}
    telegram.push_update({"message": {
        "message_id": 901, "date": int(time.time()), "chat": group, "sender_chat": group, "text": "/stop",
        "from": {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"},
        "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
    }})  # fmt: skip
    monitor("bot", "--once", capsys=capsys)
    assert sent_to(telegram, GROUP)[-1] == "Alerts to this chat are stopped. /start subscribes again."

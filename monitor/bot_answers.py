"""The answers to the bot's commands, as Telegram HTML: what a chat receives, the latest alerts,
the sources' health. The store and the config in; no Telegram call here."""

from __future__ import annotations

import html
import logging

from monitor.errors import MonitorError
from monitor.models import Config
from monitor.render import hk_time
from monitor.store import Store
from monitor.telegram_render import digest_html

log = logging.getLogger("monitor.bot")
COMMANDS = (
    ("start", "Subscribe this chat to alerts"),
    ("stop", "Stop alerts to this chat"),
    ("topics", "List the topics and what this chat receives"),
    ("subscribe", "Receive a topic: /subscribe stablecoin"),
    ("unsubscribe", "Stop a topic: /unsubscribe e-hkd"),
    ("recent", "The last alerts for this chat: /recent 5"),
    ("status", "Each source: last success, last error, failures"),
    ("help", "What this bot does"),
)
# Commands that change what the bot sends, or to whom, and /status (its errors can name the
# operator's proxy or hosts): only from a chat of TELEGRAM_CHAT_IDS or a user of [telegram]
# admins. Anyone may ask /help, /topics and /recent (the regulators' public releases).
TEAM_ONLY = frozenset({"start", "stop", "subscribe", "unsubscribe", "status"})
COMMAND_NAMES = frozenset(name for name, _ in COMMANDS)
NOT_WHILE_STOPPED = frozenset({"topics", "subscribe", "unsubscribe"})  # a topic choice would turn it on
STOPPED_HERE = "Alerts to this chat are stopped (/stop). /start subscribes it again, to every topic."


class Answers:
    """What the bot replies to each command; whether the asker may is decided by the caller."""

    def __init__(self, store: Store, config: Config):
        self._store, self._config = store, config

    def answer(self, chat: str, text: str, trusted: bool = False, user_id: int | None = None) -> str:
        """The HTML reply to one command from one chat; `trusted`: see `CommandBot.trusted`."""
        words = text.split()
        command, _ = command_of(text)
        if command not in COMMAND_NAMES:  # never a lookup by what a stranger typed: /topic is a helper
            return f"Unknown command {html.escape(words[0])}. " + self._help(chat, [])
        if command in TEAM_ONLY and not trusted:
            return _refusal(user_id)
        if command in NOT_WHILE_STOPPED and self._store.stopped(chat):
            return STOPPED_HERE
        try:
            return getattr(self, f"_{command}")(chat, words[1:])
        except MonitorError as exc:
            return html.escape(str(exc)[:300])
        except Exception:  # a bug answering one command must not stop the run that alerts
            log.exception("telegram: answering %s failed", command)
            return "Sorry, that command failed; the operator can see why in the monitor's log."

    def _start(self, chat: str, args: list[str]) -> str:
        self._store.subscribe(chat)
        return (
            "<b>Subscribed.</b> This chat gets an alert within minutes when the SFC, the HKMA or the "
            "FSTB publishes something about: " + ", ".join(self._config.topics) + ".\n"
            "/topics to narrow it down, /recent for the latest alerts, /stop to unsubscribe."
        )

    def _stop(self, chat: str, args: list[str]) -> str:
        self._store.stop_chat(chat)
        return "Alerts to this chat are stopped. /start subscribes again."

    def _topics(self, chat: str, args: list[str]) -> str:
        receiving = self._receiving(chat)
        lines = [f"{'✅' if name in receiving else '▫️'} {html.escape(name)}" for name in self._config.topics]
        return "<b>Topics</b> (✅ = this chat receives it)\n" + "\n".join(lines)

    def _subscribe(self, chat: str, args: list[str]) -> str:
        topics = self._topics_named(args)
        if not topics:
            return self._topic_help("subscribe")
        current = self._store.chat_topics(chat)
        chosen = set(topics) if current is None else set(current) | set(topics)
        self._store.subscribe(chat, frozenset(chosen))
        return f"This chat now receives: {', '.join(sorted(chosen))}. /start receives every topic again."

    def _unsubscribe(self, chat: str, args: list[str]) -> str:
        topics = self._topics_named(args)
        if not topics:
            return self._topic_help("unsubscribe")
        chosen = self._receiving(chat) - set(topics)
        self._store.subscribe(chat, frozenset(chosen))
        left = ", ".join(sorted(chosen)) or "no topic (use /subscribe or /start)"
        return f"This chat now receives: {left}."

    def _recent(self, chat: str, args: list[str]) -> str:
        count = int(args[0]) if args and args[0].isascii() and args[0].isdigit() else 5  # not "²"
        recent = self._store.recent(self._store.chat_topics(chat), max(1, min(count, 20)))
        return digest_html(recent, "latest") if recent else "No alerts yet for this chat's topics."

    def _status(self, chat: str, args: list[str]) -> str:
        health = self._store.health()
        lines = ["<b>Sources</b>"]
        for source in self._config.sources:
            state = health.get(source.id)
            if state is None:
                lines.append(f"▫️ {source.id}: not polled yet")
            elif state.consecutive_failures:
                error = html.escape(state.last_error[:200])
                lines.append(
                    f"⚠️ {source.id}: {state.consecutive_failures} failures in a row; last error: {error}"
                )
            else:
                lines.append(f"✅ {source.id}: last success {hk_time(state.last_success_at)}")
        return "\n".join(lines)

    def _help(self, chat: str, args: list[str]) -> str:
        lines = [f"/{name} – {html.escape(text)}" for name, text in COMMANDS]
        return "<b>hk-policy-monitor</b> watches the SFC, the HKMA and the FSTB.\n" + "\n".join(lines)

    def _receiving(self, chat: str) -> set[str]:
        current = self._store.chat_topics(chat)
        return set(self._config.topics) if current is None else set(current)

    def _topics_named(self, args: list[str]) -> list[str]:
        """The topics named (`/subscribe e-hkd stablecoin`, commas too); none unless every name is one."""
        names = [name.lower() for arg in args for name in arg.split(",") if name]
        return names if names and all(name in self._config.topics for name in names) else []

    def _topic_help(self, command: str) -> str:
        return f"Name one or more topics: /{command} " + " | ".join(self._config.topics)


def command_of(text: str) -> tuple[str, str]:
    """("recent", "otherbot") from "/recent@otherbot 5": the command and the bot it is addressed to."""
    name, _, addressee = text.split()[0][1:].partition("@")
    return name.lower(), addressee


def _refusal(user_id: int | None) -> str:
    """A polite no to a stranger, saying what the operator would need to change."""
    who = f" (your user id is {user_id})" if user_id else ""
    return (
        "Sorry, this bot only takes that command from the chats it was set up for. "
        f"Its operator can add you to <code>[telegram] admins</code>{who}. /help lists what anyone can ask."
    )

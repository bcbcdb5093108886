"""A local stand-in for the Telegram Bot API, for tests.

It is a real HTTP server on 127.0.0.1 (random free port) that python-telegram-bot
talks to through ``Bot(token, base_url=stub.base_url)``::

    with TelegramStub(token="123:ABC") as tg:
        bot = telegram.Bot("123:ABC", base_url=tg.base_url)
        tg.fail_next("sendMessage", "retry_after", retry_after=3)
        ...
        assert tg.sent[0]["text"] == "..."

What it does, as the real Bot API does it:

* paths ``/bot<TOKEN>/<method>`` (method names case-insensitive), GET or POST, bodies as
  ``application/x-www-form-urlencoded`` (what PTB sends), ``application/json`` or
  ``multipart/form-data``; nested objects (``reply_markup``, ``commands`` ...) arriving as
  JSON strings are decoded, numeric ``chat_id``/``message_id``/... become ints;
* answers ``{"ok": true, "result": ...}`` or
  ``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}``;
* a wrong token -> 401 Unauthorized; an unknown method -> 404 Not Found;
* ``sendMessage`` parses HTML like Telegram (tdlib's rules and error texts: unknown tag,
  unbalanced tags, bad attributes -> 400 "can't parse entities: ..."), strips the markup,
  measures the result in UTF-16 code units and refuses more than 4096 with
  400 "message is too long".  MarkdownV2/Markdown are not validated (raw text is measured).

Failure injection (``fail_next``) is a FIFO queue per method and optionally per chat.
Everything is bounded: long polls are capped (``max_long_poll``), hangs last
``seconds`` at most and are cut short by ``stop()``, idle keep-alive connections are
closed after ``idle_timeout`` seconds, and ``stop()`` returns within about two seconds.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import itertools
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "Call",
    "HtmlParseError",
    "TelegramStub",
    "parse_html",
    "utf16_len",
]

MAX_MESSAGE_LENGTH = 4096  # UTF-16 code units, after entity parsing

FAILURE_KINDS = frozenset(
    {
        "retry_after",  # 429 + parameters.retry_after
        "parse_entities",  # 400 can't parse entities
        "blocked",  # 403 bot was blocked by the user
        "migrated",  # 400 + parameters.migrate_to_chat_id
        "bad_gateway",  # 502 with an HTML body (a proxy's answer)
        "hang",  # hold the request `seconds`, then drop it (or process it: deliver=True)
        "text_too_long",  # 400 message is too long
        "chat_not_found",  # 400 chat not found
        "conflict",  # 409 terminated by other getUpdates request
        "server_error",  # 500 Internal Server Error (JSON)
        "reset",  # TCP reset once the request has been read
        "custom",  # status=, description=, parameters= of your choosing
    }
)

_BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    b"</body>\r\n</html>\r\n"
)

_PARSE_ENTITIES_DEFAULT = 'Unsupported start tag "foo" at byte offset 12'
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Parameter normalisation (PTB sends every non-string value JSON-encoded in a form field).
_INT_KEYS = _words(
    "message_id offset limit timeout message_thread_id from_chat_id user_id cache_time "
    "reply_to_message_id max_connections"
)
_BOOL_KEYS = _words(
    "disable_notification protect_content disable_web_page_preview "
    "allow_sending_without_reply show_alert drop_pending_updates allow_paid_broadcast "
    "is_personal"
)
_JSON_KEYS = _words(
    "reply_markup entities caption_entities commands allowed_updates link_preview_options "
    "reply_parameters scope media results options prices"
)
_INT_RE = re.compile(r"-?\d+")


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit Telegram counts in."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


# --------------------------------------------------------------------------- HTML parse mode


class HtmlParseError(ValueError):
    """Telegram's own error text for HTML it refuses (without the "Bad Request" prefix)."""


_ALLOWED_TAGS = _words("a b strong i em u ins s strike del code pre tg-spoiler tg-emoji span blockquote")
_SIMPLE_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_SPACES = frozenset(" \t\r\n\v\0")


@dataclass
class _OpenTag:
    tag: str
    start: int  # UTF-16 offset in the output text
    attrs: dict[str, str]
    language: str | None = None


def _decode_html_entity(text: str, pos: int) -> tuple[str | None, int]:
    """tdlib's decode_html_entity: &lt; &gt; &amp; &quot; and numeric references
    (the ';' is optional); anything else is left as a literal '&'."""
    n = len(text)
    end = pos + 1
    if end < n and text[end] == "#":
        end += 1
        digits = "0123456789"
        base = 10
        if end < n and text[end] in "xX":
            end += 1
            digits = "0123456789abcdefABCDEF"
            base = 16
        start = end
        while end < n and text[end] in digits:
            end += 1
        if end == start or end - pos >= 10:
            return None, pos
        code = int(text[start:end], base)
        if code == 0 or code >= 0x10FFFF:
            return None, pos
        if 0xD800 <= code <= 0xDFFF:
            raise HtmlParseError(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            )
        char = chr(code)
    else:
        while end < n and text[end].isascii() and text[end].isalpha():
            end += 1
        char = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}.get(text[pos + 1 : end])
        if char is None:
            return None, pos
    if end < n and text[end] == ";":
        end += 1
    return char, end


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-flavoured HTML into ``(plain_text, entities)``, the way tdlib does.

    Entity offsets/lengths are in UTF-16 code units.  Raises :class:`HtmlParseError` with
    Telegram's message (e.g. ``Unsupported start tag "foo" at byte offset 12``).
    """

    def byte_offset(index: int) -> int:
        return len(text[:index].encode("utf-8", "surrogatepass"))

    out: list[str] = []
    entities: list[dict[str, Any]] = []
    stack: list[_OpenTag] = []
    u16 = 0
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            char, nxt = _decode_html_entity(text, i)
            if char is not None:
                out.append(char)
                u16 += utf16_len(char)
                i = nxt
                continue
        if c != "<":
            out.append(c)
            u16 += 2 if ord(c) > 0xFFFF else 1
            i += 1
            continue

        begin = i
        i += 1
        if i < n and text[i] == "/":  # end tag
            if not stack:
                raise HtmlParseError(f"Unexpected end tag at byte offset {byte_offset(begin)}")
            i += 1
            name_start = i
            while i < n and text[i] not in _SPACES and text[i] != ">":
                i += 1
            end_name = text[name_start:i].lower()
            while i < n and text[i] in _SPACES:
                i += 1
            if i >= n or text[i] != ">":
                raise HtmlParseError(f"Unclosed end tag at byte offset {byte_offset(begin)}")
            i += 1
            top = stack.pop()
            if end_name and end_name != top.tag:
                raise HtmlParseError(
                    f"Unmatched end tag at byte offset {byte_offset(begin)}, "
                    f'expected "</{top.tag}>", found "</{end_name}>"'
                )
            length = u16 - top.start
            if length > 0:
                entities.extend(_entities_for(top, length, "".join(out), stack))
            continue

        name_start = i
        while i < n and text[i] not in _SPACES and text[i] != ">":
            i += 1
        if i >= n:
            raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
        tag = text[name_start:i].lower()
        if tag not in _ALLOWED_TAGS:
            raise HtmlParseError(f'Unsupported start tag "{tag}" at byte offset {byte_offset(begin)}')
        attrs: dict[str, str] = {}
        while True:
            while i < n and text[i] in _SPACES:
                i += 1
            if i >= n:
                raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
            if text[i] == ">":
                break
            attr_start = i
            while i < n and text[i] not in _SPACES and text[i] not in "=>":
                i += 1
            attr = text[attr_start:i].lower()
            if not attr:
                raise HtmlParseError(
                    f'Empty attribute name in the tag "{tag}" at byte offset {byte_offset(begin)}'
                )
            while i < n and text[i] in _SPACES:
                i += 1
            if i >= n or text[i] != "=":
                if tag == "blockquote" and attr == "expandable":
                    attrs[attr] = ""
                    continue
                raise HtmlParseError(
                    "Expected equal sign in declaration of an attribute of the tag "
                    f'"{tag}" at byte offset {byte_offset(begin)}'
                )
            i += 1
            while i < n and text[i] in _SPACES:
                i += 1
            if i >= n:
                raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {byte_offset(begin)}')
            if text[i] not in "'\"":
                token_start = i
                while i < n and ((text[i].isascii() and text[i].isalnum()) or text[i] in ".-"):
                    i += 1
                value = text[token_start:i].lower()
                if i < n and text[i] not in _SPACES and text[i] != ">":
                    raise HtmlParseError(
                        f"Unexpected end of name token at byte offset {byte_offset(token_start)}"
                    )
            else:
                quote = text[i]
                i += 1
                chars: list[str] = []
                while i < n and text[i] != quote:
                    if text[i] == "&":
                        char, nxt = _decode_html_entity(text, i)
                        if char is not None:
                            chars.append(char)
                            i = nxt
                            continue
                    chars.append(text[i])
                    i += 1
                if i >= n:
                    raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
                i += 1
                value = "".join(chars)
            if i >= n:
                raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
            attrs[attr] = value
        i += 1  # the '>'
        if tag == "span" and attrs.get("class") != "tg-spoiler":
            raise HtmlParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(begin)}'
            )
        stack.append(_OpenTag(tag, u16, attrs))

    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _entities_for(
    tag: _OpenTag, length: int, text_so_far: str, stack: list[_OpenTag]
) -> list[dict[str, Any]]:
    base = {"offset": tag.start, "length": length}
    if tag.tag in _SIMPLE_ENTITY:
        return [{"type": _SIMPLE_ENTITY[tag.tag], **base}]
    if tag.tag == "blockquote":
        kind = "expandable_blockquote" if "expandable" in tag.attrs else "blockquote"
        return [{"type": kind, **base}]
    if tag.tag == "tg-emoji":
        return [{"type": "custom_emoji", "custom_emoji_id": tag.attrs.get("emoji-id", ""), **base}]
    if tag.tag == "code":
        css = tag.attrs.get("class", "")
        language = css[len("language-") :] if css.startswith("language-") else ""
        if language and stack and stack[-1].tag == "pre":
            stack[-1].language = language  # <pre><code class="language-x"> is one entity
            return []
        return [{"type": "code", **base}]
    if tag.tag == "pre":
        entity = {"type": "pre", **base}
        if tag.language:
            entity["language"] = tag.language
        return [entity]
    if tag.tag == "a":
        url = tag.attrs.get("href", "")
        if not url:
            inner = text_so_far.encode("utf-16-le", "surrogatepass")[tag.start * 2 :]
            url = inner.decode("utf-16-le", "surrogatepass")
            if not re.match(r"^(https?://)?[\w.-]+\.[a-z]{2,}(/\S*)?$", url, re.I):
                return []
        return [{"type": "text_link", "url": url, **base}]
    return []


def _strip_text(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram trims leading/trailing whitespace of a message; keep entities in range."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    shift = utf16_len(text[: len(text) - len(text.lstrip())])
    limit = utf16_len(stripped)
    kept = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, limit)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


# --------------------------------------------------------------------------- records


@dataclass
class Call:
    """One request the stub received."""

    method: str  # canonical name when known ("sendMessage"), else as sent
    params: dict[str, Any]  # normalised parameters (see module docstring)
    time: float  # time.monotonic() at receipt
    wall_time: float = 0.0  # time.time() at receipt
    status: int | None = None  # HTTP status answered; 0 = connection dropped/reset
    description: str | None = None  # error description, if any
    failure: str | None = None  # injected failure kind, if any


@dataclass
class _Failure:
    method: str  # lower-case, or "*"
    kind: str
    chat_id: int | str | None
    remaining: int | None  # None = until clear_failures()
    options: dict[str, Any] = field(default_factory=dict)
    when: Callable[[dict[str, Any]], bool] | None = None  # only calls whose parameters match


class _ApiError(Exception):
    def __init__(self, status: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def _norm_chat_id(value: Any) -> int | str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    value = str(value).strip()
    if _INT_RE.fullmatch(value):
        return int(value)
    return value


def _normalise(params: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, str):
            if key == "chat_id":
                value = _norm_chat_id(value)
            elif key in _INT_KEYS and _INT_RE.fullmatch(value.strip()):
                value = int(value)
            elif key in _BOOL_KEYS and value.strip().lower() in ("true", "false"):
                value = value.strip().lower() == "true"
            elif key in _JSON_KEYS:
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
        result[key] = value
    return result


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # PTB opens many connections at once (pool size 256)
    allow_reuse_address = True
    stub: TelegramStub

    def handle_error(self, request, client_address) -> None:  # quiet, but keep stub bugs
        import sys

        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, OSError):
            with self.stub.lock:
                self.stub.errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx/1.18.0"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        self.timeout = self.server.stub.idle_timeout
        super().setup()
        # Headers and body leave in two writes: without this, Nagle's algorithm holds the body
        # until the client's delayed ACK, 40 ms per call (a real Bot API answers in one go).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.stub._register(self)

    def finish(self) -> None:
        try:
            with contextlib.suppress(OSError):
                super().finish()
        finally:
            self.server.stub._unregister(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.server.stub._serve(self)

    do_GET = do_POST


_REFUSED_LOCK = threading.Lock()
_REFUSED_SOCKET: socket.socket | None = None


# --------------------------------------------------------------------------- the stub


class TelegramStub:
    """A fake Telegram Bot API server.  See the module docstring."""

    def __init__(
        self,
        token: str = "123:ABC",
        *,
        username: str = "hk_policy_monitor_bot",
        first_name: str = "HK Policy Monitor",
        max_long_poll: float = 1.0,
        hang_seconds: float = 5.0,
        idle_timeout: float = 30.0,
    ) -> None:
        self.token = token
        prefix = token.split(":", 1)[0]
        self.bot_id = int(prefix) if prefix.isdigit() else 1
        self.username = username
        self.first_name = first_name
        # (chat id, user id) pairs getChatMember answers "administrator" for; everyone else is a member
        self.group_admins: set[tuple[int, int]] = set()
        self.max_long_poll = max_long_poll
        self.hang_seconds = hang_seconds
        self.idle_timeout = idle_timeout

        self.lock = threading.RLock()
        self._cond = threading.Condition(self.lock)
        self.calls: list[Call] = []
        self.sent: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []  # exceptions inside the stub itself

        self._failures: list[_Failure] = []
        self._down: str | None = None
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(10_000)
        self._callback_ids = itertools.count(1)
        self._message_ids: dict[int, int] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._channels: dict[str, int] = {}
        self._handlers: set[_Handler] = set()
        self._stopping = threading.Event()
        self._stopped = False

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/bot"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"telegram-stub:{self.port}",
            daemon=True,
        )
        self._thread.start()

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> TelegramStub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server; wakes hung requests and long polls; idempotent; bounded (~2 s)."""
        with self.lock:
            if self._stopped:
                return
            self._stopped = True
            self._stopping.set()
            self._cond.notify_all()
            handlers = list(self._handlers)
        self._server.shutdown()
        for handler in handlers:
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(timeout=2.0)
        deadline = time.monotonic() + 1.0
        with self._cond:
            while self._handlers and time.monotonic() < deadline:
                self._cond.wait(timeout=0.05)

    def _register(self, handler: _Handler) -> None:
        with self.lock:
            self._handlers.add(handler)

    def _unregister(self, handler: _Handler) -> None:
        with self.lock:
            self._handlers.discard(handler)
            self._cond.notify_all()

    @staticmethod
    def refused_base_url() -> str:
        """A base_url on 127.0.0.1 where nothing listens (connection refused).

        The port stays reserved by a bound, non-listening socket for the life of the
        process, so nothing else can start listening there.
        """
        global _REFUSED_SOCKET
        with _REFUSED_LOCK:
            if _REFUSED_SOCKET is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind(("127.0.0.1", 0))
                _REFUSED_SOCKET = sock
            port = _REFUSED_SOCKET.getsockname()[1]
        return f"http://127.0.0.1:{port}/bot"

    # ----------------------------------------------------------------- switches

    def down(self, mode: str = "reset") -> None:
        """Simulate Telegram being unreachable: every request is answered with a TCP reset
        (``mode="reset"``) or a proxy's HTML 502 (``mode="502"``) until :meth:`up`."""
        if mode not in ("reset", "502"):
            raise ValueError(f"mode must be 'reset' or '502', not {mode!r}")
        with self.lock:
            self._down = mode

    def up(self) -> None:
        """End :meth:`down`."""
        with self.lock:
            self._down = None

    @property
    def is_down(self) -> bool:
        return self._down is not None

    def fail_next(
        self,
        method: str,
        kind: str,
        chat_id: int | str | None = None,
        times: int | None = 1,
        *,
        retry_after: int = 1,
        migrate_to_chat_id: int | None = None,
        seconds: float | None = None,
        deliver: bool = False,
        status: int = 400,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Queue a failure for the next ``times`` calls of ``method`` ("*" = any method),
        optionally only for ``chat_id`` and only for calls whose parameters satisfy ``when``.
        ``times=None`` means until :meth:`clear_failures`.
        Queued failures are consumed in the order they were queued.

        Kinds: retry_after (429, ``retry_after``), parse_entities (400), blocked (403),
        migrated (400, ``migrate_to_chat_id``), bad_gateway (502 HTML), hang (held for
        ``seconds``, default ``hang_seconds``; then dropped, or processed normally when
        ``deliver=True``, i.e. a lost response), text_too_long (400), chat_not_found (400),
        conflict (409), server_error (500), reset (TCP reset), custom (``status``,
        ``description``, ``parameters``).  ``description`` overrides any kind's text.
        """
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; known: {sorted(FAILURE_KINDS)}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        options = {
            "retry_after": retry_after,
            "migrate_to_chat_id": migrate_to_chat_id,
            "seconds": self.hang_seconds if seconds is None else seconds,
            "deliver": deliver,
            "status": status,
            "description": description,
            "parameters": parameters,
        }
        with self.lock:
            self._failures.append(
                _Failure(method.lower(), kind, _norm_chat_id(chat_id), times, options, when)
            )

    def clear_failures(self) -> None:
        """Forget every queued failure."""
        with self.lock:
            self._failures.clear()

    @property
    def pending_failures(self) -> int:
        """How many queued failure entries are left (an unlimited one counts as one)."""
        with self.lock:
            return len(self._failures)

    # ----------------------------------------------------------------- updates

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an Update for getUpdates (an ``update_id`` is assigned if missing)."""
        update = dict(update)
        with self.lock:
            if "update_id" not in update:
                update["update_id"] = next(self._update_ids)
            self._updates.append(update)
            self._cond.notify_all()
        return update

    def push_message(
        self,
        chat_id: int | str,
        text: str,
        user_id: int | None = None,
        *,
        username: str | None = None,
        first_name: str = "Test",
    ) -> dict[str, Any]:
        """Queue an incoming text message (a leading /command gets a bot_command entity)."""
        chat_id = _norm_chat_id(chat_id)
        with self.lock:
            chat = self._chat(chat_id)
            if user_id is None:
                user_id = chat["id"] if chat["type"] == "private" else 4242
            message: dict[str, Any] = {
                "message_id": self._next_message_id(chat["id"]),
                "from": self._user(user_id, username, first_name),
                "chat": chat,
                "date": int(time.time()),
                "text": text,
            }
            if text.startswith("/"):
                command = text.split(maxsplit=1)[0] if text.strip() else text
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
            self._messages[(chat["id"], message["message_id"])] = message
            return self.push_update({"message": message})

    def push_command(
        self,
        chat_id: int | str,
        text: str,
        user_id: int | None = None,
        *,
        username: str | None = None,
        first_name: str = "Test",
    ) -> dict[str, Any]:
        """Queue a realistic Update carrying a /command (``"start"`` becomes ``"/start"``)."""
        if not text.startswith("/"):
            text = "/" + text
        return self.push_message(chat_id, text, user_id, username=username, first_name=first_name)

    def push_callback_query(
        self,
        chat_id: int | str,
        data: str,
        message_id: int | None = None,
        user_id: int | None = None,
    ) -> dict[str, Any]:
        """Queue a callback_query (an inline button press) on ``message_id`` (default: the
        last message the bot sent to that chat)."""
        chat_id = _norm_chat_id(chat_id)
        with self.lock:
            chat = self._chat(chat_id)
            if message_id is None:
                mine = [m for (c, _), m in self._messages.items() if c == chat["id"] and self._sent_by_bot(m)]
                message_id = mine[-1]["message_id"] if mine else self._next_message_id(chat["id"])
            message = self._messages.get((chat["id"], message_id)) or {
                "message_id": message_id,
                "from": self.bot_user(),
                "chat": chat,
                "date": int(time.time()),
                "text": "(message)",
            }
            if user_id is None:
                user_id = chat["id"] if chat["type"] == "private" else 4242
            query = {
                "id": str(next(self._callback_ids)),
                "from": self._user(user_id, None, "Test"),
                "message": message,
                "chat_instance": str(abs(chat["id"])),
                "data": data,
            }
            return self.push_update({"callback_query": query})

    def _sent_by_bot(self, message: dict[str, Any]) -> bool:
        return "sender_chat" in message or message.get("from", {}).get("id") == self.bot_id

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by a getUpdates offset."""
        with self.lock:
            return list(self._updates)

    # ----------------------------------------------------------------- inspection

    def bot_user(self) -> dict[str, Any]:
        """The User object getMe returns."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def calls_for(self, method: str) -> list[Call]:
        """Recorded calls of ``method`` (case-insensitive), oldest first."""
        with self.lock:
            return [c for c in self.calls if c.method.lower() == method.lower()]

    def get_message(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """The current state of a message the stub knows (sent, edited or pushed)."""
        with self.lock:
            chat = self._chat(_norm_chat_id(chat_id))
            return self._messages.get((chat["id"], message_id))

    def wait_for_calls(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Block until ``count`` calls of ``method`` have been received and answered;
        raises AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                calls = [c for c in self.calls_for(method) if c.status is not None]
                if len(calls) >= count:
                    return calls
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} {method} call(s) within {timeout}s, got {len(calls)}"
                    )
                self._cond.wait(timeout=min(remaining, 0.1))

    def wait_sent(self, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until ``sent`` holds ``count`` messages; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.sent) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} sent message(s) within {timeout}s, got {len(self.sent)}"
                    )
                self._cond.wait(timeout=min(remaining, 0.1))
            return list(self.sent)

    # ----------------------------------------------------------------- chats & messages

    def _user(self, user_id: int, username: str | None, first_name: str) -> dict[str, Any]:
        return {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "username": username or f"user{user_id}",
            "language_code": "en",
        }

    def _chat(self, chat_id: int | str | None) -> dict[str, Any]:
        if isinstance(chat_id, str):  # "@channelusername"
            name = chat_id.lstrip("@")
            if name not in self._channels:
                self._channels[name] = -1_001_000_000_000 - len(self._channels) - 1
            return {
                "id": self._channels[name],
                "type": "channel",
                "title": name,
                "username": name,
            }
        if chat_id is None:
            raise _ApiError(400, "Bad Request: chat_id is empty")
        if chat_id > 0:
            return {
                "id": chat_id,
                "type": "private",
                "first_name": "Test",
                "username": f"user{chat_id}",
            }
        if chat_id <= -1_000_000_000_000:
            return {"id": chat_id, "type": "supergroup", "title": f"Supergroup {chat_id}"}
        return {"id": chat_id, "type": "group", "title": f"Group {chat_id}"}

    def _next_message_id(self, chat_numeric_id: int) -> int:
        self._message_ids[chat_numeric_id] = self._message_ids.get(chat_numeric_id, 0) + 1
        return self._message_ids[chat_numeric_id]

    def _render(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """Validate text + parse_mode like Telegram; return (plain text, entities)."""
        text = params.get("text")
        if text is None or text == "":
            raise _ApiError(400, "Bad Request: message text is empty")
        text = str(text)
        parse_mode = str(params.get("parse_mode") or "").lower()
        if parse_mode == "html":
            try:
                plain, entities = parse_html(text)
            except HtmlParseError as exc:
                raise _ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        else:
            plain = text
            given = params.get("entities")
            entities = [
                e
                for e in (given if isinstance(given, list) else [])
                if isinstance(e, dict)
                and isinstance(e.get("offset"), int)
                and isinstance(e.get("length"), int)
            ]
        plain, entities = _strip_text(plain, entities)
        if not plain:
            raise _ApiError(400, "Bad Request: message text is empty")
        if utf16_len(plain) > MAX_MESSAGE_LENGTH:
            raise _ApiError(400, "Bad Request: message is too long")
        return plain, entities

    @staticmethod
    def _inline_markup(params: dict[str, Any]) -> dict[str, Any] | None:
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and markup.get("inline_keyboard"):
            return markup
        return None

    # ----------------------------------------------------------------- API methods

    def _api_get_me(self, params: dict[str, Any]) -> Any:
        return self.bot_user()

    def _api_send_message(self, params: dict[str, Any]) -> Any:
        chat = self._chat(params.get("chat_id"))
        plain, entities = self._render(params)
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat["id"]),
            "date": int(time.time()),
            "chat": chat,
            "text": plain,
        }
        if chat["type"] == "channel":
            message["sender_chat"] = chat
        else:
            message["from"] = self.bot_user()
        if entities:
            message["entities"] = entities
        markup = self._inline_markup(params)
        if markup:
            message["reply_markup"] = markup
        self._messages[(chat["id"], message["message_id"])] = message
        self.sent.append({**params, "message_id": message["message_id"]})
        return message

    def _edit_target(self, params: dict[str, Any]) -> tuple[dict, dict | None, int] | None:
        if params.get("inline_message_id"):
            return None
        if params.get("chat_id") is None:
            raise _ApiError(400, "Bad Request: chat_id is empty")
        chat = self._chat(params.get("chat_id"))
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise _ApiError(400, "Bad Request: message identifier is not specified")
        return chat, self._messages.get((chat["id"], message_id)), message_id

    def _store_edit(self, chat: dict, old: dict | None, message_id: int, **changes: Any) -> dict:
        message = (
            dict(old)
            if old
            else {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": chat,
                "from": self.bot_user(),
                "text": "",
            }
        )
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = int(time.time())
        self._messages[(chat["id"], message_id)] = message
        return message

    def _api_edit_message_text(self, params: dict[str, Any]) -> Any:
        plain, entities = self._render(params)
        target = self._edit_target(params)
        if target is None:
            return True
        chat, old, message_id = target
        markup = self._inline_markup(params)
        if (
            old is not None
            and old.get("text") == plain
            and (old.get("entities") or []) == entities
            and old.get("reply_markup") == markup
        ):
            raise _ApiError(400, _NOT_MODIFIED)
        return self._store_edit(
            chat, old, message_id, text=plain, entities=entities or None, reply_markup=markup
        )

    def _api_edit_message_reply_markup(self, params: dict[str, Any]) -> Any:
        target = self._edit_target(params)
        if target is None:
            return True
        chat, old, message_id = target
        markup = self._inline_markup(params)
        if old is not None and old.get("reply_markup") == markup:
            raise _ApiError(400, _NOT_MODIFIED)
        return self._store_edit(chat, old, message_id, reply_markup=markup)

    def _api_get_updates(self, params: dict[str, Any]) -> Any:
        offset = params.get("offset")
        limit = params.get("limit") if isinstance(params.get("limit"), int) else 100
        limit = min(max(limit, 1), 100)
        try:
            timeout = float(params.get("timeout") or 0)
        except (TypeError, ValueError):
            timeout = 0.0
        wait = min(max(timeout, 0.0), self.max_long_poll)
        deadline = time.monotonic() + wait
        with self._cond:
            while True:
                if isinstance(offset, int) and offset < 0:
                    self._updates = self._updates[offset:]
                elif isinstance(offset, int) and offset > 0:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                if self._updates or self._stopping.is_set():
                    return list(self._updates[:limit])
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(timeout=remaining)

    def _api_delete_webhook(self, params: dict[str, Any]) -> Any:
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        return True

    def _api_set_webhook(self, params: dict[str, Any]) -> Any:
        return self._api_delete_webhook(params)

    def _api_get_webhook_info(self, params: dict[str, Any]) -> Any:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}

    def _api_set_my_commands(self, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _ApiError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            name = command.get("command", "") if isinstance(command, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _ApiError(400, "Bad Request: command description is empty")
        if params.get("scope") in (None, {"type": "default"}) and not params.get("language_code"):
            self.commands = [dict(c) for c in commands]
        return True

    def _api_get_my_commands(self, params: dict[str, Any]) -> Any:
        return [dict(c) for c in self.commands]

    def _api_delete_my_commands(self, params: dict[str, Any]) -> Any:
        self.commands = []
        return True

    def _api_answer_callback_query(self, params: dict[str, Any]) -> Any:
        if not params.get("callback_query_id"):
            raise _ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        return True

    def _api_true(self, params: dict[str, Any]) -> Any:
        return True

    def _api_get_chat_member(self, params: dict[str, Any]) -> Any:
        chat_id, user_id = params.get("chat_id"), params.get("user_id")
        if not isinstance(chat_id, int) or not isinstance(user_id, int):
            raise _ApiError(400, "Bad Request: chat not found")
        user = self._user(user_id, None, "Test")
        if (chat_id, user_id) not in self.group_admins:
            return {"status": "member", "user": user}
        rights = ("can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages",
                  "can_manage_video_chats", "can_restrict_members", "can_promote_members", "can_change_info",
                  "can_invite_users", "can_post_stories", "can_edit_stories", "can_delete_stories")  # fmt: skip
        return {"status": "administrator", "user": user, **dict.fromkeys(rights, False)}

    _METHODS: ClassVar[dict[str, tuple[str, Any]]] = {
        "getme": ("getMe", _api_get_me),
        "sendmessage": ("sendMessage", _api_send_message),
        "getupdates": ("getUpdates", _api_get_updates),
        "deletewebhook": ("deleteWebhook", _api_delete_webhook),
        "setwebhook": ("setWebhook", _api_set_webhook),
        "getwebhookinfo": ("getWebhookInfo", _api_get_webhook_info),
        "setmycommands": ("setMyCommands", _api_set_my_commands),
        "getmycommands": ("getMyCommands", _api_get_my_commands),
        "deletemycommands": ("deleteMyCommands", _api_delete_my_commands),
        "answercallbackquery": ("answerCallbackQuery", _api_answer_callback_query),
        "editmessagetext": ("editMessageText", _api_edit_message_text),
        "editmessagereplymarkup": ("editMessageReplyMarkup", _api_edit_message_reply_markup),
        "getchatmember": ("getChatMember", _api_get_chat_member),
        "sendchataction": ("sendChatAction", _api_true),
        "deletemessage": ("deleteMessage", _api_true),
        "setmydescription": ("setMyDescription", _api_true),
        "setmyshortdescription": ("setMyShortDescription", _api_true),
        "logout": ("logOut", _api_true),
        "close": ("close", _api_true),
    }

    # ----------------------------------------------------------------- request handling

    def _serve(self, handler: _Handler) -> None:
        try:
            self._serve_inner(handler)
        except Exception as exc:  # a bug in the stub: answer 500, keep the exception
            with self.lock:
                self.errors.append(exc)
            self._reply_json(
                handler,
                500,
                {"ok": False, "error_code": 500, "description": f"Internal Server Error: {exc!r}"},
            )

    def _serve_inner(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        body = self._read_body(handler)
        match = re.fullmatch(r"/bot([^/]*)/([^/]+)/?", url.path)
        raw_method = match.group(2) if match else url.path
        params: dict[str, Any] = dict(parse_qsl(url.query, keep_blank_values=True))
        parse_error = None
        try:
            params.update(self._parse_body(handler.headers.get("Content-Type", ""), body))
        except ValueError as exc:
            parse_error = str(exc)
        params = _normalise(params)
        canonical, func = self._METHODS.get(raw_method.lower(), (raw_method, None))
        call = Call(canonical, params, time.monotonic(), time.time())
        with self._cond:
            self.calls.append(call)
            down = self._down
            self._cond.notify_all()

        if down == "reset":
            return self._finish_call(call, 0, None, handler=handler, reset=True)
        if down == "502":
            return self._reply_html_502(handler, call)
        if match is None:
            return self._reply_error(handler, call, _ApiError(404, "Not Found"))
        if match.group(1) != self.token:
            return self._reply_error(handler, call, _ApiError(401, "Unauthorized"))
        failure = self._take_failure(canonical, params)  # also for methods the stub lacks
        if failure is not None:
            call.failure = failure.kind
            if failure.kind == "hang":
                self._stopping.wait(max(0.0, float(failure.options["seconds"])))
                if self._stopping.is_set() or not failure.options["deliver"]:
                    return self._finish_call(call, 0, None, handler=handler, close=True)
            else:
                return self._answer_failure(handler, call, failure)
        if func is None:
            return self._reply_error(handler, call, _ApiError(404, "Not Found"))
        if parse_error is not None:
            return self._reply_error(handler, call, _ApiError(400, f"Bad Request: {parse_error}"))

        try:
            with self.lock:
                result = func(self, params)
        except _ApiError as exc:
            return self._reply_error(handler, call, exc)
        self._finish_call(call, 200, None)
        self._reply_json(handler, 200, {"ok": True, "result": result})

    def _take_failure(self, method: str, params: dict[str, Any]) -> _Failure | None:
        chat_id = params.get("chat_id")
        with self.lock:
            for failure in self._failures:
                if failure.method not in ("*", method.lower()):
                    continue
                if failure.chat_id is not None and failure.chat_id != chat_id:
                    continue
                if failure.when is not None and not failure.when(params):
                    continue
                if failure.remaining is not None:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                return failure
        return None

    def _answer_failure(self, handler: _Handler, call: Call, failure: _Failure) -> None:
        opts = failure.options
        kind = failure.kind
        if kind == "bad_gateway":
            return self._reply_html_502(handler, call)
        if kind == "reset":
            return self._finish_call(call, 0, None, handler=handler, reset=True)
        parameters = None
        if kind == "retry_after":
            seconds = int(opts["retry_after"])
            error = _ApiError(429, f"Too Many Requests: retry after {seconds}")
            parameters = {"retry_after": seconds}
        elif kind == "parse_entities":
            error = _ApiError(400, f"Bad Request: can't parse entities: {_PARSE_ENTITIES_DEFAULT}")
        elif kind == "blocked":
            error = _ApiError(403, "Forbidden: bot was blocked by the user")
        elif kind == "migrated":
            new_id = opts["migrate_to_chat_id"]
            if new_id is None:
                old = call.params.get("chat_id")
                new_id = -1_000_000_000_000 - abs(old) if isinstance(old, int) else -1001234567890
            error = _ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat")
            parameters = {"migrate_to_chat_id": int(new_id)}
        elif kind == "text_too_long":
            error = _ApiError(400, "Bad Request: message is too long")
        elif kind == "chat_not_found":
            error = _ApiError(400, "Bad Request: chat not found")
        elif kind == "conflict":
            error = _ApiError(
                409,
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running",
            )
        elif kind == "server_error":
            error = _ApiError(500, "Internal Server Error")
        else:  # custom
            error = _ApiError(int(opts["status"]), opts["description"] or "Bad Request")
            parameters = opts["parameters"]
        if opts["description"]:
            error.description = opts["description"]
        if parameters is not None:
            error.parameters = parameters
        self._reply_error(handler, call, error)

    # ----------------------------------------------------------------- low-level I/O

    def _read_body(self, handler: _Handler) -> bytes:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = handler.rfile.readline(1024)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline(1024)
        length = int(handler.headers.get("Content-Length") or 0)
        if length > 64 * 1024 * 1024:
            raise ValueError("request body too large")
        return handler.rfile.read(length) if length > 0 else b""

    @staticmethod
    def _parse_body(content_type: str, body: bytes) -> dict[str, Any]:
        if not body:
            return {}
        ctype = content_type.split(";", 1)[0].strip().lower()
        if ctype == "application/json":
            try:
                data = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError("can't parse JSON encoded request") from exc
            if not isinstance(data, dict):
                raise ValueError("JSON request must be an object")
            return data
        if ctype == "multipart/form-data":
            raw = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
            if not message.is_multipart():
                raise ValueError("can't parse multipart/form-data")
            result: dict[str, Any] = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if not name:
                    continue
                payload = part.get_payload(decode=True) or b""
                filename = part.get_filename()
                if filename is not None:
                    result[name] = {
                        "filename": filename,
                        "content_type": part.get_content_type(),
                        "data": payload,
                    }
                else:
                    charset = part.get_content_charset() or "utf-8"
                    result[name] = payload.decode(charset, "replace")
            return result
        # application/x-www-form-urlencoded (PTB's choice) or unspecified
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))

    def _finish_call(
        self,
        call: Call,
        status: int,
        description: str | None,
        *,
        handler: _Handler | None = None,
        reset: bool = False,
        close: bool = False,
    ) -> None:
        with self._cond:
            call.status = status
            call.description = description
            self._cond.notify_all()
        if handler is None:
            return
        handler.close_connection = True
        if reset:
            sock = handler.connection
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                handler.rfile.close()
            with contextlib.suppress(OSError):
                sock.close()
        elif close:
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)

    def _reply_error(self, handler: _Handler, call: Call, error: _ApiError) -> None:
        payload: dict[str, Any] = {
            "ok": False,
            "error_code": error.status,
            "description": error.description,
        }
        if error.parameters:
            payload["parameters"] = error.parameters
        self._finish_call(call, error.status, error.description)
        self._reply_json(handler, error.status, payload)

    def _reply_html_502(self, handler: _Handler, call: Call) -> None:
        self._finish_call(call, 502, "Bad Gateway")
        self._write(handler, 502, _BAD_GATEWAY_HTML, "text/html")

    def _reply_json(self, handler: _Handler, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._write(handler, status, body, "application/json")

    @staticmethod
    def _write(handler: _Handler, status: int, body: bytes, content_type: str) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True

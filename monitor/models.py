"""Plain data passed between the pipeline stages. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

SourceKind = Literal["rss", "html", "page", "json"]
ChangeKind = Literal["new", "changed", "removed", "page"]


@dataclass(frozen=True)
class Topic:
    name: str
    terms: tuple[str, ...]
    requires: tuple[str, ...] = ()  # at least one co-term must also appear
    exclude: tuple[str, ...] = ()  # any of these vetoes the topic


@dataclass(frozen=True)
class Window:
    """Working hours in Hong Kong time: `interval` applies inside, `off_hours_interval` outside."""

    days: frozenset[int]  # 0 = Monday ... 6 = Sunday: the days the window starts on
    start: int  # minutes after midnight
    end: int  # minutes after midnight, up to 1440; end < start: the window runs past midnight


@dataclass(frozen=True)
class Source:
    id: str
    regulator: str
    kind: SourceKind
    url: str
    topics: tuple[str, ...]
    interval: float  # seconds (inside `window` when there is one)
    name: str = ""
    window: Window | None = None  # working hours; None: `interval` all the time
    off_hours_interval: float = 0.0  # seconds, outside `window`
    # kind = "html": a listing
    items: str = ""
    title: str = ""
    link: str = ""
    date: str = ""
    # kind = "page": one page's text
    select: str = "body"
    exclude: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()  # regular expressions; matching text lines are noise
    # kind = "rss" or "html": which items to keep, by title (regular expressions, case-insensitive)
    # kind = "json": an API listing; title/date/link are field paths, link may be a "{field}" template
    method: str = "GET"
    body: str = ""  # JSON text sent with the request
    params: tuple[tuple[str, str], ...] = ()  # query parameters
    items_path: str = ""  # dot path to the list of records, e.g. "result.records"
    item_id: str = ""  # field path of a record's identity (a reference number)
    success_path: str = ""  # dot path of a success flag; false makes the fetch an error
    include_titles: tuple[str, ...] = ()  # keep only items whose title matches one of these
    exclude_titles: tuple[str, ...] = ()  # drop items whose title matches one of these
    # query parameters of item links that change on every visit (a session id): not an item's identity
    ignore_params: tuple[str, ...] = ()
    # kind = "rss", "html" or "json": follow each new item to its text before classifying it
    detail: str = ""  # "link" (the item's own link) or a URL template such as "...?refNo={id}"
    detail_select: str = ""  # CSS selector of the text on a detail page (default: main content)
    detail_field: str = ""  # dot path of the HTML or text field when the detail is JSON
    detail_pdfs: int = 2  # PDFs linked from a detail page that are read too
    language: str = ""  # "en" or "zh": named in alerts that list every language a release came in


@dataclass(frozen=True)
class Settings:
    interval: float = 1800.0
    timeout: float = 20.0
    user_agent: str = ""
    max_bytes: int = 10 * 1024 * 1024
    retries: int = 2  # extra attempts after the first, on network errors, 429 and 5xx
    retry_backoff: float = 2.0  # seconds; doubles each attempt
    max_retry_after: float = 120.0  # never wait longer than this for a Retry-After
    per_host: int = 2  # concurrent requests per host
    max_redirects: int = 5
    allow_private_redirects: bool = False  # follow a redirect from a public address to a private one
    detail_limit: int = 10  # detail pages/PDFs fetched per source per round; the rest alert on titles
    document_max_bytes: int = 20 * 1024 * 1024  # PDFs are bigger than pages
    document_recheck: float = 86400.0  # seconds between re-downloads of a known PDF (0: never)
    duplicate_window: float = 3 * 86400.0  # one release seen again within this long alerts once
    processes: int = 0  # a round of 300+ sources is split over this many processes (0: one per core)
    # `policy-monitor run` (long-running) only:
    jitter: float = 0.1  # each wait grows by up to this fraction of the interval, at random
    host_spacing: float = 2.0  # seconds between the starts of two sources on one host
    catch_up: float = 60.0  # seconds over which sources already due at start are spread


@dataclass(frozen=True)
class TelegramSettings:
    """Non-secret Telegram settings from sources.toml's [telegram] table (the token is env-only)."""

    ops_chat: str = ""  # source-health alerts go here; to the alert chats when empty
    health_after: int = 3  # consecutive failures before a source-health alert
    digest_after: int = 5  # more pending alerts than this for one chat: one digest message
    delayed_after: float = 3600.0  # seconds; older pending alerts are marked "delayed"
    private_interval: float = 1.0  # seconds between messages to one private chat (Telegram: ~1/s)
    group_interval: float = 3.0  # to one group or channel (Telegram: ~20/min)
    global_interval: float = 0.04  # between any two messages (Telegram: ~30/s overall)
    admins: tuple[int, ...] = ()  # user ids who may change subscriptions and review from any chat
    group_admins_only: bool = False  # in a team group, only its Telegram admins change what it receives


@dataclass(frozen=True)
class Config:
    path: str
    settings: Settings
    topics: Mapping[str, Topic]
    sources: tuple[Source, ...]
    telegram: TelegramSettings = field(default_factory=TelegramSettings)

    def source(self, source_id: str) -> Source | None:
        return next((s for s in self.sources if s.id == source_id), None)


@dataclass(frozen=True)
class Validators:
    """What the last successful fetch left for a conditional GET."""

    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True)
class Page:
    """One HTTP response, decoded. `not_modified` means a 304: there is no body. `text` is also
    empty when the body is the last one but for its noise (`stable_sha256`): nothing reads it."""

    source_id: str
    url: str
    final_url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    text: str
    encoding: str
    fetched_at: str  # ISO 8601, UTC
    duration_ms: int
    sha256: str
    not_modified: bool = False
    stable_sha256: str = ""  # of the body without per-request tokens, and the source's config
    noise: str = ""  # where those tokens were (monitor.noise): the next round's first guess

    @property
    def validators(self) -> Validators:
        return Validators(self.headers.get("etag", ""), self.headers.get("last-modified", ""))


@dataclass(frozen=True)
class Item:
    """One entry of a listing or feed. `key` is its identity across rounds."""

    key: str
    title: str
    link: str = ""
    date: str = ""
    text: str = ""  # description or summary text, when the listing carries one


@dataclass(frozen=True)
class Snapshot:
    """What was extracted from one page: items (rss, html) or normalised text (page)."""

    kind: Literal["items", "text"]
    items: tuple[Item, ...] = ()
    text: str = ""
    title: str = ""
    hash: str = ""
    region: str = ""  # sha256 of the raw markup it was extracted from (html, page), see extract()


MARKUP = ("html", "page")  # the kinds of source read as HTML (a listing, a page)
READ_LATER = "fetched later"  # the body_status of a new item whose text was read on a later round
NOT_FETCHED = "not fetched: "  # + why: the item's text could not be read (classified on its title)
PARTLY_READ = "partly read: "  # + why: its detail page was read, a PDF it links to was not


@dataclass(frozen=True)
class Change:
    """One entry of the change log, before and after classification."""

    source_id: str
    kind: ChangeKind
    title: str
    item_key: str = ""
    link: str = ""
    date: str = ""
    text: str = ""
    before: str = ""  # for "changed": the old title and date
    added: tuple[str, ...] = ()  # for "page": lines added
    removed: tuple[str, ...] = ()  # for "page": lines removed
    diff: str = ""  # for "page": unified diff
    topics: tuple[str, ...] = ()
    matches: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    body: str = ""  # the text of the item's detail page and PDFs, classified with the title
    documents: tuple[str, ...] = ()  # the URLs that text came from
    # "" (no detail configured) | "fetched" | NOT_FETCHED + why | PARTLY_READ + why | READ_LATER
    body_status: str = ""


@dataclass(frozen=True)
class Document:
    """The text behind an item: its detail page, API content or linked PDF, cached by URL."""

    url: str
    sha256: str
    text: str
    content_type: str  # html | json | pdf
    fetched_at: str
    source_id: str = ""
    title: str = ""  # the title of the item that linked to it
    links: tuple[str, ...] = ()  # PDFs a detail page links to


@dataclass(frozen=True)
class Followed:
    """What following one source's items to their text fetched in a round; stored with the round."""

    documents: tuple[Document, ...] = ()  # fetched now (cached ones are not repeated)
    pages: tuple[Page, ...] = ()  # their raw responses: PDFs are kept as evidence
    checked: tuple[str, ...] = ()  # known PDFs downloaded again and found unchanged


@dataclass(frozen=True)
class Sighting:
    """Where else one release was seen: another source, link or language."""

    source_id: str
    link: str
    language: str = ""
    title: str = ""


@dataclass(frozen=True)
class LoggedChange:
    """A change as recorded in the change log, with the evidence it came from."""

    id: int
    regulator: str
    detected_at: str  # ISO 8601, UTC
    fetched_at: str
    change: Change
    old_snapshot: str = ""
    new_snapshot: str = ""
    raw_sha256: str = ""
    final_url: str = ""
    old_raw_sha256: str = ""
    http_status: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    state: str = "new"  # review state: new | reviewed | dismissed | escalated
    language: str = ""
    seen_in: tuple[Sighting, ...] = ()  # the same release through other sources (duplicates)
    duplicate_of: int = 0  # the change that alerted for this release, when this copy did not


# new -> reviewed | dismissed | escalated; an escalation is closed by reviewed or dismissed.
REVIEW_TRANSITIONS = {
    "new": ("reviewed", "dismissed", "escalated"),
    "escalated": ("reviewed", "dismissed"),
    "reviewed": (),
    "dismissed": (),
}


@dataclass(frozen=True)
class ChangeFilter:
    """Which changes `log`, `export` and `report` show. Dates are UTC ISO instants; empty = any."""

    source_id: str = ""
    regulator: str = ""
    topic: str = ""
    state: str = ""
    since: str = ""
    until: str = ""
    limit: int = 0


@dataclass(frozen=True)
class Review:
    """One entry of a change's append-only review history."""

    change_id: int
    state: str
    by: str
    note: str
    at: str  # ISO 8601, UTC


@dataclass(frozen=True)
class Alert:
    """One outbox row for one chat: a logged change that matched a topic, or a notice (source health)."""

    outbox_id: int
    chat: str
    logged: LoggedChange | None
    created_at: str = ""
    notice: str = ""


@dataclass(frozen=True)
class PartlySent:
    """A long message whose first parts reached a chat before a later one failed: the rest goes
    next time, cut from the same text (re-rendered, it could differ: "Delayed" by then)."""

    outbox_ids: tuple[int, ...]  # every row the message carries
    text: str
    parts_sent: int
    message_id: str  # the first part's


@dataclass(frozen=True)
class Previous:
    """What the store remembers of a source: the snapshot to diff against and request validators."""

    snapshot: Snapshot | None = None
    raw_sha256: str = ""
    validators: Validators = field(default_factory=Validators)
    known_keys: Mapping[str, str] = field(
        default_factory=dict
    )  # every item ever listed: key -> its last title
    region: str = ""  # Snapshot.region of the last extraction
    stable_sha256: str = ""  # Page.stable_sha256 of the last body
    noise: str = ""  # and its Page.noise
    snapshot_hash: str = ""  # set when there is a stored snapshot, even before it is loaded
    pending_removal: frozenset[str] = frozenset()  # item keys missing once: removed if missing again
    withdrawn: Mapping[str, str] = field(default_factory=dict)  # key -> when its removal was logged


@dataclass(frozen=True)
class RunState:
    """What `policy-monitor health` reads: when the long-running run started, the last round."""

    started_at: str = ""  # ISO 8601, UTC; empty when no long-running run has started
    last_round_at: str = ""  # when the last round finished
    last_round: str = ""  # its summary, JSON


@dataclass(frozen=True)
class Health:
    source_id: str
    consecutive_failures: int = 0
    last_attempt_at: str = ""
    last_success_at: str = ""
    last_error: str = ""
    last_error_at: str = ""

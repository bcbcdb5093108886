"""The SQLite schema. Plain tables and one view, readable with sqlite3 or Datasette."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY,
    regulator TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    topics TEXT NOT NULL DEFAULT '[]',
    interval_seconds REAL NOT NULL,
    in_config INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL,
    language TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS fetches (
    id INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    status TEXT NOT NULL,
    http_status INTEGER,
    bytes INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    final_url TEXT NOT NULL DEFAULT '',
    raw_sha256 TEXT NOT NULL DEFAULT '',
    snapshot_hash TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    headers TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS fetches_source ON fetches (source_id, fetched_at);
CREATE TABLE IF NOT EXISTS snapshots (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,
    content BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bodies (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL DEFAULT '',
    content BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS source_state (
    source_id TEXT PRIMARY KEY,
    snapshot_hash TEXT NOT NULL DEFAULT '',
    raw_sha256 TEXT NOT NULL DEFAULT '',
    etag TEXT NOT NULL DEFAULT '',
    last_modified TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    region_sha256 TEXT NOT NULL DEFAULT '',
    stable_sha256 TEXT NOT NULL DEFAULT '',
    noise TEXT NOT NULL DEFAULT '',
    pending_removal TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS health (
    source_id TEXT PRIMARY KEY,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT NOT NULL DEFAULT '',
    last_success_at TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT '',
    last_error_at TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS items (
    source_id TEXT NOT NULL,
    key TEXT NOT NULL,
    title TEXT NOT NULL,
    link TEXT NOT NULL DEFAULT '',
    date TEXT NOT NULL DEFAULT '',
    first_seen_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    present INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (source_id, key)
);
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL,
    regulator TEXT NOT NULL,
    kind TEXT NOT NULL,
    item_key TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL,
    link TEXT NOT NULL DEFAULT '',
    date TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL DEFAULT '',
    before TEXT NOT NULL DEFAULT '',
    added TEXT NOT NULL DEFAULT '[]',
    removed TEXT NOT NULL DEFAULT '[]',
    diff TEXT NOT NULL DEFAULT '',
    topics TEXT NOT NULL DEFAULT '[]',
    matches TEXT NOT NULL DEFAULT '{}',
    fetch_id INTEGER NOT NULL REFERENCES fetches(id),
    old_snapshot TEXT NOT NULL DEFAULT '',
    new_snapshot TEXT NOT NULL DEFAULT '',
    raw_sha256 TEXT NOT NULL DEFAULT '',
    old_raw_sha256 TEXT NOT NULL DEFAULT '',
    duplicate_of INTEGER REFERENCES changes(id),
    final_url TEXT NOT NULL DEFAULT '',
    fetched_at TEXT NOT NULL,
    detected_at TEXT NOT NULL,
    title_key TEXT NOT NULL DEFAULT '',
    link_key TEXT NOT NULL DEFAULT '',
    documents TEXT NOT NULL DEFAULT '[]',
    body_status TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS changes_source ON changes (source_id, detected_at);
CREATE INDEX IF NOT EXISTS changes_detected ON changes (detected_at);
CREATE INDEX IF NOT EXISTS changes_item ON changes (item_key, detected_at);
CREATE INDEX IF NOT EXISTS changes_title ON changes (title_key, detected_at);
CREATE INDEX IF NOT EXISTS changes_link ON changes (link_key, detected_at);
CREATE INDEX IF NOT EXISTS changes_duplicate ON changes (duplicate_of);
-- The text behind items (detail pages, content APIs, PDFs), by URL: a cache across rounds, and
-- the last bytes seen of each PDF, to notice a silent re-upload under the same URL.
CREATE TABLE IF NOT EXISTS documents (
    url TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    content_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    text BLOB NOT NULL,
    links TEXT NOT NULL DEFAULT '[]',
    fetched_at TEXT NOT NULL,
    checked_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_due ON documents (source_id, content_type, checked_at);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    change_id INTEGER REFERENCES changes(id),
    notice TEXT NOT NULL DEFAULT '',
    chat TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    created_at TEXT NOT NULL,
    sent_at TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    UNIQUE (change_id, chat)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, chat);
CREATE TABLE IF NOT EXISTS outbox_progress (
    outbox_id INTEGER PRIMARY KEY REFERENCES outbox(id),
    outbox_ids TEXT NOT NULL,
    text TEXT NOT NULL,
    parts_sent INTEGER NOT NULL,
    message_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chats (
    chat_id TEXT PRIMARY KEY,
    active INTEGER NOT NULL DEFAULT 1,
    topics TEXT,
    origin TEXT NOT NULL DEFAULT 'bot',
    added_at TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    unreachable_at TEXT NOT NULL DEFAULT ''
);
-- New items whose text a later round could not read either (store/unread.py): the fewest tries first.
CREATE TABLE IF NOT EXISTS unread_tries (
    change_id INTEGER PRIMARY KEY REFERENCES changes(id),
    tries INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    tried_at TEXT NOT NULL
);
-- The messages that carry a change's review buttons, and the review they show (reviews.id; 0:
-- none yet): a review made elsewhere (another chat, `policy-monitor review`) is shown there too.
CREATE TABLE IF NOT EXISTS alert_messages (
    chat TEXT NOT NULL,
    message_id TEXT NOT NULL,
    change_id INTEGER NOT NULL REFERENCES changes(id),
    shown_review INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat, message_id)
);
CREATE INDEX IF NOT EXISTS alert_messages_change ON alert_messages (change_id);
CREATE TABLE IF NOT EXISTS bot_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    change_id INTEGER NOT NULL REFERENCES changes(id),
    state TEXT NOT NULL CHECK (state IN ('reviewed', 'dismissed', 'escalated')),
    by TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_change ON reviews (change_id, id);
CREATE TRIGGER IF NOT EXISTS reviews_append_only_replace BEFORE INSERT ON reviews
    WHEN EXISTS (SELECT 1 FROM reviews WHERE id = NEW.id)
    BEGIN SELECT RAISE(ABORT, 'the review history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS reviews_append_only_update BEFORE UPDATE ON reviews
    BEGIN SELECT RAISE(ABORT, 'the review history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS reviews_append_only_delete BEFORE DELETE ON reviews
    BEGIN SELECT RAISE(ABORT, 'the review history is append-only'); END;
CREATE VIEW IF NOT EXISTS change_log AS
    SELECT c.id, c.detected_at, c.regulator, c.source_id, c.kind, c.title, c.link, c.date,
           c.topics, c.matches,
           COALESCE((SELECT r.state FROM reviews r WHERE r.change_id = c.id ORDER BY r.id DESC LIMIT 1),
                    'new') AS state,
           c.fetched_at, c.final_url, c.raw_sha256, c.old_raw_sha256
    FROM changes c ORDER BY c.id DESC;
"""

# Columns added after a table was first shipped: Store.open adds them to older databases.
ADDED_COLUMNS = (
    ("fetches", "headers", "TEXT NOT NULL DEFAULT '{}'"),
    ("changes", "old_raw_sha256", "TEXT NOT NULL DEFAULT ''"),
    ("changes", "duplicate_of", "INTEGER REFERENCES changes(id)"),
    ("outbox", "notice", "TEXT NOT NULL DEFAULT ''"),
    ("sources", "language", "TEXT NOT NULL DEFAULT ''"),
    ("changes", "title_key", "TEXT NOT NULL DEFAULT ''"),
    ("changes", "link_key", "TEXT NOT NULL DEFAULT ''"),
    ("changes", "documents", "TEXT NOT NULL DEFAULT '[]'"),
    ("changes", "body_status", "TEXT NOT NULL DEFAULT ''"),
    ("source_state", "region_sha256", "TEXT NOT NULL DEFAULT ''"),
    ("source_state", "stable_sha256", "TEXT NOT NULL DEFAULT ''"),
    ("source_state", "noise", "TEXT NOT NULL DEFAULT ''"),
    ("source_state", "pending_removal", "TEXT NOT NULL DEFAULT '[]'"),
    ("chats", "unreachable_at", "TEXT NOT NULL DEFAULT ''"),
)

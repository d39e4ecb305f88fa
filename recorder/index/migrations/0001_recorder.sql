-- Recorder index: segments, gaps, tombstones, chain heads, legal holds and
-- per-camera retention. No foreign key to the registry: footage outlives
-- registry rows.

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- One row per stored segment object.
CREATE TABLE recorder_segments (
    id               bigserial   PRIMARY KEY,
    camera           text        NOT NULL CHECK (camera ~ '^[A-Za-z0-9_-]{1,64}$'),
    facility         text        NOT NULL CHECK (facility ~ '^[a-z0-9-]{1,32}$'),
    run              bigint      NOT NULL CHECK (run >= 0),
    seq              bigint      NOT NULL CHECK (seq >= 0),
    start_at         timestamptz NOT NULL,
    end_at           timestamptz NOT NULL,
    -- media time: decode time of the first video sample, in 90 kHz ticks
    -- from the start of the run, and the media duration of the segment.
    media_start      bigint      NOT NULL CHECK (media_start >= 0),
    media_duration   bigint      NOT NULL CHECK (media_duration > 0),
    -- wall time the segment spans by the capture clock, microseconds.
    wall_duration_us bigint      NOT NULL CHECK (wall_duration_us >= 0),
    bytes            bigint      NOT NULL CHECK (bytes > 0),
    frames           integer     NOT NULL CHECK (frames > 0),
    codec            text        NOT NULL,
    width            integer     NOT NULL CHECK (width >= 0),
    height           integer     NOT NULL CHECK (height >= 0),
    audio_codec      text        NOT NULL DEFAULT '',
    -- byte length of the init section (ftyp+moov) at the start of the object
    init_size        integer     NOT NULL CHECK (init_size > 0),
    -- compact fragment index: see segment.EncodeIndex
    fragments        bytea       NOT NULL,
    object_key       text        NOT NULL UNIQUE,
    sha256           bytea       NOT NULL CHECK (length(sha256) = 32),
    prev_chain       bytea       NOT NULL CHECK (length(prev_chain) = 32),
    chain            bytea       NOT NULL CHECK (length(chain) = 32),
    -- the object is under legal hold in the store
    legal_hold       boolean     NOT NULL DEFAULT false,
    -- marked for deletion by retention: the object may already be gone
    deleting         boolean     NOT NULL DEFAULT false,
    indexed_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (end_at > start_at),
    UNIQUE (camera, run, seq),
    EXCLUDE USING gist (camera WITH =, tstzrange(start_at, end_at) WITH &&)
);
CREATE INDEX recorder_segments_camera_start ON recorder_segments (camera, start_at);
CREATE INDEX recorder_segments_end ON recorder_segments (end_at) WHERE NOT legal_hold;

-- Intervals without footage, with the reason. end_at NULL: still open.
CREATE TABLE recorder_gaps (
    id       bigserial   PRIMARY KEY,
    camera   text        NOT NULL CHECK (camera ~ '^[A-Za-z0-9_-]{1,64}$'),
    start_at timestamptz NOT NULL,
    end_at   timestamptz,
    reason   text        NOT NULL CHECK (reason IN ('camera_offline', 'recorder_down', 'writer_overload',
                                                  'spool_full', 'discontinuity', 'disabled')),
    detail   text        NOT NULL DEFAULT '',
    CHECK (end_at IS NULL OR end_at > start_at),
    UNIQUE (camera, start_at),
    EXCLUDE USING gist (camera WITH =, tstzrange(start_at, end_at) WITH &&)
);
CREATE INDEX recorder_gaps_open ON recorder_gaps (camera) WHERE end_at IS NULL;

-- What is left of a segment deleted by retention: enough to keep the chain
-- verifiable.
CREATE TABLE recorder_tombstones (
    segment_id  bigint      PRIMARY KEY,
    camera      text        NOT NULL,
    facility    text        NOT NULL,
    run         bigint      NOT NULL,
    seq         bigint      NOT NULL,
    start_at    timestamptz NOT NULL,
    end_at      timestamptz NOT NULL,
    bytes       bigint      NOT NULL,
    object_key  text        NOT NULL,
    sha256      bytea       NOT NULL,
    prev_chain  bytea       NOT NULL,
    chain       bytea       NOT NULL,
    reason      text        NOT NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recorder_tombstones_camera_start ON recorder_tombstones (camera, start_at);

-- The latest chain value of each camera; its row lock orders inserts.
CREATE TABLE recorder_chain_heads (
    camera     text        PRIMARY KEY,
    chain      bytea       NOT NULL CHECK (length(chain) = 32),
    segments   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Legal holds per camera and time range.
CREATE TABLE recorder_holds (
    id             bigserial   PRIMARY KEY,
    camera         text        NOT NULL CHECK (camera ~ '^[A-Za-z0-9_-]{1,64}$'),
    start_at       timestamptz NOT NULL,
    end_at         timestamptz NOT NULL,
    reason         text        NOT NULL CHECK (length(btrim(reason)) > 0),
    incident_id    bigint,
    placed_at      timestamptz NOT NULL DEFAULT now(),
    released_at    timestamptz,
    release_reason text        NOT NULL DEFAULT '',
    CHECK (end_at > start_at)
);
CREATE INDEX recorder_holds_active ON recorder_holds (camera, start_at) WHERE released_at IS NULL;

-- Retention in days per camera; cameras without a row use the default.
CREATE TABLE recorder_retention (
    camera text    PRIMARY KEY CHECK (camera ~ '^[A-Za-z0-9_-]{1,64}$'),
    days   integer NOT NULL CHECK (days >= 1)
);

-- Alerts: one row per alert with its lifecycle (open → acknowledged →
-- resolved), the events that changed it (the feed SSE clients resume from),
-- the rules that set severities and schedules, and cameras in maintenance.
-- Every time is a UTC timestamptz. Camera, facility and incident ids are
-- the registry's, kept as plain values so that alerts outlive the records.

CREATE TABLE alerts (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind ~ '^[a-z_]{1,40}$'),
    -- subject is the camera id, or node/part for system alerts.
    subject      text        NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    camera_id    text        NOT NULL DEFAULT '',
    -- facility_id is '' for system alerts: only all-facility scopes see them.
    facility_id  text        NOT NULL DEFAULT '',
    zone_id      text        NOT NULL DEFAULT '',
    severity     text        NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    state        text        NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    title        text        NOT NULL,
    detail       text        NOT NULL,
    rule_id      bigint,
    since        timestamptz NOT NULL,
    opened_at    timestamptz NOT NULL,
    acked_at     timestamptz,
    acked_by     text        NOT NULL DEFAULT '',
    ack_note     text        NOT NULL DEFAULT '',
    resolved_at  timestamptz,
    resolved_by  text        NOT NULL DEFAULT '',
    resolve_note text        NOT NULL DEFAULT '',
    escalated_at timestamptz,
    escalations  integer     NOT NULL DEFAULT 0,
    incident_id  bigint,
    changed_at   timestamptz NOT NULL,
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL)),
    CHECK ((state = 'open') = (acked_at IS NULL) OR state = 'resolved')
);

-- One active (open or acknowledged) alert per condition: a condition that
-- holds for hours is one alert, not a flood.
CREATE UNIQUE INDEX alerts_one_active ON alerts (kind, subject) WHERE state <> 'resolved';
CREATE INDEX alerts_facility_opened ON alerts (facility_id, opened_at DESC);
CREATE INDEX alerts_camera_opened ON alerts (camera_id, opened_at DESC) WHERE camera_id <> '';

-- alert_events is every change of every alert, in commit order: writers
-- take an advisory lock before drawing a seq, so a reader that saw seq N
-- has seen every event before it. SSE clients resume after their
-- Last-Event-ID from here.
CREATE TABLE alert_events (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    bigint      NOT NULL REFERENCES alerts (id),
    type        text        NOT NULL CHECK (type IN ('opened', 'updated', 'escalated', 'acknowledged', 'resolved', 'incident')),
    at          timestamptz NOT NULL,
    facility_id text        NOT NULL,
    alert       jsonb       NOT NULL
);
CREATE INDEX alert_events_at ON alert_events (at);

-- alert_rules hold the rule documents as the API accepted them.
CREATE TABLE alert_rules (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    facility_id text        NOT NULL DEFAULT '',
    rule        jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL,
    updated_by  text        NOT NULL
);
CREATE INDEX alert_rules_facility ON alert_rules (facility_id);

-- alert_maintenance silences a camera's alerts until `until` (NULL: until
-- ended by hand).
CREATE TABLE alert_maintenance (
    camera_id   text        PRIMARY KEY,
    facility_id text        NOT NULL,
    until       timestamptz,
    note        text        NOT NULL,
    set_by      text        NOT NULL,
    set_at      timestamptz NOT NULL
);

-- The registry: facilities and zones, cameras, prisoners and their
-- movements, incidents, users, sessions and API tokens, and the append-only,
-- hash-chained audit log. Every time is a UTC timestamptz.

CREATE TABLE facilities (
    id         text        PRIMARY KEY CHECK (id ~ '^[a-z0-9-]{1,32}$'),
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone   text        NOT NULL DEFAULT 'UTC',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE zones (
    facility_id text        NOT NULL REFERENCES facilities (id),
    id          text        NOT NULL CHECK (id ~ '^[a-z0-9-]{1,32}$'),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind        text        NOT NULL CHECK (kind IN ('cell_block', 'corridor', 'yard', 'workshop',
                            'visiting_room', 'medical', 'kitchen', 'entrance', 'control_room', 'other')),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (facility_id, id)
);

CREATE TABLE cameras (
    id              text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    facility_id     text        NOT NULL,
    zone_id         text        NOT NULL,
    name            text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    rtsp_url        text        NOT NULL CHECK (rtsp_url ~ '^rtsps?://'),
    -- credentials is AES-256-GCM sealed JSON {username, password}; NULL when
    -- the camera needs none. The key never enters the database.
    credentials     bytea,
    retention_class text        NOT NULL CHECK (retention_class IN ('short', 'standard', 'extended')),
    retention_days  integer     NOT NULL CHECK (retention_days BETWEEN 1 AND 3650),
    enabled         boolean     NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    FOREIGN KEY (facility_id, zone_id) REFERENCES zones (facility_id, id)
);
CREATE INDEX cameras_zone ON cameras (facility_id, zone_id);

CREATE TABLE users (
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username            text        NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9._-]{1,64}$'),
    display_name        text        NOT NULL DEFAULT '',
    -- password_hash is an argon2id PHC string; NULL for machine users that
    -- only hold API tokens.
    password_hash       text,
    roles               text[]      NOT NULL CHECK (roles <@ ARRAY['operator', 'investigator', 'it', 'auditor', 'admin']),
    all_facilities      boolean     NOT NULL DEFAULT false,
    disabled            boolean     NOT NULL DEFAULT false,
    password_changed_at timestamptz,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);

CREATE TABLE user_facilities (
    user_id     bigint NOT NULL REFERENCES users (id),
    facility_id text   NOT NULL REFERENCES facilities (id),
    PRIMARY KEY (user_id, facility_id)
);

CREATE TABLE api_tokens (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id),
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- token_hash is SHA-256 of the token; the token itself is shown once.
    token_hash   bytea       NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE sessions (
    -- id_hash is SHA-256 of the cookie value.
    id_hash      bytea       PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id),
    csrf_token   text        NOT NULL,
    client       text        NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- login_failures counts failed logins per attempted user name, whether or not
-- the user exists, so that a lockout says nothing about which names exist.
CREATE TABLE login_failures (
    username     text        PRIMARY KEY,
    failures     integer     NOT NULL,
    window_start timestamptz NOT NULL,
    locked_until timestamptz
);

CREATE TABLE prisoners (
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    registration_number text        NOT NULL UNIQUE CHECK (registration_number ~ '^[A-Za-z0-9/-]{1,32}$'),
    full_name           text        NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
    risk                text        NOT NULL CHECK (risk IN ('low', 'medium', 'high')),
    risk_assessed_on    date        NOT NULL,
    risk_assessor       text        NOT NULL CHECK (length(risk_assessor) BETWEEN 1 AND 200),
    facility_id         text        NOT NULL REFERENCES facilities (id),
    housing_zone_id     text,
    status              text        NOT NULL CHECK (status IN ('in_custody', 'hospital', 'court', 'transferred', 'released')),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    FOREIGN KEY (facility_id, housing_zone_id) REFERENCES zones (facility_id, id)
);
CREATE INDEX prisoners_facility ON prisoners (facility_id, risk);

-- prisoner_movements is where each prisoner was: one row per stay in a zone;
-- to_at is NULL for the current stay. Stays of one prisoner do not overlap
-- (enforced by the registry under a row lock on the prisoner).
CREATE TABLE prisoner_movements (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    prisoner_id bigint      NOT NULL REFERENCES prisoners (id),
    facility_id text        NOT NULL,
    zone_id     text        NOT NULL,
    from_at     timestamptz NOT NULL,
    to_at       timestamptz CHECK (to_at IS NULL OR to_at > from_at),
    FOREIGN KEY (facility_id, zone_id) REFERENCES zones (facility_id, id)
);
CREATE INDEX prisoner_movements_prisoner ON prisoner_movements (prisoner_id, from_at);
CREATE INDEX prisoner_movements_zone ON prisoner_movements (facility_id, zone_id);

CREATE TABLE incidents (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    facility_id text        NOT NULL REFERENCES facilities (id),
    type        text        NOT NULL CHECK (type IN ('assault', 'fight', 'self_harm', 'escape_attempt',
                            'contraband', 'disturbance', 'medical', 'fire', 'property_damage',
                            'staff_misconduct', 'other')),
    severity    text        NOT NULL CHECK (severity IN ('minor', 'moderate', 'serious', 'critical')),
    status      text        NOT NULL CHECK (status IN ('open', 'under_investigation', 'closed')),
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz CHECK (ended_at IS NULL OR ended_at >= started_at),
    description text        NOT NULL,
    legal_hold  boolean     NOT NULL DEFAULT false,
    hold_reason text        NOT NULL DEFAULT '',
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (id, facility_id)
);
CREATE INDEX incidents_facility ON incidents (facility_id, started_at);

CREATE TABLE incident_zones (
    incident_id bigint NOT NULL,
    facility_id text   NOT NULL,
    zone_id     text   NOT NULL,
    PRIMARY KEY (incident_id, zone_id),
    FOREIGN KEY (incident_id, facility_id) REFERENCES incidents (id, facility_id),
    FOREIGN KEY (facility_id, zone_id) REFERENCES zones (facility_id, id)
);

CREATE TABLE incident_prisoners (
    incident_id bigint NOT NULL REFERENCES incidents (id),
    prisoner_id bigint NOT NULL REFERENCES prisoners (id),
    PRIMARY KEY (incident_id, prisoner_id)
);

-- incident_staff are the users involved in the incident; they may not view
-- or export its footage.
CREATE TABLE incident_staff (
    incident_id bigint NOT NULL REFERENCES incidents (id),
    user_id     bigint NOT NULL REFERENCES users (id),
    PRIMARY KEY (incident_id, user_id)
);

CREATE TABLE incident_investigators (
    incident_id bigint NOT NULL REFERENCES incidents (id),
    user_id     bigint NOT NULL REFERENCES users (id),
    PRIMARY KEY (incident_id, user_id)
);

-- incident_camera_overrides are the hand adjustments to the cameras derived
-- from the incident's zones: included adds a camera, excluded removes one.
CREATE TABLE incident_camera_overrides (
    incident_id bigint  NOT NULL REFERENCES incidents (id),
    camera_id   text    NOT NULL REFERENCES cameras (id),
    included    boolean NOT NULL,
    PRIMARY KEY (incident_id, camera_id)
);

-- incident_cameras is the effective set, recomputed on every change.
CREATE TABLE incident_cameras (
    incident_id bigint NOT NULL REFERENCES incidents (id),
    camera_id   text   NOT NULL REFERENCES cameras (id),
    PRIMARY KEY (incident_id, camera_id)
);

-- incident_holds are the legal holds placed with the recorder for the
-- incident, so that they can be released on every camera they were placed on.
CREATE TABLE incident_holds (
    incident_id bigint      NOT NULL REFERENCES incidents (id),
    camera_id   text        NOT NULL REFERENCES cameras (id),
    from_at     timestamptz NOT NULL,
    to_at       timestamptz NOT NULL,
    placed_at   timestamptz NOT NULL,
    PRIMARY KEY (incident_id, camera_id)
);

-- audit_log is append-only and hash-chained: hash = SHA-256(prev_hash ||
-- canonical encoding of the row), seq runs 1, 2, 3, ... without gaps.
CREATE TABLE audit_log (
    seq        bigint      PRIMARY KEY CHECK (seq > 0),
    at         timestamptz NOT NULL,
    actor      text        NOT NULL,
    role       text        NOT NULL,
    client     text        NOT NULL,
    action     text        NOT NULL,
    facility   text        NOT NULL,
    objects    text[]      NOT NULL,
    range_from timestamptz,
    range_to   timestamptz,
    reason     text        NOT NULL,
    outcome    text        NOT NULL,
    detail     text        NOT NULL,
    prev_hash  bytea       NOT NULL,
    hash       bytea       NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

-- audit_chain_head is the one row writers lock (SELECT ... FOR UPDATE) to
-- keep the chain linear; it names the last row.
CREATE TABLE audit_chain_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint  NOT NULL,
    hash bytea   NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash) VALUES (true, 0, decode(repeat('00', 32), 'hex'));

CREATE FUNCTION kuzet_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION kuzet_audit_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION kuzet_audit_refuse();

-- The head may only advance by one row at a time, to a row that exists with
-- that hash; it cannot be deleted or wound back.
CREATE FUNCTION kuzet_audit_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'audit_chain_head: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.seq <> OLD.seq + 1 OR NOT EXISTS (
        SELECT 1 FROM audit_log WHERE seq = NEW.seq AND hash = NEW.hash AND prev_hash = OLD.hash) THEN
        RAISE EXCEPTION 'audit_chain_head may only advance to the next chained row'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_chain_head_guard BEFORE UPDATE OR DELETE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION kuzet_audit_head_guard();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION kuzet_audit_refuse();

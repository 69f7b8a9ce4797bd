-- keyfed shard schema, version 1.
--
-- Identifiers and names use the "C" collation so that ordering and
-- uniqueness are byte-wise, exactly as in the embedded store. Constraint
-- names are part of the contract: src/store/postgres/error.rs maps them to
-- StoreError messages.

CREATE TABLE domains (
    id          text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    description text NOT NULL DEFAULT '',
    enabled     boolean NOT NULL,
    CONSTRAINT domains_pkey PRIMARY KEY (id),
    CONSTRAINT domains_name_key UNIQUE (name)
);

CREATE TABLE projects (
    id          text COLLATE "C" NOT NULL,
    domain_id   text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    description text NOT NULL DEFAULT '',
    enabled     boolean NOT NULL,
    tags        text[] NOT NULL DEFAULT '{}',
    extra       jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT projects_pkey PRIMARY KEY (id),
    CONSTRAINT projects_domain_name_key UNIQUE (domain_id, name),
    CONSTRAINT projects_domain_fkey FOREIGN KEY (domain_id)
        REFERENCES domains (id) ON DELETE CASCADE
);

-- default_project_id is deliberately not a foreign key: as in Keystone, a
-- user keeps a dangling default project after the project is deleted.
CREATE TABLE users (
    id                 text COLLATE "C" NOT NULL,
    domain_id          text COLLATE "C" NOT NULL,
    name               text COLLATE "C" NOT NULL,
    enabled            boolean NOT NULL,
    default_project_id text COLLATE "C",
    password_hash      text,
    extra              jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_domain_name_key UNIQUE (domain_id, name),
    CONSTRAINT users_domain_fkey FOREIGN KEY (domain_id)
        REFERENCES domains (id) ON DELETE CASCADE
);

-- Global roles have no domain; a role name is unique within its domain, and
-- among global roles.
CREATE TABLE roles (
    id          text COLLATE "C" NOT NULL,
    domain_id   text COLLATE "C",
    name        text COLLATE "C" NOT NULL,
    description text,
    CONSTRAINT roles_pkey PRIMARY KEY (id),
    CONSTRAINT roles_domain_fkey FOREIGN KEY (domain_id)
        REFERENCES domains (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX roles_domain_name_key ON roles ((coalesce(domain_id, '')), name);

CREATE TABLE implied_roles (
    prior_role_id   text COLLATE "C" NOT NULL,
    implied_role_id text COLLATE "C" NOT NULL,
    CONSTRAINT implied_roles_pkey PRIMARY KEY (prior_role_id, implied_role_id),
    CONSTRAINT implied_roles_prior_fkey FOREIGN KEY (prior_role_id)
        REFERENCES roles (id) ON DELETE CASCADE,
    CONSTRAINT implied_roles_implied_fkey FOREIGN KEY (implied_role_id)
        REFERENCES roles (id) ON DELETE CASCADE
);
CREATE INDEX implied_roles_implied_idx ON implied_roles (implied_role_id);

-- A direct role assignment. The target is (target_type, target_id), with
-- target_id '' for the system target; the generated columns project_id and
-- domain_id carry the foreign keys that make a grant on an unknown target
-- fail and deleting the target delete its assignments.
CREATE TABLE assignments (
    user_id     text COLLATE "C" NOT NULL,
    target_type text COLLATE "C" NOT NULL,
    target_id   text COLLATE "C" NOT NULL,
    role_id     text COLLATE "C" NOT NULL,
    project_id  text COLLATE "C"
        GENERATED ALWAYS AS (CASE WHEN target_type = 'project' THEN target_id END) STORED,
    domain_id   text COLLATE "C"
        GENERATED ALWAYS AS (CASE WHEN target_type = 'domain' THEN target_id END) STORED,
    CONSTRAINT assignments_pkey PRIMARY KEY (user_id, target_type, target_id, role_id),
    CONSTRAINT assignments_target_check CHECK (
        target_type IN ('project', 'domain', 'system')
        AND (target_type = 'system') = (target_id = '')
    ),
    CONSTRAINT assignments_user_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT assignments_role_fkey FOREIGN KEY (role_id)
        REFERENCES roles (id) ON DELETE CASCADE,
    CONSTRAINT assignments_project_fkey FOREIGN KEY (project_id)
        REFERENCES projects (id) ON DELETE CASCADE,
    CONSTRAINT assignments_domain_fkey FOREIGN KEY (domain_id)
        REFERENCES domains (id) ON DELETE CASCADE
);
CREATE INDEX assignments_target_idx ON assignments (target_type, target_id);
CREATE INDEX assignments_role_idx ON assignments (role_id);
CREATE INDEX assignments_project_idx ON assignments (project_id) WHERE project_id IS NOT NULL;
CREATE INDEX assignments_domain_idx ON assignments (domain_id) WHERE domain_id IS NOT NULL;

CREATE TABLE regions (
    id               text COLLATE "C" NOT NULL,
    description      text NOT NULL DEFAULT '',
    parent_region_id text COLLATE "C",
    CONSTRAINT regions_pkey PRIMARY KEY (id),
    CONSTRAINT regions_parent_fkey FOREIGN KEY (parent_region_id)
        REFERENCES regions (id) ON DELETE RESTRICT
);
CREATE INDEX regions_parent_idx ON regions (parent_region_id);

CREATE TABLE services (
    id      text COLLATE "C" NOT NULL,
    type    text NOT NULL,
    enabled boolean NOT NULL,
    extra   jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT services_pkey PRIMARY KEY (id)
);

CREATE TABLE endpoints (
    id         text COLLATE "C" NOT NULL,
    interface  text NOT NULL,
    region_id  text COLLATE "C",
    service_id text COLLATE "C" NOT NULL,
    url        text NOT NULL,
    enabled    boolean NOT NULL,
    CONSTRAINT endpoints_pkey PRIMARY KEY (id),
    CONSTRAINT endpoints_interface_check CHECK (interface IN ('public', 'internal', 'admin')),
    CONSTRAINT endpoints_service_fkey FOREIGN KEY (service_id)
        REFERENCES services (id) ON DELETE CASCADE,
    CONSTRAINT endpoints_region_fkey FOREIGN KEY (region_id)
        REFERENCES regions (id) ON DELETE RESTRICT
);
CREATE INDEX endpoints_service_idx ON endpoints (service_id);
CREATE INDEX endpoints_region_idx ON endpoints (region_id);

-- Revocation events in insertion order (seq). The kind says which subject
-- columns are set: audit_id; user_id; project_id; user_id and project_id
-- (a user's tokens on one project); domain_id.
CREATE TABLE revocation_events (
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    kind          text NOT NULL,
    audit_id      text COLLATE "C",
    user_id       text COLLATE "C",
    project_id    text COLLATE "C",
    domain_id     text COLLATE "C",
    issued_before bigint NOT NULL,
    expires_at    bigint NOT NULL,
    CONSTRAINT revocation_events_pkey PRIMARY KEY (seq),
    CONSTRAINT revocation_events_subject_check CHECK (
        CASE kind
            WHEN 'audit_id' THEN audit_id IS NOT NULL
                AND num_nonnulls(user_id, project_id, domain_id) = 0
            WHEN 'user' THEN user_id IS NOT NULL
                AND num_nonnulls(audit_id, project_id, domain_id) = 0
            WHEN 'project' THEN project_id IS NOT NULL
                AND num_nonnulls(audit_id, user_id, domain_id) = 0
            WHEN 'user_on_project' THEN num_nonnulls(user_id, project_id) = 2
                AND num_nonnulls(audit_id, domain_id) = 0
            WHEN 'domain' THEN domain_id IS NOT NULL
                AND num_nonnulls(audit_id, user_id, project_id) = 0
            ELSE false
        END
    )
);
CREATE INDEX revocation_events_expires_idx ON revocation_events (expires_at);

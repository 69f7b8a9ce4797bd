-- keyfed shard schema, version 2: the membership outbox.
--
-- One row per user whose role assignments on this shard changed since the
-- federation's membership index (user -> shards holding their assignments,
-- in the directory) was last told. Triggers on `assignments` write the row
-- in the transaction that changes the assignments -- grants, revocations and
-- every delete that cascades to assignments (user, project, role, domain) --
-- so a change is never lost between the shard's commit and the directory
-- write. The relay reads rows in version order, writes the index, then
-- deletes each row only if its version is unchanged.
--
-- Assignments are inserted and deleted, never updated, so INSERT and DELETE
-- triggers see every change. The triggers are per statement and upsert the
-- statement's users in user-id order, so concurrent writers lock outbox rows
-- in one order and cannot deadlock on them.

CREATE SEQUENCE membership_outbox_version AS bigint;

CREATE TABLE membership_outbox (
    user_id text COLLATE "C" NOT NULL,
    version bigint NOT NULL DEFAULT nextval('membership_outbox_version'),
    CONSTRAINT membership_outbox_pkey PRIMARY KEY (user_id)
);
CREATE INDEX membership_outbox_version_idx ON membership_outbox (version);

CREATE FUNCTION membership_outbox_record() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO membership_outbox (user_id)
    SELECT DISTINCT user_id FROM changed ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET version = EXCLUDED.version;
    RETURN NULL;
END
$$;

CREATE TRIGGER assignments_outbox_insert AFTER INSERT ON assignments
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION membership_outbox_record();
CREATE TRIGGER assignments_outbox_delete AFTER DELETE ON assignments
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION membership_outbox_record();

-- Assignments made before this version reach the index too.
INSERT INTO membership_outbox (user_id)
SELECT DISTINCT user_id FROM assignments ORDER BY user_id;

-- Every instance on this database hears of a session's change as it commits: a trigger
-- on the event log (every state change writes to it in the same transaction) notifies
-- the channel the instances listen on. A NOTIFY in a transaction is delivered on commit,
-- so an instance that dies between committing and telling the others (its own
-- notification is sent after the commit) no longer leaves their pages waiting for the
-- 30 s safety refresh. The payload says `db:` where the instance's own says its id.
CREATE FUNCTION malipo_tell_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('malipo_changes', 'db:' || NEW.session_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER payment_events_tell AFTER INSERT ON payment_events
    FOR EACH ROW EXECUTE FUNCTION malipo_tell_change();

-- PostgreSQL tells every instance of a change as it commits (a trigger on the event
-- log, this migration's PostgreSQL side). SQLite is served by one instance, which
-- signals its pages in memory: nothing to add.
SELECT 1;

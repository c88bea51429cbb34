-- The same log processing as a batch job over files (Flink's readTextFile ->
-- filter -> writeAsText): read every file of a directory once, write the
-- per-minute server-error counts as JSON lines, and end.
--
--   LOG_DIR=logs/ OUT_DIR=out/ strom run examples/log-file.sql
--
-- Output files appear as out/part-0-N only once complete (a crash leaves none
-- half-written).

CREATE TABLE access_log (
  line STRING,
  ts AS TO_TIMESTAMP(REGEXP_EXTRACT(line, '\[([^\]]+)\]', 1)),
  url AS REGEXP_EXTRACT(line, '"[A-Z]+ (\S+)', 1),
  status AS CAST(REGEXP_EXTRACT(line, '" (\d{3}) ', 1) AS INT),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = '${LOG_DIR:-logs}',
  'format' = 'raw',
  'scan.bad-records' = 'skip'   -- garbage lines are counted and logged, not fatal
);

CREATE TABLE error_counts (window_end TIMESTAMP(3), url STRING, errors BIGINT) WITH (
  'connector' = 'filesystem',
  'path' = '${OUT_DIR:-out}',
  'format' = 'json'
);

INSERT INTO error_counts
SELECT window_end, url, COUNT(*)
FROM TABLE(TUMBLE(TABLE access_log, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
WHERE status >= 500
GROUP BY window_start, window_end, url;

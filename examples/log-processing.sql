-- Log processing: raw web-server access log lines from Kafka are parsed,
-- filtered and aggregated in event time, into Kafka and PostgreSQL, exactly once.
--
--   strom run examples/log-processing.sql            until SIGTERM (final checkpoint)
--   strom run --bounded examples/log-processing.sql  what log_topic holds now, then end
--
-- ${NAME:-default} is replaced from the environment (scripts/demo sets them).

-- One line per request, e.g.
--   10.0.3.7 - - [2026-12-03T10:00:00.123Z] "GET /api/cart HTTP/1.1" 503 1234 "-" "curl/8.5"
-- Computed columns parse it; a line that does not parse (no time) goes to the
-- dead-letter topic with its original bytes and error headers.
CREATE TABLE access_log (
  line STRING,
  ts AS TO_TIMESTAMP(REGEXP_EXTRACT(line, '\[([^\]]+)\]', 1)),
  ip AS REGEXP_EXTRACT(line, '^(\S+)', 1),
  method AS REGEXP_EXTRACT(line, '"([A-Z]+) ', 1),
  url AS REGEXP_EXTRACT(line, '"[A-Z]+ (\S+)', 1),
  status AS CAST(REGEXP_EXTRACT(line, '" (\d{3}) ', 1) AS INT),
  bytes AS CAST(REGEXP_EXTRACT(line, '" \d{3} (\d+)', 1) AS BIGINT),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${LOG_TOPIC:-log_topic}',
  'format' = 'raw',
  'properties.group.id' = '${APP:-strom-log-processing}',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bad-records.topic' = '${DEAD_LETTER_TOPIC:-log_dead_letters}'
);

-- Server errors per URL and minute: Kafka, exactly once, keyed by URL.
CREATE TABLE error_counts (window_end TIMESTAMP(3), url STRING, errors BIGINT) WITH (
  'connector' = 'kafka',
  'topic' = '${OUTPUT_TOPIC:-log_processed_topic}',
  'format' = 'json',
  'key.fields' = 'url',
  'sink.delivery-guarantee' = 'exactly-once'
);

-- Requests and bytes per status class and minute: PostgreSQL, exactly once
-- (each checkpoint's rows in one prepared transaction, committed with it).
CREATE TABLE status_bytes (
  window_end TIMESTAMP(3), status_class STRING, requests BIGINT, bytes BIGINT,
  PRIMARY KEY (window_end, status_class) NOT ENFORCED
) WITH (
  'connector' = 'postgres',
  'url' = '${POSTGRES_URL:-host=127.0.0.1 port=5432 user=postgres dbname=strom}',
  'table-name' = '${STATUS_TABLE:-status_bytes}',
  'sink.delivery-guarantee' = 'exactly-once'
);

-- Hits per URL in 5-minute windows (the top URLs): PostgreSQL, upserted by key.
CREATE TABLE url_hits (
  window_end TIMESTAMP(3), url STRING, hits BIGINT,
  PRIMARY KEY (window_end, url) NOT ENFORCED
) WITH (
  'connector' = 'postgres',
  'url' = '${POSTGRES_URL:-host=127.0.0.1 port=5432 user=postgres dbname=strom}',
  'table-name' = '${HITS_TABLE:-url_hits}',
  'sink.delivery-guarantee' = 'exactly-once'
);

CREATE VIEW requests AS
SELECT ts, url, status, bytes, CONCAT(CAST(status / 100 AS STRING), 'xx') AS status_class
FROM access_log;

INSERT INTO error_counts
SELECT window_end, url, COUNT(*)
FROM TABLE(TUMBLE(TABLE access_log, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
WHERE status >= 500
GROUP BY window_start, window_end, url;

INSERT INTO status_bytes
SELECT window_end, status_class, COUNT(*), SUM(bytes)
FROM TABLE(TUMBLE(TABLE requests, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, status_class;

INSERT INTO url_hits
SELECT window_end, url, COUNT(*)
FROM TABLE(TUMBLE(TABLE access_log, DESCRIPTOR(ts), INTERVAL '5' MINUTE))
GROUP BY window_start, window_end, url;

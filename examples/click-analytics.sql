-- Click analytics with sliding windows: JSON click events from Kafka; every
-- 10 seconds, the clicks, distinct users and average dwell time per page over
-- the last minute, printed; and a running total per country (an updating
-- result, keyed by country) into Kafka.
--
--   strom run examples/click-analytics.sql

CREATE TABLE clicks (
  ts TIMESTAMP(3), user_id BIGINT, page STRING, country STRING, dwell_ms INT,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${CLICK_TOPIC:-clicks}',
  'format' = 'json',
  'properties.group.id' = '${APP:-strom-click-analytics}',
  'scan.startup.mode' = 'earliest-offset',
  'scan.watermark.idle-timeout' = '30 s'
);

CREATE TABLE page_stats (
  window_start TIMESTAMP(3), window_end TIMESTAMP(3), page STRING,
  clicks BIGINT, users BIGINT, avg_dwell_ms INT
) WITH ('connector' = 'print', 'print-identifier' = 'pages');

CREATE TABLE country_totals (country STRING, clicks BIGINT, PRIMARY KEY (country) NOT ENFORCED) WITH (
  'connector' = 'kafka',
  'topic' = '${COUNTRY_TOPIC:-country_totals}',
  'format' = 'json'
);

INSERT INTO page_stats
SELECT window_start, window_end, page, COUNT(*), COUNT(DISTINCT user_id), AVG(dwell_ms)
FROM TABLE(HOP(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, page;

INSERT INTO country_totals
SELECT country, COUNT(*) FROM clicks WHERE country IS NOT NULL GROUP BY country;

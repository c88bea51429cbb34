-- Nexmark's three streams from strom's `nexmark` connector (the published
-- generator's events; see connectors/src/nexmark). Dialect change from the
-- nexmark/nexmark repository's ddl_gen.sql + ddl_views.sql: strom has no ROW
-- type, so each stream is its own table instead of a view over one `datagen`
-- table of ROWs; the columns, the watermark and the options are the same.
--
--   cat examples/nexmark/ddl.sql examples/nexmark/q5.sql > q5-run.sql
--   EVENTS_NUM=10000000 strom run q5-run.sql

CREATE TABLE person (
  id BIGINT, name STRING, emailAddress STRING, creditCard STRING, city STRING, state STRING,
  dateTime TIMESTAMP(3), extra STRING,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events.num' = '${EVENTS_NUM:-0}',
        'first-event.rate' = '${TPS:-10000}', 'next-event.rate' = '${TPS:-10000}');

CREATE TABLE auction (
  id BIGINT, itemName STRING, description STRING, initialBid BIGINT, reserve BIGINT,
  dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra STRING,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events.num' = '${EVENTS_NUM:-0}',
        'first-event.rate' = '${TPS:-10000}', 'next-event.rate' = '${TPS:-10000}');

CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  dateTime TIMESTAMP(3), extra STRING,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events.num' = '${EVENTS_NUM:-0}',
        'first-event.rate' = '${TPS:-10000}', 'next-event.rate' = '${TPS:-10000}');

-- Joins on streams: orders and payments from Kafka.
--
-- An interval join keeps each order until no payment within 10 minutes can
-- still arrive, so its state stays bounded; a window join pairs orders and
-- payments of the same minute.
--
--   strom run examples/order-payments.sql

CREATE TABLE orders (
  ts TIMESTAMP(3), order_id BIGINT, customer STRING, amount DECIMAL(10, 2),
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${ORDER_TOPIC:-orders}',
  'format' = 'json',
  'properties.group.id' = '${APP:-strom-order-payments}',
  'scan.startup.mode' = 'earliest-offset'
);

CREATE TABLE payments (
  ts TIMESTAMP(3), order_id BIGINT, paid DECIMAL(10, 2), method STRING,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${PAYMENT_TOPIC:-payments}',
  'format' = 'json'
);

-- Orders paid in full within 10 minutes, with how long the payment took.
CREATE TABLE paid_orders (
  order_id BIGINT, customer STRING, amount DECIMAL(10, 2), method STRING, seconds_to_pay BIGINT
) WITH (
  'connector' = 'kafka',
  'topic' = '${PAID_TOPIC:-paid_orders}',
  'format' = 'json',
  'key.fields' = 'order_id',
  'sink.delivery-guarantee' = 'exactly-once'
);

-- Orders paid in the same minute they were placed.
CREATE TABLE same_minute (window_end TIMESTAMP(3), order_id BIGINT, method STRING)
WITH ('connector' = 'print', 'print-identifier' = 'same-minute');

INSERT INTO paid_orders
SELECT o.order_id, o.customer, o.amount, p.method, (CAST(p.ts AS BIGINT) - CAST(o.ts AS BIGINT)) / 1000
FROM orders o
JOIN payments p
  ON o.order_id = p.order_id
 AND p.ts BETWEEN o.ts AND o.ts + INTERVAL '10' MINUTE
WHERE p.paid >= o.amount;

INSERT INTO same_minute
SELECT o.window_end, o.order_id, p.method
FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) o
JOIN TABLE(TUMBLE(TABLE payments, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) p
  ON o.window_start = p.window_start AND o.window_end = p.window_end AND o.order_id = p.order_id;

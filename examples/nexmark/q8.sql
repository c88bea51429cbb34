-- Nexmark Query 8: Monitor new users, the people who registered and opened an
-- auction in the same 10-second window. Dialect change from the published
-- query: the windows are TUMBLE table functions (window_start, window_end)
-- instead of TUMBLE_START/TUMBLE_END in a group window; the columns, the
-- windows and the join are the same. strom plans each side as a window
-- aggregate and the join on the window bounds as an interval join of equal
-- window times.
CREATE TABLE nexmark_q8 (id BIGINT, name STRING, stime TIMESTAMP(3)) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q8
SELECT P.id, P.name, P.starttime
FROM (
  SELECT id, name, window_start AS starttime, window_end AS endtime
  FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
  GROUP BY id, name, window_start, window_end
) P
JOIN (
  SELECT seller, window_start AS starttime, window_end AS endtime
  FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
  GROUP BY seller, window_start, window_end
) A
ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;

-- Nexmark Query 3: Local Item Suggestion, who is selling in OR, ID or CA in
-- category 10, and for what auction ids (as published). strom plans it as a
-- regular join of auction and person on the seller, each side filtered before
-- the join (A.category = 10; the state of P), so its state holds only rows
-- that can join. Both sides are kept forever, as in Flink; a line
--   SET 'table.exec.state.ttl' = '1 h';
-- forgets a row an hour after it arrived.
CREATE TABLE nexmark_q3 (name STRING, city STRING, state STRING, id BIGINT) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q3
SELECT P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person AS P on A.seller = P.id
WHERE A.category = 10 and (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');

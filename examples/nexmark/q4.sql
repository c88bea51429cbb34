-- Nexmark Query 4: Average Price for a Category, the average closing price of
-- the auctions of each category (as published). strom plans the inner query as
-- a regular join of auction and bid on the auction id, keeping the bids made
-- while the auction was open (B.dateTime BETWEEN A.dateTime AND A.expires
-- filters the joined rows: A.expires is not a time attribute, so this is no
-- interval join), then the highest price per auction: an updating result,
-- keyed by A.id, A.category. The outer GROUP BY takes back an auction's old
-- maximum before it adds the new one, so each category's average counts every
-- auction once, with its current maximum; its result is itself updating (an
-- upsert per category). Join and aggregate state is kept forever, as in Flink;
-- a line
--   SET 'table.exec.state.ttl' = '1 h';
-- forgets a joined row an hour after it arrived, and an aggregate's key an
-- hour after its last change (its result then starts over).
CREATE TABLE nexmark_q4 (id BIGINT, final BIGINT) WITH ('connector' = 'blackhole');

INSERT INTO nexmark_q4
SELECT
    Q.category,
    AVG(Q.final)
FROM (
    SELECT MAX(B.price) AS final, A.category
    FROM auction A, bid B
    WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
    GROUP BY A.id, A.category
) Q
GROUP BY Q.category;

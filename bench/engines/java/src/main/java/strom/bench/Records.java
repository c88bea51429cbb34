package strom.bench;

import java.nio.charset.StandardCharsets;

/**
 * The input format every system parses the same way: the value is ASCII
 * {@code key,event_time_ms,amount}, the record key is {@code key}. The pipelines'
 * constants live here so Flink and Kafka Streams agree with the Rust side
 * (bench/engines/src/data.rs).
 */
final class Records {
    /** filter+map keeps amounts below this. */
    static final long KEEP_BELOW = 700;
    /** Tumbling window size of the count pipeline. */
    static final long WINDOW_MS = 60_000;
    /** Sliding window size of the sliding pipeline. */
    static final long SLIDING_SIZE_MS = 600_000;
    /** Slide of the sliding pipeline's windows. */
    static final long SLIDING_SLIDE_MS = 10_000;
    /** Watermark bound (Flink, strom) and grace (Kafka Streams) of the count pipeline. */
    static final long OUT_OF_ORDER_MS = 30_000;

    /** Inclusive bounds of the join's {@code payment.ts - order.ts}. */
    static final long JOIN_LOWER_MS = -5_000;
    static final long JOIN_UPPER_MS = 10_000;
    /**
     * Kafka Streams' grace of the join window: long enough that no record's
     * partner has left the window stores (the stores keep before + after + grace
     * behind the latest time each has seen).
     */
    static final long JOIN_GRACE_MS = 60_000;

    private Records() {}

    /** One parsed input value. */
    static final class Parsed {
        String key;
        long ts;
        long amount;
    }

    static Parsed parse(byte[] value) {
        String s = new String(value, StandardCharsets.US_ASCII);
        int a = s.indexOf(',');
        int b = s.indexOf(',', a + 1);
        Parsed p = new Parsed();
        p.key = s.substring(0, a);
        p.ts = Long.parseLong(s, a + 1, b, 10);
        p.amount = Long.parseLong(s, b + 1, s.length(), 10);
        return p;
    }

    /** The event time of a value, without building the rest. */
    static long eventTime(byte[] value) {
        int a = 0;
        while (value[a] != ',') {
            a++;
        }
        long ts = 0;
        for (int i = a + 1; value[i] != ','; i++) {
            ts = ts * 10 + (value[i] - '0');
        }
        return ts;
    }

    /** The sliding pipeline's grouping key: {@code r} and the key's last three digits; an end marker's own key. */
    static String region(String key) {
        return key.startsWith("k") ? "r" + key.substring(Math.max(1, key.length() - 3)) : key;
    }

    /** filter+map's output value: the amount doubled. */
    static byte[] mapped(Parsed p) {
        return (p.key + "," + p.ts + "," + (p.amount * 2)).getBytes(StandardCharsets.US_ASCII);
    }

    /** The count pipeline's output value. */
    static byte[] windowCount(String key, long windowStart, long count) {
        return (key + "," + windowStart + "," + count).getBytes(StandardCharsets.US_ASCII);
    }

    /** The join's output value: {@code key,order_ts,order_amount,payment_ts,payment_amount}. */
    static byte[] joined(String key, long orderTs, long orderAmount, long paymentTs, long paymentAmount) {
        return (key + "," + orderTs + "," + orderAmount + "," + paymentTs + "," + paymentAmount)
                .getBytes(StandardCharsets.US_ASCII);
    }

    /** The join's output value from an order's and a payment's values. */
    static byte[] joined(byte[] order, byte[] payment) {
        Parsed o = parse(order);
        Parsed p = parse(payment);
        return joined(o.key, o.ts, o.amount, p.ts, p.amount);
    }
}

package strom.bench;

import java.util.HashMap;
import java.util.Map;

/** The command line every system takes: {@code --name value} pairs, all required but the state backend. */
final class Args {
    final String bootstrap;
    final String input;
    final String output;
    /** Application id, consumer group and transactional id prefix. */
    final String app;
    /** passthrough | filtermap | count | sliding | join */
    final String pipeline;
    /** The join's second input topic (join only). */
    final String payments;
    final boolean exactlyOnce;
    final long checkpointMs;
    final int parallelism;
    /** Flink only: hashmap | rocksdb */
    final String stateBackend;
    /** Checkpoints (Flink) or state stores (Kafka Streams). */
    final String stateDir;

    Args(String[] argv) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            if (!argv[i].startsWith("--")) {
                throw new IllegalArgumentException("expected --name value, got " + argv[i]);
            }
            m.put(argv[i].substring(2), argv[i + 1]);
        }
        bootstrap = need(m, "bootstrap");
        input = need(m, "input");
        output = need(m, "output");
        app = need(m, "app");
        pipeline = need(m, "pipeline");
        payments = pipeline.equals("join") ? need(m, "payments") : null;
        String g = need(m, "guarantee");
        if (!g.equals("alo") && !g.equals("eos")) {
            throw new IllegalArgumentException("--guarantee alo|eos, got " + g);
        }
        exactlyOnce = g.equals("eos");
        checkpointMs = Long.parseLong(need(m, "checkpoint-ms"));
        parallelism = Integer.parseInt(need(m, "parallelism"));
        stateBackend = m.getOrDefault("state-backend", "hashmap");
        stateDir = need(m, "state-dir");
    }

    private static String need(Map<String, String> m, String k) {
        String v = m.get(k);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + k);
        }
        return v;
    }
}

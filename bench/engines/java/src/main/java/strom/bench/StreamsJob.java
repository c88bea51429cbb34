package strom.bench;

import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;

/**
 * The pipelines on Kafka Streams: one application with {@code parallelism} stream
 * threads; the window count keeps its state in RocksDB with a changelog topic (the
 * default) and emits final results only (suppress until the window closes); the
 * sliding window re-keys by region, which repartitions through an internal topic;
 * the join keeps both inputs in RocksDB window stores with changelog topics.
 */
final class StreamsJob {
    private StreamsJob() {}

    static void run(Args a) throws Exception {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, a.app);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
                a.exactlyOnce ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.toString(a.checkpointMs));
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.toString(a.parallelism));
        p.put(StreamsConfig.STATE_DIR_CONFIG, a.stateDir);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        p.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "lz4");
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), "5");

        StreamsBuilder b = new StreamsBuilder();
        switch (a.pipeline) {
            case "passthrough" -> b.stream(a.input, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
                    .to(a.output, Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));
            case "filtermap" -> b.stream(a.input, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
                    .mapValues(Records::parse)
                    .filter((k, v) -> v.amount < Records.KEEP_BELOW)
                    .mapValues(Records::mapped)
                    .to(a.output, Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));
            case "count" -> {
                KStream<String, byte[]> in = b.stream(a.input,
                        Consumed.with(Serdes.String(), Serdes.ByteArray())
                                .withTimestampExtractor((r, prev) -> Records.eventTime((byte[]) r.value())));
                in.groupByKey(Grouped.with(Serdes.String(), Serdes.ByteArray()))
                        .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(Records.WINDOW_MS),
                                Duration.ofMillis(Records.OUT_OF_ORDER_MS)))
                        .count(Materialized.with(Serdes.String(), Serdes.Long()))
                        .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                        .toStream()
                        .map((w, c) -> KeyValue.pair(w.key(), Records.windowCount(w.key(), w.window().start(), c)))
                        .to(a.output, Produced.with(Serdes.String(), Serdes.ByteArray()));
            }
            case "sliding" -> {
                KStream<String, byte[]> in = b.stream(a.input,
                        Consumed.with(Serdes.String(), Serdes.ByteArray())
                                .withTimestampExtractor((r, prev) -> Records.eventTime((byte[]) r.value())));
                in.map((k, v) -> {
                            Records.Parsed r = Records.parse(v);
                            return KeyValue.pair(Records.region(r.key), r.amount);
                        })
                        .groupByKey(Grouped.with(Serdes.String(), Serdes.Long()))
                        .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(Records.SLIDING_SIZE_MS),
                                        Duration.ofMillis(Records.OUT_OF_ORDER_MS))
                                .advanceBy(Duration.ofMillis(Records.SLIDING_SLIDE_MS)))
                        .reduce(Long::sum, Materialized.with(Serdes.String(), Serdes.Long()))
                        .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                        .toStream()
                        .map((w, s) -> KeyValue.pair(w.key(), Records.windowCount(w.key(), w.window().start(), s)))
                        .to(a.output, Produced.with(Serdes.String(), Serdes.ByteArray()));
            }
            case "join" -> {
                Consumed<String, byte[]> byEventTime = Consumed.with(Serdes.String(), Serdes.ByteArray())
                        .withTimestampExtractor((r, prev) -> Records.eventTime((byte[]) r.value()));
                KStream<String, byte[]> orders = b.stream(a.input, byEventTime);
                KStream<String, byte[]> payments = b.stream(a.payments, byEventTime);
                // before/after: payment.ts in [order.ts - before, order.ts + after], both inclusive.
                orders.join(payments, Records::joined,
                                JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(Records.JOIN_UPPER_MS),
                                                Duration.ofMillis(Records.JOIN_GRACE_MS))
                                        .before(Duration.ofMillis(-Records.JOIN_LOWER_MS)),
                                StreamJoined.with(Serdes.String(), Serdes.ByteArray(), Serdes.ByteArray()))
                        .to(a.output, Produced.with(Serdes.String(), Serdes.ByteArray()));
            }
            default -> throw new IllegalArgumentException("unknown pipeline " + a.pipeline);
        }
        KafkaStreams streams = new KafkaStreams(b.build(), p);
        CountDownLatch failed = new CountDownLatch(1);
        streams.setUncaughtExceptionHandler(e -> {
            e.printStackTrace();
            failed.countDown();
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse
                    .SHUTDOWN_APPLICATION;
        });
        streams.start();
        failed.await();
        System.exit(1);
    }
}

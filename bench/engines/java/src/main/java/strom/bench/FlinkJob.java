package strom.bench;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Properties;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.co.ProcessJoinFunction;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.SlidingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * The pipelines on Apache Flink's DataStream API in a local MiniCluster (one JVM),
 * Kafka in and out through flink-connector-kafka; checkpoints to a local directory,
 * state on the heap (hashmap) or in RocksDB.
 */
final class FlinkJob {
    private FlinkJob() {}

    /** A record: key and value bytes. */
    static final TypeInformation<Tuple2<byte[], byte[]>> RAW =
            Types.TUPLE(Types.PRIMITIVE_ARRAY(Types.BYTE), Types.PRIMITIVE_ARRAY(Types.BYTE));

    static void run(Args a) throws Exception {
        Configuration conf = new Configuration();
        conf.setString("state.backend.type", a.stateBackend);
        conf.setString("execution.checkpointing.dir", "file://" + a.stateDir);
        conf.setString("taskmanager.memory.managed.size", "256m");
        StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(a.parallelism, conf);
        env.getConfig().enableObjectReuse();
        env.enableCheckpointing(a.checkpointMs,
                a.exactlyOnce ? CheckpointingMode.EXACTLY_ONCE : CheckpointingMode.AT_LEAST_ONCE);

        KafkaSource<Tuple2<byte[], byte[]>> source = source(a, a.input);
        Properties producer = new Properties();
        producer.setProperty("compression.type", "lz4");
        producer.setProperty("linger.ms", "5");
        // Below the broker's transaction.max.timeout.ms (15 min).
        producer.setProperty("transaction.timeout.ms", "600000");
        KafkaSink<Tuple2<byte[], byte[]>> sink = KafkaSink.<Tuple2<byte[], byte[]>>builder()
                .setBootstrapServers(a.bootstrap)
                .setRecordSerializer(new RawSerializer(a.output))
                .setDeliveryGuarantee(a.exactlyOnce ? DeliveryGuarantee.EXACTLY_ONCE : DeliveryGuarantee.AT_LEAST_ONCE)
                .setTransactionalIdPrefix(a.app)
                .setKafkaProducerConfig(producer)
                .build();

        DataStream<Tuple2<byte[], byte[]>> out;
        switch (a.pipeline) {
            case "passthrough" -> out = env.fromSource(source, WatermarkStrategy.noWatermarks(), "kafka");
            case "filtermap" -> out = env.fromSource(source, WatermarkStrategy.noWatermarks(), "kafka")
                    .map(t -> {
                        Records.Parsed p = Records.parse(t.f1);
                        return Tuple3.of(p.key, p.ts, p.amount);
                    })
                    .returns(Types.TUPLE(Types.STRING, Types.LONG, Types.LONG))
                    .filter(t -> t.f2 < Records.KEEP_BELOW)
                    .map(t -> {
                        Records.Parsed p = new Records.Parsed();
                        p.key = t.f0;
                        p.ts = t.f1;
                        p.amount = t.f2;
                        return Tuple2.of(t.f0.getBytes(StandardCharsets.US_ASCII), Records.mapped(p));
                    })
                    .returns(RAW);
            case "count" -> out = env.fromSource(source,
                            WatermarkStrategy.<Tuple2<byte[], byte[]>>forBoundedOutOfOrderness(
                                            Duration.ofMillis(Records.OUT_OF_ORDER_MS))
                                    .withTimestampAssigner((t, ts) -> Records.eventTime(t.f1)),
                            "kafka")
                    .map(t -> new String(t.f0, StandardCharsets.US_ASCII))
                    .returns(Types.STRING)
                    .keyBy(k -> k)
                    .window(TumblingEventTimeWindows.of(Duration.ofMillis(Records.WINDOW_MS)))
                    .aggregate(new Count(), new WithWindow())
                    .returns(RAW);
            case "sliding" -> out = env.fromSource(source,
                            WatermarkStrategy.<Tuple2<byte[], byte[]>>forBoundedOutOfOrderness(
                                            Duration.ofMillis(Records.OUT_OF_ORDER_MS))
                                    .withTimestampAssigner((t, ts) -> Records.eventTime(t.f1)),
                            "kafka")
                    .map(t -> {
                        Records.Parsed p = Records.parse(t.f1);
                        return Tuple2.of(Records.region(p.key), p.amount);
                    })
                    .returns(Types.TUPLE(Types.STRING, Types.LONG))
                    .keyBy(t -> t.f0)
                    .window(SlidingEventTimeWindows.of(Duration.ofMillis(Records.SLIDING_SIZE_MS),
                            Duration.ofMillis(Records.SLIDING_SLIDE_MS)))
                    .aggregate(new SumAmounts(), new WithWindow())
                    .returns(RAW);
            case "join" -> {
                KeyedStream<Tuple3<String, Long, Long>, String> orders =
                        env.fromSource(source, byEventTime(), "orders")
                                .map(t -> parsed(t.f1)).returns(PARSED).keyBy(t -> t.f0);
                KeyedStream<Tuple3<String, Long, Long>, String> payments =
                        env.fromSource(source(a, a.payments), byEventTime(), "payments")
                                .map(t -> parsed(t.f1)).returns(PARSED).keyBy(t -> t.f0);
                out = orders.intervalJoin(payments)
                        .between(Duration.ofMillis(Records.JOIN_LOWER_MS), Duration.ofMillis(Records.JOIN_UPPER_MS))
                        .process(new Joined(), RAW);
            }
            default -> throw new IllegalArgumentException("unknown pipeline " + a.pipeline);
        }
        out.sinkTo(sink);
        env.execute("engines-bench-" + a.pipeline);
    }

    /** key, event time, amount. */
    static final TypeInformation<Tuple3<String, Long, Long>> PARSED = Types.TUPLE(Types.STRING, Types.LONG, Types.LONG);

    /** {@code topic} from the earliest offsets, key and value bytes. */
    static KafkaSource<Tuple2<byte[], byte[]>> source(Args a, String topic) {
        return KafkaSource.<Tuple2<byte[], byte[]>>builder()
                .setBootstrapServers(a.bootstrap)
                .setTopics(topic)
                .setGroupId(a.app)
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setDeserializer(new RawDeserializer())
                .build();
    }

    /** Event time from the value, watermarks {@link Records#OUT_OF_ORDER_MS} behind the largest. */
    static WatermarkStrategy<Tuple2<byte[], byte[]>> byEventTime() {
        return WatermarkStrategy.<Tuple2<byte[], byte[]>>forBoundedOutOfOrderness(Duration.ofMillis(Records.OUT_OF_ORDER_MS))
                .withTimestampAssigner((t, ts) -> Records.eventTime(t.f1));
    }

    static Tuple3<String, Long, Long> parsed(byte[] value) {
        Records.Parsed p = Records.parse(value);
        return Tuple3.of(p.key, p.ts, p.amount);
    }

    /** Key and value bytes as they are. */
    static final class RawDeserializer implements KafkaRecordDeserializationSchema<Tuple2<byte[], byte[]>> {
        @Override
        public void deserialize(ConsumerRecord<byte[], byte[]> r, Collector<Tuple2<byte[], byte[]>> out) {
            out.collect(Tuple2.of(r.key(), r.value()));
        }

        @Override
        public TypeInformation<Tuple2<byte[], byte[]>> getProducedType() {
            return RAW;
        }
    }

    /** Key and value bytes to one topic, partitioned by key. */
    static final class RawSerializer implements KafkaRecordSerializationSchema<Tuple2<byte[], byte[]>> {
        private final String topic;

        RawSerializer(String topic) {
            this.topic = topic;
        }

        @Override
        public ProducerRecord<byte[], byte[]> serialize(Tuple2<byte[], byte[]> t, KafkaSinkContext ctx, Long ts) {
            return new ProducerRecord<>(topic, null, ts, t.f0, t.f1);
        }
    }

    /** COUNT(*). */
    static final class Count implements AggregateFunction<String, Long, Long> {
        @Override
        public Long createAccumulator() {
            return 0L;
        }

        @Override
        public Long add(String value, Long acc) {
            return acc + 1;
        }

        @Override
        public Long getResult(Long acc) {
            return acc;
        }

        @Override
        public Long merge(Long a, Long b) {
            return a + b;
        }
    }

    /** SUM(amount). */
    static final class SumAmounts implements AggregateFunction<Tuple2<String, Long>, Long, Long> {
        @Override
        public Long createAccumulator() {
            return 0L;
        }

        @Override
        public Long add(Tuple2<String, Long> value, Long acc) {
            return acc + value.f1;
        }

        @Override
        public Long getResult(Long acc) {
            return acc;
        }

        @Override
        public Long merge(Long a, Long b) {
            return a + b;
        }
    }

    /** One joined order and payment, as an output record. */
    static final class Joined
            extends ProcessJoinFunction<Tuple3<String, Long, Long>, Tuple3<String, Long, Long>, Tuple2<byte[], byte[]>> {
        @Override
        public void processElement(Tuple3<String, Long, Long> o, Tuple3<String, Long, Long> p, Context ctx,
                Collector<Tuple2<byte[], byte[]>> out) {
            out.collect(Tuple2.of(o.f0.getBytes(StandardCharsets.US_ASCII),
                    Records.joined(o.f0, o.f1, o.f2, p.f1, p.f2)));
        }
    }

    /** The aggregate with its key and window start, as an output record. */
    static final class WithWindow extends ProcessWindowFunction<Long, Tuple2<byte[], byte[]>, String, TimeWindow> {
        @Override
        public void process(String key, Context ctx, Iterable<Long> counts, Collector<Tuple2<byte[], byte[]>> out) {
            long count = counts.iterator().next();
            out.collect(Tuple2.of(key.getBytes(StandardCharsets.US_ASCII),
                    Records.windowCount(key, ctx.window().getStart(), count)));
        }
    }
}

package strom.bench;

/** {@code java -cp ... strom.bench.Main flink|kstreams --bootstrap ... --pipeline ...}: runs until killed. */
public final class Main {
    private Main() {}

    public static void main(String[] argv) throws Exception {
        if (argv.length < 1) {
            System.err.println("usage: Main flink|kstreams --bootstrap B --input T --output T --app A "
                    + "--pipeline passthrough|filtermap|count|sliding|join [--payments T] --guarantee alo|eos --checkpoint-ms N "
                    + "--parallelism P --state-dir DIR [--state-backend hashmap|rocksdb]");
            System.exit(2);
        }
        String[] rest = java.util.Arrays.copyOfRange(argv, 1, argv.length);
        Args args = new Args(rest);
        switch (argv[0]) {
            case "flink" -> FlinkJob.run(args);
            case "kstreams" -> StreamsJob.run(args);
            default -> throw new IllegalArgumentException("unknown system " + argv[0]);
        }
    }
}

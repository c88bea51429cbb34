package strom.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.StatementSet;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;

/**
 * One Flink SQL script (CREATE TABLE ..., INSERT INTO ...) in a local MiniCluster
 * in this JVM: the CREATEs run one by one, the INSERTs as one statement set, and
 * the process ends when that job does (bounded sources).
 *
 * <p>{@code java -cp ... strom.bench.NexmarkSql --sql FILE --parallelism P --checkpoint-ms N --state-dir DIR}
 */
public final class NexmarkSql {
    private NexmarkSql() {}

    public static void main(String[] argv) throws Exception {
        String file = null;
        int parallelism = 1;
        long checkpointMs = 0;
        String stateDir = null;
        for (int i = 0; i + 1 < argv.length; i += 2) {
            switch (argv[i]) {
                case "--sql" -> file = argv[i + 1];
                case "--parallelism" -> parallelism = Integer.parseInt(argv[i + 1]);
                case "--checkpoint-ms" -> checkpointMs = Long.parseLong(argv[i + 1]);
                case "--state-dir" -> stateDir = argv[i + 1];
                default -> throw new IllegalArgumentException("unknown option " + argv[i]);
            }
        }
        if (file == null || (checkpointMs > 0 && stateDir == null)) {
            System.err.println("usage: NexmarkSql --sql FILE [--parallelism P] [--checkpoint-ms N --state-dir DIR]");
            System.exit(2);
        }
        Configuration conf = new Configuration();
        conf.setString("taskmanager.memory.managed.size", "256m");
        conf.setString("state.backend.type", "hashmap");
        // A failure ends the process (no restarts): the driver records it.
        conf.setString("restart-strategy.type", "none");
        if (stateDir != null) {
            conf.setString("execution.checkpointing.dir", "file://" + stateDir);
        }
        StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(parallelism, conf);
        env.getConfig().enableObjectReuse();
        if (checkpointMs > 0) {
            env.enableCheckpointing(checkpointMs);
        }
        StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
        StatementSet inserts = tEnv.createStatementSet();
        int n = 0;
        for (String stmt : statements(Files.readString(Path.of(file)))) {
            if (stmt.regionMatches(true, 0, "INSERT", 0, 6)) {
                inserts.addInsertSql(stmt);
                n++;
            } else {
                tEnv.executeSql(stmt);
            }
        }
        if (n == 0) {
            throw new IllegalArgumentException(file + ": no INSERT");
        }
        long start = System.nanoTime();
        TableResult result = inserts.execute();
        result.await();
        System.err.printf("[nexmark-sql] job %s done in %.3f s%n",
                result.getJobClient().map(c -> c.getJobID().toString()).orElse("?"),
                (System.nanoTime() - start) / 1e9);
        System.exit(0);
    }

    /** The statements of a script: `--` comments removed, split at `;` outside quotes. */
    static List<String> statements(String text) {
        List<String> out = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        boolean quoted = false;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (!quoted && c == '-' && i + 1 < text.length() && text.charAt(i + 1) == '-') {
                while (i < text.length() && text.charAt(i) != '\n') {
                    i++;
                }
                cur.append('\n');
                continue;
            }
            if (c == '\'') {
                quoted = !quoted;
            }
            if (!quoted && c == ';') {
                add(out, cur);
                continue;
            }
            cur.append(c);
        }
        add(out, cur);
        return out;
    }

    private static void add(List<String> out, StringBuilder cur) {
        String s = cur.toString().trim();
        if (!s.isEmpty()) {
            out.add(s);
        }
        cur.setLength(0);
    }
}

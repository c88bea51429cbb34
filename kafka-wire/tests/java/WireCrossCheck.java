// Cross-check of kafka-wire's generated codecs against Kafka's own Java message classes.
//
// Input: a file of lines `<SpecName> <version> <hex bytes>`, each an encoding produced by
// kafka-wire. For every line whose version the Java classes support, Kafka's codec reads
// the bytes (all of them) and writes them again; the result must be byte-identical.
// Run by kafka-wire's unit test `kafka_java_codec_reads_and_rewrites_our_bytes`.
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HexFormat;

import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.protocol.Message;
import org.apache.kafka.common.protocol.ObjectSerializationCache;

public class WireCrossCheck {
    public static void main(String[] args) throws Exception {
        int ok = 0, skipped = 0, failed = 0;
        HexFormat hex = HexFormat.of();
        for (String line : Files.readAllLines(Path.of(args[0]))) {
            if (line.isBlank()) {
                continue;
            }
            String[] parts = line.split(" ");
            String name = parts[0];
            short version = Short.parseShort(parts[1]);
            byte[] bytes = parts.length > 2 ? hex.parseHex(parts[2]) : new byte[0];
            Message message = newMessage(name);
            if (message == null
                    || version < message.lowestSupportedVersion()
                    || version > message.highestSupportedVersion()) {
                skipped++;
                continue;
            }
            try {
                ByteBuffer in = ByteBuffer.wrap(bytes);
                message.read(new ByteBufferAccessor(in), version);
                if (in.hasRemaining()) {
                    throw new IllegalStateException(in.remaining() + " bytes left over");
                }
                ObjectSerializationCache cache = new ObjectSerializationCache();
                ByteBuffer out = ByteBuffer.allocate(message.size(cache, version));
                message.write(new ByteBufferAccessor(out), cache, version);
                if (!Arrays.equals(out.array(), bytes)) {
                    throw new IllegalStateException("Kafka re-encodes as " + hex.formatHex(out.array()));
                }
                ok++;
            } catch (Exception e) {
                failed++;
                System.out.println("FAIL " + name + " v" + version + ": " + e + "\n  ours: " + hex.formatHex(bytes));
            }
        }
        System.out.println("ok " + ok + " skipped " + skipped + " failed " + failed);
        System.exit(failed == 0 ? 0 : 1);
    }

    // Kafka names the classes of requests, responses and headers `<Name>Data`, the others `<Name>`.
    static Message newMessage(String name) throws Exception {
        for (String cls : new String[] {name + "Data", name}) {
            try {
                return (Message) Class.forName("org.apache.kafka.common.message." + cls)
                        .getConstructor()
                        .newInstance();
            } catch (ClassNotFoundException e) {
                // try the other spelling
            }
        }
        return null;
    }
}

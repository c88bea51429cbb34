// Prints the error codes that the Kafka Java client knows, one per line:
// NAME<TAB>code<TAB>retriable<TAB>default message. scripts/gen-error-codes turns this into
// kafka-wire/src/error_code/table.rs. Runs against the kafka-clients jar fetched by scripts/kafka.
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.protocol.Errors;

public class ErrorTable {
    public static void main(String[] args) {
        for (Errors e : Errors.values()) {
            Throwable ex = e.exception();
            boolean retriable = ex instanceof RetriableException;
            String msg = ex == null ? "" : ex.getMessage();
            if (msg == null) msg = "";
            System.out.println(e.name() + "\t" + e.code() + "\t" + retriable + "\t" + msg.replace("\t", " ").replace("\n", " "));
        }
    }
}

// Invoke a Reprise handler from Java through Kafka, without Avro libraries: the command body
// (schemas/command_invoke.v1.avsc) is encoded by hand (Avro's binary encoding is small: zig-zag
// varints, length-prefixed strings, union branch indexes) and written to the commands topic. The
// engine derives the invocation id and routes it to the log partition that owns the key; the record
// key (the object key) only keeps one key's commands in order.
//
//   java -cp "$HOME/.cache/reprise/kafka-4.1.0/lib/*" examples/kafka/InvokeProducer.java \
//        127.0.0.1:9092 reprise.commands Counter add c1 1 [idempotency-key]
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class InvokeProducer {
    static void varLong(ByteArrayOutputStream out, long v) {
        long z = (v << 1) ^ (v >> 63);  // zig-zag
        while ((z & ~0x7FL) != 0) { out.write((int) ((z & 0x7F) | 0x80)); z >>>= 7; }
        out.write((int) z);
    }

    static void bytes(ByteArrayOutputStream out, byte[] b) { varLong(out, b.length); out.write(b, 0, b.length); }

    static void string(ByteArrayOutputStream out, String s) { bytes(out, s.getBytes(StandardCharsets.UTF_8)); }

    static void nullOrString(ByteArrayOutputStream out, String s) {  // union ["null", "string"]
        if (s == null) { varLong(out, 0); } else { varLong(out, 1); string(out, s); }
    }

    public static void main(String[] a) throws Exception {
        String bootstrap = a[0], topic = a[1], service = a[2], handler = a[3];
        String key = a[4].isEmpty() ? null : a[4];
        String input = a[5];
        String idempotencyKey = a.length > 6 ? a[6] : null;
        ByteArrayOutputStream body = new ByteArrayOutputStream();  // fields in command_invoke.v1.avsc order
        string(body, service);                    // service
        string(body, handler);                    // handler
        nullOrString(body, key);                  // key
        bytes(body, input.getBytes(StandardCharsets.UTF_8));  // body
        varLong(body, 0);                         // headers: empty map
        nullOrString(body, idempotencyKey);       // idempotency_key
        varLong(body, 0);                         // reply_to: null
        varLong(body, 0);                         // delay_ms: null

        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("acks", "all");
        try (KafkaProducer<byte[], byte[]> producer =
                 new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer())) {
            byte[] recordKey = key != null ? key.getBytes(StandardCharsets.UTF_8) : null;
            ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(topic, recordKey, body.toByteArray());
            System.out.println("acknowledged at offset " + producer.send(record).get().offset());
        }
    }
}

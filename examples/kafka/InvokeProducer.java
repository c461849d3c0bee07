// Invoke a Reprise handler from Java through Kafka, without Avro libraries: the Invoke body is
// encoded by hand (Avro's binary encoding is small: zig-zag varints, length-prefixed strings, union
// branch indexes), the object key is the record key, and Kafka's default (murmur2) partitioner
// routes it to the partition that owns the key.
//
//   java -cp "$HOME/.cache/reprise/kafka-4.1.0/lib/*" examples/kafka/InvokeProducer.java \
//        127.0.0.1:9092 reprise.log Counter add c1 1
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
        ByteArrayOutputStream body = new ByteArrayOutputStream();  // fields in schemas/invoke.v1.avsc order
        nullOrString(body, null);                 // invocation_id: derived by the engine
        string(body, service);                    // service
        string(body, handler);                    // handler
        nullOrString(body, key);                  // key
        nullOrString(body, null);                 // handler_kind
        bytes(body, input.getBytes(StandardCharsets.UTF_8));  // input
        varLong(body, 0);                         // headers: empty array
        nullOrString(body, null);                 // idempotency_key
        varLong(body, 0);                         // caller: null
        varLong(body, 0);                         // reply_to: null
        varLong(body, 0);                         // ack_to: null
        varLong(body, 0);                         // execute_at_ms: null
        varLong(body, System.currentTimeMillis()); // created_ms
        varLong(body, 0);                         // source: null

        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("acks", "all");
        try (KafkaProducer<byte[], byte[]> producer =
                 new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer())) {
            byte[] recordKey = (key != null ? key : java.util.UUID.randomUUID().toString()).getBytes(StandardCharsets.UTF_8);
            ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(topic, recordKey, body.toByteArray());
            record.headers().add("reprise-kind", "Invoke".getBytes(StandardCharsets.UTF_8));
            record.headers().add("reprise-version", "1".getBytes(StandardCharsets.UTF_8));
            System.out.println("acknowledged at partition " + producer.send(record).get().partition());
        }
    }
}

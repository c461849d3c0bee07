// A Kafka-native client of Reprise in Go, with pure-Go Kafka (franz-go) and Avro (hamba/avro)
// libraries and nothing of Reprise but its documented schemas: it writes Invoke commands
// (schemas/command_invoke.v1.avsc) to <namespace>.commands and reads Reply records
// (schemas/reply.v1.avsc) from its reply topic. tests/integration/test_go_client.py builds and runs it.
//
//	commands-client -bootstrap 127.0.0.1:9092 -namespace reprise -schemas ./schemas -reply-topic reprise.replies.go
//
// What it does, printed as one JSON object on stdout:
//  1. Counter/add 1 on key "go-once" twice with the same idempotency key, on two different
//     commands partitions, each asking for a reply: both replies, which must name one invocation.
//  2. Counter/add 1 on key "go-spread" once on every commands partition, whichever partition a
//     producer picks: "spread" is how many it sent (the object must count them all).
//  3. a command for a handler that does not exist, asking for a reply: its error reply.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Command is schemas/command_invoke.v1.avsc.
type Command struct {
	Service        string            `avro:"service"`
	Handler        string            `avro:"handler"`
	Key            *string           `avro:"key"`
	Body           []byte            `avro:"body"`
	Headers        map[string]string `avro:"headers"`
	IdempotencyKey *string           `avro:"idempotency_key"`
	ReplyTo        *ReplyTo          `avro:"reply_to"`
	DelayMs        *int64            `avro:"delay_ms"`
}

type ReplyTo struct {
	Topic         string `avro:"topic"`
	CorrelationID string `avro:"correlation_id"`
}

// Reply is schemas/reply.v1.avsc (its named types are in schemas/common.avsc).
type Reply struct {
	IngressID    string   `avro:"ingress_id" json:"-"`
	RequestID    string   `avro:"request_id" json:"request_id"`
	InvocationID string   `avro:"invocation_id" json:"invocation_id"`
	Value        *[]byte  `avro:"value" json:"-"`
	Failure      *Failure `avro:"failure" json:"failure"`
	Source       *Source  `avro:"source" json:"-"`
	Text         string   `avro:"-" json:"value"`
}

type Failure struct {
	Code    int32  `avro:"code" json:"code"`
	Message string `avro:"message" json:"message"`
}

type Source struct {
	Partition int32 `avro:"partition"`
	Seq       int64 `avro:"seq"`
}

func str(s string) *string { return &s }

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "Kafka bootstrap servers")
	namespace := flag.String("namespace", "reprise", "the engine's namespace")
	schemas := flag.String("schemas", "schemas", "the directory of Reprise's .avsc files")
	replyTopic := flag.String("reply-topic", "", "an existing reply topic the engine may write to")
	flag.Parse()

	commandSchema, err := avro.ParseFiles(filepath.Join(*schemas, "command_invoke.v1.avsc"))
	if err != nil {
		fail("command schema: %v", err)
	}
	replySchema, err := avro.ParseFiles(filepath.Join(*schemas, "common.avsc"), filepath.Join(*schemas, "reply.v1.avsc"))
	if err != nil {
		fail("reply schema: %v", err)
	}

	commandsTopic := *namespace + ".commands"
	client, err := kgo.NewClient(
		kgo.SeedBrokers(*bootstrap),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), // to show that the partition does not matter
		kgo.ConsumeTopics(*replyTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		fail("kafka client: %v", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	partitions := commandsPartitions(ctx, client, commandsTopic)
	produce := func(partition int32, cmd Command) {
		value, err := avro.Marshal(commandSchema, cmd)
		if err != nil {
			fail("encode command: %v", err)
		}
		var key []byte
		if cmd.Key != nil {
			key = []byte(*cmd.Key)
		}
		record := &kgo.Record{Topic: commandsTopic, Partition: partition, Key: key, Value: value}
		if err := client.ProduceSync(ctx, record).FirstErr(); err != nil {
			fail("produce command: %v", err)
		}
	}

	// 1. the same idempotency key twice, on two partitions
	for i, partition := range []int32{0, partitions - 1} {
		produce(partition, Command{Service: "Counter", Handler: "add", Key: str("go-once"), Body: []byte("1"),
			Headers: map[string]string{"content-type": "application/json"}, IdempotencyKey: str("go-order-1"),
			ReplyTo: &ReplyTo{Topic: *replyTopic, CorrelationID: fmt.Sprintf("once-%d", i)}})
	}
	// 2. one object's commands on every partition
	for p := int32(0); p < partitions; p++ {
		produce(p, Command{Service: "Counter", Handler: "add", Key: str("go-spread"), Body: []byte("1"),
			Headers: map[string]string{}})
	}
	// 3. a command the engine cannot accept
	produce(0, Command{Service: "Counter", Handler: "noSuchHandler", Key: str("go-bad"), Body: []byte("1"),
		Headers: map[string]string{}, ReplyTo: &ReplyTo{Topic: *replyTopic, CorrelationID: "bad-1"}})

	replies := map[string]Reply{}
	for len(replies) < 3 {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("timed out with replies %v", replies)
		}
		fetches.EachError(func(t string, p int32, err error) { // e.g. a new topic's id not known yet: retried
			fmt.Fprintf(os.Stderr, "fetch %s/%d: %v\n", t, p, err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			var reply Reply
			if err := avro.Unmarshal(replySchema, r.Value, &reply); err != nil {
				fail("decode reply: %v", err)
			}
			if reply.Value != nil {
				reply.Text = string(*reply.Value)
			}
			replies[reply.RequestID] = reply
		})
	}
	out, _ := json.Marshal(map[string]any{"replies": replies, "spread": partitions})
	fmt.Println(string(out))
}

func commandsPartitions(ctx context.Context, client *kgo.Client, topic string) int32 {
	for ctx.Err() == nil {
		md, err := client.Request(ctx, metadataRequest(topic))
		if err == nil {
			if n := partitionCount(md, topic); n > 0 {
				return n
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	fail("topic %s not found", topic)
	return 0
}

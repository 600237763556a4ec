package config

import (
	"strings"
	"testing"
)

// TestKafkaPropertyFiles: a setting in kafka.propertyFiles takes the file's content at load
// (sasl.password from a mounted Secret); given twice or unreadable, it is an error.
func TestKafkaPropertyFiles(t *testing.T) {
	const pw = "testdata/kafka-password" // "s3cret\n", as a mounted Secret key
	kafka := func(extra string) []byte {
		return []byte(strings.Replace(minimal, `kafka: {bootstrapServers: "k:9092"}`, `kafka: {bootstrapServers: "k:9092", `+extra+`}`, 1))
	}
	cfg, err := Parse(kafka("propertyFiles: {sasl.password: " + pw + "}"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.Properties["sasl.password"] != "s3cret" {
		t.Fatalf("properties %v", cfg.Kafka.Properties)
	}
	_, err = Parse(kafka("properties: {sasl.password: x}, propertyFiles: {sasl.password: " + pw + "}"))
	if err == nil || !strings.Contains(err.Error(), "kafka.propertyFiles.sasl.password: also set in kafka.properties") {
		t.Fatalf("set twice: %v", err)
	}
}

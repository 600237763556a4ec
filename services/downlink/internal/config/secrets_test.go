package config

import (
	"testing"
)

// TestKafkaPropertyFiles: kafka.propertyFiles values are read from their files at load.
func TestKafkaPropertyFiles(t *testing.T) {
	t.Setenv("POD_NAME", "p0")
	const pw = "testdata/kafka-password" // "s3cret\n", as a mounted Secret key
	cfg, err := Parse([]byte(with(`kafka: {bootstrapServers: "k:9092", propertyFiles: {sasl.password: ` + pw + `}}`)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.Properties["sasl.password"] != "s3cret" {
		t.Fatalf("properties %v", cfg.Kafka.Properties)
	}
	if _, err := Parse([]byte(with(`kafka: {bootstrapServers: "k:9092", propertyFiles: {sasl.password: /nonexistent}}`))); err == nil {
		t.Fatal("an unreadable password file was accepted")
	}
}

package config

import (
	"strings"
	"testing"
)

// TestKafkaPropertyFiles: kafka.propertyFiles values are read from their files at load.
func TestKafkaPropertyFiles(t *testing.T) {
	const pw = "testdata/kafka-password" // "s3cret\n", as a mounted Secret key
	cfg, err := Parse([]byte(strings.Replace(minimal, "  topics: [a, b]\n", "  topics: [a, b]\n  propertyFiles: {sasl.password: "+pw+"}\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.Properties["sasl.password"] != "s3cret" {
		t.Fatalf("properties %v", cfg.Kafka.Properties)
	}
	if _, err := Parse([]byte(strings.Replace(minimal, "  topics: [a, b]\n", "  topics: [a, b]\n  propertyFiles: {sasl.password: /nonexistent}\n", 1))); err == nil {
		t.Fatal("an unreadable password file was accepted")
	}
}

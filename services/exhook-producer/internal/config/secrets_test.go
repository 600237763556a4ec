package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKafkaPropertyFiles: a setting in kafka.propertyFiles takes the file's content at load
// (sasl.password from a mounted Secret); given twice or unreadable, it is an error.
func TestKafkaPropertyFiles(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
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
